"""The corruption_robustness task: the corruption errors on a hand-computed example, a tiny
suite end to end (metrics consistent with the artifacts and the cached corrupted sets,
the reference model normalizing to exactly 1 when it is the model itself, the leaderboard
page with its accuracy-vs-severity plot), restore-then-classify, ``robench check``, and bad
input refused in one line by ``robench validate``."""

from __future__ import annotations

import json
import math
import subprocess

import numpy as np
import pytest

from robench.tasks.corruption_robustness.metrics import (corruption_error, corruption_metrics, mean_defined,
                                                         relative_corruption_error)
from tests.conftest import bundle_members, edit_bundle_runs, robench_cmd, write_bundle

FAMILIES = ["shot_noise", "rotate", "impulse_noise"]
TINY = {"model": "linear", "reference_model": "linear", "baseline_epochs": 1, "finetune_epochs": 1,
        "batch_size": 128, "n_test": 40, "families": FAMILIES}


def test_corruption_errors_on_a_hand_computed_example():
    """Two families, two severities. Model errors: a (0.1, 0.3), b (0.2, 0.4), clean 0.05;
    reference: a (0.2, 0.4), b (0.3, 0.8), clean 0.1. CE_a = 0.4/0.6, CE_b = 0.6/1.1,
    rCE_a = (0.05 + 0.25)/(0.1 + 0.3) = 0.75, rCE_b = (0.15 + 0.35)/(0.2 + 0.7) = 5/9."""
    model = {"a": {1: 0.9, 2: 0.7}, "b": {1: 0.8, 2: 0.6}}
    reference = {"a": {1: 0.8, 2: 0.6}, "b": {1: 0.7, 2: 0.2}}
    m = corruption_metrics(model, 0.95, reference, 0.9)
    assert m["corruption_error@a"] == pytest.approx(2 / 3) and m["corruption_error@b"] == pytest.approx(6 / 11)
    assert m["mce"] == pytest.approx(20 / 33)
    assert m["relative_corruption_error@a"] == pytest.approx(0.75)
    assert m["relative_corruption_error@b"] == pytest.approx(5 / 9)
    assert m["relative_mce"] == pytest.approx(47 / 72)
    assert m["accuracy@1"] == pytest.approx(0.85) and m["accuracy@2"] == pytest.approx(0.65)
    assert m["accuracy_b@2"] == 0.6 and m["corrupted_accuracy"] == pytest.approx(0.75)
    assert m["clean_accuracy"] == 0.95 and m["reference_clean_accuracy"] == 0.9
    assert m["reference_corrupted_accuracy"] == pytest.approx(0.575)
    # nothing to normalize by: a reference that never errs, or is not hurt by the corruption
    assert math.isnan(corruption_error({1: 0.1}, {1: 0.0}))
    assert math.isnan(relative_corruption_error({1: 0.3}, 0.1, {1: 0.1}, 0.2))
    assert mean_defined([0.5, math.nan, 1.0]) == 0.75 and math.isnan(mean_defined([math.nan]))
    with pytest.raises(ValueError, match="severities"):
        corruption_error({1: 0.1, 2: 0.2}, {1: 0.1})


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A tiny suite run into a fresh store: dense and magnitude pruning of the linear model."""
    import robench

    folder = tmp_path_factory.mktemp("corruption-store")
    suite = folder / "tiny.yaml"
    suite.write_text(f"""
suite: tiny-corruptions
seeds: [0]
tasks:
  - task: corruption_robustness
    params: {json.dumps(TINY)}
    methods:
      - name: dense
      - name: magnitude
        params: {{sparsity: 0.5}}
