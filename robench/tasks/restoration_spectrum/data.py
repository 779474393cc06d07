"""Images for the restoration task: embedded training patches and test crops, and a
loader for image folders (Set5, Set14, BSD100, CelebA, ...).

Embedded data works offline from images shipped inside packages:

- training: ``TRAIN_IMAGES`` from ``skimage.data``. An image that cannot be loaded
  (some scikit-image builds fetch files with ``pooch``) is replaced, with a warning, by
  the next of ``TRAIN_FALLBACK_IMAGES`` (grayscale images, repeated into 3 channels).
  ``training_sources()`` says which were used.
- test: ``TEST_IMAGES``, images the training set never sees: scikit-learn's
  ``load_sample_images()`` (china.jpg, flower.jpg) and scikit-image's held-out
  ``stereo_motorcycle`` (left view). Missing ones are skipped with a warning;
  ``test_sources()`` says which were used. (``skimage.data.cat`` is the same picture as
  ``chelsea``, so it must never be a test image.)

All crops are float32 (N, 3, size, size) with values in [0, 1], CPU. Whole images (the
task's ``eval_size=full``) come as a list of float32 (1, 3, H, W) tensors, one per image,
sizes differing: :func:`whole_images` (a folder, every image whole) and
:func:`whole_test_images` (the bundled held-out images, center-cropped to ``max_side``).
"""

from __future__ import annotations

import functools
import numbers
import warnings
from pathlib import Path
from typing import Any

from robench.errors import UserError

TRAIN_IMAGES = ("skimage:astronaut", "skimage:coffee", "skimage:chelsea", "skimage:rocket",
                "skimage:immunohistochemistry", "skimage:hubble_deep_field", "skimage:retina")
TRAIN_FALLBACK_IMAGES = ("skimage:camera", "skimage:brick", "skimage:grass", "skimage:gravel",
                         "skimage:coins", "skimage:moon")
TEST_IMAGES = ("sklearn:china", "sklearn:flower", "skimage:stereo_motorcycle")
MIN_TRAIN_IMAGES = 4
FLAT_PATCH_STD = 0.02  # patches with a smaller pixel std (black borders, empty sky) are redrawn
FLAT_PATCH_RETRIES = 10
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")


def training_sources() -> tuple[str, ...]:
    """Names of the images training patches are cut from, after fallbacks."""
    wanted = len(TRAIN_IMAGES)
    used: list[str] = []
    missing: list[str] = []
    for name in TRAIN_IMAGES + TRAIN_FALLBACK_IMAGES:
        if len(used) == wanted:
            break
        if _try_load(name) is not None:
            used.append(name)
        elif name in TRAIN_IMAGES:
            missing.append(name)
    if missing:
        warnings.warn(f"restoration training images unavailable: {', '.join(missing)}; "
                      f"using {', '.join(used)}", stacklevel=2)
    if len(used) < MIN_TRAIN_IMAGES:
        raise UserError(f"only {len(used)} training images could be loaded from scikit-image "
                        f"({', '.join(used) or 'none'}); expected at least {MIN_TRAIN_IMAGES}")
    return tuple(used)


def test_sources() -> tuple[str, ...]:
    """Names of the held-out images test crops are cut from, in test-set order."""
    used = tuple(name for name in TEST_IMAGES if _try_load(name) is not None)
    missing = [name for name in TEST_IMAGES if name not in used]
    if missing:
        warnings.warn(f"restoration test images unavailable: {', '.join(missing)}", stacklevel=2)
    if not used:
        raise UserError(f"none of the restoration test images could be loaded ({', '.join(TEST_IMAGES)})")
    return used


def training_patches(n: int, size: int = 64, seed: int = 0, *, augment: bool = True) -> Any:
    """``n`` random patches (n, 3, size, size), float32 in [0, 1], from ``training_sources()``.

    Each patch picks a source image uniformly, then a uniform position; near-flat patches
    (pixel std < ``FLAT_PATCH_STD``) are redrawn up to ``FLAT_PATCH_RETRIES`` times.
    ``augment`` applies one of the 8 flips/rotations of the square, drawn per patch.
    Same (n, size, seed, augment) → same tensor.
    """
    import numpy as np
    import torch

    n = _positive_int(n, "training_patches: n", allow_zero=True)
    size = _positive_int(size, "training_patches: size")
    seed = _positive_int(seed, "training_patches: seed", allow_zero=True)
    images = [_try_load(name) for name in training_sources()]
    smallest = min(min(im.shape[:2]) for im in images)
    if size > smallest:
        raise UserError(f"training_patches: size={size} exceeds the smallest training image side ({smallest})")
    rng = np.random.default_rng(seed)
    out = np.empty((n, size, size, 3), dtype=np.float32)
    for i in range(n):
        for _ in range(FLAT_PATCH_RETRIES):
            image = images[rng.integers(len(images))]
            top = rng.integers(image.shape[0] - size + 1)
            left = rng.integers(image.shape[1] - size + 1)
            patch = image[top:top + size, left:left + size]
            if patch.std() >= FLAT_PATCH_STD:
                break
        if augment:
            transform = rng.integers(8)
            patch = np.rot90(patch, k=transform % 4)
            if transform >= 4:
                patch = patch[:, ::-1]
        out[i] = patch
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


