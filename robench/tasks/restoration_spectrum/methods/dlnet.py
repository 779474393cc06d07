"""``dlnet``: DL-Net (arXiv 1904.09105): the base network plus K fidelity steps on its late
feature z, unrolled and fine-tuned end to end from the base.

The step rule (see :class:`robench.tasks.restoration.nets.FidelityRefinement`): plain
gradient steps on E(z) = ½‖M ⊙ (y − A(x(z)))‖², each scaled by the exact line-search
step of this quadratic times a learned γ_k ∈ (0, 2) (initialised at ``step_size``), so
every step lowers the masked error. The reference code takes K = 5 Adam steps; we take
plain gradient steps. Fine-tuning (``finetune_steps`` of the task, 0.2 × the base's lr)
draws levels from the whole spectrum (``train_on="spectrum"``, the same schedule as
``spectrum-ft``) or uses the training level only (``train_on="train_level"``).
"""

from __future__ import annotations

from robench.registry import register_method
from robench.tasks.restoration.methods.base import RestorationMethod, check_positive_int


@register_method("restoration_spectrum", "dlnet")
class DLNet(RestorationMethod):
    """base + K unrolled fidelity steps on a late feature, fine-tuned end to end (DL-Net)"""
    version = "1"

    def __init__(self, steps: int = 5, step_size: float = 1.0, learn_step: bool = True,
                 train_on: str = "spectrum"):
        check_positive_int(steps, "steps", "dlnet")
        if isinstance(step_size, bool) or not isinstance(step_size, (int, float)) or not 0 < step_size < 2:
            raise ValueError(f"method 'dlnet': step_size={step_size!r}; expected a number in (0, 2) "
                             "(a multiple of the exact line-search step)")
        if train_on not in ("spectrum", "train_level"):
            raise ValueError(f"method 'dlnet': train_on={train_on!r}; expected 'spectrum' or 'train_level'")
        self.steps = steps
        self.step_size = step_size
        self.learn_step = learn_step
        self.train_on = train_on

    def fit(self, problem):
        self.model_ = problem.finetuned(module_steps=self.steps, step_size=self.step_size,
                                        learn_step=self.learn_step, on=self.train_on)
        return self

    def restore(self, obs):
        return self.model_(obs.network_input, obs.y, obs.mask, obs.forward_operator)