""")
    summary = robench.run(suite, store=folder / "results.sqlite", progress=False)
    assert summary.failed == 0
    return folder


def _runs(store):
    import robench

    frame = robench.results(store=store / "results.sqlite", task="corruption_robustness")
    return {row.method: row for row in frame.itertuples()}


@pytest.mark.slow
def test_tiny_suite_end_to_end(store):
    runs = _runs(store)
    assert set(runs) == {"dense", "magnitude"} and all(r.status == "done" for r in runs.values())
    m = runs["magnitude"].metrics
    accuracies = json.loads((store / "artifacts" / runs["magnitude"].id / "accuracies.json").read_text())
    assert accuracies["benchmark"] == "mnist-c" and accuracies["reference_model"] == "linear"
    for family in FAMILIES:
        for s in range(1, 6):
            assert m[f"accuracy_{family}@{s}"] == accuracies["model"]["families"][family][str(s)]
        ce = sum(1 - a for a in accuracies["model"]["families"][family].values()) / \
            sum(1 - a for a in accuracies["reference"]["families"][family].values())
        assert m[f"corruption_error@{family}"] == pytest.approx(ce)
    assert m["mce"] == pytest.approx(np.mean([m[f"corruption_error@{f}"] for f in FAMILIES]))
    for s in range(1, 6):
        assert m[f"accuracy@{s}"] == pytest.approx(np.mean([m[f"accuracy_{f}@{s}"] for f in FAMILIES]))
    assert m["weight_sparsity"] == pytest.approx(0.5, abs=0.01) and m["target_sparsity"] == 0.5
    assert runs["dense"].metrics["compression_ratio_bits"] == pytest.approx(1.0)
    # the reference is one model: the same accuracies in every run of the setting
    assert runs["dense"].metrics["reference_corrupted_accuracy"] == m["reference_corrupted_accuracy"]
    # severity hurts: the mean over the families falls from severity 1 to 5
    assert m["accuracy@1"] > m["accuracy@5"]
    for name in ("model.pt", "storage.json", "examples.png"):
        assert (store / "artifacts" / runs["magnitude"].id / name).is_file()


def _forge(bundle, path, models=None, edit=None):
    """``bundle`` with artifacts/<id>/model.pt replaced (``models``: id → id of the file to
    copy) and its claims edited by ``edit(claim)``, the checksums recomputed as a knowing
    attacker would."""
    members = bundle_members(bundle)
    for target, source in (models or {}).items():
        members[f"artifacts/{target}/model.pt"] = members[f"artifacts/{source}/model.pt"]
    if edit is not None:
        members = edit_bundle_runs(members, edit)
    return write_bundle(members, path)


@pytest.mark.slow
def test_verify_rescores_the_claims_and_catches_tampering(store, tmp_path):
    """The tiny suite's bundle verifies in a fresh store (baseline, reference and corrupted
    sets made again there: the maintainer's own, the same on this kernel set); the dense
    run's model.pt replaced by the pruned run's, or the pruned run's mCE edited, is
    unverified; a claim whose reference's accuracies differ from the maintainer's (as one
    retrained on another kernel set) has its mCE claimed only: skipped."""
    import hashlib

    from robench import api  # robench.verify is also a module's name: once imported, the attribute is the module

    runs = _runs(store)
    dense, pruned = runs["dense"].id, runs["magnitude"].id
    honest = tmp_path / "honest.zip"
    api.export(honest, store / "results.sqlite")

    def edit_mce(claim):
        if claim["id"] == pruned:
            claim["metrics"]["mce"] = claim["primary_value"] = 0.5 * claim["metrics"]["mce"]

    def other_reference(claim):
        if claim["id"] == pruned:
            claim["metrics"]["reference_corrupted_accuracy"] += 0.02
    bundles = {"honest": honest, "forged": _forge(honest, tmp_path / "forged.zip", {dense: pruned}, edit_mce),
               "elsewhere": _forge(honest, tmp_path / "elsewhere.zip", edit=other_reference)}
    target = tmp_path / "b" / "results.sqlite"
    for bundle in bundles.values():
        api.import_bundle(bundle, target)
    origins = {"bundle:" + hashlib.sha256(b.read_bytes()).hexdigest(): name for name, b in bundles.items()}
    verdicts = {(origins[v.origin], v.run_id): v for v in api.verify(target)}
    for run_id in (dense, pruned):
        verdict = verdicts["honest", run_id]
        assert verdict.status == "verified", verdict
        assert {"mce", "corruption_error@rotate", "clean_accuracy", "corrupted_accuracy", "accuracy_rotate@5",
                "baseline_accuracy", "reference_clean_accuracy", "weight_sparsity"} <= set(verdict.rescored)
    swapped, edited = verdicts["forged", dense], verdicts["forged", pruned]
    assert swapped.status == "unverified" and {"weight_sparsity", "compression_ratio"} <= set(swapped.differences)
    assert edited.status == "unverified" and set(edited.differences) == {"mce"}
    elsewhere = verdicts["elsewhere", pruned]
    assert elsewhere.status == "skipped" and "mce" in elsewhere.note and not elsewhere.differences
    assert {"mce", "corruption_error@rotate", "reference_corrupted_accuracy"} <= set(elsewhere.claimed)
    assert {"clean_accuracy", "accuracy_rotate@5", "reference_clean_accuracy"} <= set(elsewhere.rescored)
    assert verdicts["elsewhere", dense].status == "verified"


@pytest.mark.slow
def test_corrupted_sets_are_cached_with_checksums_and_match_the_generator(store):
    """One file per (dataset, family, severity, seed), 8-bit, verified, equal to corrupt()."""
    from robench.cache import verified
    from robench.data import load_dataset
    from robench.tasks.corruption_robustness import corruptions
    from robench.tasks.corruption_robustness.task import evaluation_points

    files = sorted((store / "cache" / "corruptions").glob("mnist-5k-mnist-c-*.npz"))
    assert len(files) == len(FAMILIES) * 5 and all(verified(f) for f in files)
    rotate = [f for f in files if "-rotate-s4-seed0-" in f.name]
    assert len(rotate) == 1
    with np.load(rotate[0]) as arrays:
        images, indices = arrays["images"], arrays["indices"]
    assert images.dtype == np.uint8 and images.shape == (40, 1, 28, 28)
    assert np.array_equal(indices, evaluation_points(40, 1000))
    x = load_dataset("mnist-5k").test.take(indices)[0]
    assert np.array_equal(images, corruptions.corrupt(x, "mnist-c", "rotate", 4, 0, indices))


def test_the_reference_model_itself_has_corruption_error_one(tmp_path):
    """With no fine-tuning, dense at seed 0 of the reference's own architecture is the reference:
    every CE and relative CE is exactly 1."""
    from robench import registry
    from robench.seeding import seed_everything
    from robench.tasks.base import RunContext, execute

    registry.load_builtins()
    task = registry.tasks.get("corruption_robustness")(**{**TINY, "finetune_epochs": 0, "families": ["rotate"],
                                                          "severities": [2, 5]})
    seed_everything(0)
    result = execute(task, registry.methods.get("dense", task="corruption_robustness")(), 0,
                     RunContext(tmp_path / "a", tmp_path / "cache"))
    m = result.metrics
    assert m["mce"] == 1.0 and m["relative_mce"] == 1.0 and m["corruption_error@rotate"] == 1.0
    assert m["clean_accuracy"] == m["reference_clean_accuracy"] == m["baseline_accuracy"]
    assert set(k for k in m if k.startswith("accuracy_rotate@")) == {"accuracy_rotate@2", "accuracy_rotate@5"}


@pytest.mark.slow
def test_restore_then_classify(tmp_path):
    """preprocess: impulse noise goes through the interpolation restorer (its impulses found
    from the image), shot noise has no restoration family and is classified as it is."""
    from robench import registry
    from robench.seeding import seed_everything
    from robench.tasks.base import RunContext, execute

    registry.load_builtins()
    task_cls = registry.tasks.get("corruption_robustness")
    common = {**TINY, "families": ["impulse_noise", "shot_noise"], "severities": [4]}
    results = {}
    for name, extra in (("raw", {}), ("restored", {"preprocess": "base", "restoration_steps": 20})):
        seed_everything(0)
        dense = registry.methods.get("dense", task="corruption_robustness")()
        results[name] = execute(task_cls(**common, **extra), dense, 0,
                                RunContext(tmp_path / name, tmp_path / "cache")).metrics
    raw, restored = results["raw"], results["restored"]
    assert restored["restored_families"] == 1.0 and "restored_families" not in raw
    assert restored["accuracy_shot_noise@4"] == raw["accuracy_shot_noise@4"]
    assert restored["accuracy_impulse_noise@4"] != raw["accuracy_impulse_noise@4"]
    assert restored["reference_corrupted_accuracy"] == raw["reference_corrupted_accuracy"]  # reference: raw inputs
    assert list((tmp_path / "cache" / "restoration").glob("interpolation-level0.5-*.pt"))
    assert list((tmp_path / "cache" / "corruptions" / "restored").glob("impulse_noise-s4-*.npz"))


def test_the_restorers_observation_is_built_from_the_corrupted_image_alone():
    import torch

    from robench.tasks.corruption_robustness import corruptions, restore

    x = torch.rand(3, 3, 28, 28) * 0.4 + 0.3
    x[:, :, 5, 7] = 1.0  # salt
    x[:, :, 9, 9] = 0.0  # pepper
    obs = restore.observation("interpolation", x)
    missing = torch.from_numpy(corruptions.impulse_mask(x))
    assert torch.equal(obs.mask == 0, missing) and bool(missing[:, 0, 5, 7].all() and missing[:, 0, 9, 9].all())
    assert torch.equal(obs.y, x * obs.mask) and torch.equal(obs.fidelity(x), torch.zeros(3))
    obs = restore.observation("super_resolution", x)
    assert obs.network_input is x and tuple(obs.y.shape) == (3, 3, 9, 9)


def test_robench_check_covers_the_task():
    from robench.check import check_method

    task, checks = check_method("magnitude", task="corruption_robustness", params={"sparsity": 0.5})
    assert task == "corruption_robustness"
    failed = [(c.name, c.detail) for c in checks if not c.ok]
    assert not failed, failed
    names = [c.name for c in checks]
    assert "reaches its sparsity 0.5 (within 0.01)" in names
    assert any("runs through 'corruption_robustness'" in n for n in names)


def test_benchmark_a_model_on_corruptions(tmp_path):
    """`robench.benchmark(model, task="corruption_robustness")` runs the task's reference
    method (dense) on the model and returns its runs with the primary metric, mCE; the
    command line gives the same run back from the store."""
    from typer.testing import CliRunner

    import robench
    from robench.cli import app

    tiny = {**{k: v for k, v in TINY.items() if k != "model"}, "families": ["rotate"], "severities": [3],
            "finetune_epochs": 0}
    store = tmp_path / "r.sqlite"
    frame = robench.benchmark("linear", task="corruption_robustness", store=store, progress=False, **tiny)
    assert len(frame) == 1 and frame.iloc[0]["status"] == "done" and frame.iloc[0]["method"] == "dense"
    assert frame.iloc[0]["primary_metric"] == "mce" and frame.iloc[0]["primary_value"] == frame.iloc[0]["metrics.mce"]
    assert 0 < frame.iloc[0]["metrics.mce"] < math.inf
    params = [a for k, v in tiny.items() for a in ("--param", f"{k}={json.dumps(v)}")]
    out = CliRunner().invoke(app, ["benchmark", "--model", "linear", "--task", "corruption_robustness", "--no-compare",
                                   "--store", str(store), "--quiet", *params])
    assert out.exit_code == 0, out.output
    assert frame.iloc[0]["id"] in out.output and "mce" in out.output


@pytest.mark.slow
def test_the_leaderboard_shows_the_task_with_its_severity_plot(store, tmp_path):
    import robench
    from robench.report.labels import level_curve, metric

    names = ["accuracy@1", "accuracy@5", "accuracy_fog@1", "accuracy@3", "psnr@2"]
    assert level_curve(names, "accuracy") == [(1.0, "accuracy@1"), (3.0, "accuracy@3"), (5.0, "accuracy@5")]
    assert level_curve(names, "psnr") == [(2.0, "psnr@2")]
    assert metric("accuracy_fog@3").header == "accuracy, fog at severity 3 (%)"
    assert metric("corruption_error@glass_blur").header == "CE, glass blur (%)" and metric("mce").scale == 100.0
    index = robench.leaderboard(tmp_path / "site", store=store / "results.sqlite")
    site = index.parent
    pages = [p for p in site.rglob("*.html") if "corruption_robustness" in p.name]
    assert pages, sorted(p.name for p in site.rglob("*.html"))
    html = "\n".join(p.read_text() for p in pages)
    assert "accuracy_vs_severity" in html and "mCE" in html
    plots = list(site.rglob("*accuracy_vs_severity*.svg"))
    assert plots and "corruption severity" in plots[0].read_text()


@pytest.mark.parametrize("params, message", [
    ({"families": ["shot_noise", "gaussain_noise"]},
     "unknown corruption 'gaussain_noise'; did you mean 'gaussian_noise'?"),
    ({"severities": [0, 3]}, "severity 0; expected an integer from 1 to 5"),
    ({"severities": [6]}, "severity 6; expected an integer from 1 to 5"),
    ({"benchmark": "mnist-c", "families": ["frost"]}, "unknown mnist-c corruption 'frost'"),
    ({"preprocess": "oracle"}, "'oracle' cannot restore a corrupted input"),
])
def test_validate_refuses_bad_corruption_settings_in_one_line(params, message, tmp_path, cli_env):
    suite = tmp_path / "bad.yaml"
    suite.write_text(f"""
