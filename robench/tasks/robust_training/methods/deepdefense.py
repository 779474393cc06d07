"""``deepdefense``: cross-entropy + the DeepDefense regularizer (Yan et al., NeurIPS 2018).

Objective per minibatch: ``CE + mean_i [λ·exp(−c·ρ_i) if i is classified correctly else
λ·exp(d·ρ_i)]`` with ρ_i = ‖r_i‖₂/‖x_i‖₂ and r_i from DeepFool unrolled for ``steps``
iterations (overshoot 0.02), differentiated through every iteration
(:func:`robench.tasks.robust_training.deepfool.deepdefense_regularizer`). Defaults are the
reference code's: λ=15, c=25, d=5, 5 iterations, all classes as candidates, no clipping of
the perturbed input inside the regularizer (``clip=False``).
"""

from __future__ import annotations

from robench.errors import UserError
from robench.registry import register_method
from robench.tasks.robust_training.deepfool import deepdefense_regularizer
from robench.tasks.robust_training.methods.base import RobustTrainingRecipe


@register_method("robust_training", "deepdefense")
class DeepDefense(RobustTrainingRecipe):
    """DeepDefense: λ·exp(−c·ρ) / λ·exp(d·ρ) on correct / misclassified samples, ρ from an unrolled DeepFool."""
    version = "1"

    def __init__(self, lam: float = 15.0, c: float = 25.0, d: float = 5.0, steps: int = 5,
                 overshoot: float = 0.02, candidates: int = 10, clip: bool = False):
        self.lam = lam
        self.c = c
        self.d = d
        self.steps = steps
        self.overshoot = overshoot
        self.candidates = candidates
        self.clip = clip

    def loss(self, model, x, y):
        import torch.nn.functional as F

        if not (isinstance(self.steps, int) and self.steps >= 1 and isinstance(self.candidates, int)
                and self.candidates >= 2):
            raise UserError(f"method 'deepdefense': steps must be >= 1 and candidates >= 2, "
                            f"got steps={self.steps!r}, candidates={self.candidates!r}")
        reg, _ = deepdefense_regularizer(model, x, y, lam=self.lam, c=self.c, d=self.d, steps=self.steps,
                                         overshoot=self.overshoot, candidates=self.candidates,
                                         bounds=(0.0, 1.0) if self.clip else None)
        return F.cross_entropy(model(x), y) + reg
