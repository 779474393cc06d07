"""The room_layout task end to end on tiny data: every method, exported predictions
(re-scored with an independent brute-force matching), real-data loaders, bad parameters,
the suites and the paper figures."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from robench import registry
from robench.errors import UserError

registry.load_builtins()  # before the task modules register themselves (else: duplicate names)
from robench.tasks.base import RunContext  # noqa: E402
from robench.tasks.room_layout import synth  # noqa: E402
from robench.tasks.room_layout.formats import read_lsun, write_hedau, write_lsun  # noqa: E402
from robench.tasks.room_layout.room_types import N_KEYPOINTS  # noqa: E402
from robench.tasks.room_layout.task import (  # noqa: E402
    RoomLayoutTask, load_predictions, prediction_of, rescale_keypoints,
)

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parent.parent
TINY = dict(image_size=64, n_train=24, n_test=8, n_test_hard=6, epochs=1, batch_size=8)
METHODS = {"prior": {}, "geometric": {"n_rays": 10},
           "fcn": {"width": 4}, "st-pio": {"width": 4, "pio_steps": 10}}


def method(name, **params):
    return registry.methods.get(name, task="room_layout")(**{**METHODS.get(name, {}), **params})


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def runs(cache, tmp_path_factory):
    """One tiny run of every method (shared by the tests below)."""
    out = {}
    task = RoomLayoutTask(**TINY)
    for name in METHODS:
        ctx = RunContext(tmp_path_factory.mktemp(name), cache)
        out[name] = (task.run(method(name), 0, ctx), ctx)
    return out


def data_root(cache) -> Path:
    """The one synthetic dataset folder the tiny setting wrote into the cache."""
    (root,) = [p for p in (cache / "room_layout" / "synthetic-rooms").glob("64px-24-8-6-*")
               if p.is_dir()]
    return root


# ------------------------------------------------------------------ independent scorers

def brute_force_pixel_error(pred, true):
    """1 - best one-to-one label matching's overlap / pixels, by trying every matching."""
    p_labels, t_labels = np.unique(pred), np.unique(true)
    overlap = np.array([[np.sum((pred == a) & (true == b)) for b in t_labels] for a in p_labels])
    n = max(len(p_labels), len(t_labels))
    padded = np.zeros((n, n))
    padded[:len(p_labels), :len(t_labels)] = overlap
    best = max(sum(padded[i, perm[i]] for i in range(n)) for perm in itertools.permutations(range(n)))
    return 1.0 - best / true.size


def brute_force_corner_error(pred, true, shape):
    diag = math.hypot(shape[0], shape[1])
    n_p, n_t = len(pred), len(true)
    if max(n_p, n_t) == 0:
        return 0.0
    small, large = (pred, true) if n_p <= n_t else (true, pred)
    best = min((sum(np.hypot(*(small[i] - large[j])) for i, j in enumerate(perm))
                for perm in itertools.permutations(range(len(large)), len(small))), default=0.0)
    return (best / diag + abs(n_p - n_t) / 3) / max(n_p, n_t)


# ------------------------------------------------------------------ end to end

@pytest.mark.parametrize("name", list(METHODS))
def test_every_method_runs_end_to_end(runs, name):
    result, ctx = runs[name]
    expected = {"pixel_error", "corner_error", "type_accuracy",
                "pixel_error_hard", "corner_error_hard", "type_accuracy_hard"}
    assert set(result.metrics) == expected
    for key, value in result.metrics.items():
        assert 0.0 <= value <= 1.0, (key, value)
    assert result.artifacts == {"predictions": "predictions.npz"}
    data = load_predictions(ctx.artifact_dir / "predictions.npz")
    assert list(data) == ["test", "test-hard"]
    for split, n in (("test", TINY["n_test"]), ("test-hard", TINY["n_test_hard"])):
        fields = data[split]
        assert fields["segmentation"].shape == (n, 64, 64)
        assert fields["segmentation"].min() >= 1 and fields["segmentation"].max() <= 5
        assert fields["keypoints"].shape == (n, 8, 2)
        for t, k in zip(fields["room_type"], fields["n_keypoints"]):
            assert k == N_KEYPOINTS[t]
        assert fields["preview_images"].shape[1:] == (64, 64, 3)
        assert fields["preview_images"].dtype == np.uint8
    assert result.metrics["pixel_error"] == pytest.approx(data["test"]["pixel_error"].mean())