suite: bad
seeds: [0]
tasks:
  - task: corruption_robustness
    params: {json.dumps(params)}
    methods: [{{name: dense}}]
""")
    out = subprocess.run(robench_cmd("validate", suite, "--store", tmp_path / "s.sqlite"), capture_output=True,
                         text=True, env=cli_env)
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert message in out.stderr and "tasks[0].params" in out.stderr
    assert not (tmp_path / "s.sqlite").exists()


@pytest.fixture(scope="module")
def cifar_root(tmp_path_factory):
    """A tiny CIFAR-10 folder in the real format (pickled batches of 8 images each)."""
    import pickle

    root = tmp_path_factory.mktemp("cifar10")
    batches = root / "cifar-10-batches-py"
    batches.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        entry = {b"data": rng.integers(0, 256, size=(8, 3072), dtype=np.uint8), b"labels": list(range(8))}
        (batches / name).write_bytes(pickle.dumps(entry, protocol=3))
    (batches / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"c%d" % i for i in range(10)]},
                                                        protocol=3))
    return root


def test_the_cifar10_study_validates_with_the_users_files(cifar_root, monkeypatch):
    import robench
    from tests.conftest import ROOT

    monkeypatch.setenv("ROBENCH_CIFAR10", str(cifar_root))
    specs = robench.validate(ROOT / "suites" / "studies" / "compression-corruptions-cifar10.yaml")
    assert len(specs) == 60 and {s.task_params["benchmark"] for s in specs} == {"cifar-10-c"}
    header = (ROOT / "suites" / "studies" / "compression-corruptions-cifar10.yaml").read_text().split("\nsuite:")[0]
    assert "Needs your files" in header and "ROBENCH_CIFAR10" in header


def test_a_cifar10_run_uses_cifar_10_c(cifar_root, tmp_path):
    """RGB data: CIFAR-10-C's corruptions, the cifar-convnet reference, 3-channel examples."""
    from PIL import Image

    from robench import registry
    from robench.seeding import seed_everything
    from robench.tasks.base import RunContext, execute

    registry.load_builtins()
    task = registry.tasks.get("corruption_robustness")(
        model="cifar-convnet", dataset="cifar10", dataset_root=str(cifar_root), baseline_epochs=1, finetune_epochs=1,
        batch_size=8, families=["gaussian_noise", "zoom_blur"], severities=[1, 5])
    seed_everything(0)
    result = execute(task, registry.methods.get("dense", task="corruption_robustness")(), 0,
                     RunContext(tmp_path / "a", tmp_path / "cache"))
    assert {"corruption_error@gaussian_noise", "accuracy_zoom_blur@5", "mce"} <= set(result.metrics)
    accuracies = json.loads((tmp_path / "a" / "accuracies.json").read_text())
    assert accuracies["benchmark"] == "cifar-10-c" and accuracies["reference_model"] == "cifar-convnet"
    assert list((tmp_path / "cache" / "corruptions").glob("cifar10-cifar-10-c-zoom_blur-s5-seed0-*.npz"))
    with Image.open(tmp_path / "a" / "examples.png") as examples:
        assert examples.mode == "RGB" and examples.size == (3 * 34 * 2, 2 * 34 * 2)


