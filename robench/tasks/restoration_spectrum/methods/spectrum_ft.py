"""``spectrum-ft``: the base fine-tuned on levels drawn from the whole spectrum, without
the fidelity module (DL-Net's training with K = 0 steps: same start, data, levels, budget
and learning rate as ``dlnet``), so "seeing many levels" is separated from "the module".

``base-ft``: the same fine-tuning budget spent at the training level only — separates
"more training steps" from "seeing many levels" when the base is not fully converged."""

from __future__ import annotations

from robench.registry import register_method
from robench.tasks.restoration_spectrum.methods.base import RestorationMethod


@register_method("restoration_spectrum", "spectrum-ft")
class SpectrumFineTune(RestorationMethod):
    """base fine-tuned on levels drawn from the whole test spectrum (no fidelity module)"""
    version = "1"

    def fit(self, problem):
        self.net_ = problem.finetuned(module_steps=0)
        return self

    def restore(self, obs):
        return self.net_(obs.network_input)


@register_method("restoration_spectrum", "base-ft")
class BaseFineTune(RestorationMethod):
    """base fine-tuned at its own training level with the same extra budget (control)"""
    version = "1"

    def fit(self, problem):
        self.net_ = problem.finetuned(module_steps=0, on="train_level")
        return self

    def restore(self, obs):
        return self.net_(obs.network_input)
