"""``base``: the network trained at the single training level, applied at every level."""

from __future__ import annotations

from robench.registry import register_method
from robench.tasks.restoration_spectrum.methods.base import RestorationMethod


@register_method("restoration_spectrum", "base")
class BaseNetwork(RestorationMethod):
    """the single-level base network (context encoder / VDSR), trained at train_level"""
    version = "1"

    def fit(self, problem):
        self.net_ = problem.base_network()
        return self

    def restore(self, obs):
        return self.net_(obs.network_input)