def fake_study_frame():
    """A results table shaped like robench.api.results() for the study: lenet-5, vanilla and
    DeepDefense bases, dense and four configurations, two seeds, two corruptions. A
    configuration with clean drop c and extra drop e loses c + 1.5e on fog, c + 0.5e on rotate."""
    import pandas as pd

    base = {"recipe": "deepdefense", "params": {"c": 10}, "epochs": 2, "lr": 0.005, "batch_size": 64, "version": "1"}
    configs = [("dense", "dense", {}, 1.0, 0.0, 0.0), ("magnitude", "magnitude(sparsity=0.9)", {"sparsity": 0.9}, 8.0,
               0.01, 0.04), ("magnitude", "magnitude(sparsity=0.98)", {"sparsity": 0.98}, 30.0, 0.03, 0.06),
               ("inq", "inq(bits=5)", {"bits": 5}, 6.4, 0.0, 0.0),
               ("sketch", "sketch(m=2)", {"m": 2}, 15.0, 0.05, -0.02)]
    rows = []
    for with_base in (False, True):
        params = {"model": "lenet-5", "dataset": "mnist-5k", "baseline_epochs": 10, "finetune_epochs": 2,
                  "finetune_lr": 0.02, "batch_size": 64, "benchmark": "auto", **({"base": base} if with_base else {})}
        for method, label, mp, ratio, clean_drop, extra in configs:
            for seed in range(2):
                jitter = 0.0005 * seed
                fog, rotate = 0.80 - clean_drop - 1.5 * extra + jitter, 0.70 - clean_drop - 0.5 * extra + jitter
                metrics = {"compression_ratio_bits": ratio, "clean_accuracy": 0.95 - clean_drop + jitter,
                           "corrupted_accuracy": (fog + rotate) / 2,
                           "mce": (0.65 if with_base else 0.70) + 2 * (clean_drop + extra) + jitter,
                           "relative_mce": 0.8 + extra}
                for s in range(1, 6):
                    metrics.update({f"accuracy_fog@{s}": fog, f"accuracy_rotate@{s}": rotate,
                                    f"accuracy@{s}": (fog + rotate) / 2})
                rows.append({"task": "corruption_robustness", "status": "done", "method": method,
                             "method_label": label, "method_params": mp, "seed": seed, "task_params": params,
                             "suites": ["compression-corruptions"], "metrics": metrics, "model": "lenet-5",
                             "task_label": "model=lenet-5" + (", base=dd" if with_base else "")})
    return pd.DataFrame(rows)


