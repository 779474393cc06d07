"""Models shared by several tasks; each registered factory returns a fresh ``nn.Module``."""

from __future__ import annotations


def build_model(name: str, **kwargs):
    """Build a registered model by name (``num_classes=``, ``in_channels=`` as it accepts)."""
    from robench import registry
    registry.load_builtins()
    return registry.models.get(name)(**kwargs)
