"""Task ``room_layout``: estimate a cuboid room's layout (five surfaces, LSUN room type and
keypoints) from one image; scored with the LSUN toolkit's metrics.

Protocol of one run (method M, seed s):

1. Data.  ``synthetic-rooms`` (default): procedurally rendered rooms
   (:mod:`.synth`), generated from the fixed ``data_seed`` (never the run's seed, so
   every method and seed sees the same images), written once per setting in LSUN's
   format under ``<cache>/room_layout/synthetic-rooms/<key>/`` and read back with the
   LSUN reader — the same code path as real data.  Splits: ``train``; ``test`` (same
   distribution: normal clutter, training textures) and ``test-hard`` (heavy clutter,
   unseen textures and colours).  ``lsun``: LSUN Room Layout under ``root`` (train:
   ``training.mat``; test: ``validation.mat``, the split papers report); ``hedau``:
   Hedau's train/test split under ``root``.  ``n_train``/``n_test``/``n_test_hard``
   give the synthetic split sizes, and on real data cap the number of images used
   (first ones of each split; the setting label shows it).
2. Methods work at a square ``image_size``: images are resized (bilinear) and layouts
   scaled (segmentations nearest-neighbour, keypoints by the pixel-centre map); real
   LSUN training layouts are re-rendered from type + keypoints (:func:`.render.render_segmentation`)
   because the released label maps number regions arbitrarily.  Synthetic data is
   generated at ``image_size`` and used as is.
3. ``seed_everything(s)``; ``M.fit(train, FitSetup(epochs, batch_size, s, cache, ...))``
   — ``epochs`` is the training budget of every learned method.
4. ``M.predict`` on each test split; predictions are checked against the method contract,
   keypoints mapped back to each image's own frame, and scored against the original
   ground truth by :mod:`.metrics` (pixel error resizes the prediction to the truth's
   size with nearest neighbour, as the toolkit does).
5. Export ``predictions.npz`` (see :func:`export_predictions`).

Metrics (fractions, not percent): ``pixel_error`` (primary, lower is better),
``corner_error``, ``type_accuracy`` on ``test``; the same with ``_hard`` on
``test-hard`` (synthetic only).  Hedau has no LSUN keypoints, so it reports no corner
error.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import Field, field_validator, model_validator

from robench.errors import UserError
from robench.registry import register_task
from robench.tasks.base import RunContext, Task, TaskParams, TaskResult
from robench.tasks.room_layout.formats import LayoutSample
from robench.tasks.room_layout.methods.base import FitSetup, LayoutMethod, LayoutPrediction

DATASETS = ("synthetic-rooms", "lsun", "hedau")
SYNTHETIC_VERSION = "1"  # part of the synthetic cache key: bump when synth.py changes output
PREVIEW_IMAGES = 8  # inputs and truths stored per split for figures


class RoomLayoutParams(TaskParams):
    """Parameters of the ``room_layout`` task (defaults: one learned run takes a few
    minutes on one CPU core)."""
    dataset: str = Field("synthetic-rooms", description="synthetic-rooms | lsun | hedau")
    root: str | None = Field(None, description="folder of the lsun/hedau files")
    image_size: int = Field(64, description="square working size of the methods, pixels "
                                            "(a multiple of 16, 32..512)")
    n_train: int = Field(1000, gt=0, description="training images (real data: at most)")
    n_test: int = Field(200, gt=0, description="test images (real data: at most)")
    n_test_hard: int = Field(200, ge=0, description="test-hard images (synthetic only; 0: none)")
    epochs: int = Field(8, gt=0, description="training budget of every learned method, in epochs")
    batch_size: int = Field(16, ge=2, description="minibatch size of learned methods")
    data_seed: int = Field(0, ge=0, description="seed of the synthetic data (not the run seed)")

    @field_validator("dataset")
    @classmethod
    def _known_dataset(cls, value):
        if value not in DATASETS:
            raise ValueError(f"unknown dataset {value!r}; expected one of {', '.join(DATASETS)}")
        return value

    @field_validator("image_size")
    @classmethod
    def _size(cls, value):
        if not 32 <= value <= 512 or value % 16:
            raise ValueError(f"image_size={value}: expected a multiple of 16 in 32..512")
        return value

    @model_validator(mode="after")
    def _root_matches_dataset(self):
        if self.dataset == "synthetic-rooms" and self.root is not None:
            raise ValueError("root is only for dataset lsun or hedau (synthetic-rooms is "
                             "generated into the cache)")
        if self.dataset != "synthetic-rooms" and not self.root:
            raise ValueError(f"dataset {self.dataset!r} needs root= (the folder holding its files)")
        return self


@dataclass
class Split:
    """One evaluation split: original samples (scored) and working-size ones (given to
    the method)."""
    name: str  # "test" or "test-hard"
    suffix: str  # metric name suffix: "" or "_hard"
    samples: list[LayoutSample]
    working: list[LayoutSample]


@register_task("room_layout")
class RoomLayoutTask(Task):
    """Room layout from one image: five surfaces, LSUN room type and keypoints; LSUN
    pixel error and corner error on synthetic rooms (or LSUN/Hedau files)."""
    name = "room_layout"
    version = "1"
    Params = RoomLayoutParams
    method_base = LayoutMethod
    primary_metric = "pixel_error"
    greater_is_better = False
    label_params = ("dataset", "image_size")
    check_params = dict(image_size=64, n_train=24, n_test=8, n_test_hard=6, epochs=1, batch_size=8)
    metrics_info = {
        "pixel_error": ("LSUN pixel error on test, fraction of pixels in [0, 1] "
                        "(Hungarian-matched regions)", False),
        "corner_error": ("LSUN corner error on test: matched keypoint distance / image "
                         "diagonal, + 1/3 per missing or extra keypoint, per keypoint", False),
        "type_accuracy": ("fraction of test images whose LSUN room type is right", True),
        "pixel_error_hard": ("pixel error on test-hard (heavy clutter, unseen textures)", False),
        "corner_error_hard": ("corner error on test-hard", False),
        "type_accuracy_hard": ("room-type accuracy on test-hard", True),
    }

    # ---------------------------------------------------------------- data
    def synthetic_root(self, cache_dir) -> Path:
        """Folder of the synthetic dataset of these parameters (generated if missing)."""
        from robench.tasks.room_layout.synth import write_synthetic_dataset

        p = self.params
        spec = {"version": SYNTHETIC_VERSION, "image_size": p.image_size, "n_train": p.n_train,
                "n_test": p.n_test, "n_test_hard": p.n_test_hard, "seed": p.data_seed}
        key = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
        base = Path(cache_dir) / "room_layout" / "synthetic-rooms"
        base.mkdir(parents=True, exist_ok=True)
        root = base / f"{p.image_size}px-{p.n_train}-{p.n_test}-{p.n_test_hard}-seed{p.data_seed}-{key}"
        done = root / "complete.json"
        with open(base / f"{root.name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one process writes, the others wait
            if not done.exists():
                write_synthetic_dataset(root, p.n_train, p.n_test, p.n_test_hard, p.data_seed,
                                        image_size=(p.image_size, p.image_size))
                done.write_text(json.dumps(spec, indent=1) + "\n")
        return root

    def load(self, cache_dir, say=None) -> tuple[list[LayoutSample], list[Split], str]:
        """(working-size training samples, evaluation splits, data key)."""
        from robench.tasks.room_layout.formats import read_hedau, read_lsun

        p = self.params
        if p.dataset == "synthetic-rooms":
            root = self.synthetic_root(cache_dir)
            if say:
                say(f"synthetic rooms from {root}")
            train = read_lsun(root, "train")
            tests = [("test", "", read_lsun(root, "test"))]
            if p.n_test_hard:
                tests.append(("test-hard", "_hard", read_lsun(root, "test-hard")))
            key = root.name
        else:
            root = Path(p.root).expanduser()
            if not root.is_dir():
                raise UserError(f"task 'room_layout': root={p.root!r}: no such folder "
                                f"(expected the {p.dataset} files there)")
            if p.dataset == "lsun":
                train = read_lsun(root, "train", limit=p.n_train)
                tests = [("test", "", read_lsun(root, "val", limit=p.n_test))]
            else:
                train = read_hedau(root, "train")[:p.n_train]
                tests = [("test", "", read_hedau(root, "test")[:p.n_test])]
            key = f"{p.dataset}-{hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:12]}" \
                  f"-{p.n_train}"
        if not train:
            raise UserError(f"task 'room_layout': the {p.dataset} training split is empty")
        for name, _, samples in tests:
            if not samples:
                raise UserError(f"task 'room_layout': the {p.dataset} {name} split is empty")
            missing = [s.name for s in samples if s.segmentation is None]
            if missing:
                raise UserError(f"task 'room_layout': {p.dataset} {name} image {missing[0]!r} "
                                "has no ground-truth layout")
        size = p.image_size
        train_w = [to_working_size(s, size, rerender=p.dataset == "lsun") for s in train]
        splits = [Split(name, suffix, samples, [to_working_size(s, size) for s in samples])
                  for name, suffix, samples in tests]
        return train_w, splits, key

    # ---------------------------------------------------------------- protocol
    def run(self, method: LayoutMethod, seed: int, ctx: RunContext) -> TaskResult:
        from robench.seeding import seed_everything
        from robench.tasks.room_layout.metrics import corner_error, pixel_error, room_type_accuracy

        if not isinstance(method, LayoutMethod):
            raise UserError(f"task 'room_layout' needs a LayoutMethod; got {type(method).__name__}")
        p = self.params
        train, splits, data_key = self.load(ctx.cache_dir, ctx.say)
        seed_everything(seed)
        setup = FitSetup(epochs=p.epochs, batch_size=p.batch_size, seed=seed,
                         cache_dir=Path(ctx.cache_dir), data_key=data_key, say=ctx.say)
        ctx.say(f"fitting {method!r} on {len(train)} images")
        method.fit(train, setup)
        metrics: dict[str, float] = {}
        exported = {}
        size = (p.image_size, p.image_size)
        for split in splits:
            images = np.stack([s.image for s in split.working])
            ctx.say(f"predicting {len(images)} {split.name} images")
            pred = method.predict(images)
            pred.validate(len(images), size, f"method {type(method).__name__}")
            keypoints = [rescale_keypoints(kp, size, s.shape)
                         for kp, s in zip(pred.keypoints, split.samples)]
            pixel = np.array([pixel_error(seg, s.segmentation)
                              for seg, s in zip(pred.segmentations, split.samples)])
            metrics[f"pixel_error{split.suffix}"] = float(pixel.mean())
            corner = np.full(len(pixel), np.nan)
            if p.dataset != "hedau":
                corner = np.array([corner_error(kp, s.keypoints, s.shape)
                                   for kp, s in zip(keypoints, split.samples)])
                metrics[f"corner_error{split.suffix}"] = float(corner.mean())
            metrics[f"type_accuracy{split.suffix}"] = room_type_accuracy(
                pred.room_types, [s.room_type for s in split.samples])
            exported[split.name] = (split, pred, keypoints, pixel, corner)
        path = export_predictions(Path(ctx.artifact_dir) / "predictions.npz", exported)
        return TaskResult(metrics=metrics, artifacts={"predictions": path.name})


# ------------------------------------------------------------------ helpers

def to_working_size(sample: LayoutSample, size: int, rerender: bool = False) -> LayoutSample:
    """``sample`` at (size, size): image bilinear, label maps nearest, keypoints scaled.
    ``rerender``: replace the segmentation by the layout rendered from type and keypoints
    (LSUN's released label maps number regions arbitrarily)."""
    from PIL import Image

    from robench.tasks.room_layout.metrics import resize_nearest
    from robench.tasks.room_layout.render import render_segmentation

    h, w = sample.shape
    if (h, w) == (size, size) and not rerender:
        return sample
    image = sample.image
    if (h, w) != (size, size):
        image = np.asarray(Image.fromarray(sample.image).resize((size, size), Image.BILINEAR))
    kp = rescale_keypoints(sample.keypoints, (h, w), (size, size))
    seg = None if sample.segmentation is None else resize_nearest(sample.segmentation, (size, size))
    if rerender and sample.room_type >= 0 and len(kp):
        seg = render_segmentation(sample.room_type, kp, (size, size))
    clutter = None if sample.clutter is None else resize_nearest(sample.clutter, (size, size))
    return LayoutSample(sample.name, image, seg, sample.room_type, kp, sample.scene, clutter)


def rescale_keypoints(keypoints: np.ndarray, src: tuple[int, int], dst: tuple[int, int]) -> np.ndarray:
    """Keypoints (K, 2) from a (H, W) frame to another: pixel centres map to pixel
    centres, x' = (x + 0.5) * W' / W - 0.5 (and y likewise)."""
    kp = np.asarray(keypoints, dtype=np.float64).reshape(-1, 2)
    if tuple(src) == tuple(dst):
        return kp.copy()
    scale = np.array([dst[1] / src[1], dst[0] / src[0]])
    return (kp + 0.5) * scale - 0.5


def export_predictions(path: Path, splits: dict) -> Path:
    """Write ``predictions.npz``; for every split key ``k`` ("test", "test_hard"):

    * ``k_names`` (N,) image names; ``k_room_type`` (N,) predicted types;
    * ``k_segmentation`` (N, S, S) uint8 predicted labels at the working size;
    * ``k_keypoints`` (N, 8, 2) predicted (x, y), 0-based in each image's own frame,
      NaN-padded past ``k_n_keypoints`` (N,);
    * ``k_pixel_error``, ``k_corner_error`` (N,) per-image scores (NaN: not scored);
    * ``k_preview_images`` (n, S, S, 3) and ``k_preview_truth`` (n, S, S) — the first
      ``PREVIEW_IMAGES`` inputs and true layouts at the working size, for figures.

    ``splits`` holds the split names in order."""
    from robench.tasks.room_layout.metrics import resize_nearest

    arrays = {"splits": np.array(list(splits))}
    for name, (split, pred, keypoints, pixel, corner) in splits.items():
        k = name.replace("-", "_")
        n = len(keypoints)
        kp = np.full((n, 8, 2), np.nan)
        for i, points in enumerate(keypoints):
            kp[i, :len(points)] = points
        size = pred.segmentations.shape[1:]
        m = min(PREVIEW_IMAGES, n)
        arrays.update({
            f"{k}_names": np.array([s.name for s in split.samples]),
            f"{k}_room_type": np.asarray(pred.room_types, dtype=np.int64),
            f"{k}_segmentation": np.asarray(pred.segmentations, dtype=np.uint8),
            f"{k}_keypoints": kp,
            f"{k}_n_keypoints": np.array([len(points) for points in keypoints]),
            f"{k}_pixel_error": np.asarray(pixel, dtype=np.float64),
            f"{k}_corner_error": np.asarray(corner, dtype=np.float64),
            f"{k}_preview_images": np.stack([s.image for s in split.working[:m]]),
            f"{k}_preview_truth": np.stack([resize_nearest(s.segmentation, size)
                                            for s in split.samples[:m]]).astype(np.uint8),
        })
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
    return path


def load_predictions(path) -> dict[str, dict[str, np.ndarray]]:
    """``predictions.npz`` as {split name: {field: array}} (fields without the prefix)."""
    with np.load(path, allow_pickle=False) as data:
        out = {}
        for name in data["splits"]:
            k = str(name).replace("-", "_") + "_"
            out[str(name)] = {f[len(k):]: data[f] for f in data.files if f.startswith(k)}
        return out


def prediction_of(fields: dict[str, np.ndarray]) -> LayoutPrediction:
    """The :class:`LayoutPrediction` stored in one split of ``predictions.npz``
    (keypoints in the images' own frames)."""
    kps = [fields["keypoints"][i, :n].copy() for i, n in enumerate(fields["n_keypoints"])]
    return LayoutPrediction(fields["segmentation"], fields["room_type"], kps)
