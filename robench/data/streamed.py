"""Datasets too large for memory: images decoded from files, batch by batch, by a DataLoader.

A :class:`FolderSplit` is a list of (file, label) and a named, versioned preprocessing. Its
batches come from a ``torch.utils.data.DataLoader`` (worker processes, pinned memory and
non-blocking copies on a GPU) over exactly the indices asked for, so an epoch reads each file
once and no tensor of all the images ever exists. Augmentation is a function of
(``augment_seed``, sample index) only, drawn from a generator of its own per sample: two runs
with one seed see the same batches with the same crops, whatever the number of loader workers.
"""

from __future__ import annotations

import hashlib
import math
import multiprocessing
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robench.errors import UserError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class Preprocessing:
    """A named preprocessing: training (random resized crop of ``scale``/``ratio`` to ``size``,
    horizontal flip with probability 1/2) and evaluation (resize the short side to ``resize``,
    center crop ``size``). Output float32 (3, size, size) in [0, 1]; normalization lives in the
    model. ``version`` changes whenever its output would."""
    name: str
    size: int
    resize: int
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    version: str = "1"


# the standard ImageNet protocol (He et al. 2016; torchvision's reference scripts)
IMAGENET_224 = Preprocessing("imagenet-224", size=224, resize=256)


def data_workers() -> int:
    """Loader worker processes per run: ``ROBENCH_DATA_WORKERS`` if set, else up to 4 of the
    machine's cores; 0 (decode in the run's own process) inside a daemonic process, which may
    not start children (a Dask worker)."""
    if multiprocessing.current_process().daemon:
        return 0
    value = os.environ.get("ROBENCH_DATA_WORKERS")
    if value is not None:
        try:
            workers = int(value)
        except ValueError:
            raise UserError(f"ROBENCH_DATA_WORKERS={value!r}; expected a whole number >= 0") from None
        if workers < 0:
            raise UserError(f"ROBENCH_DATA_WORKERS={value!r}; expected a whole number >= 0")
        return workers
    return min(4, os.cpu_count() or 1)


def sample_seed(augment_seed: int, index: int) -> int:
    """The seed of one sample's augmentation: a hash of (augment_seed, index), 63 bits."""
    digest = hashlib.blake2b(f"{augment_seed}:{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def read_image(path: str):
    """The RGB PIL image of ``path`` (grey and palette images converted, as torchvision's loader)."""
    from PIL import Image

    with open(path, "rb") as fh:
        image = Image.open(fh)
        return image.convert("RGB")


def random_resized_crop_box(height: int, width: int, scale, ratio, generator) -> tuple[int, int, int, int]:
    """(top, left, h, w) of a random crop covering ``scale`` of the area at aspect ``ratio``
    (log-uniform), drawn from ``generator``: Szegedy et al.'s crop as torchvision draws it (ten
    tries, then the central crop clamped to ``ratio``)."""
    import torch

    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * torch.empty(1).uniform_(scale[0], scale[1], generator=generator).item()
        aspect = math.exp(torch.empty(1).uniform_(log_ratio[0], log_ratio[1], generator=generator).item())
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(torch.randint(0, height - h + 1, (1,), generator=generator).item())
            left = int(torch.randint(0, width - w + 1, (1,), generator=generator).item())
            return top, left, h, w
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        h, w = height, int(round(height * max(ratio)))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def transform(image, prep: Preprocessing, seed: int | None):
    """``image`` (PIL) → float32 (3, size, size) in [0, 1]: the training transform with the
    per-sample ``seed``, or the evaluation transform when ``seed`` is None."""
    import torch
    from torchvision.transforms import functional as TF

    if seed is None:
        image = TF.center_crop(TF.resize(image, prep.resize, antialias=True), prep.size)
    else:
        generator = torch.Generator().manual_seed(seed)
        top, left, h, w = random_resized_crop_box(image.height, image.width, prep.scale, prep.ratio, generator)
        image = TF.resized_crop(image, top, left, h, w, [prep.size, prep.size], antialias=True)
        if torch.rand(1, generator=generator).item() < 0.5:
            image = TF.hflip(image)
    return TF.to_tensor(image)


class _Decoded:
    """The map-style dataset a DataLoader reads: key (index, seed or None) → (image, label)."""

    def __init__(self, samples, prep: Preprocessing):
        self.samples, self.prep = samples, prep

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key):
        index, seed = key
        path, label = self.samples[index]
        try:
            image = read_image(path)
        except (OSError, ValueError) as exc:  # PIL raises UnidentifiedImageError (an OSError) on garbage
            raise UserError(f"image {path}: cannot decode ({type(exc).__name__}: {exc}); expected an image "
                            f"file ({', '.join(IMAGE_EXTENSIONS)})") from None
        return transform(image, self.prep, seed), label


