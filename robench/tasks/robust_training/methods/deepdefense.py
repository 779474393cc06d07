"""``deepdefense``: cross-entropy + the DeepDefense regularizer (Yan et al., NeurIPS 2018).

Objective per minibatch: ``CE + mean_i [λ·exp(−c·ρ_i) if i is classified correctly else
λ·exp(d·ρ_i)]`` with ρ_i = ‖r_i‖₂/‖x_i‖₂ and r_i from DeepFool unrolled for ``steps``
iterations (overshoot 0.02), differentiated through every iteration
(:func:`robench.tasks.robust_training.methods._deepfool.deepdefense_regularizer`). Defaults
are the reference code's: λ=15, c=25, d=5, 5 iterations, all classes as candidates, no
clipping of the perturbed input inside the regularizer (``clip=False``).
"""

from __future__ import annotations

from robench.registry import register_method
from robench.tasks.contract import check_param
from robench.tasks.robust_training.methods.base import RobustTrainingRecipe


@register_method("robust_training", "deepdefense")
class DeepDefense(RobustTrainingRecipe):
    """DeepDefense: λ·exp(−c·ρ) / λ·exp(d·ρ) on correct / misclassified samples, ρ from an unrolled DeepFool.

    lam: weight λ of the regularizer, ≥ 0 (the paper: 15 on MNIST).
    c: how fast the penalty on a correctly classified sample falls with its normalized
    DeepFool perturbation ρ, ≥ 0 (chosen on validation; larger c tolerates smaller ρ).
    d: the same for a misclassified sample (the penalty grows as exp(d·ρ)), ≥ 0.
    steps: unrolled DeepFool iterations that give ρ, ≥ 1 (each costs a backward pass per candidate).
    overshoot: DeepFool's overshoot, ≥ 0 (0.02 as in DeepFool).
    candidates: classes DeepFool considers (the top logits), ≥ 2.
    clip: True keeps DeepFool's iterates in [0, 1] (the box), False leaves them free as the paper.
    """
    version = "1"

    def __init__(self, lam: float = 15.0, c: float = 25.0, d: float = 5.0, steps: int = 5,
                 overshoot: float = 0.02, candidates: int = 10, clip: bool = False):
        owner = "method 'deepdefense'"
        self.lam = check_param(owner, "lam", lam, float, low=0.0)
        self.c = check_param(owner, "c", c, float, low=0.0)
        self.d = check_param(owner, "d", d, float, low=0.0)
        self.steps = check_param(owner, "steps", steps, int, low=1)
        self.overshoot = check_param(owner, "overshoot", overshoot, float, low=0.0)
        self.candidates = check_param(owner, "candidates", candidates, int, low=2)
        self.clip = check_param(owner, "clip", clip, bool)

    def loss(self, model, x, y):
        import torch.nn.functional as F

        from robench.tasks.robust_training.methods._deepfool import deepdefense_regularizer

        reg, _ = deepdefense_regularizer(model, x, y, lam=self.lam, c=self.c, d=self.d, steps=self.steps,
                                         overshoot=self.overshoot, candidates=self.candidates,
                                         bounds=(0.0, 1.0) if self.clip else None)
        return F.cross_entropy(model(x), y) + reg
