"""The sparsity_robustness task: end to end on tiny settings, the stored per-sample results
reproduce the metrics, an independent PGD agrees, the worst case over the APGD attacks and
the first-broken shares, re-scoring from the artifacts, a plug-in model runs, bad input
fails early (unknown presets already at suite validation)."""

from __future__ import annotations


import numpy as np
import pytest
import torch
import torch.nn.functional as F

from robench import registry
from robench.errors import UserError

registry.load_builtins()  # before the task modules register themselves (else: duplicate names)
from robench.attacks import RobustnessReport
from robench.models import build_model
from robench.registry import register_dataset, register_model
from robench.tasks.base import RunContext
from robench.tasks.compression.methods.base import CompressionMethod
from robench.tasks.compression.methods.dns_target import TargetDNS as DNS
from robench.tasks.compression.methods.magnitude import MagnitudePruning as Magnitude
from robench.tasks.sparsity_robustness.task import SparsityRobustnessTask, attack_points

TINY = dict(model="linear", baseline_epochs=1, finetune_epochs=1, batch_size=128,
            attack_preset="smoke", n_test=40)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module", autouse=True)
def fast_runs(fast_classification_runs):
    """mnist-5k loaded once, one torch thread (see conftest)."""


def run(method, tmp_path, cache_dir, seed=0, **params):
    return SparsityRobustnessTask(**{**TINY, **params}).run(method, seed, RunContext(tmp_path, cache_dir))


@pytest.fixture(scope="module")
def linear_run(tmp_path_factory, cache_dir):
    folder = tmp_path_factory.mktemp("linear")
    return folder, run(Magnitude(sparsity=0.75), folder, cache_dir)


def test_end_to_end_metrics_and_artifacts(linear_run):
    folder, result = linear_run
    m = result.metrics
    assert result.artifacts == {"model": "model.pt", "attacks": "attacks.npz", "storage": "storage.json"}
    assert all(isinstance(v, float) for v in m.values())
    assert m["weight_sparsity"] == pytest.approx(0.75, abs=1e-3) and m["target_sparsity"] == 0.75
    assert 0.5 < m["clean_accuracy_attacked"] <= 1 and 0.5 < m["test_accuracy"] <= 1
    assert m["rho2"] > 0 and m["cw_l2_median"] > 0
    assert {"robust_accuracy_linf@0.1", "robust_accuracy_linf@0.3", "robust_accuracy_l2@1",
            "robust_accuracy_l2@3"} <= set(m)
    sanity = {k for k in m if k.startswith("sanity_")}
    assert "sanity_deepfool_l2_complete" in sanity and all(m[k] in (0.0, 1.0) for k in sanity)
    assert "activation_sparsity" not in m  # the linear model has no ReLU
    # the compression task's storage accounting of the attacked model: 75% zeros → > 2x
    assert m["compression_ratio"] == pytest.approx(7850 / (7840 * 0.25 + 10))
    assert m["compression_ratio_bits"] > 2 and 0 < m["bits_per_weight"] < 32
    # the smoke preset's APGD-CE and APGD-T join the worst case; shares of the first breaker add up
    for threat, grid, attacks in (("linf", (0.1, 0.3), ("fgsm_linf", "pgd_linf", "apgd_ce_linf", "apgd_t_linf")),
                                  ("l2", (1, 3), ("pgd_l2", "apgd_ce_l2", "apgd_t_l2"))):
        for eps in grid:
            robust = m[f"robust_accuracy_{threat}@{eps:g}"]
            assert robust <= min(m[f"accuracy_under_{a}@{eps:g}"] for a in attacks)
            shares = sum(v for k, v in m.items() if k.startswith("broken_first_by_") and k.endswith(f"@{eps:g}")
                         and k.split("@")[0].endswith(threat))
            assert shares == pytest.approx(m["clean_accuracy_attacked"] - robust)
        assert m[f"sanity_worst_case_le_every_attack_{threat}"] == 1.0
    state = torch.load(folder / "model.pt", weights_only=True)
    zeros = sum(int((t == 0).sum()) for k, t in state.items() if k.endswith("weight"))
    assert zeros / state["1.weight"].numel() == pytest.approx(m["weight_sparsity"])