class FolderSplit:
    """A split streamed from image files: ``samples`` a list of (path, label); ``augment``:
    whether :meth:`batches` with an ``augment_seed`` applies the training transform."""

    streamed = True

    def __init__(self, samples: list[tuple[str, int]], prep: Preprocessing, augment: bool):
        self.samples, self.prep, self.augment = list(samples), prep, augment

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return (3, self.prep.size, self.prep.size)

    def subset(self, indices, augment: bool = False) -> "FolderSplit":
        return FolderSplit([self.samples[int(i)] for i in _as_list(indices, len(self))], self.prep, augment)

    def take(self, indices) -> tuple[Any, Any]:
        """(x, y) of ``indices`` on the CPU, evaluation transform (only those files are read)."""
        import torch

        idx = _as_list(indices, len(self))
        x = torch.empty((len(idx), *self.sample_shape), dtype=torch.float32)
        y = torch.empty(len(idx), dtype=torch.int64)
        for batch_start, (xb, yb) in zip(range(0, len(idx), 64),
                                         self.batches(torch.as_tensor(idx, dtype=torch.long), 64, "cpu")):
            x[batch_start:batch_start + len(xb)], y[batch_start:batch_start + len(yb)] = xb, yb
        return x, y

    def batches(self, order=None, batch_size: int = 256, device="cpu", *, min_size: int = 1,
                augment_seed: int | None = None):
        """(x, y) batches on ``device`` in ``order`` (see ``robench.data``), decoded by a
        DataLoader with :func:`data_workers` workers; the training transform when this split
        augments and ``augment_seed`` is given, else the evaluation transform."""
        import torch
        from torch.utils.data import DataLoader

        idx = list(range(len(self))) if order is None else [int(i) for i in order]
        seeded = self.augment and augment_seed is not None
        keys = [(i, sample_seed(augment_seed, i) if seeded else None) for i in idx]
        plan = [keys[s:s + batch_size] for s in range(0, len(keys), batch_size)]
        plan = [b for b in plan if len(b) >= min_size]
        if not plan:
            return
        device = torch.device(device)
        workers = min(data_workers(), len(plan))
        loader = DataLoader(_Decoded(self.samples, self.prep), batch_sampler=plan, num_workers=workers,
                            pin_memory=device.type == "cuda", prefetch_factor=4 if workers else None)
        for x, y in loader:
            yield x.to(device, non_blocking=True), y.to(device, non_blocking=True)


def _as_list(indices, n: int) -> list[int]:
    if isinstance(indices, slice):
        return list(range(n))[indices]
    return [int(i) for i in indices]


def class_folder_samples(folder: Path, classes: list[str] | None, what: str) -> tuple[list[str], list[tuple[str, int]]]:
    """(classes, samples) of a folder of class folders, torchvision's ImageFolder order: classes
    sorted by name, files sorted within each (subfolders included). With ``classes`` given (the
    training split's), every folder here must be one of them."""
    if not folder.is_dir():
        raise UserError(f"{what}: {folder} is not a folder; expected one folder per class holding images")
    found = sorted(entry.name for entry in os.scandir(folder) if entry.is_dir())
    if not found:
        raise UserError(f"{what}: {folder} has no class folders; expected {folder}/<class>/<image>.JPEG")
    if classes is None:
        classes = found
    unknown = sorted(set(found) - set(classes))
    if unknown:
        raise UserError(f"{what}: {folder}/{unknown[0]} is not a class of the training split "
                        f"({len(unknown)} unknown class folder(s)); expected the training split's classes")
    samples = []
    for label, name in enumerate(classes):
        root = folder / name
        if not root.is_dir():
            continue
        for dirpath, _, filenames in sorted(os.walk(root, followlinks=True)):
            samples += [(os.path.join(dirpath, f), label) for f in sorted(filenames)
                        if f.lower().endswith(IMAGE_EXTENSIONS)]
    if not samples:
        raise UserError(f"{what}: no image files under {folder} (expected {', '.join(IMAGE_EXTENSIONS)})")
    return classes, samples
