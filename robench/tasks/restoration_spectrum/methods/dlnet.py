"""``dlnet``: DL-Net (arXiv 1904.09105): the base network plus K fidelity steps on its late
feature z, unrolled and fine-tuned end to end from the base.

The step rule (see :class:`robench.tasks.restoration_spectrum.architectures.FidelityRefinement`): plain
gradient steps on E(z) = ½‖M ⊙ (y − A(x(z)))‖², each scaled by the exact line-search
step of this quadratic times a learned γ_k ∈ (0, 2) (initialised at ``step_size``), so
every step lowers the masked error. The reference code takes K = 5 Adam steps; we take
plain gradient steps. Fine-tuning (``finetune_steps`` of the task, 0.2 × the base's lr)
draws levels from the whole spectrum (``train_on="spectrum"``, the same schedule as
``spectrum-ft``) or uses the training level only (``train_on="train_level"``).
"""

from __future__ import annotations

from robench.registry import register_method
from robench.tasks.contract import check_param
from robench.tasks.restoration_spectrum.methods.base import RestorationMethod

OWNER = "method 'dlnet'"


@register_method("restoration_spectrum", "dlnet")
class DLNet(RestorationMethod):
    """base + K unrolled fidelity steps on a late feature, fine-tuned end to end (DL-Net)

    steps: K, the unrolled data-fidelity steps on the late feature, ≥ 1 (each adds a
    forward-operator application per image).
    step_size: a multiple of the exact line-search step, in (0, 2) (every step a descent).
    learn_step: True learns the step multiplier end to end, False keeps step_size fixed.
    train_on: "spectrum" fine-tunes on levels drawn across the spectrum (the paper), or
    "train_level" on the base network's training level only (the ablation).
    """
    version = "1"

    def __init__(self, steps: int = 5, step_size: float = 1.0, learn_step: bool = True,
                 train_on: str = "spectrum"):
        self.steps = check_param(OWNER, "steps", steps, int, low=1)
        # step_size is a multiple of the exact line-search step: (0, 2) keeps every step a descent
        self.step_size = check_param(OWNER, "step_size", step_size, float, low=0, high=2, low_open=True,
                                     high_open=True)
        self.learn_step = check_param(OWNER, "learn_step", learn_step, bool)
        self.train_on = check_param(OWNER, "train_on", train_on, str, choices=("spectrum", "train_level"))

    def fit(self, problem):
        self.model_ = problem.finetuned(module_steps=self.steps, step_size=self.step_size,
                                        learn_step=self.learn_step, on=self.train_on)
        return self

    def restore(self, obs):
        return self.model_(obs.network_input, obs.y, obs.mask, obs.forward_operator)