@pytest.mark.parametrize("name", ["prior", "st-pio"])
def test_exported_predictions_rescore_to_the_stored_metrics(runs, cache, name):
    """Pixel error (and, on a few images, corner error) recomputed from the artifact with
    a brute-force matching against the dataset files equal the stored metrics."""
    result, ctx = runs[name]
    root = data_root(cache)
    data = load_predictions(ctx.artifact_dir / "predictions.npz")
    for split, suffix in (("test", ""), ("test-hard", "_hard")):
        truth = {s.name: s for s in read_lsun(root, split)}
        fields = data[split]
        pred = prediction_of(fields)
        errors = [brute_force_pixel_error(seg, truth[n].segmentation)
                  for n, seg in zip(fields["names"], pred.segmentations)]
        assert np.mean(errors) == pytest.approx(result.metrics[f"pixel_error{suffix}"], abs=1e-9)
        for n, kp, stored in list(zip(fields["names"], pred.keypoints, fields["corner_error"]))[:3]:
            if len(kp) <= 6 and len(truth[n].keypoints) <= 6:
                assert brute_force_corner_error(kp, truth[n].keypoints, (64, 64)) == pytest.approx(stored)
        accuracy = np.mean(fields["room_type"] == [truth[n].room_type for n in fields["names"]])
        assert accuracy == pytest.approx(result.metrics[f"type_accuracy{suffix}"])


def test_synthetic_data_is_written_once_and_independent_of_the_run_seed(runs, cache, tmp_path):
    root = data_root(cache)
    stamp = (root / "complete.json").stat().st_mtime_ns
    train = read_lsun(root, "train")
    assert len(train) == 24 and train[0].clutter is not None
    # the images are the generator's, from the fixed data seed (0), not the run's seed
    data_seed = [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(0).spawn(3)][0]
    expected = synth.generate_one(data_seed, 0, (64, 64))
    assert np.array_equal(train[0].image, expected.image)
    assert np.array_equal(train[0].segmentation, expected.segmentation)
    RoomLayoutTask(**TINY).run(method("prior"), 5, RunContext(tmp_path, cache))
    assert (root / "complete.json").stat().st_mtime_ns == stamp
    assert np.array_equal(read_lsun(root, "train")[0].image, train[0].image)
    assert data_root(cache) == root


def test_runs_are_deterministic_for_a_seed(runs, cache, tmp_path):
    again = RoomLayoutTask(**TINY).run(method("fcn"), 0, RunContext(tmp_path, cache))
    assert again.metrics == runs["fcn"][0].metrics


def test_lsun_files_at_another_resolution(tmp_path):
    """The real-data path: LSUN files of 80x96 images, methods at 64 px, scores and
    exported keypoints in the images' own frame."""
    root = tmp_path / "lsun"
    write_lsun(root, "train", synth.generate(16, 3, (80, 96), name_prefix="tr_"))
    val = synth.generate(5, 4, (80, 96), name_prefix="va_")
    write_lsun(root, "val", val)
    task = RoomLayoutTask(dataset="lsun", root=str(root), image_size=64, n_train=16, n_test=5,
                          epochs=1, batch_size=8)
    for name in ("prior", "fcn"):
        ctx = RunContext(tmp_path / name, tmp_path / "cache")
        result = task.run(method(name), 0, ctx)
        assert set(result.metrics) == {"pixel_error", "corner_error", "type_accuracy"}
        fields = load_predictions(ctx.artifact_dir / "predictions.npz")["test"]
        kps = fields["keypoints"][~np.isnan(fields["keypoints"])]
        assert kps.min() >= -1e-6 and kps.reshape(-1, 2)[:, 0].max() <= 95 + 1e-6
    # a perfect answer in the working frame scores (almost) perfectly in the original one
    kp = rescale_keypoints(rescale_keypoints(val[0].keypoints, (80, 96), (64, 64)), (64, 64), (80, 96))
    np.testing.assert_allclose(kp, val[0].keypoints, atol=1e-9)


def test_hedau_files(tmp_path):
    root = tmp_path / "hedau"
    write_hedau(root, synth.generate(10, 3, (64, 64), name_prefix="a"),
                synth.generate(4, 4, (64, 64), name_prefix="b"))
    task = RoomLayoutTask(dataset="hedau", root=str(root), n_train=10, n_test=4, epochs=1)
    result = task.run(method("prior"), 0, RunContext(tmp_path / "run", tmp_path / "cache"))
    assert set(result.metrics) == {"pixel_error", "type_accuracy"}  # Hedau has no keypoints


# ------------------------------------------------------------------ method contract

def test_reference_methods_pass_the_conformance(tmp_path):
    for name in ("prior", "st-pio"):
        checks = RoomLayoutTask.conformance(lambda: method(name), tmp_path / name)
        assert len(checks) >= 8 and all(c.ok for c in checks), [c for c in checks if not c.ok]


def _broken(how):
    """A ``prior`` that breaks the contract in one way."""
    from robench.tasks.room_layout.methods.prior import Prior

    class Broken(Prior):
        def fit(self, train, setup):
            out = super().fit(train, setup)
            return None if how == "fit returns nothing" else out

        def predict(self, images):
            pred = super().predict(images)
            if how == "type 11":
                pred.room_types[:] = 11
            elif how == "keypoints outside":
                pred.keypoints = [kp + 100.0 for kp in pred.keypoints]
            elif how == "int64 labels":
                pred.segmentations = pred.segmentations.astype(np.int64)
            elif how == "writes into the images":
                images[:] = 0
            elif how == "random keypoints":  # not seeded: differs between two fits
                rng = np.random.default_rng()
                pred.keypoints = [np.clip(kp + rng.uniform(-1, 1, kp.shape), 0, 31) for kp in pred.keypoints]
            return pred
    return Broken()