def test_set(size: int = 64, n_per_image: int = 16, seed: int = 0) -> Any:
    """Fixed test crops (M, 3, size, size), float32 in [0, 1], M = n_per_image · len(test_sources()).

    Each held-out image is cut into a centered grid of non-overlapping size×size tiles;
    ``n_per_image`` distinct tiles are drawn with ``seed``, textured tiles first (tiles with
    std < ``FLAT_PATCH_STD`` only if too few others). Crops are grouped by image in
    ``test_sources()`` order.
    """
    import numpy as np
    import torch

    size = _positive_int(size, "test_set: size")
    n_per_image = _positive_int(n_per_image, "test_set: n_per_image")
    seed = _positive_int(seed, "test_set: seed", allow_zero=True)
    rng = np.random.default_rng(seed)
    crops = []
    for name in test_sources():
        tiles = _tiles(_try_load(name), size)
        if len(tiles) < n_per_image:
            raise UserError(f"test_set: {name} holds {len(tiles)} tiles of {size}x{size}; "
                            f"asked for n_per_image={n_per_image}")
        order = rng.permutation(len(tiles))
        flat = np.array([tiles[j].std() < FLAT_PATCH_STD for j in order])
        chosen = order[np.argsort(flat, kind="stable")][:n_per_image]
        crops.extend(tiles[j] for j in chosen)
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).contiguous()


def image_folder(root: str | Path, size: int = 64, *, mode: str = "center",
                 recursive: bool = False, max_images: int | None = None) -> Any:
    """Crops (M, 3, size, size), float32 in [0, 1], from the images in a folder.

    Reads .png/.jpg/.jpeg/.bmp files (sorted by path; subfolders too with ``recursive``),
    grayscale repeated into 3 channels, alpha dropped, 8- and 16-bit. ``mode="center"``
    takes one center crop per image; ``mode="tile"`` every tile of a centered grid of
    non-overlapping size×size tiles. Images smaller than size×size are skipped with a
    warning. ``max_images`` keeps the first that many files.
    """
    import numpy as np
    import torch

    size = _positive_int(size, "image_folder: size")
    if mode not in ("center", "tile"):
        raise UserError(f"image_folder: mode={mode!r}; expected 'center' or 'tile'")
    folder = Path(root)
    files = image_files(folder, recursive=recursive)
    if max_images is not None:
        files = files[:_positive_int(max_images, "image_folder: max_images")]
    crops, too_small = [], []
    for path in files:
        image = _read_image(path)
        h, w = image.shape[:2]
        if h < size or w < size:
            too_small.append(path.name)
        elif mode == "center":
            top, left = (h - size) // 2, (w - size) // 2
            crops.append(image[top:top + size, left:left + size])
        else:
            crops.extend(_tiles(image, size))
    if too_small:
        warnings.warn(f"image_folder: skipped {len(too_small)} image(s) smaller than {size}x{size} "
                      f"in {folder}: {', '.join(too_small[:5])}{' ...' if len(too_small) > 5 else ''}",
                      stacklevel=2)
    if not crops:
        raise UserError(f"image_folder: every image in {folder} is smaller than {size}x{size}")
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).contiguous()


def whole_images(root: str | Path, min_side: int, max_side: int) -> list:
    """Every image of a folder, whole: a list of float32 (1, 3, H, W) tensors in [0, 1] on
    the CPU, one per .png/.jpg/.jpeg/.bmp file (sorted by path, not recursive; grayscale
    repeated into 3 channels, alpha dropped, 8- and 16-bit), sizes as they are.

    Every side must lie in [min_side, max_side] pixels: an image outside is a UserError
    naming it (a whole image is never cropped or skipped, so the mean is over the folder).
    """
    import torch

    min_side = _positive_int(min_side, "whole_images: min_side")
    max_side = _positive_int(max_side, "whole_images: max_side")

    folder = Path(root)
    images = []
    for path in image_files(folder):
        image = _read_image(path)
        problem = side_problem(path.name, image.shape[0], image.shape[1], min_side, max_side)
        if problem:
            raise UserError(f"whole_images: {folder}: {problem}")
        images.append(torch.from_numpy(image).permute(2, 0, 1).unsqueeze(0).contiguous())
    return images


