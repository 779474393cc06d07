"""``parseval``: Parseval networks (Cisse et al., ICML 2017), the orthonormality part.

After every SGD step each weight matrix W (a Linear weight (out, in); a Conv kernel
reshaped to (out, in·kh·kw)) is retracted towards the Stiefel manifold,

    W ← (1 + β)·W − β·W·Wᵀ·W,

one gradient step on ‖WᵀW − I‖² that keeps W Wᵀ close to the identity (rows orthonormal)
when out ≤ in; for out > in the same step is applied to Wᵀ (columns orthonormal), so
every layer is pushed towards spectral norm 1. β = 0.0003 is the paper's value. The
paper's convex combination in aggregation layers does not apply to our plain
feed-forward models, and we retract all rows at every step (the paper samples a subset
for speed). The training objective is plain cross-entropy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from robench.registry import register_method
from robench.tasks.contract import check_param
from robench.tasks.robust_training.methods.base import RobustTrainingRecipe

if TYPE_CHECKING:
    import torch
    from torch import nn


def parseval_retraction(weight: torch.Tensor, beta: float) -> None:
    """In place: W ← (1+β)W − β W Wᵀ W on ``weight`` viewed as (out, rest) (transposed if out > rest)."""
    import torch

    with torch.no_grad():
        w = weight.view(weight.shape[0], -1)
        if w.shape[0] > w.shape[1]:
            w = w.t()
        w.copy_((1 + beta) * w - beta * (w @ w.t() @ w))


def parseval_layers(model: nn.Module) -> list[nn.Module]:
    """Every Linear and Conv2d of ``model`` (their ``weight`` is retracted)."""
    from torch import nn

    return [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]


@register_method("robust_training", "parseval")
class Parseval(RobustTrainingRecipe):
    """Parseval networks: cross-entropy, and the retraction W ← (1+β)W − βWWᵀW after every step.

    beta: β, the retraction's step, ≥ 0 (the paper: 0.0003; larger keeps W closer to a Parseval tight frame).
    """
    version = "1"

    def __init__(self, beta: float = 0.0003):
        self.beta = check_param("method 'parseval'", "beta", beta, float, low=0.0)

    def after_step(self, model):
        for layer in parseval_layers(model):
            parseval_retraction(layer.weight, self.beta)
