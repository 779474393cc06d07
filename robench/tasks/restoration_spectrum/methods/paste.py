"""``base+paste``: the base output with the observed pixels pasted back (hard data
consistency). Only for families with observed pixels (inpainting, interpolation)."""

from __future__ import annotations

from robench.registry import register_method
from robench.tasks.restoration_spectrum.methods.base import RestorationMethod


@register_method("restoration_spectrum", "base+paste")
class BasePaste(RestorationMethod):
    """base network output with observed pixels replaced by the observation"""
    version = "1"
    families = ("inpainting", "interpolation")

    def fit(self, problem):
        self.net_ = problem.base_network()
        return self

    def restore(self, obs):
        out = self.net_(obs.network_input)
        return obs.mask * obs.y + (1 - obs.mask) * out