def test_clean_accuracy_is_the_whole_test_split_and_clean_accuracy_attacked_the_subset(linear_run):
    """One meaning per name (issue 22): ``clean_accuracy`` is the accuracy on the whole test
    split (= ``test_accuracy``), ``clean_accuracy_attacked`` on the n_test attacked points."""
    from robench.data import load_dataset

    folder, result = linear_run
    m = result.metrics
    model = build_model("linear")
    model.load_state_dict(torch.load(folder / "model.pt", weights_only=True))
    model.eval()
    data = load_dataset("mnist-5k")
    assert TINY["n_test"] < len(data.test_x)
    with torch.no_grad():
        correct = (model(data.test_x).argmax(1) == data.test_y).double()
    idx = torch.as_tensor(attack_points(TINY["n_test"], len(data.test_x)))
    assert m["clean_accuracy"] == pytest.approx(float(correct.mean()), abs=1e-9)
    assert m["clean_accuracy"] == m["test_accuracy"]
    assert m["clean_accuracy_attacked"] == pytest.approx(float(correct[idx].mean()), abs=1e-9)
    # 40 points vs the whole split: the two differ on this tiny run (so neither hides the other)
    assert m["clean_accuracy"] != m["clean_accuracy_attacked"]
    assert "clean_accuracy" not in RobustnessReport.from_npz(folder / "attacks.npz").as_metrics()


def test_stored_deepfool_norms_reproduce_rho2(linear_run):
    folder, result = linear_run
    with np.load(folder / "attacks.npz", allow_pickle=False) as data:
        norms, x_norm = data["norm__deepfool_l2"], data["input_l2"]
        correct, labels = data["clean_correct"], data["labels"]
    # recomputed by hand: misclassified points count 0, failures (inf) left out
    ratio = np.where(correct, norms / x_norm, 0.0)
    assert np.isfinite(ratio).all()
    assert ratio.mean() == pytest.approx(result.metrics["rho2"], rel=1e-12)
    assert correct.mean() == pytest.approx(result.metrics["clean_accuracy_attacked"])
    report = RobustnessReport.from_npz(folder / "attacks.npz")
    assert report.as_metrics() == {k: v for k, v in result.metrics.items() if k in report.as_metrics()}
    # the attacked points are the documented fixed subset of the test split
    from robench.data import load_dataset
    data = load_dataset("mnist-5k")
    idx = attack_points(TINY["n_test"], len(data.test_x))
    assert np.array_equal(labels, data.test_y[idx].numpy())


def pgd_linf(model, x, y, eps, steps=40, restarts=2, seed=0):
    """Plain PGD in the l∞ ball (Madry et al.): random start, steps of 2.5·ε/steps, CE loss.
    Returns a bool (N,) mask of points still classified correctly after every restart."""
    gen = torch.Generator().manual_seed(seed)
    robust = model(x).argmax(1) == y
    for _ in range(restarts):
        delta = (torch.rand(x.shape, generator=gen) * 2 - 1) * eps
        adv = (x + delta).clamp(0, 1)
        for _ in range(steps):
            adv.requires_grad_(True)
            grad, = torch.autograd.grad(F.cross_entropy(model(adv), y), adv)
            adv = adv.detach() + 2.5 * eps / steps * grad.sign()
            adv = torch.min(torch.max(adv, x - eps), x + eps).clamp(0, 1)
        with torch.no_grad():
            robust &= model(adv).argmax(1) == y
    return robust


def test_rescore_reproduces_the_stored_metrics(linear_run, tmp_path):
    folder, result = linear_run
    task = SparsityRobustnessTask(**TINY)
    rescored = task.rescore(folder, 0, RunContext(tmp_path, tmp_path), method=Magnitude(sparsity=0.75))
    # with the run's method: its target and (generic encoding) storage metrics are re-scored too
    assert set(rescored) == set(result.metrics)
    assert {k: v for k, v in rescored.items() if v != result.metrics[k]} == {}
    check_one_line_error("cannot read", task.rescore, tmp_path / "nothing", 0, RunContext(tmp_path, tmp_path))


