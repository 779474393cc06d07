"""``vanilla``: plain cross-entropy fine-tuning with the same budget (the reference row)."""

from __future__ import annotations

from robench.registry import register_method
from robench.tasks.robust_training.methods.base import RobustTrainingRecipe


@register_method("robust_training", "vanilla")
class Vanilla(RobustTrainingRecipe):
    """Reference: the vanilla model fine-tuned with cross-entropy only, same epochs as every recipe."""
    version = "1"

    def __init__(self):
        pass
