"""Task ``room_layout``: estimate a cuboid room's layout (five surfaces, LSUN room type and
keypoints) from one image; scored with the LSUN toolkit's metrics.

Protocol of one run (method M, seed s):

1. Data.  ``synthetic-rooms`` (default): procedurally rendered rooms
   (:mod:`.synth`), generated from the fixed ``data_seed`` (by default the protocol seed;
   never the run's seed, so every method and seed sees the same images), written once
   per setting in LSUN's format under ``<cache>/room_layout/synthetic-rooms/<key>/``
   (through :func:`robench.cache.cached`: one process writes, the folder appears whole)
   and read back with the LSUN reader — the same code path as real data.  Splits: ``train``; ``test`` (same
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
3. ``M.fit(train, FitSetup(epochs, batch_size, s, cache, ...))`` — ``epochs`` is the
   training budget of every learned method; the executor seeded the run with ``s`` once,
   and the reference methods draw what they need from named streams of ``s``.
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

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field, field_validator, model_validator

from robench.errors import UserError
from robench.registry import register_task
from robench.seeding import PROTOCOL_SEED
from robench.tasks.base import RunContext, Task, TaskParams, TaskResult
from robench.tasks.room_layout.methods.base import FitSetup, LayoutMethod, LayoutPrediction

if TYPE_CHECKING:
    import numpy as np

    from robench.tasks.room_layout.formats import LayoutSample

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
    # the protocol fixes the rooms (the same for every run); a parameter so that another
    # draw of the data can be asked for (it is in the run ids: keep its name and default)
    data_seed: int = Field(PROTOCOL_SEED, ge=0, description="seed of the synthetic data (not the run seed)")

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
    typical_run_s = 15.0  # the default suite's settings (suites/parts/room_layout.yaml)
    greater_is_better = False
    label_params = ("dataset", "image_size")
    check_params = dict(image_size=64, n_train=24, n_test=8, n_test_hard=6, epochs=1, batch_size=8)
    data_sources = {
        "synthetic-rooms": "procedurally rendered cuboid rooms with clutter, written in LSUN's format (offline)",
        "lsun": "LSUN Room Layout (train/validation .mat files and images) under root=",
        "hedau": "Hedau et al.'s room images and layouts under root=",
    }
    headline_metrics = ("corner_error", "type_accuracy", "pixel_error_hard")
    plots = ({"name": "errors_per_method", "kind": "dots",
              "metrics": ["pixel_error", "corner_error", "pixel_error_hard", "corner_error_hard"]},)
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

    @classmethod
    def conformance(cls, make_method, folder) -> list:
        """The method contract (:mod:`.methods.base`) on tiny synthetic rooms (16 training
        and 6 test images of 32 px, one epoch of batches of 8, seed 0): ``fit`` returns the
        method itself; ``predict`` returns a :class:`LayoutPrediction` that keeps the
        contract (shapes, labels 1..5, uint8 segmentations, integer room types in 0..10,
        each type's number of finite keypoints, all inside the image) and leaves its input
        as it was; a second fit with the same seed predicts exactly the same."""
        import numpy as np

        from robench.seeding import seed_everything
        from robench.tasks.contract import Check, guarded
        from robench.tasks.room_layout.synth import generate

        seed, size = 0, (32, 32)
        rooms = generate(22, PROTOCOL_SEED, size)
        train, images = rooms[:16], np.stack([s.image for s in rooms[16:]])

        def fit(name: str):
            seed_everything(seed)  # as the executor does before every run
            method = make_method()
            setup = FitSetup(epochs=1, batch_size=8, seed=seed, cache_dir=Path(folder) / name,
                             data_key="conformance")
            return method, method.fit(train, setup)

        check, fitted = guarded("fit on tiny synthetic rooms", lambda: fit("first"))
        if fitted is None:
            return [check]
        method, returned = fitted
        checks = [check, Check("fit returns self", returned is method,
                               f"fit returned {type(returned).__name__}, not the method")]
        given = images.copy()
        check, pred = guarded("predict runs on the test images", lambda: method.predict(images))
        checks.append(check)
        if pred is None:
            return checks
        checks.append(Check("predict leaves its input images as they were", np.array_equal(images, given),
                            "predict changed the array it was given"))
        checks.append(Check("predict returns a LayoutPrediction", isinstance(pred, LayoutPrediction),
                            f"got {type(pred).__name__}"))
        if not checks[-1].ok:
            return checks
        check, _ = guarded("predictions keep the contract (shapes, labels 1..5, room types 0..10, "
                           "keypoints per type)", lambda: pred.validate(len(images), size, "predict"))
        checks.append(check)
        if not check.ok:
            return checks
        types = np.asarray(pred.room_types)
        checks.append(Check("segmentations are uint8 and room types integers",
                            np.asarray(pred.segmentations).dtype == np.uint8 and types.dtype.kind in "iu",
                            f"got {np.asarray(pred.segmentations).dtype} and {types.dtype}"))
        low, high = -1e-6, np.array([size[1] - 1, size[0] - 1]) + 1e-6  # border points may miss by rounding
        outside = [i for i, kp in enumerate(pred.keypoints)
                   if np.any((np.asarray(kp) < low) | (np.asarray(kp) > high))]
        checks.append(Check("keypoints lie inside the image", not outside,
                            f"test image {outside[0] if outside else ''}: a keypoint outside "
                            "[0, W-1] x [0, H-1]"))

        def again():
            return fit("second")[0].predict(images)
        check, second = guarded("a second fit with the same seed", again)
        same = isinstance(second, LayoutPrediction) and \
            np.array_equal(second.segmentations, pred.segmentations) and \
            np.array_equal(second.room_types, pred.room_types) and \
            len(second.keypoints) == len(pred.keypoints) and \
            all(np.array_equal(a, b) for a, b in zip(second.keypoints, pred.keypoints))
        if not check.ok:
            checks.append(check)
        checks.append(Check("deterministic for a seed", same, "two fits with seed 0 predicted differently"))
        return checks

    # ---------------------------------------------------------------- data
    def prerequisites(self, method, seed):
        """The synthetic dataset, generated once and shared by every run of these data."""
        if self.params.dataset != "synthetic-rooms":
            return []
        import functools

        return [(self._synthetic_folder().as_posix(), functools.partial(_build_synthetic, self.params))]

    def _synthetic_folder(self) -> Path:
        """The synthetic dataset's folder, relative to the cache folder."""
        p = self.params
        spec = {"version": SYNTHETIC_VERSION, "image_size": p.image_size, "n_train": p.n_train,
                "n_test": p.n_test, "n_test_hard": p.n_test_hard, "seed": p.data_seed}
        key = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
        name = f"{p.image_size}px-{p.n_train}-{p.n_test}-{p.n_test_hard}-seed{p.data_seed}-{key}"
        return Path("room_layout") / "synthetic-rooms" / name

    def synthetic_root(self, cache_dir) -> Path:
        """Folder of the synthetic dataset of these parameters (generated if missing)."""
        from robench.cache import cached
        from robench.tasks.room_layout.synth import write_synthetic_dataset

        p = self.params
        spec = {"version": SYNTHETIC_VERSION, "image_size": p.image_size, "n_train": p.n_train,
                "n_test": p.n_test, "n_test_hard": p.n_test_hard, "seed": p.data_seed}
        root = Path(cache_dir) / self._synthetic_folder()

        def write(_root, folder: Path) -> None:
            write_synthetic_dataset(folder, p.n_train, p.n_test, p.n_test_hard, p.data_seed,
                                    image_size=(p.image_size, p.image_size))
            (folder / "complete.json").write_text(json.dumps(spec, indent=1) + "\n")

        def complete(folder: Path) -> Path:
            if not (folder / "complete.json").exists():  # left half-written by an older robench
                raise UserError(f"task 'room_layout': {folder} is an incomplete synthetic dataset "
                                "(no complete.json): delete it and run again")
            return folder

        return cached(root, lambda: root, write, complete)[0]

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
        import numpy as np

        from robench.tasks.room_layout.metrics import corner_error, pixel_error, room_type_accuracy

        p = self.params
        train, splits, data_key = self.load(ctx.cache_dir, ctx.say)
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


    @classmethod
    def missing_files(cls, params, name):
        """``root`` must hold the dataset's index: LSUN's split .mat files, Hedau's traintestind.mat."""
        if name != "root":
            return None
        folder = Path(str(params[name])).expanduser()
        dataset = params.get("dataset")
        if dataset == "hedau" and not (folder / "traintestind.mat").is_file():
            return "traintestind.mat (the Hedau release's index)"
        if dataset == "lsun" and not any((folder / f).is_file() for f in ("training.mat", "validation.mat",
                                                                             "testing.mat")):
            return "training.mat, validation.mat or testing.mat (the LSUN layout release's index)"
        return None

    def rescore(self, artifact_dir: Path, seed: int, ctx: RunContext, method=None,
                claimed: dict | None = None) -> dict[str, float]:
        """Re-score ``predictions.npz`` (``robench verify``) against this setting's test
        splits: pixel error, corner error and room-type accuracy per split, from the stored
        segmentations, keypoints and room types (the per-image scores and previews stored
        beside them are not read): every metric of ``run``. The images must be the splits'
        own, in order. A file that does not load or keep the prediction contract raises a
        one-line :class:`UserError`."""
        import numpy as np

        from robench.errors import one_line
        from robench.tasks.room_layout.metrics import corner_error, pixel_error, room_type_accuracy

        p = self.params
        path = Path(artifact_dir) / "predictions.npz"
        where = f"task 'room_layout': {path.parent.name}/predictions.npz"

        def unreadable(exc: BaseException):
            text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
            return UserError(one_line(f"{where}: cannot read the run's artifacts ({type(exc).__name__}"
                                      f"{': ' + text if text else ''})"))

        if not path.is_file():
            raise UserError(f"{where}: cannot read the run's artifacts: missing")
        try:
            stored = load_predictions(path)
        except Exception as exc:  # noqa: BLE001 - a damaged or foreign file: any error is the user's
            raise unreadable(exc) from None
        _, splits, _ = self.load(ctx.cache_dir)
        size = (p.image_size, p.image_size)
        metrics: dict[str, float] = {}
        for split in splits:
            at = f"{where}, split {split.name}"
            fields = stored.get(split.name)
            if fields is None or [str(n) for n in np.asarray(fields.get("names", [])).ravel()] != \
                    [s.name for s in split.samples]:
                raise UserError(f"{at}: not the split's images (expected {len(split.samples)} images "
                                "named as the split's, in order)")
            try:
                pred = _stored_prediction(fields, len(split.samples))
            except Exception as exc:  # noqa: BLE001 - wrong shapes, dtypes, counts: the contributor's file
                raise unreadable(exc) from None
            try:
                pred.validate(len(split.samples), size, at)
            except ValueError as exc:  # the prediction contract, broken
                raise UserError(one_line(str(exc))) from None
            except Exception as exc:  # noqa: BLE001
                raise unreadable(exc) from None
            metrics[f"pixel_error{split.suffix}"] = float(np.mean(
                [pixel_error(seg, s.segmentation) for seg, s in zip(pred.segmentations, split.samples)]))
            if p.dataset != "hedau":
                metrics[f"corner_error{split.suffix}"] = float(np.mean(
                    [corner_error(kp, s.keypoints, s.shape) for kp, s in zip(pred.keypoints, split.samples)]))
            metrics[f"type_accuracy{split.suffix}"] = room_type_accuracy(
                pred.room_types, [s.room_type for s in split.samples])
        return metrics


# ------------------------------------------------------------------ helpers

def to_working_size(sample: LayoutSample, size: int, rerender: bool = False) -> LayoutSample:
    """``sample`` at (size, size): image bilinear, label maps nearest, keypoints scaled.
    ``rerender``: replace the segmentation by the layout rendered from type and keypoints
    (LSUN's released label maps number regions arbitrarily)."""
    import numpy as np
    from PIL import Image

    from robench.tasks.room_layout.formats import LayoutSample
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
    import numpy as np

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
    import numpy as np

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
    import numpy as np

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


def _stored_prediction(fields: dict[str, np.ndarray], n: int) -> LayoutPrediction:
    """:func:`prediction_of` for ``rescore``, after checking the stored arrays' kinds and
    shapes (ValueError): uint8 (n, S, S) segmentations, n integer room types, float
    (n, 8, 2) keypoints and n counts in 0..8."""
    import numpy as np

    seg, types = np.asarray(fields["segmentation"]), np.asarray(fields["room_type"])
    kp, counts = np.asarray(fields["keypoints"]), np.asarray(fields["n_keypoints"])
    if seg.dtype != np.uint8 or seg.ndim != 3 or len(seg) != n:
        raise ValueError(f"segmentation is {seg.dtype} {seg.shape}; expected uint8 ({n}, S, S)")
    if types.dtype.kind not in "iu" or types.shape != (n,):
        raise ValueError(f"room_type is {types.dtype} {types.shape}; expected integers ({n},)")
    if kp.dtype.kind != "f" or kp.shape != (n, 8, 2):
        raise ValueError(f"keypoints are {kp.dtype} {kp.shape}; expected floats ({n}, 8, 2)")
    if counts.dtype.kind not in "iu" or counts.shape != (n,) or counts.min(initial=0) < 0 or counts.max(initial=0) > 8:
        raise ValueError(f"n_keypoints is {counts.dtype} {counts.shape}; expected ({n},) counts in 0..8")
    return prediction_of(fields)


def _build_synthetic(params, cache_dir, device) -> list[Path]:
    """A shared prerequisite (see ``Task.prerequisites``): the synthetic dataset's folder."""
    return [RoomLayoutTask(params).synthetic_root(cache_dir)]
