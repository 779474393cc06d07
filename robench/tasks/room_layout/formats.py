"""LSUN Room Layout and Hedau files: readers and writers of :class:`LayoutSample`.

LSUN Room Layout (the challenge release; the toolkit's ``GlobalParameters.m``)::

    root/training.mat    variable ``training``:   1 x N struct array, fields
    root/validation.mat  variable ``validation``:   image (char, the name), scene (char),
    root/testing.mat     variable ``testing``:      type (0-10), point (K x 2, [x y],
                                                    1-based pixels), resolution ([H W])
    root/images/<name>.jpg
    root/layout_seg/<name>.mat   variable ``layout``: H x W uint8 surface labels

``testing.mat`` of the real release has no ground truth: such entries come back with
``room_type=-1``, no keypoints and ``segmentation=None``.  The released ``layout_seg``
labels are connected-component numbers (``getSegmentation.m``), not the semantic labels
of :mod:`room_types`; the pixel error does not depend on it, but code that needs semantic
labels should use relabelled layouts (robench's writer and generator write semantic ones).

robench extensions (ignored by other readers): split names beyond the three above are
written as ``<stem>.mat`` with variable ``<stem>`` (``test-hard`` -> ``testing_hard``);
images may be ``.png`` (lossless, used by the synthetic generator); an optional
``clutter_seg/<name>.mat`` (variable ``clutter``, uint8 0/1) marks pixels where clutter
hides the layout.

Hedau (Hedau, Hoiem & Forsyth, ICCV 2009; as read by leVirve/lsun-room ``datasets/hedau.py``
and other public loaders)::

    root/traintestind.mat             variables ``trainind``, ``testind``: 1-based indices
                                      into the name-sorted list of images (209 / 105)
    root/Images/<name>.jpg            (also accepted: image/, images/)
    root/groundtruth/<name>_labels.mat  variable ``fields``: H x W labels 1 floor,
                                      2 middle wall, 3 right wall, 4 left wall, 5 ceiling
                                      (0/6: unlabelled); also ``labels`` (clutter) and
                                      ``gtPolyg``, which robench does not use
                                      (also accepted: layout/<name>.mat, layout_seg/<name>.mat)

Hedau labels are mapped to robench's (:data:`room_types.HEDAU_TO_LSUN`), walls are then
named by the LSUN type convention (:func:`canonicalize_walls`), the type is derived from
the visible surfaces, and keypoints are empty (Hedau has no LSUN keypoints).

Coordinates: in files keypoints are the toolkit's 1-based (x, y); in a LayoutSample they
are 0-based (pixel [row, col] has centre (x, y) = (col, row)).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image

from robench.errors import UserError
from robench.tasks.room_layout.room_types import (
    FRONTAL, HEDAU_TO_LSUN, LEFT, LSUN_TO_HEDAU, RIGHT, WALLS, room_type_from_surfaces,
)

LSUN_SPLITS = {"train": "training", "training": "training",
               "val": "validation", "validation": "validation",
               "test": "testing", "testing": "testing",
               "test-hard": "testing_hard", "testing_hard": "testing_hard"}
IMAGE_SUFFIXES = (".jpg", ".png", ".jpeg")
INDEX_FIELDS = ("image", "scene", "type", "point", "resolution")


@dataclass(eq=False)
class LayoutSample:
    """One image with its room layout ground truth.

    name: file stem; image: (H, W, 3) uint8 RGB; segmentation: (H, W) uint8 surface
    labels 1..5 (0 unlabelled) or None when the split has no ground truth; room_type:
    LSUN type 0-10 (-1 unknown); keypoints: (K, 2) float64 (x, y), 0-based pixel
    coordinates in LSUN order; scene: LSUN scene category; clutter: optional (H, W) bool,
    True where furniture or wall objects hide the layout (synthetic data only)."""
    name: str
    image: np.ndarray
    segmentation: np.ndarray | None
    room_type: int
    keypoints: np.ndarray
    scene: str = ""
    clutter: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.image.shape[0]), int(self.image.shape[1])

    def validate(self, where: str = "") -> None:
        """UserError naming ``where`` and the sample if any field breaks the contract."""
        at = f"{where}: sample {self.name!r}" if where else f"sample {self.name!r}"
        if not isinstance(self.name, str) or not re.fullmatch(r"[\w.\-]+", self.name):
            raise UserError(f"{at}: name must be a non-empty file stem of letters, digits, "
                            "'_', '-', '.'")
        img = self.image
        if not (isinstance(img, np.ndarray) and img.dtype == np.uint8 and img.ndim == 3
                and img.shape[2] == 3):
            raise UserError(f"{at}: image must be an (H, W, 3) uint8 array, got "
                            f"{getattr(img, 'dtype', type(img))} {getattr(img, 'shape', '')}")
        for field in ("segmentation", "clutter"):
            arr = getattr(self, field)
            if arr is not None and np.shape(arr) != self.shape:
                raise UserError(f"{at}: {field} shape {np.shape(arr)} differs from the "
                                f"image's {self.shape}")
        kp = np.asarray(self.keypoints)
        if kp.size and (kp.ndim != 2 or kp.shape[1] != 2):
            raise UserError(f"{at}: keypoints must be a (K, 2) array, got shape {kp.shape}")


# ------------------------------------------------------------------ helpers

def _loadmat(path: Path, what: str) -> dict:
    if not path.is_file():
        raise UserError(f"{path}: file not found; expected {what}")
    try:
        data = scipy.io.loadmat(str(path), simplify_cells=True)
    except Exception as exc:  # scipy raises several types for broken files
        raise UserError(f"{path}: not a readable MATLAB .mat file ({exc}); "
                        f"expected {what}") from None
    return {k: v for k, v in data.items() if not k.startswith("__")}


def _variable(data: dict, path: Path, name: str, what: str):
    if name in data:
        return data[name]
    if len(data) == 1:  # some re-distributions rename the single variable
        return next(iter(data.values()))
    raise UserError(f"{path}: no variable {name!r} (found {sorted(data) or 'none'}); "
                    f"expected {what}")


def _read_image(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
    except Exception as exc:
        raise UserError(f"{path}: cannot read image ({exc}); expected a JPEG or PNG file") from None


def _find_image(folder: Path, name: str) -> Path | None:
    for suffix in IMAGE_SUFFIXES:
        p = folder / f"{name}{suffix}"
        if p.is_file():
            return p
    return None


def _write_image(path: Path, image: np.ndarray, jpeg_quality: int) -> None:
    im = Image.fromarray(image, mode="RGB")
    if path.suffix == ".jpg":
        im.save(path, quality=jpeg_quality, subsampling=0)
    else:
        im.save(path)


def _label_map(arr, path: Path, shape: tuple[int, int], what: str) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.ndim != 2 or not (np.issubdtype(arr.dtype, np.integer) or
                             np.issubdtype(arr.dtype, np.floating) or arr.dtype == bool):
        raise UserError(f"{path}: expected {what} as a 2-D numeric array, got "
                        f"{arr.dtype} of shape {arr.shape}")
    if arr.shape != shape:
        raise UserError(f"{path}: {what} is {arr.shape[0]}x{arr.shape[1]} but its image is "
                        f"{shape[0]}x{shape[1]}")
    if arr.size and (arr.min() < 0 or arr.max() > 255 or np.any(np.mod(arr, 1) != 0)):
        raise UserError(f"{path}: {what} must hold integer labels 0..255")
    return arr.astype(np.uint8)


def lsun_index_stem(split: str) -> str:
    """File stem (and variable name) of an LSUN split: 'train' -> 'training', ..."""
    if split in LSUN_SPLITS:
        return LSUN_SPLITS[split]
    if isinstance(split, str) and re.fullmatch(r"[A-Za-z]\w*", split):
        return split
    raise UserError(f"LSUN split {split!r}: expected one of {sorted(LSUN_SPLITS)} or a "
                    "MATLAB identifier")


def canonicalize_walls(segmentation: np.ndarray) -> np.ndarray:
    """Rename wall labels to the LSUN type convention, by image order of the walls:
    one wall -> frontal; two -> left, right; three -> left, frontal, right (walls ordered
    by mean column).  Floor, ceiling and unlabelled pixels are unchanged."""
    seg = np.asarray(segmentation)
    walls = [w for w in sorted(WALLS) if np.any(seg == w)]
    if not walls:
        return seg.copy()
    cols = np.arange(seg.shape[1])
    centre = {w: float(np.mean(np.broadcast_to(cols, seg.shape)[seg == w])) for w in walls}
    ordered = sorted(walls, key=centre.get)
    names = {1: [FRONTAL], 2: [LEFT, RIGHT], 3: [LEFT, FRONTAL, RIGHT]}[len(ordered)]
    out = seg.copy()
    for old, new in zip(ordered, names):
        out[seg == old] = new
    return out


# ------------------------------------------------------------------ LSUN

def _lsun_entries(index_path: Path, stem: str) -> list[dict]:
    what = (f"variable {stem!r}: a 1 x N struct array with fields "
            f"{', '.join(INDEX_FIELDS)}")
    data = _loadmat(index_path, what)
    entries = _variable(data, index_path, stem, what)
    if isinstance(entries, dict):
        entries = [entries]
    if isinstance(entries, np.ndarray) and entries.dtype == object:
        entries = list(entries.ravel())
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise UserError(f"{index_path}: {stem!r} is not a struct array; expected {what}")
    for i, e in enumerate(entries):
        if not isinstance(e.get("image"), str) or not e["image"]:
            raise UserError(f"{index_path}: entry {i + 1} has no image name; expected {what}")
    return entries


def _entry_int(e: dict, key: str, default: int, index_path: Path) -> int:
    v = np.asarray(e.get(key, []), dtype=np.float64).ravel()
    if v.size == 0:
        return default
    if v.size != 1 or v[0] != np.round(v[0]):
        raise UserError(f"{index_path}: entry {e['image']!r} field {key!r} must be one "
                        f"integer, got {v.tolist()}")
    return int(v[0])


def iter_lsun(root, split: str, limit: int | None = None) -> Iterator[LayoutSample]:
    """Yield the samples of an LSUN split one by one (images are loaded lazily, so the
    4000 training images need not fit in memory).  split: train/val/test (or the file
    stems training/validation/testing, or a robench extra split such as test-hard)."""
    root = Path(root)
    stem = lsun_index_stem(split)
    index_path = root / f"{stem}.mat"
    entries = _lsun_entries(index_path, stem)
    for e in entries[:limit]:
        name = e["image"]
        room_type = _entry_int(e, "type", -1, index_path)
        points = np.asarray(e.get("point", []), dtype=np.float64)
        if points.size % 2:
            raise UserError(f"{index_path}: entry {name!r} field 'point' must be K x 2 "
                            f"[x y], got shape {points.shape}")
        keypoints = points.reshape(-1, 2) - 1.0  # toolkit's 1-based -> 0-based
        img_path = _find_image(root / "images", name)
        if img_path is None:
            raise UserError(f"{root / 'images' / (name + '.jpg')}: image listed in "
                            f"{index_path} not found")
        image = _read_image(img_path)
        res = np.asarray(e.get("resolution", []), dtype=np.float64).ravel()
        if res.size == 2 and tuple(res.astype(int)) != image.shape[:2]:
            raise UserError(f"{img_path}: image is {image.shape[0]}x{image.shape[1]} but "
                            f"{index_path} gives resolution [{int(res[0])} {int(res[1])}] "
                            "([H W])")
        seg_path = root / "layout_seg" / f"{name}.mat"
        segmentation = None
        if room_type >= 0 or seg_path.exists():
            what = "variable 'layout': an H x W uint8 surface label map"
            data = _loadmat(seg_path, what)
            segmentation = _label_map(_variable(data, seg_path, "layout", what), seg_path,
                                      image.shape[:2], "layout")
        clutter = None
        clutter_path = root / "clutter_seg" / f"{name}.mat"
        if clutter_path.exists():
            what = "variable 'clutter': an H x W uint8 0/1 mask"
            data = _loadmat(clutter_path, what)
            clutter = _label_map(_variable(data, clutter_path, "clutter", what), clutter_path,
                                 image.shape[:2], "clutter") > 0
        yield LayoutSample(name=name, image=image, segmentation=segmentation,
                           room_type=room_type, keypoints=keypoints,
                           scene=str(e.get("scene", "")), clutter=clutter)


def read_lsun(root, split: str, limit: int | None = None) -> list[LayoutSample]:
    """All samples of an LSUN split (see :func:`iter_lsun`); ``limit`` keeps the first."""
    return list(iter_lsun(root, split, limit))


def write_lsun(root, split: str, samples: Sequence[LayoutSample], *,
               image_format: str = "jpg", jpeg_quality: int = 95) -> Path:
    """Write ``samples`` as an LSUN split under ``root`` (index, images, layout_seg,
    and clutter_seg where a sample has a clutter mask); returns the index path.

    image_format "jpg" is what LSUN tools expect; "png" is lossless (robench reads both).
    Other splits' files under the same root are left alone; names must be unique."""
    if image_format not in ("jpg", "png"):
        raise UserError(f"image_format {image_format!r}: expected 'jpg' or 'png'")
    root = Path(root)
    stem = lsun_index_stem(split)
    index_path = root / f"{stem}.mat"
    names = [s.name for s in samples]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})[:3]
        raise UserError(f"{index_path}: duplicate sample names {dup}")
    for s in samples:
        s.validate(str(index_path))
    for sub in ("images", "layout_seg"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    index = np.zeros((1, len(samples)), dtype=[(f, object) for f in INDEX_FIELDS])
    for i, s in enumerate(samples):
        _write_image(root / "images" / f"{s.name}.{image_format}", s.image, jpeg_quality)
        other = root / "images" / f"{s.name}.{'png' if image_format == 'jpg' else 'jpg'}"
        if other.exists():  # a stale file would shadow or confuse the reader
            other.unlink()
        if s.segmentation is not None:
            scipy.io.savemat(str(root / "layout_seg" / f"{s.name}.mat"),
                             {"layout": np.asarray(s.segmentation, dtype=np.uint8)},
                             do_compression=True)
        if s.clutter is not None:
            (root / "clutter_seg").mkdir(exist_ok=True)
            scipy.io.savemat(str(root / "clutter_seg" / f"{s.name}.mat"),
                             {"clutter": np.asarray(s.clutter, dtype=np.uint8)},
                             do_compression=True)
        kp = np.asarray(s.keypoints, dtype=np.float64).reshape(-1, 2)
        index[0, i] = (s.name, s.scene,
                       np.array([[float(s.room_type)]]) if s.room_type >= 0 else np.zeros((0, 0)),
                       kp + 1.0 if len(kp) else np.zeros((0, 2)),
                       np.array([[float(s.shape[0]), float(s.shape[1])]]))
    scipy.io.savemat(str(index_path), {stem: index}, do_compression=True)
    return index_path


# ------------------------------------------------------------------ Hedau

HEDAU_IMAGE_DIRS = ("Images", "images", "image")
HEDAU_LABEL_DIRS = ("groundtruth", "layout", "layout_seg")
HEDAU_SPLITS = {"train": "trainind", "training": "trainind", "test": "testind",
                "testing": "testind", "val": "testind"}


def _hedau_label_path(root: Path, name: str) -> Path | None:
    for d in HEDAU_LABEL_DIRS:
        for fname in (f"{name}_labels.mat", f"{name}.mat"):
            p = root / d / fname
            if p.is_file():
                return p
    return None


def read_hedau(root, split: str) -> list[LayoutSample]:
    """Samples of the Hedau dataset's ``train`` (209) or ``test`` (105) split."""
    root = Path(root)
    if split not in HEDAU_SPLITS:
        raise UserError(f"Hedau split {split!r}: expected 'train' or 'test'")
    var = HEDAU_SPLITS[split]
    index_path = root / "traintestind.mat"
    what = "variables 'trainind' and 'testind' (1-based indices into the sorted image list)"
    data = _loadmat(index_path, what)
    if var not in data:
        raise UserError(f"{index_path}: no variable {var!r}; expected {what}")
    idx = np.asarray(data[var], dtype=np.float64).ravel()
    image_dir = next((root / d for d in HEDAU_IMAGE_DIRS if (root / d).is_dir()), None)
    if image_dir is None:
        raise UserError(f"{root}: no image folder; expected one of {list(HEDAU_IMAGE_DIRS)}")
    images = sorted((p for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES),
                    key=lambda p: p.name)  # MATLAB dir order
    bad = [int(i) for i in idx if i != np.round(i) or not 1 <= i <= len(images)]
    if bad:
        raise UserError(f"{index_path}: {var} refers to image {bad[0]} but {image_dir} "
                        f"has {len(images)} images")
    samples = []
    for i in idx.astype(int):
        img_path = images[i - 1]
        name = img_path.stem
        image = _read_image(img_path)
        label_path = _hedau_label_path(root, name)
        if label_path is None:
            raise UserError(f"{root / 'groundtruth' / (name + '_labels.mat')}: label file "
                            f"of {img_path.name} not found")
        what = "variable 'fields': an H x W map, 1 floor 2 middle 3 right 4 left 5 ceiling"
        ldata = _loadmat(label_path, what)
        if "fields" not in ldata:
            raise UserError(f"{label_path}: no variable 'fields'; expected {what}")
        fields = _label_map(ldata["fields"], label_path, image.shape[:2], "fields")
        seg = np.zeros_like(fields)
        for hedau, ours in HEDAU_TO_LSUN.items():
            seg[fields == hedau] = ours
        seg = canonicalize_walls(seg)
        samples.append(LayoutSample(
            name=name, image=image, segmentation=seg,
            room_type=room_type_from_surfaces(np.unique(seg)),
            keypoints=np.zeros((0, 2)), scene="hedau"))
    return samples


def write_hedau(root, train: Sequence[LayoutSample], test: Sequence[LayoutSample], *,
                image_format: str = "jpg", jpeg_quality: int = 95) -> Path:
    """Write samples in Hedau's layout (Images/, groundtruth/<name>_labels.mat with
    ``fields``, traintestind.mat); returns the index path.  Both splits are written at
    once because the index numbers the union of their images in name order."""
    if image_format not in ("jpg", "png"):
        raise UserError(f"image_format {image_format!r}: expected 'jpg' or 'png'")
    root = Path(root)
    index_path = root / "traintestind.mat"
    everything = list(train) + list(test)
    names = [s.name for s in everything]
    if len(set(names)) != len(names):
        raise UserError(f"{index_path}: sample names must be unique across train and test")
    for s in everything:
        s.validate(str(index_path))
        if s.segmentation is None:
            raise UserError(f"{index_path}: sample {s.name!r} has no segmentation")
    (root / "Images").mkdir(parents=True, exist_ok=True)
    (root / "groundtruth").mkdir(parents=True, exist_ok=True)
    for s in everything:
        _write_image(root / "Images" / f"{s.name}.{image_format}", s.image, jpeg_quality)
        fields = np.zeros(s.shape, dtype=np.uint8)
        for ours, hedau in LSUN_TO_HEDAU.items():
            fields[np.asarray(s.segmentation) == ours] = hedau
        scipy.io.savemat(str(root / "groundtruth" / f"{s.name}_labels.mat"),
                         {"fields": fields}, do_compression=True)
    # Same order as the reader (and MATLAB's dir): by file name, extension included.
    listing = sorted((p for p in (root / "Images").iterdir()
                      if p.suffix.lower() in IMAGE_SUFFIXES), key=lambda p: p.name)
    order = {p.stem: i + 1 for i, p in enumerate(listing)}
    scipy.io.savemat(str(index_path), {
        "trainind": np.array([[order[s.name] for s in train]], dtype=np.float64),
        "testind": np.array([[order[s.name] for s in test]], dtype=np.float64)})
    return index_path
