"""SVHN (Netzer et al. 2011), the cropped-digits format, from the user's .mat files (never downloads)."""

from __future__ import annotations

import os

from robench.data import Splits
from robench.errors import UserError
from robench.registry import register_dataset

SVHN_URL = "http://ufldl.stanford.edu/housenumbers/"
FILES = {"train": "train_32x32.mat", "test": "test_32x32.mat"}


@register_dataset("svhn", description="SVHN cropped digits (73257/26032, 3x32x32) from train_32x32.mat and "
                                      "test_32x32.mat under root= (never downloads)", root="required")
def svhn(root: str | None = None) -> Splits:
    """x float32 (N, 3, 32, 32) in [0, 1], y int64 in 0..9: the files' label 10 is the digit 0
    (torchvision's convention). The ``extra`` split is not used."""
    import torch

    if root is None:
        raise UserError(f"dataset 'svhn' needs root=<folder holding {FILES['train']} and {FILES['test']}> "
                        f"(format 2 from {SVHN_URL})")
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise UserError(f"dataset 'svhn': root {root} is not a folder; expected {FILES['train']} and "
                        f"{FILES['test']} there")
    tensors = []
    for split in ("train", "test"):
        x, y = _read(os.path.join(root, FILES[split]))
        tensors += [torch.from_numpy(x).permute(3, 2, 0, 1).contiguous().to(torch.float32).div_(255.0),
                    torch.from_numpy(y)]
    return Splits("svhn", *tensors, 10)


def _read(path: str):
    """(X uint8 (32, 32, 3, N), labels int64 (N,) in 0..9) of one .mat file, checked."""
    import numpy as np
    from scipy.io import loadmat

    expected = f"expected SVHN format 2 ({os.path.basename(path)} from {SVHN_URL}: X uint8 32x32x3xN, y 1..10)"
    if not os.path.isfile(path):
        raise UserError(f"dataset 'svhn': {path} not found; {expected}")
    try:
        mat = loadmat(path)
    except (OSError, ValueError, TypeError, NotImplementedError) as exc:
        reason = " ".join(str(exc).split())
        raise UserError(f"dataset 'svhn': cannot read {path} ({type(exc).__name__}: {reason}); {expected}") from None
    x, y = mat.get("X"), mat.get("y")
    if (not isinstance(x, np.ndarray) or not isinstance(y, np.ndarray) or x.dtype != np.uint8 or x.ndim != 4
            or x.shape[:3] != (32, 32, 3) or y.size != x.shape[3]):
        raise UserError(f"dataset 'svhn': {path} holds X {getattr(x, 'dtype', None)}{list(getattr(x, 'shape', []))} "
                        f"and y of {getattr(y, 'size', 0)} labels; {expected}")
    labels = y.reshape(-1).astype(np.int64)
    if labels.size and (labels.min() < 1 or labels.max() > 10):
        raise UserError(f"dataset 'svhn': labels in {path} range {labels.min()}..{labels.max()}; {expected}")
    return x, labels % 10
