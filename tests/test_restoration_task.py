"""The ``restoration_spectrum`` task end to end on tiny data: every method through a suite,
artifacts re-scored with scikit-image, the spectrum summary, and one-line errors."""

import functools
import math

import numpy as np
import pytest
import torch
import yaml

from robench import api
from robench.errors import UserError
from robench.tasks.base import RunContext
from robench.tasks.restoration_spectrum.methods.base import RestorationMethod
from robench.tasks.restoration_spectrum.metrics import format_level, spectrum_summary
from robench.tasks.restoration_spectrum.task import RestorationSpectrumTask, resolve_levels

TINY = {"image_size": 16, "width": 4, "n_train": 16, "train_steps": 3, "finetune_steps": 2,
        "batch_size": 4, "n_test_per_image": 2}
FAMILIES = {
    "inpainting": ({"train_level": 6, "test_levels": [3, 6, 9]},
                   ["biharmonic", "base", "base+paste", "spectrum-ft", "dlnet", "oracle"]),
    "interpolation": ({"train_level": 0.5, "test_levels": [0.2, 0.5, 0.8]},
                      ["biharmonic", "base", "base+paste", "spectrum-ft", "dlnet", "oracle"]),
    "super_resolution": ({"train_level": 3, "test_levels": [2, 3, 4]},
                         ["bicubic", "base", "spectrum-ft", "dlnet", "oracle"]),
}


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny convolutions: threads only contend


def suite_file(tmp_path, entries, name="tiny-restoration"):
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"suite": name, "seeds": [0], "tasks": entries}))
    return path


@pytest.fixture(scope="module")
def tiny_results(tmp_path_factory):
    """Every applicable method of every family, once, through the suite runner."""
    tmp = tmp_path_factory.mktemp("restoration")
    entries = [{"task": "restoration_spectrum", "params": {"family": family, **TINY, **levels},
                "methods": [{"name": m} if m != "dlnet" else {"name": m, "params": {"steps": 2}}
                            for m in methods]}
               for family, (levels, methods) in FAMILIES.items()]
    store = tmp / "store.sqlite"
    summary = api.run(suite_file(tmp, entries), store=store, workers=1, progress=False)
    return summary, api.results(store)


def test_every_method_runs_end_to_end(tiny_results):
    summary, frame = tiny_results
    failed = frame[frame.status != "done"]
    assert summary.failed == 0, failed.error.tolist()
    assert len(frame) == sum(len(m) for _, m in FAMILIES.values())
    for _, row in frame.iterrows():
        levels = row.task_params["test_levels"]
        m = row.metrics
        per_level = [m[f"psnr@{format_level(lv)}"] for lv in levels]
        assert all(math.isfinite(v) and 5 < v <= 100 for v in per_level)
        assert all(0 < m[f"ssim@{format_level(lv)}"] <= 1 for lv in levels)
        assert m["psnr_mean"] == pytest.approx(np.mean(per_level), abs=1e-12)
        assert row.primary_value == m["psnr_mean"]
        assert m["psnr_offtrain_mean"] == pytest.approx(np.mean([per_level[0], per_level[2]]), abs=1e-12)
        assert f"family={row.task_params['family']}" in row.task_label


def test_base_and_oracle_report_their_own_reference_numbers(tiny_results):
    _, frame = tiny_results
    for _, row in frame[frame.method.isin(["base", "oracle"])].iterrows():
        own = row.metrics["psnr_offtrain_mean"]
        ref = row.metrics["psnr_base_offtrain_mean" if row.method == "base" else "psnr_oracle_offtrain_mean"]
        assert own == pytest.approx(ref, abs=1e-12)
    # the reference numbers are the same in every run of a family (same seed, cached networks)
    for _, group in frame.groupby(frame.task_params.map(lambda p: p["family"])):
        assert group["metrics.psnr_base_offtrain_mean"].nunique() == 1
        assert group["metrics.psnr_oracle_offtrain_mean"].nunique() == 1


