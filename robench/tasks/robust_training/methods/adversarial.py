"""Adversarial training recipes: ``adv-fgs`` (Goodfellow et al. 2015, DeepDefense's baseline)
and ``adv-pgd`` (Madry et al. 2018).

Both craft l∞ adversarial examples of the current model for each minibatch (inputs stay
in [0, 1]; the model is in eval mode while crafting, and the examples are constants for
the weight update). ``eps`` is in pixel units of [0, 1] images.

- ``adv-fgs``: ``α·CE(x) + (1−α)·CE(x + eps·sign ∇ₓCE)``, α = ``clean_weight`` (0.5 as in
  Goodfellow et al.).
- ``adv-pgd``: ``CE(x_pgd)`` only (Madry's min-max), x_pgd from ``steps`` signed-gradient
  steps of size ``2.5·eps/steps`` from a uniform random start in the ε-ball (drawn on the
  CPU from the seed's stream "adversarial-starts", then moved to the batch's device).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from robench.registry import register_method
from robench.tasks.contract import check_param
from robench.tasks.robust_training.methods.base import RobustTrainingRecipe

if TYPE_CHECKING:
    import torch


def _input_grad(model, x, y):
    import torch
    import torch.nn.functional as F

    x = x.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(F.cross_entropy(model(x), y), x)
    return grad


def fgs_examples(model, x, y, eps: float) -> torch.Tensor:
    """x + eps·sign(∇ₓ CE), clipped to [0, 1] (detached)."""
    was_training = model.training
    model.eval()
    adv = (x + eps * _input_grad(model, x, y).sign()).clamp(0.0, 1.0)
    model.train(was_training)
    return adv.detach()


def pgd_examples(model, x, y, eps: float, steps: int, generator: torch.Generator) -> torch.Tensor:
    """l∞ PGD: random start in the ε-ball, ``steps`` steps of 2.5·eps/steps, projected and clipped.
    The start is drawn from ``generator`` on its own device, then moved to ``x``'s."""
    import torch

    was_training = model.training
    model.eval()
    step_size = 2.5 * eps / steps
    noise = torch.rand(x.shape, generator=generator, dtype=x.dtype, device=generator.device).to(x.device) * 2 - 1
    adv = (x + eps * noise).clamp(0.0, 1.0)
    for _ in range(steps):
        adv = adv + step_size * _input_grad(model, adv, y).sign()
        adv = torch.min(torch.max(adv, x - eps), x + eps).clamp(0.0, 1.0)
    model.train(was_training)
    return adv.detach()


@register_method("robust_training", "adv-fgs")
class AdversarialFGS(RobustTrainingRecipe):
    """Adversarial training on FGS examples: α·CE(x) + (1−α)·CE(x_fgs).

    eps: l∞ radius of the FGS examples, ≥ 0 (inputs in [0, 1]).
    clean_weight: α, the clean loss's share, in [0, 1].
    """
    version = "1"

    def __init__(self, eps: float = 0.1, clean_weight: float = 0.5):
        self.eps = check_param("method 'adv-fgs'", "eps", eps, float, low=0.0)
        self.clean_weight = check_param("method 'adv-fgs'", "clean_weight", clean_weight, float, low=0.0, high=1.0)

    def loss(self, model, x, y):
        import torch.nn.functional as F

        adv = fgs_examples(model, x, y, self.eps)
        a = self.clean_weight
        return a * F.cross_entropy(model(x), y) + (1 - a) * F.cross_entropy(model(adv), y)


@register_method("robust_training", "adv-pgd")
class AdversarialPGD(RobustTrainingRecipe):
    """Madry-style adversarial training: CE on l∞ PGD examples (random start).

    eps: l∞ radius of the PGD examples, ≥ 0 (inputs in [0, 1]).
    steps: PGD steps per example, ≥ 1 (step size 2.5·eps/steps, as Madry et al.).
    """
    version = "1"

    def __init__(self, eps: float = 0.1, steps: int = 7):
        self.eps = check_param("method 'adv-pgd'", "eps", eps, float, low=0.0)
        self.steps = check_param("method 'adv-pgd'", "steps", steps, int, low=1)

    def train(self, model, data, epochs, seed, **kw):
        from robench import seeding

        self._gen = seeding.stream(seed, "adversarial-starts")  # random starts, from the seed only
        return super().train(model, data, epochs, seed, **kw)

    def loss(self, model, x, y):
        import torch.nn.functional as F

        adv = pgd_examples(model, x, y, self.eps, self.steps, self._gen)
        return F.cross_entropy(model(adv), y)