def test_a_preset_without_deepfool_gets_one_for_rho2():
    from robench.tasks.sparsity_robustness.task import _configs
    names = [c.name for c in _configs("autoattack-fast", (), None)]
    assert names == ["deepfool_l2", "apgd_ce_linf", "apgd_t_linf", "apgd_ce_l2", "apgd_t_l2"]
    assert [c.name for c in _configs("smoke", ("cw_l2",), None)][0] == "deepfool_l2"


@pytest.mark.parametrize("params, match", [
    ("{attack_preset: mnist-defualt}", r"params\.attack_preset: unknown attack preset 'mnist-defualt'; "
                                       r"did you mean 'mnist-default'\?"),
    ("{exclude_attacks: [cw]}", r"params\.exclude_attacks: \['cw'\] not in preset 'mnist-default'"),
])
def test_suite_validation_rejects_unknown_presets_and_exclusions(params, match, tmp_path):
    from robench.api import validate
    suite = tmp_path / "s.yaml"
    suite.write_text(f"suite: s\ntasks:\n  - task: sparsity_robustness\n    params: {params}\n"
                     f"    methods: [{{name: magnitude}}]\n")
    message = check_one_line_error(match, validate, suite)
    assert message.startswith(f"{suite}: tasks[0].params.")


def test_independent_pgd_is_no_weaker_than_reported(linear_run):
    folder, result = linear_run
    from robench.data import load_dataset
    data = load_dataset("mnist-5k")
    idx = attack_points(TINY["n_test"], len(data.test_x))
    model = build_model("linear", num_classes=10)
    model.load_state_dict(torch.load(folder / "model.pt", weights_only=True))
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    robust = pgd_linf(model, data.test_x[idx], data.test_y[idx], 0.1).float().mean().item()
    reported = result.metrics["robust_accuracy_linf@0.1"]
    # robench's number is the worst case over FGSM and a 5-step PGD; a 40-step PGD with
    # restarts must not find the model more robust (2 points of 40 for sampling noise)
    assert robust <= reported + 2 / TINY["n_test"]
    assert robust < result.metrics["clean_accuracy_attacked"]  # and the attack does something


PLUGIN = '''
from torch import nn
from robench.registry import register_model

@register_model("sr-test-tiny-mlp")
def tiny_mlp(num_classes=10):
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, num_classes))
'''


def test_a_plugin_model_runs_through_the_task(tmp_path, cache_dir):
    path = tmp_path / "my_model.py"
    path.write_text(PLUGIN)
    registry.load_plugin_file(path)
    result = run(DNS(sparsity=0.5), tmp_path / "run", cache_dir, model="sr-test-tiny-mlp", n_test=20)
    m = result.metrics
    assert abs(m["weight_sparsity"] - 0.5) <= 0.01
    assert 0 < m["activation_sparsity"] < 1 and m["rho2"] > 0


# -- bad input: one line, raised before any attack runs -----------------------------------

@register_model("sr-test-probabilities")
def _probabilities(num_classes=10):
    from torch import nn
    return nn.Sequential(nn.Flatten(), nn.Linear(784, num_classes), nn.Softmax(dim=1))


@register_model("sr-test-flat-output")
def _flat_output(num_classes=10):
    from torch import nn
    return nn.Sequential(nn.Flatten(), nn.Linear(784, num_classes), nn.Flatten(0))


@register_dataset("sr-test-mnist-255")
def _unscaled(root=None):
    from robench.data import Splits, load_dataset
    d = load_dataset("mnist-5k")
    return Splits("sr-test-mnist-255", d.train_x * 255, d.train_y, d.test_x * 255, d.test_y, 10)


class NoPruning(CompressionMethod):
    """A broken method: asked for any sparsity, it prunes nothing."""
    def __init__(self, sparsity: float = 0.5):
        self.sparsity = sparsity


