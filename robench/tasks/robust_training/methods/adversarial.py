"""Adversarial training recipes: ``adv-fgs`` (Goodfellow et al. 2015, DeepDefense's baseline)
and ``adv-pgd`` (Madry et al. 2018).

Both craft l∞ adversarial examples of the current model for each minibatch (inputs stay
in [0, 1]; the model is in eval mode while crafting, and the examples are constants for
the weight update). ``eps`` is in pixel units of [0, 1] images.

- ``adv-fgs``: ``α·CE(x) + (1−α)·CE(x + eps·sign ∇ₓCE)``, α = ``clean_weight`` (0.5 as in
  Goodfellow et al.).
- ``adv-pgd``: ``CE(x_pgd)`` only (Madry's min-max), x_pgd from ``steps`` signed-gradient
  steps of size ``2.5·eps/steps`` from a uniform random start in the ε-ball.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from robench.registry import register_method
from robench.tasks.robust_training.methods.base import RobustTrainingRecipe


def _input_grad(model, x, y):
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
    """l∞ PGD: random start in the ε-ball, ``steps`` steps of 2.5·eps/steps, projected and clipped."""
    was_training = model.training
    model.eval()
    step_size = 2.5 * eps / steps
    noise = torch.rand(x.shape, generator=generator, dtype=x.dtype) * 2 - 1
    adv = (x + eps * noise).clamp(0.0, 1.0)
    for _ in range(steps):
        adv = adv + step_size * _input_grad(model, adv, y).sign()
        adv = torch.min(torch.max(adv, x - eps), x + eps).clamp(0.0, 1.0)
    model.train(was_training)
    return adv.detach()


@register_method("robust_training", "adv-fgs")
class AdversarialFGS(RobustTrainingRecipe):
    """Adversarial training on FGS examples: α·CE(x) + (1−α)·CE(x_fgs)."""
    version = "1"

    def __init__(self, eps: float = 0.1, clean_weight: float = 0.5):
        self.eps = eps
        self.clean_weight = clean_weight

    def loss(self, model, x, y):
        adv = fgs_examples(model, x, y, self.eps)
        a = self.clean_weight
        return a * F.cross_entropy(model(x), y) + (1 - a) * F.cross_entropy(model(adv), y)


@register_method("robust_training", "adv-pgd")
class AdversarialPGD(RobustTrainingRecipe):
    """Madry-style adversarial training: CE on l∞ PGD examples (random start)."""
    version = "1"

    def __init__(self, eps: float = 0.1, steps: int = 7):
        self.eps = eps
        self.steps = steps

    def train(self, model, data, epochs, seed, **kw):
        self._gen = torch.Generator().manual_seed(seed + 7919)  # random starts, from the seed only
        return super().train(model, data, epochs, seed, **kw)

    def loss(self, model, x, y):
        adv = pgd_examples(model, x, y, self.eps, self.steps, self._gen)
        return F.cross_entropy(model(adv), y)