def test_artifacts_rescored_with_scikit_image_reproduce_the_stored_psnr(tiny_results):
    from skimage.metrics import peak_signal_noise_ratio

    _, frame = tiny_results
    for _, row in frame.iterrows():
        with np.load(row.artifacts["restored"]) as npz:
            truth = npz["ground_truth"]
            assert truth.dtype == np.uint8 and truth.shape == (6, 16, 16, 3)  # bundled crops are 8-bit
            np.testing.assert_allclose(npz["levels"], row.task_params["test_levels"])
            for i, level in enumerate(npz["levels"]):
                restored = npz[f"restored_{i}"]
                assert restored.dtype == np.uint8 and restored.shape == truth.shape
                assert npz[f"degraded_{i}"].shape == truth.shape
                scores = [min(peak_signal_noise_ratio(t, r, data_range=255), 100.0)
                          for t, r in zip(truth, restored)]
                assert np.mean(scores) == pytest.approx(row.metrics[f"psnr@{format_level(level)}"], abs=1e-9)


def test_spectrum_summary_by_hand():
    levels = (2.0, 4.0, 6.0, 10.0)
    method, base, oracle = [30.0, 33.0, 31.0, 27.0], [28.0, 33.0, 30.0, 25.0], [32.0, 33.0, 30.05, 29.0]
    out = spectrum_summary(levels, 4.0, method, base, oracle)
    assert out["psnr_mean"] == pytest.approx(30.25)
    t = np.array([0.0, 0.25, 0.5, 1.0])
    assert out["psnr_auc"] == pytest.approx(np.sum(np.diff(t) * (np.array(method[1:]) + method[:-1]) / 2))
    assert out["psnr_offtrain_mean"] == pytest.approx((30 + 31 + 27) / 3)
    # level 6 is left out: the oracle beats the base there by 0.05 dB < RECOVERY_MIN_GAP_DB
    assert out["recovery"] == pytest.approx(((30 - 28) / 4 + (27 - 25) / 4) / 2)
    assert out["psnr_base_offtrain_mean"] == pytest.approx((28 + 30 + 25) / 3)
    assert math.isnan(spectrum_summary((4.0,), 4.0, [1.0], [1.0], [1.0])["recovery"])


def test_default_levels_follow_the_families_and_rescale_inpainting():
    assert resolve_levels(RestorationSpectrumTask(image_size=32).params) == (10.0, (4.0, 6.0, 8.0, 10.0, 12.0, 14.0, 16.0))
    assert resolve_levels(RestorationSpectrumTask(image_size=64).params)[0] == 20.0
    assert resolve_levels(RestorationSpectrumTask(family="super_resolution").params) == (3.0, (2.0, 3.0, 4.0))
    assert resolve_levels(RestorationSpectrumTask(family="interpolation", test_levels=[0.9, 0.1]).params)[1] == (0.1, 0.9)


def test_folder_dataset(tmp_path):
    import imageio.v3 as iio

    rng = np.random.default_rng(0)
    for i in range(3):
        iio.imwrite(tmp_path / f"im{i}.png", (rng.random((20, 24, 3)) * 255).astype(np.uint8))
    task = RestorationSpectrumTask(family="super_resolution", dataset="folder", root=str(tmp_path),
                                   train_root=str(tmp_path), **TINY, test_levels=[2, 3])
    assert task.test_images().shape == (3, 3, 16, 16)
    assert task.training_images().shape == (16, 3, 16, 16)
    result = task.run(_method("bicubic"), 0, RunContext(tmp_path / "art", tmp_path / "cache"))
    assert set(result.metrics) >= {"psnr@2", "psnr@3", "psnr_mean", "recovery"}


# ---------------------------------------------------------------- bad input: one line

def _method(name, **params):
    from robench import registry
    registry.load_builtins()
    return registry.methods.get(name, task="restoration_spectrum")(**params)


@pytest.mark.parametrize("params,expected", [
    ({"family": "deblurring"}, "family"),
    ({"family": "inpainting", "test_levels": [4, 40]}, "hole side 40"),
    ({"family": "interpolation", "train_level": 1.5}, "drop fraction"),
    ({"family": "super_resolution", "test_levels": [2.5]}, "expected an integer"),
    ({"test_levels": []}, "empty"),
    ({"test_levels": [4, 4]}, "repeat"),
    ({"dataset": "folder"}, "root"),
    ({"root": "/tmp"}, "dataset=folder"),
    ({"image_size": 30}, "multiple of 4"),
    ({"n_train": 0}, "n_train"),
    ({"learning_rate": 0.1}, "unknown key"),
])
def test_bad_task_params_are_one_line_user_errors(tmp_path, params, expected):
    path = suite_file(tmp_path, [{"task": "restoration_spectrum", "params": params, "methods": [{"name": "base"}]}])
    with pytest.raises(UserError) as err:
        api.validate(path)
    assert expected in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(UserError) as err:  # constructing the task directly says the same, in one line
        RestorationSpectrumTask(**params)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("method,params,expected", [
    ("dlnet", {"steps": 0}, "steps"), ("dlnet", {"step_size": 3}, "step_size"), ("base", {"k": 1}, "unknown parameter"),
])
def test_bad_method_params_are_one_line_user_errors(tmp_path, method, params, expected):
    path = suite_file(tmp_path, [{"task": "restoration_spectrum", "params": {},
                                  "methods": [{"name": method, "params": params}]}])
    with pytest.raises(UserError, match=expected) as err:
        api.validate(path)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("method,family", [("biharmonic", "super_resolution"), ("bicubic", "interpolation"),
                                           ("base+paste", "super_resolution")])
