"""Datasets shared by several tasks, read through one interface.

A loader returns a dataset with ``name``, ``num_classes``, ``input_shape`` and two splits,
``train`` and ``test``. Every split, whether its images sit in memory (:class:`ArraySplit`:
MNIST, CIFAR, SVHN) or are decoded from files batch by batch (``robench.data.streamed``:
image folders, ImageNet), offers the same calls, and every task reads data through them only:

* ``len(split)`` and ``split.sample_shape`` (C, H, W);
* ``split.batches(order, batch_size, device)``: (x, y) batches on ``device`` in the order of
  the index tensor ``order`` (``None``: 0..N-1), x float32 (B, C, H, W) in [0, 1], y int64 (B,);
* ``split.take(indices)``: (x, y) of a fixed subset on the CPU (attack points), reading only it;
* ``split.subset(indices, augment=False)``: a view of some of its samples (a validation cut).

A streamed split is never materialized: there is no tensor of all its images. In-memory
datasets keep their fast path: a batch is one indexing of a tensor, and on a GPU the whole
split is copied to the device once (per process and device) and indexed there.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from robench.errors import UserError


class ArraySplit:
    """A split held as tensors: x float32 (N, C, H, W) in [0, 1] on the CPU, y int64 (N,)."""

    streamed = False

    def __init__(self, x, y):
        self.x, self.y = x, y
        self._on_device: dict[str, tuple] = {}

    def __len__(self) -> int:
        return len(self.x)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    def take(self, indices) -> tuple[Any, Any]:
        """(x, y) of ``indices`` (a 1-D index tensor, a sequence or a slice), on the CPU."""
        if isinstance(indices, slice):
            return self.x[indices], self.y[indices]
        import torch

        idx = torch.as_tensor(indices, dtype=torch.long)
        return self.x[idx], self.y[idx]

    def subset(self, indices, augment: bool = False) -> "ArraySplit":
        return ArraySplit(*self.take(indices))

    def on(self, device) -> tuple[Any, Any]:
        """(x, y) on ``device``: a GPU copy is made once per split object and device."""
        import torch

        target = torch.device(device)
        if target.type == "cuda" and target.index is None:
            target = torch.device("cuda", torch.cuda.current_device())
        if self.x.device == target:
            return self.x, self.y
        key = str(target)
        if key not in self._on_device:
            self._on_device[key] = (self.x.to(device), self.y.to(device))
        return self._on_device[key]

    def batches(self, order=None, batch_size: int = 256, device="cpu", *, min_size: int = 1,
                augment_seed: int | None = None):
        """(x, y) batches on ``device`` in ``order`` (slices of ``batch_size``; slices shorter
        than ``min_size`` are skipped). ``augment_seed`` is accepted for the interface: an
        in-memory split has no augmentation."""
        x, y = self.on(device)
        n = len(self)
        if order is None:
            for start in range(0, n, batch_size):
                if min(batch_size, n - start) >= min_size:
                    yield x[start:start + batch_size], y[start:start + batch_size]
            return
        order = order.to(x.device)
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            if len(idx) >= min_size:
                yield x[idx], y[idx]


@dataclass
class Splits:
    """An in-memory image classification dataset. x: float32 (N, C, H, W) in [0, 1]; y: int64
    (N,). ``train``/``test`` are its :class:`ArraySplit` views (the interface tasks use)."""
    name: str
    train_x: Any
    train_y: Any
    test_x: Any
    test_y: Any
    num_classes: int

    streamed = False

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train_x.shape[1:])

    @functools.cached_property
    def train(self) -> ArraySplit:
        return ArraySplit(self.train_x, self.train_y)

    @functools.cached_property
    def test(self) -> ArraySplit:
        return ArraySplit(self.test_x, self.test_y)


@dataclass
class Dataset:
    """A dataset given by its two splits (any kind): a streamed dataset, or a view of another
    one (a validation cut, a head of the training split)."""
    name: str
    train: Any
    test: Any
    num_classes: int
    classes: tuple[str, ...] = ()

    @property
    def streamed(self) -> bool:
        return bool(getattr(self.train, "streamed", False) or getattr(self.test, "streamed", False))

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.test.sample_shape)


def load_dataset(name: str, root: str | None = None):
    """Look a dataset up in the registry and load it (``root`` for full public data): a
    :class:`Splits` (in memory) or a :class:`Dataset` of streamed splits. Loaded once per
    process for each (loader, root), so runs in one worker share it (and its GPU copy); the
    splits are read-only for everyone."""
    from robench import registry
    registry.load_builtins()
    loader = registry.datasets.get(name)
    return _load(loader, name, root)


@functools.lru_cache(maxsize=4)
def _load(loader, name: str, root: str | None):
    return loader(root=root)


def split_info(split) -> str:
    """One line saying what a split is (for error messages)."""
    kind = "streamed from files" if getattr(split, "streamed", False) else "in memory"
    return f"{len(split)} images {list(split.sample_shape)}, {kind}"

