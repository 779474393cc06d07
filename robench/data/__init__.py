"""Datasets shared by several tasks. Loaders return a :class:`Splits` of tensors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class Splits:
    """Image classification data. x: float32 (N, C, H, W) in [0, 1]; y: int64 (N,)."""
    name: str
    train_x: Any
    train_y: Any
    test_x: Any
    test_y: Any
    num_classes: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train_x.shape[1:])


def load_dataset(name: str, root: str | None = None) -> Splits:
    """Look a dataset up in the registry and load it (``root`` for full public data)."""
    from robench import registry
    registry.load_builtins()
    loader = registry.datasets.get(name)
    return loader(root=root)