def test_a_method_that_does_not_apply_fails_before_any_work(tmp_path, method, family):
    task = RestorationSpectrumTask(family=family, **TINY)
    with pytest.raises(UserError, match="does not apply") as err:
        task.run(_method(method), 0, RunContext(tmp_path / "art", tmp_path / "cache"))
    assert "\n" not in str(err.value)
    assert not (tmp_path / "cache").exists() and not (tmp_path / "art").exists()


def test_restore_must_return_the_right_shape(tmp_path):
    class Broken(RestorationMethod):
        def restore(self, obs):
            return obs.network_input[:, :1]

    task = RestorationSpectrumTask(family="super_resolution", **TINY, test_levels=[2])
    with pytest.raises(RuntimeError, match="expected a tensor"):
        task.run(Broken(), 0, RunContext(tmp_path / "art", tmp_path / "cache"))


def test_only_restoration_methods_register():
    from robench.registry import register_method

    class NotARestorationMethod:
        def restore(self, obs):
            return obs.network_input

    with pytest.raises(UserError, match="does not subclass") as err:
        register_method("restoration_spectrum", "not-a-method")(NotARestorationMethod)
    assert "\n" not in str(err.value)


# ---------------------------------------------------------------- conformance (robench check)

class WrongShape(RestorationMethod):
    def restore(self, obs):
        return obs.network_input[:, :1]


class NotFinite(RestorationMethod):
    def restore(self, obs):
        return obs.network_input * float("nan")


class ChangesTheObservation(RestorationMethod):
    def restore(self, obs):
        obs.network_input.clamp_(0.25, 0.75)
        return obs.network_input.clone()


class CountsCalls(RestorationMethod):
    calls = 0

    def restore(self, obs):
        type(self).calls += 1
        return obs.network_input + 1e-3 * type(self).calls


class ReadsTheTestImages(RestorationMethod):
    def fit(self, problem):
        from robench.tasks.restoration_spectrum import data
        self.crops_ = data.test_set(problem.image_size, 1)
        return self

    def restore(self, obs):
        return obs.network_input.clone()


class FitReturnsNone(RestorationMethod):
    def fit(self, problem):
        return None

    def restore(self, obs):
        return obs.network_input.clone()


class AppliesToNothing(RestorationMethod):
    families = ()


def test_builtin_methods_pass_the_conformance_checks(tmp_path):
    for name in ("bicubic", "base+paste"):
        checks = RestorationSpectrumTask.conformance(functools.partial(_method, name), tmp_path / name)
        assert len(checks) == 8 and all(c.ok for c in checks), [c for c in checks if not c.ok]


@pytest.mark.parametrize("cls,failing", [
    (WrongShape, "shaped like obs.network_input"),
    (NotFinite, "finite"),
    (ChangesTheObservation, "leaves the observation unchanged"),
    (CountsCalls, "deterministic for a seed"),
    (ReadsTheTestImages, "do not read the test images"),
    (FitReturnsNone, "returns self"),
    (AppliesToNothing, "refuses the families"),
])
def test_a_bad_method_fails_the_conformance_checks(tmp_path, cls, failing):
    checks = RestorationSpectrumTask.conformance(cls, tmp_path)
    bad = [c.name for c in checks if not c.ok]
    assert any(failing in name for name in bad), (failing, bad)
    if cls is CountsCalls:
        assert any("observation only" in name for name in bad)


def test_runs_are_deterministic(tmp_path):
    task = RestorationSpectrumTask(family="interpolation", **TINY, test_levels=[0.3, 0.6])
    first = task.run(_method("base"), 1, RunContext(tmp_path / "a", tmp_path / "cache-a")).metrics
    torch.manual_seed(123)  # the run seeds what it uses itself
    second = task.run(_method("base"), 1, RunContext(tmp_path / "b", tmp_path / "cache-b")).metrics
    assert first.keys() == second.keys()
    assert all(first[k] == second[k] or (math.isnan(first[k]) and math.isnan(second[k])) for k in first)


