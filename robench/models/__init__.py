"""Models shared by several tasks; each registered factory returns a fresh ``nn.Module``."""

from __future__ import annotations

from pathlib import Path

from robench.models.weights import load_weights  # noqa: F401  (a checkpoint file into a built model)


def build_model(name: str, **kwargs):
    """Build a registered model by name, or a library's architecture (``tv:NAME``,
    ``timm:NAME``), with ``num_classes=`` and ``in_channels=`` as it accepts."""
    from robench import registry
    registry.load_builtins()
    return registry.models.get(name)(**kwargs)


def export_state_dict(model, path: str | Path) -> Path:
    """Write ``model``'s state dict to ``path``, device-free (CPU, contiguous tensors), so it
    loads anywhere with ``torch.load(path, weights_only=True)``. Returns ``path``."""
    import torch

    path = Path(path)
    torch.save({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, path)
    return path