@pytest.mark.parametrize("how, failing", [
    ("fit returns nothing", "fit returns self"),
    ("type 11", "predictions keep the contract"),
    ("keypoints outside", "keypoints lie inside the image"),
    ("int64 labels", "segmentations are uint8"),
    ("writes into the images", "predict leaves its input images"),
    ("random keypoints", "deterministic for a seed"),
])
def test_a_method_breaking_the_contract_fails_the_conformance(tmp_path, how, failing):
    checks = RoomLayoutTask.conformance(lambda: _broken(how), tmp_path)
    failed = [c.name for c in checks if not c.ok]
    assert failed and all(name.startswith(failing) for name in failed), failed


def test_a_method_of_another_task_cannot_be_registered_for_room_layout():
    from robench.tasks.base import Method

    with pytest.raises(UserError, match="LayoutMethod"):
        registry.register_method("room_layout", "not-a-layout-method")(type("Other", (Method,), {}))
    assert "not-a-layout-method" not in {e.name for e in registry.methods.entries(task="room_layout")}


# ------------------------------------------------------------------ bad input

@pytest.mark.parametrize("params, match", [
    ({"dataset": "nyu"}, "unknown dataset 'nyu'"),
    ({"dataset": "lsun"}, "needs root="),
    ({"dataset": "hedau"}, "needs root="),
    ({"root": "/data"}, "root is only for"),
    ({"image_size": 50}, "multiple of 16"),
    ({"n_train": 0}, "n_train"),
])
def test_bad_parameters_are_one_line_user_errors(params, match):
    with pytest.raises(UserError, match=match) as info:
        RoomLayoutTask(**params)
    assert "\n" not in str(info.value)


def test_a_missing_root_folder_is_a_user_error(tmp_path):
    task = RoomLayoutTask(dataset="lsun", root=str(tmp_path / "nowhere"))
    with pytest.raises(UserError, match="no such folder") as info:
        task.run(method("prior"), 0, RunContext(tmp_path / "a", tmp_path / "c"))
    assert "\n" not in str(info.value)


def test_bad_parameters_in_a_suite_are_one_line_user_errors():
    from robench.spec import expand, parse_suite

    suite = parse_suite({"suite": "x", "tasks": [{"task": "room_layout", "params": {"dataset": "lsun"},
                                                  "methods": [{"name": "prior"}]}]})
    with pytest.raises(UserError, match="needs root=") as info:
        expand(suite, "x.yaml")
    assert "\n" not in str(info.value) and "x.yaml" in str(info.value)


@pytest.mark.parametrize("path", ["suites/papers/stpio.yaml", "suites/parts/room_layout.yaml"])
def test_shipped_suites_expand(path):
    from robench.spec import expand, load_suite

    specs = expand(load_suite(ROOT / path), path)
    methods = {s.method for s in specs}
    assert {"prior", "geometric", "fcn", "st-pio"} <= methods
    assert len({s.seed for s in specs}) >= 3


# ------------------------------------------------------------------ paper figures

def test_stpio_figures_from_a_results_table(runs, tmp_path):
    import pandas as pd

    from robench.report.figures import FIGURES, make_figures

    assert "stpio" in FIGURES
    rows = []
    for seed in (0, 1):
        for name, (result, ctx) in runs.items():
            metrics = dict(result.metrics)
            metrics["pixel_error"] += 0.01 * seed
            rows.append({"task": "room_layout", "status": "done", "method": name,
                         "method_label": name, "task_label": "dataset=synthetic-rooms, image_size=64",
                         "task_params": {"dataset": "synthetic-rooms", **TINY, "data_seed": 0},
                         "seed": seed, "metrics": metrics, "suites": ["stpio"],
                         "artifacts": {"predictions": str(ctx.artifact_dir / "predictions.npz")},
                         "duration_s": 3.0, "started_at": "2024-01-01T00:00:00+00:00",
                         "finished_at": "2024-01-01T00:01:00+00:00"})
    paths = make_figures("stpio", pd.DataFrame(rows), tmp_path)
    names = {p.name for p in paths}
    assert {"report.md", "results.csv", "errors.png", "predictions_grid.png"} <= names
    report = (tmp_path / "stpio" / "report.md").read_text()
    assert "LSUN" in report and "different dataset" in report
    assert "24 training images" in report
    assert "st-pio below fcn" in report
    table = pd.read_csv(tmp_path / "stpio" / "results.csv")
    assert list(table["method"]) == ["prior", "geometric", "fcn", "st-pio"]
    assert (table["n"] == 2).all()
