"""CIFAR-10 from the official python-pickle batches, read with a restricted unpickler (never downloads)."""

from __future__ import annotations

import os
import pickle

from robench.data import Splits
from robench.errors import UserError
from robench.registry import register_dataset

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"
BASE_FOLDER = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILES = ("test_batch",)
META_FILE = "batches.meta"
ALL_FILES = TRAIN_FILES + TEST_FILES + (META_FILE,)
ROW_BYTES = 3 * 32 * 32

# Every global the release's pickles name: a numpy array is rebuilt by
# _reconstruct(ndarray, shape, dtype) and its dtype by dtype(...). The files (Python 2, numpy 1)
# say numpy.core; numpy 2 moved it to numpy._core.
_ALLOWED_GLOBALS = frozenset({
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
})

# What a malformed batch file can raise while being unpickled or rebuilt into arrays.
_PARSE_ERRORS = (pickle.UnpicklingError, EOFError, ValueError, KeyError, IndexError, TypeError,
                 AttributeError, OverflowError, MemoryError, UnicodeDecodeError)


class _CifarUnpickler(pickle.Unpickler):
    """Unpickles the CIFAR-10 batches and nothing else.

    ``pickle.load`` calls whatever callable a file names (``os.system``, ``builtins.eval``...).
    Here a global outside ``_ALLOWED_GLOBALS`` raises ``UnpicklingError`` before it is even
    imported, and persistent ids are refused (the base class has no ``persistent_load``). What
    comes back is plain containers, numbers, bytes and numpy arrays; the caller checks it.
    """

    def find_class(self, module, name):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"global {module}.{name} is not part of the CIFAR-10 format (refused)")
        import numpy as np

        if name == "ndarray":
            return np.ndarray
        if name == "dtype":
            return np.dtype
        try:
            from numpy._core.multiarray import _reconstruct
        except ImportError:  # numpy 1.x
            from numpy.core.multiarray import _reconstruct
        return _reconstruct


def _expected(root) -> str:
    return (f"expected the CIFAR-10 python version ({BASE_FOLDER}/data_batch_1..5, test_batch, {META_FILE}): "
            f"download cifar-10-python.tar.gz from {CIFAR10_URL} and extract it under {root}")


@register_dataset("cifar10", description="full CIFAR-10 (50000/10000, 3x32x32) from the python batches "
                                         "under root= (restricted unpickler; never downloads)", root="required")
def cifar10(root: str | None = None) -> Splits:
    """CIFAR-10 with x float32 (N, 3, 32, 32) in [0, 1] and y int64 in 0..9.

    ``root`` is the folder holding ``cifar-10-batches-py/`` (torchvision's convention) or that
    folder itself. The batches are pickles; they are read with an unpickler that refuses every
    global but numpy's array constructors, so a crafted file is an error, never code that runs.
    Files need not be byte-identical to the release (no md5 check): tests write tiny batches.
    """
    import numpy as np
    import torch

    if root is None:
        raise UserError("dataset 'cifar10' needs root=<folder holding cifar-10-batches-py/>; there is no "
                        f"embedded copy: download the python version from {CIFAR10_URL}")
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise UserError(f"dataset 'cifar10': root {root} is not a folder; {_expected(root)}")
    folder = _locate(root)
    missing = [name for name in ALL_FILES if not os.path.isfile(os.path.join(folder, name))]
    if missing:
        raise UserError(f"dataset 'cifar10': {os.path.join(folder, missing[0])} not found "
                        f"(missing: {', '.join(missing)}); {_expected(root)}")

    _read_meta(os.path.join(folder, META_FILE), root)
    splits = []
    for files in (TRAIN_FILES, TEST_FILES):
        batches = [_read_batch(os.path.join(folder, name), root) for name in files]
        rows = np.concatenate([data for data, _ in batches])
        labels = np.concatenate([labels for _, labels in batches])
        # a row is the 3x32x32 image in channel-major order: NCHW is a plain reshape
        x = torch.from_numpy(rows.reshape(-1, 3, 32, 32)).to(torch.float32).div_(255.0)
        splits += [x, torch.from_numpy(labels)]
    return Splits("cifar10", *splits, 10)


def _locate(root: str) -> str:
    """The folder holding the batch files: root/cifar-10-batches-py, or root itself."""
    nested = os.path.join(root, BASE_FOLDER)
    if os.path.isdir(nested) or not any(os.path.isfile(os.path.join(root, name)) for name in ALL_FILES):
        return nested
    return os.path.abspath(root)


def _unpickle(path: str, root: str) -> dict:
    """The dict a batch file holds (bytes keys, as the Python 2 release wrote them)."""
    try:
        with open(path, "rb") as fh:
            entry = _CifarUnpickler(fh, encoding="bytes").load()
    except OSError as exc:
        raise UserError(f"dataset 'cifar10': cannot read {path} ({exc.strerror or exc}); {_expected(root)}") from exc
    except _PARSE_ERRORS as exc:
        reason = " ".join(str(exc).split())  # one line, whatever the parser said
        raise UserError(f"dataset 'cifar10': cannot read {path} ({type(exc).__name__}: {reason}); "
                        f"{_expected(root)}") from exc
    if not isinstance(entry, dict):
        raise UserError(f"dataset 'cifar10': cannot read {path} (holds a {type(entry).__name__}, not a dict); "
                        f"{_expected(root)}")
    return entry


def _read_meta(path: str, root: str) -> None:
    """batches.meta must name the 10 classes (b"label_names"), as in the release."""
    names = _unpickle(path, root).get(b"label_names")
    if not (isinstance(names, list) and len(names) == 10 and all(isinstance(n, bytes) for n in names)):
        raise UserError(f"dataset 'cifar10': cannot read {path} (no b'label_names' list of 10 class names); "
                        f"{_expected(root)}")


def _read_batch(path: str, root: str):
    """(rows uint8 (N, 3072), labels int64 (N,)) of one data/test batch, checked."""
    import numpy as np

    entry = _unpickle(path, root)
    data, labels = entry.get(b"data"), entry.get(b"labels")
    if not isinstance(data, np.ndarray) or not isinstance(labels, list):
        keys = ", ".join(sorted(map(repr, entry))[:6]) + (", ..." if len(entry) > 6 else "")
        raise UserError(f"dataset 'cifar10': cannot read {path} (keys {keys}; expected b'data' (an array) "
                        f"and b'labels' (a list)); {_expected(root)}")
    if (data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != ROW_BYTES or len(labels) != len(data)
            or not all(type(label) is int for label in labels)):
        raise UserError(f"dataset 'cifar10': {path} holds data {data.dtype}{list(data.shape)} and {len(labels)} "
                        f"labels; expected uint8 rows of {ROW_BYTES} bytes and one integer label per row; "
                        f"{_expected(root)}")
    if labels and (min(labels) < 0 or max(labels) > 9):  # checked as Python ints: no int64 overflow
        raise UserError(f"dataset 'cifar10': labels in {path} range {min(labels)}..{max(labels)}; "
                        f"expected 0..9; {_expected(root)}")
    return data, np.asarray(labels, dtype=np.int64)