def whole_test_images(max_side: int) -> list:
    """The bundled held-out test images (``test_sources()`` order), whole but each
    center-cropped to at most ``max_side`` pixels per side (china and flower are 427×640,
    the motorcycle 500×741): a list of float32 (1, 3, H, W) tensors in [0, 1], CPU."""
    import numpy as np
    import torch

    max_side = _positive_int(max_side, "whole_test_images: max_side")
    images = []
    for name in test_sources():
        image = _try_load(name)
        h, w = image.shape[:2]
        top, left = max(0, (h - max_side) // 2), max(0, (w - max_side) // 2)
        crop = np.ascontiguousarray(image[top:top + max_side, left:left + max_side])
        images.append(torch.from_numpy(crop).permute(2, 0, 1).unsqueeze(0).contiguous())
    return images


def image_sizes(root: str | Path) -> list[tuple[str, int, int]]:
    """(file name, height, width) of every image a folder holds (what :func:`whole_images`
    reads), from the file headers only (fast: nothing is decoded). Files PIL cannot open
    are left out (reading them fails later, with the reason)."""
    from PIL import Image

    sizes = []
    for path in image_files(Path(root)):
        try:
            with Image.open(path) as image:
                width, height = image.size
        except Exception:  # noqa: BLE001 - any unreadable file: whole_images says why
            continue
        sizes.append((path.name, int(height), int(width)))
    return sizes


def side_problem(name: str, height: int, width: int, min_side: int, max_side: int) -> str:
    """Why an image of height×width cannot be scored whole ('' if it can)."""
    if min(height, width) < min_side or max(height, width) > max_side:
        return (f"{name} is {width}x{height} px; whole-image scoring needs every side in "
                f"[{min_side}, {max_side}] (image_size, max_side)")
    return ""


def image_files(folder: Path, *, recursive: bool = False) -> list[Path]:
    """The .png/.jpg/.jpeg/.bmp files of a folder (subfolders too with ``recursive``),
    sorted by path; a UserError if it is not a folder or holds none."""
    if not folder.is_dir():
        raise UserError(f"image_folder: {folder} is not a folder; expected a folder of "
                        f"{'/'.join(e.lstrip('.') for e in IMAGE_EXTENSIONS)} images")
    pattern = "**/*" if recursive else "*"
    files = sorted(p for p in folder.glob(pattern)
                   if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise UserError(f"image_folder: no {'/'.join(e.lstrip('.') for e in IMAGE_EXTENSIONS)} "
                        f"images in {folder}{' (recursive)' if recursive else ''}")
    return files


# ---------------------------------------------------------------- helpers

def _tiles(image: Any, size: int) -> list:
    """Non-overlapping size×size tiles of a centered grid, row by row."""
    h, w = image.shape[:2]
    rows, cols = h // size, w // size
    top0, left0 = (h - rows * size) // 2, (w - cols * size) // 2
    return [image[top0 + r * size:top0 + (r + 1) * size, left0 + c * size:left0 + (c + 1) * size]
            for r in range(rows) for c in range(cols)]


@functools.lru_cache(maxsize=None)
def _try_load(name: str) -> Any:
    """A source image as a read-only float32 (H, W, 3) array in [0, 1], or None if unavailable."""
    library, _, attr = name.partition(":")
    try:
        if library == "skimage":
            import skimage.data
            image = getattr(skimage.data, attr)()
            if isinstance(image, tuple):  # stereo pairs: (left, right, disparity)
                image = image[0]
        elif library == "sklearn":
            from sklearn.datasets import load_sample_image
            image = load_sample_image(f"{attr}.jpg")
        else:
            raise ValueError(f"unknown image library {library!r}")
    except Exception as exc:  # a missing optional download backend, a missing file, ...
        warnings.warn(f"could not load {name}: {type(exc).__name__}: {exc}", stacklevel=2)
        return None
    image = _to_rgb_float(image)
    image.setflags(write=False)
    return image


def _read_image(path: Path) -> Any:
    import imageio.v3 as iio

    try:
        image = iio.imread(path, plugin="pillow")  # png/jpg/bmp, 8- and 16-bit
    except Exception as exc:
        reason = " ".join(str(exc).split())  # one line
        raise UserError(f"image_folder: cannot read {path}: {reason}") from None
    return _to_rgb_float(image)


def _to_rgb_float(image: Any) -> Any:
    """uint8/uint16/bool/float (H, W[, 1|3|4]) → float32 (H, W, 3) in [0, 1]."""
    import numpy as np

    image = np.asarray(image)
    if image.dtype == np.bool_:
        image = image.astype(np.float32)
    elif image.dtype.kind in "ui":
        image = image.astype(np.float32) / np.float32(np.iinfo(image.dtype).max)
    else:
        image = np.clip(image.astype(np.float32), 0.0, 1.0)
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 2, 3, 4):
        raise UserError(f"image of shape {image.shape}; expected (H, W), (H, W, 3) or (H, W, 4)")
    if image.shape[2] in (1, 2):  # gray, gray + alpha
        image = np.repeat(image[:, :, :1], 3, axis=2)
    return np.ascontiguousarray(image[:, :, :3])


def _positive_int(value: Any, what: str, *, allow_zero: bool = False) -> int:
    low = 0 if allow_zero else 1
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise UserError(f"{what}={value!r}; expected an integer >= {low}")
    return int(value)
