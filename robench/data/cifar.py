"""CIFAR-10 and CIFAR-100 from the official python-pickle batches, read with a restricted unpickler
(never downloads)."""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass

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
            raise pickle.UnpicklingError(f"global {module}.{name} is not part of the CIFAR format (refused)")
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


@dataclass(frozen=True)
class _Format:
    """One release of the CIFAR python batches."""
    name: str  # the dataset's registry name
    folder: str  # the folder the archive extracts to
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    meta_file: str
    label_key: bytes  # the labels' key in a batch
    names_key: bytes  # the class names' key in the meta file
    classes: int
    archive: str

    @property
    def all_files(self) -> tuple[str, ...]:
        return self.train_files + self.test_files + (self.meta_file,)

    def expected(self, root) -> str:
        files = ", ".join(self.all_files) if len(self.all_files) < 5 else \
            f"{self.train_files[0][:-1]}1..{len(self.train_files)}, {', '.join(self.test_files)}, {self.meta_file}"
        return (f"expected the {self.name.upper().replace('CIFAR', 'CIFAR-')} python version ({self.folder}/{files}): "
                f"download {self.archive} from {CIFAR10_URL} and extract it under {root}")


CIFAR10 = _Format("cifar10", BASE_FOLDER, TRAIN_FILES, TEST_FILES, META_FILE, b"labels", b"label_names", 10,
                  "cifar-10-python.tar.gz")
CIFAR100 = _Format("cifar100", "cifar-100-python", ("train",), ("test",), "meta", b"fine_labels",
                   b"fine_label_names", 100, "cifar-100-python.tar.gz")


@register_dataset("cifar10", description="full CIFAR-10 (50000/10000, 3x32x32) from the python batches "
                                         "under root= (restricted unpickler; never downloads)", root="required")
def cifar10(root: str | None = None) -> Splits:
    """CIFAR-10 with x float32 (N, 3, 32, 32) in [0, 1] and y int64 in 0..9.

    ``root`` is the folder holding ``cifar-10-batches-py/`` (torchvision's convention) or that
    folder itself. The batches are pickles; they are read with an unpickler that refuses every
    global but numpy's array constructors, so a crafted file is an error, never code that runs.
    Files need not be byte-identical to the release (no md5 check): tests write tiny batches.
    """
    return _load(CIFAR10, root)


@register_dataset("cifar100", description="full CIFAR-100 (50000/10000, 3x32x32, the 100 fine labels) from the "
                                          "python batches under root= (restricted unpickler; never downloads)",
                  root="required")
def cifar100(root: str | None = None) -> Splits:
    """CIFAR-100 with x float32 (N, 3, 32, 32) in [0, 1] and y int64 in 0..99 (the fine labels).
    ``root`` holds ``cifar-100-python/`` (train, test, meta) or is that folder; read as CIFAR-10."""
    return _load(CIFAR100, root)


def _load(fmt: _Format, root) -> Splits:
    import numpy as np
    import torch

    if root is None:
        raise UserError(f"dataset {fmt.name!r} needs root=<folder holding {fmt.folder}/>; there is no "
                        f"embedded copy: download the python version from {CIFAR10_URL}")
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise UserError(f"dataset {fmt.name!r}: root {root} is not a folder; {fmt.expected(root)}")
    folder = _locate(fmt, root)
    missing = [name for name in fmt.all_files if not os.path.isfile(os.path.join(folder, name))]
    if missing:
        raise UserError(f"dataset {fmt.name!r}: {os.path.join(folder, missing[0])} not found "
                        f"(missing: {', '.join(missing)}); {fmt.expected(root)}")

    _read_meta(fmt, os.path.join(folder, fmt.meta_file), root)
    splits = []
    for files in (fmt.train_files, fmt.test_files):
        batches = [_read_batch(fmt, os.path.join(folder, name), root) for name in files]
        rows = np.concatenate([data for data, _ in batches])
        labels = np.concatenate([labels for _, labels in batches])
        # a row is the 3x32x32 image in channel-major order: NCHW is a plain reshape
        x = torch.from_numpy(rows.reshape(-1, 3, 32, 32)).to(torch.float32).div_(255.0)
        splits += [x, torch.from_numpy(labels)]
    return Splits(fmt.name, *splits, fmt.classes)


def _locate(fmt: _Format, root: str) -> str:
    """The folder holding the batch files: root/<release folder>, or root itself."""
    nested = os.path.join(root, fmt.folder)
    if os.path.isdir(nested) or not any(os.path.isfile(os.path.join(root, name)) for name in fmt.all_files):
        return nested
    return os.path.abspath(root)


def _unpickle(fmt: _Format, path: str, root: str) -> dict:
    """The dict a batch file holds (bytes keys, as the Python 2 release wrote them)."""
    try:
        with open(path, "rb") as fh:
            entry = _CifarUnpickler(fh, encoding="bytes").load()
    except OSError as exc:
        raise UserError(f"dataset {fmt.name!r}: cannot read {path} ({exc.strerror or exc}); "
                        f"{fmt.expected(root)}") from exc
    except _PARSE_ERRORS as exc:
        reason = " ".join(str(exc).split())  # one line, whatever the parser said
        raise UserError(f"dataset {fmt.name!r}: cannot read {path} ({type(exc).__name__}: {reason}); "
                        f"{fmt.expected(root)}") from exc
    if not isinstance(entry, dict):
        raise UserError(f"dataset {fmt.name!r}: cannot read {path} (holds a {type(entry).__name__}, not a dict); "
                        f"{fmt.expected(root)}")
    return entry


def _read_meta(fmt: _Format, path: str, root: str) -> None:
    """The meta file must name the classes (b"label_names" / b"fine_label_names"), as in the release."""
    names = _unpickle(fmt, path, root).get(fmt.names_key)
    if not (isinstance(names, list) and len(names) == fmt.classes and all(isinstance(n, bytes) for n in names)):
        raise UserError(f"dataset {fmt.name!r}: cannot read {path} (no {fmt.names_key!r} list of {fmt.classes} "
                        f"class names); {fmt.expected(root)}")


def _read_batch(fmt: _Format, path: str, root: str):
    """(rows uint8 (N, 3072), labels int64 (N,)) of one data/test batch, checked."""
    import numpy as np

    entry = _unpickle(fmt, path, root)
    data, labels = entry.get(b"data"), entry.get(fmt.label_key)
    if not isinstance(data, np.ndarray) or not isinstance(labels, list):
        keys = ", ".join(sorted(map(repr, entry))[:6]) + (", ..." if len(entry) > 6 else "")
        raise UserError(f"dataset {fmt.name!r}: cannot read {path} (keys {keys}; expected b'data' (an array) "
                        f"and {fmt.label_key!r} (a list)); {fmt.expected(root)}")
    if (data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != ROW_BYTES or len(labels) != len(data)
            or not all(type(label) is int for label in labels)):
        raise UserError(f"dataset {fmt.name!r}: {path} holds data {data.dtype}{list(data.shape)} and {len(labels)} "
                        f"labels; expected uint8 rows of {ROW_BYTES} bytes and one integer label per row; "
                        f"{fmt.expected(root)}")
    if labels and (min(labels) < 0 or max(labels) > fmt.classes - 1):  # checked as Python ints: no int64 overflow
        raise UserError(f"dataset {fmt.name!r}: labels in {path} range {min(labels)}..{max(labels)}; "
                        f"expected 0..{fmt.classes - 1}; {fmt.expected(root)}")
    return data, np.asarray(labels, dtype=np.int64)