@pytest.fixture
def no_attacks(monkeypatch):
    """Bad input must fail before any attack runs."""
    import robench.attacks

    def fail(*args, **kwargs):
        raise AssertionError("an attack ran on bad input")
    monkeypatch.setattr(robench.attacks, "evaluate_robustness", fail)


def check_one_line_error(match, fn, *args, **kwargs):
    with pytest.raises(UserError, match=match) as info:
        fn(*args, **kwargs)
    assert "\n" not in str(info.value)
    return str(info.value)


@pytest.mark.parametrize("model, match", [("sr-test-probabilities", "logits"),
                                          ("sr-test-flat-output", r"shape \(N, classes\)")])
def test_a_model_without_logits_is_rejected(model, match, tmp_path, cache_dir, no_attacks):
    message = check_one_line_error(match, run, Magnitude(), tmp_path, cache_dir, model=model)
    assert model in message
    assert not list((cache_dir / "baselines").glob(f"{model}-*.pt"))  # nothing was trained


def test_inputs_outside_bounds_are_rejected(tmp_path, cache_dir, no_attacks):
    check_one_line_error(r"outside the declared bounds \(0, 1\)", run, Magnitude(), tmp_path, cache_dir,
                   dataset="sr-test-mnist-255")


@pytest.mark.parametrize("epsilons", [[0.3, 0.1], [0.1, 0.1]])
def test_an_epsilon_grid_not_increasing_is_rejected(epsilons):
    attacks = [{"kind": "deepfool", "norm": "l2"}, {"kind": "pgd", "norm": "linf", "epsilons": epsilons}]
    check_one_line_error("strictly increasing", SparsityRobustnessTask, **TINY, attacks=attacks)


def test_a_method_missing_the_target_sparsity_is_rejected(tmp_path, cache_dir, no_attacks):
    check_one_line_error(r"measured weight sparsity 0\.0000 differs from the target 0\.5", run, NoPruning(),
                         tmp_path, cache_dir)


def test_other_bad_params_are_one_line(tmp_path, cache_dir, no_attacks):
    check_one_line_error("did you mean 'smoke'", run, Magnitude(), tmp_path, cache_dir, attack_preset="smok")
    check_one_line_error("not in preset", run, Magnitude(), tmp_path, cache_dir, exclude_attacks=("cw",))
    check_one_line_error("n_test=5000", run, Magnitude(), tmp_path, cache_dir, n_test=5000)


def test_a_method_registered_for_the_task_itself_is_refused():
    """Its methods are the compression task's: one registers there, and runs in both."""
    class Other(CompressionMethod):
        def __init__(self):
            pass
    message = check_one_line_error(r"task 'sparsity_robustness' takes the methods of 'compression'; register it "
                                   r"with register_method\('compression', 'sr-test-other'\)",
                                   registry.register_method("sparsity_robustness", "sr-test-other"), Other)
    assert message.startswith("register_method('sparsity_robustness', 'sr-test-other')")
    assert ("sr-test-other", "sparsity_robustness") not in registry.methods
    assert ("sr-test-other", "compression") not in registry.methods


@pytest.mark.parametrize("cls, params, match", [
    (Magnitude, {"scope": "model"}, r"^method 'magnitude': scope='model'; expected one of 'layer', 'global'$"),
    (DNS, {"gamma": -1}, r"^method 'dns-target': gamma=-1; expected a number >= 0$"),
    (DNS, {"mask_update_fraction": 0.0},
     r"^method 'dns-target': mask_update_fraction=0\.0; expected a number in \(0, 1\]$"),
    (DNS, {"sparsity": 1.0}, r"^method 'dns-target': sparsity=1\.0; expected a number in \[0, 1\)$"),
])
def test_bad_method_params_are_rejected_at_construction(cls, params, match):
    check_one_line_error(match, cls, **params)