def test_the_study_figures_say_what_held(tmp_path):
    from robench.report.figures import FIGURES, make_figures

    assert FIGURES["compression-corruptions"][1] == "suites/studies/compression-corruptions.yaml"
    files = make_figures("compression-corruptions", fake_study_frame(), tmp_path)
    assert {f.name for f in files} == {"results.csv", "compression_corruptions.png", "forgotten_corruptions.png",
                                       "report.md"}
    assert (tmp_path / "compression-corruptions" / "compression_corruptions.svg").exists()
    report = (tmp_path / "compression-corruptions" / "report.md").read_text()
    # per base: magnitude 0.9 and 0.98 lose more on corrupted images, inq the same, sketch less (all lose ≤ 5
    # clean points: every configuration counts)
    assert ("- **Hooker et al.'s finding held in part for lenet-5**: of the 8 configurations losing at most 5 clean "
            "points, 4 lose more accuracy on corrupted images than on clean ones (beyond noise), 2 less; mean extra "
            "drop +2.00 points (all configurations: 4 more, 2 less).") in report
    assert "| lenet-5 | 8 | 4 | 2 | 2 | 4 / 2 / 2 |" in report
    assert "magnitude (+5.00 points); least: sketch (-2.00)." in report
    assert "- **mCE**: 6 of 8 compressed configurations have a higher mCE than the dense model of their setting, " \
           "0 a lower one." in report
    assert "mCE 65.0 % against 70.0 % for the vanilla base (lower)" in report
    assert "| fog | +3.00 |" in report and "| rotate | +1.00 |" in report  # 1.5 and 0.5 times the mean extra drop
    assert "| magnitude | 4 | +2.00 | +7.00 | +5.00 | 4.00 (median) |" in report  # median of 5, 3, 5, 3
    assert ("| lenet-5 | vanilla | 4–12× | inq(bits=5) | 6.4× | 70.0 ± 0.0 | 70.0 ± 0.0 | within noise of dense |"
            in report)
    assert ("| lenet-5 | vanilla | 24–48× | magnitude(sparsity=0.98) | 30.0× | 88.0 ± 0.0 | 70.0 ± 0.0 | "
            "above dense |" in report)