@pytest.mark.parametrize("family,method", [("interpolation", "dlnet"), ("super_resolution", "oracle"),
                                           ("inpainting", "biharmonic")])
def test_every_tensor_follows_the_run_device(tmp_path, family, method):
    """The run's device is "cpu" while torch's default device is "meta": a tensor or network
    created without following the run's device would land on "meta" and fail the run."""
    task = RestorationSpectrumTask(family=family, **TINY, test_levels=list(FAMILIES[family][0]["test_levels"][:2]))
    before = torch.get_default_device()
    torch.set_default_device("meta")
    try:
        result = task.run(_method(method), 0, RunContext(tmp_path / "art", tmp_path / "cache", device="cpu"))
    finally:
        torch.set_default_device(before)
    assert math.isfinite(result.metrics["psnr_mean"])


def test_dlnet_figures_from_the_table_and_artifacts(tiny_results, tmp_path):
    from robench.report.figures import make_figures

    _, frame = tiny_results
    files = make_figures("dlnet", frame, tmp_path)
    names = {f.name for f in files}
    assert {"psnr_vs_level.png", "image_grid.png", "report.md", "psnr_per_level.csv"} <= names
    report = (tmp_path / "dlnet" / "report.md").read_text()
    for family in FAMILIES:
        assert f"### {family}" in report
    assert "16×16 crops" in report and "Did the trend hold?" in report


def test_y_channel_psnr_with_crop_border_matches_scikit_image(tmp_path):
    """The super-resolution convention (y_channel, crop_border) re-computed independently:
    scikit-image's BT.601 luma (rgb2ycbcr, Y in [16, 235]) of the exported uint8 images,
    cropped, then its PSNR and SSIM; and the PNG grids are written."""
    from skimage.color import rgb2ycbcr
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    params = {**TINY, "image_size": 24, "family": "super_resolution", "train_level": 2, "test_levels": [2, 3],
              "y_channel": True, "crop_border": 3}
    task = RestorationSpectrumTask(**params)
    ctx = RunContext(tmp_path / "art", tmp_path / "cache")
    result = task.run(_method("bicubic"), 0, ctx)
    k = 3
    with np.load(tmp_path / "art" / result.artifacts["restored"]) as npz:
        truth = npz["ground_truth"]
        for i, level in enumerate(npz["levels"]):
            restored = npz[f"restored_{i}"]
            y_true = rgb2ycbcr(truth)[..., 0][:, k:-k, k:-k]  # uint8 in: Y in [16, 235]
            y_rest = rgb2ycbcr(restored)[..., 0][:, k:-k, k:-k]
            psnr = np.mean([peak_signal_noise_ratio(t, r, data_range=255) for t, r in zip(y_true, y_rest)])
            ssim = np.mean([structural_similarity(t, r, data_range=255, gaussian_weights=True, sigma=1.5,
                                                  use_sample_covariance=False) for t, r in zip(y_true, y_rest)])
            name = format_level(level)
            assert result.metrics[f"psnr_y@{name}"] == pytest.approx(psnr, abs=1e-6)
            assert result.metrics[f"ssim_y@{name}"] == pytest.approx(ssim, abs=1e-6)
            assert (tmp_path / "art" / f"restored@{name}.png").stat().st_size > 0
    assert result.metrics["psnr_y_mean"] != result.metrics["psnr_mean"]  # not the RGB number
    assert "psnr@2" in result.metrics  # today's RGB metrics stay beside them


def test_y_channel_options_leave_existing_run_ids_alone():
    from robench.spec import expand, parse_suite

    def ids(params):
        suite = {"suite": "x", "tasks": [{"task": "restoration_spectrum", "params": params,
                                          "methods": [{"name": "bicubic"}]}]}
        return [s.id for s in expand(parse_suite(suite))]

    plain = ids({"family": "super_resolution"})
    assert ids({"family": "super_resolution", "y_channel": False, "crop_border": 0}) == plain
    assert ids({"family": "super_resolution", "y_channel": True, "crop_border": 2}) != plain
    with pytest.raises(UserError, match="crop_border applies to the Y-channel scores"):
        ids({"family": "super_resolution", "crop_border": 2})