def test_conformance_passes_the_reference_methods_and_fails_a_pruner_that_misses_the_target(tmp_path):
    torch.set_num_threads(1)
    for cls in (lambda: Magnitude(sparsity=0.5), lambda: DNS(sparsity=0.5)):
        checks = SparsityRobustnessTask.conformance(cls, tmp_path)
        assert [c for c in checks if not c.ok] == [] and len(checks) >= 8, cls
        assert "reaches its sparsity 0.5 (within 0.01)" in {c.name for c in checks}
    failed = {c.name: c.detail for c in SparsityRobustnessTask.conformance(NoPruning, tmp_path) if not c.ok}
    assert list(failed) == ["reaches its sparsity 0.5 (within 0.01)"]
    assert failed["reaches its sparsity 0.5 (within 0.01)"] == "measured weight sparsity 0.0000"


# -- suites and figures --------------------------------------------------------------------

def test_suites_expand():
    from pathlib import Path

    from robench.api import validate
    root = Path(__file__).resolve().parent.parent / "suites"
    paper = validate(root / "papers" / "sparse-robustness.yaml")
    # as before the methods came from the compression task: 3 models × 7 sparsities × 3 seeds,
    # the sparsity now the parameter of the compression method `magnitude` (per layer)
    assert len(paper) == 3 * 7 * 3 and {s.task_params["model"] for s in paper} == {"linear", "lenet-300-100", "lenet-5"}
    assert {s.method for s in paper} == {"magnitude"} and {s.method_params["scope"] for s in paper} == {"layer"}
    assert sorted({s.method_params["sparsity"] for s in paper}) == [0.0, 0.5, 0.75, 0.9, 0.95, 0.98, 0.99]
    assert all("sparsity" not in s.task_params for s in paper)
    assert len({s.seed for s in paper}) >= 3
    part = validate(root / "parts" / "sparsity_robustness.yaml")
    assert len(part) == 16 and {s.method for s in part} == {"magnitude", "dns-target"}


def fake_frame(tmp_path):
    """A results table shaped like robench.api.results(): an inverted U for the MLP, a
    decreasing curve for the linear model, three seeds, one failed sanity flag."""
    import pandas as pd
    rows = []
    sparsities = [0.0, 0.5, 0.9, 0.99]
    for model, curve in (("linear", [0.10, 0.09, 0.07, 0.03]), ("lenet-300-100", [0.10, 0.12, 0.14, 0.06])):
        for i, s in enumerate(sparsities):
            for seed in range(3):
                value = curve[i] + 0.001 * seed
                metrics = {"rho2": value, "robust_accuracy_l2@1": 4 * value, "robust_accuracy_l2@2": value,
                           "robust_accuracy_linf@0.1": 3 * value, "test_accuracy": 0.9, "clean_accuracy": 0.9,
                           "clean_accuracy_attacked": 0.89,
                           "weight_sparsity": s, "sanity_deepfool_l2_complete": float(not (seed == 1 and s == 0.99))}
                rows.append({"task": "sparsity_robustness", "status": "done", "method": "magnitude",
                             "method_label": f"magnitude(sparsity={s:g})", "seed": seed,
                             "suites": ["sparse-robustness"], "method_params": {"sparsity": s, "scope": "layer"},
                             "task_params": {"model": model, "dataset": "mnist-5k",
                                             "baseline_epochs": 10, "finetune_epochs": 3, "finetune_lr": 0.02,
                                             "batch_size": 64, "n_test": 200, "attack_preset": "mnist-default",
                                             "exclude_attacks": ["cw_l2"], "attacks": None},
                             "metrics": metrics, "artifacts": {}})
    return pd.DataFrame(rows)


def test_figures_report_the_trend_from_the_table(tmp_path):
    from robench.report.figures import make_figures
    files = make_figures("sparse-robustness", fake_frame(tmp_path), tmp_path)
    assert {f.name for f in files} == {"results.csv", "sparsity_robustness.png", "report.md"}
    assert all(f.stat().st_size > 0 for f in files)
    report = (tmp_path / "sparse-robustness" / "report.md").read_text()
    assert "| lenet-300-100 | magnitude | rho2 | inverted U |" in report
    assert "| linear | magnitude | rho2 | decreasing |" in report
    assert "as the paper says" in report and "3 seed(s)" in report
    assert "lenet-300-100 / magnitude / sparsity 0.99 / seed 1: deepfool_l2_complete" in report
    assert "robust accuracy l2 at ε=1" in report
