"""``dense``: no compression; the reference row, fine-tuned with the same budget."""

from __future__ import annotations

from robench.registry import register_method
from robench.tasks.compression.methods.base import CompressionMethod


@register_method("compression", "dense")
class Dense(CompressionMethod):
    """Reference: the dense baseline, fine-tuned with the same budget as every method."""
    version = "1"

    def __init__(self):
        pass
