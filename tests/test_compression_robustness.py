"""Compression meets robustness (issue 15): sparsity_robustness takes the compression
task's methods through the registry (``methods_from``), ``dns-target`` (DNS to a target
sparsity) is a compression method, a sparsity_robustness run of ``inq`` and of ``sketch``
stores ρ2, robust accuracy and the storage metrics and exports a model that passes the
method's defining check, a robust base is trained once and serves both tasks, the old
adapters are gone, and the study's figures and report come from the results table."""

from __future__ import annotations

import math

import pytest
import torch

from conftest import check_one_line_user_error
from robench import registry

registry.load_builtins()  # before the task modules register themselves (else: duplicate names)
from robench.tasks.base import RunContext
from robench.tasks.compression.methods.dns_target import TargetDNS
from robench.tasks.sparsity_robustness.task import SparsityRobustnessTask

TINY = dict(model="linear", baseline_epochs=1, finetune_epochs=1, batch_size=128, attack_preset="smoke", n_test=40)
ROOT = __import__("pathlib").Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module", autouse=True)
def fast_runs(fast_classification_runs):
    """mnist-5k loaded once, one torch thread (see conftest)."""


def run(method_name, folder, cache_dir, method_params=None, seed=0, **params):
    from robench.seeding import seed_everything

    method = registry.methods.get(method_name, task="sparsity_robustness")(**(method_params or {}))
    seed_everything(seed)
    return method, SparsityRobustnessTask(**{**TINY, **params}).run(method, seed, RunContext(folder, cache_dir))


# -- one source of methods: the registry's methods_from -----------------------------------

def test_sparsity_robustness_resolves_every_method_to_the_compression_entry():
    compression = registry.methods.names(task="compression")
    assert registry.methods.names(task="sparsity_robustness") == compression
    assert {"dns-target", "inq", "sketch", "bwn", "uniform", "dns+inq", "pipeline", "random"} <= set(compression)
    for name in compression:
        entry = registry.methods.entry(name, task="compression")
        assert registry.methods.entry(name, task="sparsity_robustness") is entry
        assert (name, "sparsity_robustness") in registry.methods
    # the task's own method base is the compression contract
    from robench.tasks.compression.methods.base import CompressionMethod
    assert SparsityRobustnessTask.method_base is CompressionMethod
    assert registry.tasks.entry("sparsity_robustness").meta["methods_from"] == "compression"
    assert registry.methods_users("compression") == ["compression", "corruption_robustness", "sparsity_robustness"]
    assert registry.methods_users("robust_training") == ["robust_training"]
    # an unknown name: did-you-mean among the compression methods, naming the task asked for
    message = check_one_line_user_error(lambda: registry.methods.entry("dns-targte", "sparsity_robustness"),
                                        "did you mean 'dns-target'")
    assert message.startswith("unknown method 'dns-targte' for task 'sparsity_robustness' (it takes the methods "
                              "of 'compression')")


def test_the_old_adapters_are_gone():
    folder = ROOT / "robench" / "tasks" / "sparsity_robustness" / "methods"
    assert sorted(p.name for p in folder.glob("*.py")) == ["__init__.py", "base.py"]
    assert not [e for e in registry.methods.entries() if e.task == "sparsity_robustness"]
    assert "register_method" not in (folder / "base.py").read_text()


def test_a_plugin_compression_method_runs_in_both_tasks_and_check_finds_one_owner():
    from robench.check import resolve_task
    from robench.tasks.compression.methods.magnitude import MagnitudePruning

    class Pruner(MagnitudePruning):
        """A plug-in pruner."""
    try:
        registry.register_method("compression", "cr-test-pruner")(Pruner)
        assert registry.methods.get("cr-test-pruner", task="sparsity_robustness") is Pruner
        assert "cr-test-pruner" in registry.methods.names(task="sparsity_robustness")
    finally:
        registry.methods._entries.pop(("compression", "cr-test-pruner"), None)
    assert resolve_task("dns-target", None) == "compression"  # listed once, not under both tasks
    assert resolve_task("inq", "sparsity_robustness") == "sparsity_robustness"


def test_robench_check_runs_a_compression_method_under_sparsity_robustness():
    from robench.check import check_method

    task, checks = check_method("dns-target", task="sparsity_robustness", params={"sparsity": 0.5}, run_task=False)
    assert task == "sparsity_robustness"
    assert [c.name for c in checks if not c.ok] == []
    assert "reaches its sparsity 0.5 (within 0.01)" in {c.name for c in checks}
    assert "subclasses CompressionMethod" in {c.name for c in checks}


def test_methods_from_is_read_from_the_source_and_must_be_a_literal(tmp_path):
    from robench.registry import _class_literal

    text = 'class T:\n    """doc"""\n    name = "t"\n    methods_from = "compression"\n'
    assert _class_literal(text, "T", "methods_from", tmp_path / "t.py") == "compression"
    assert _class_literal('class T:\n    name = "t"\n', "T", "methods_from", tmp_path / "t.py") is None
    with pytest.raises(RuntimeError, match="T.methods_from must be a string literal"):
        _class_literal("class T:\n    methods_from = SOURCE\n", "T", "methods_from", tmp_path / "t.py")


def test_a_plugin_task_borrows_methods_and_an_unknown_source_is_one_line():
    from robench.tasks.sparsity_robustness.task import SparsityRobustnessTask as Parent

    class Borrower(Parent):  # methods_from inherited: known once the class registers
        name = "cr-test-borrower"

    class Broken(Parent):
        name = "cr-test-broken"
        methods_from = "no-such-task"

    try:
        registry.register_task("cr-test-borrower")(Borrower)
        registry.register_task("cr-test-broken")(Broken)
        assert registry.methods.entry("inq", task="cr-test-borrower").task == "compression"
        check_one_line_user_error(lambda: registry.methods.get("magnitude", "cr-test-broken"),
                                  "task 'cr-test-broken': methods_from='no-such-task' names no registered task")
    finally:  # leave the task registry as the other tests know it
        for name in ("cr-test-borrower", "cr-test-broken"):
            registry.tasks._entries.pop((None, name), None)


# -- dns-target: a compression method of its own ------------------------------------------

def test_dns_target_prunes_and_splices_then_ends_at_the_target_exactly():
    """Its defining behaviour: thresholds from the target, prune-and-splice while masks are
    updated (the kept set moves, unlike one-shot magnitude pruning), and every layer ends
    with exactly round(sparsity · n) zero weights."""
    from robench import seeding
    from robench.models import build_model
    from robench.tasks.compression.methods.base import prunable_layers
    from robench.tasks.contract import tiny_classification_data
    from robench.training import finetune_with_hooks

    data = tiny_classification_data()
    with seeding.scoped(0):
        model = build_model("lenet-300-100", num_classes=data.num_classes)
    method = TargetDNS(sparsity=0.8, mask_update_fraction=0.6)
    first = {}
    original_prepare = method.prepare

    def prepare(*args):
        out = original_prepare(*args)
        first.update({k: v.clone() for k, v in method.masks_.items()})
        return out
    method.prepare = prepare
    with seeding.scoped(0):
        model = finetune_with_hooks(model, data, method, epochs=4, batch_size=16, lr=0.1, seed=0)
    for name, layer in prunable_layers(model):
        n = layer.weight.numel()
        assert int((layer.weight == 0).sum()) == round(0.8 * n), name
        # the first mask already prunes exactly the target (the thresholds come from it)
        assert int((~first[name]).sum()) == round(0.8 * n), name
    moved = sum(int((first[name] != method.masks_[name]).sum()) for name in first)
    assert moved > 0  # spliced or re-pruned: not a fixed one-shot mask
    assert method.mask_updates_ > len(first) and method.projected_
    assert method.get_params() == {"sparsity": 0.8, "gamma": 1e-4, "power": 1.0, "mask_update_fraction": 0.6}


def test_dns_target_is_a_compression_method_with_its_own_parameters():
    from robench.spec import canonical_method_params

    cls = registry.methods.get("dns-target", task="compression")
    assert cls is TargetDNS and cls.label_params == ("sparsity",)
    assert canonical_method_params(cls, {}, "s", "p") == {"sparsity": 0.9, "gamma": 0.0001, "power": 1.0,
                                                          "mask_update_fraction": 0.5}
    message = check_one_line_user_error(lambda: TargetDNS(sparsity=1.5))
    assert message == "method 'dns-target': sparsity=1.5; expected a number in [0, 1)"


# -- the Done-when runs: inq and sketch, attacked, with their defining checks --------------

def _weights(folder):
    state = torch.load(folder / "model.pt", weights_only=True)
    return {k: t for k, t in state.items() if k.endswith("weight")}


def _stores_robustness_and_storage(m):
    assert m["rho2"] > 0 and 0 <= m["robust_accuracy_linf@0.1"] <= m["clean_accuracy_attacked"]
    assert {"robust_accuracy_l2@1", "test_accuracy", "baseline_accuracy", "weight_sparsity"} <= set(m)
    assert m["compression_ratio_bits"] > 1 and 0 < m["bits_per_weight"] < 32 and m["compression_ratio"] >= 1
    assert "target_sparsity" not in m  # neither method has a sparsity parameter


def test_an_inq_run_stores_robustness_and_exports_powers_of_two(tmp_path, cache_dir):
    bits = 4
    method, result = run("inq", tmp_path, cache_dir, {"bits": bits})
    m = result.metrics
    _stores_robustness_and_storage(m)
    assert m["bits_per_weight"] <= bits + 1e-9  # the generic encoding of ≤ 2^(b−1)+1 values
    for name, weight in _weights(tmp_path).items():
        nonzero = weight[weight != 0].double().abs()
        exponents = torch.log2(nonzero)
        assert torch.equal(exponents, exponents.round()), name  # every nonzero weight is ±2^k
        # ... with k in the layer's range [n2, n1]: 2^(b−1)/2 consecutive exponents
        assert exponents.max() - exponents.min() + 1 <= 2 ** (bits - 1) // 2, name
    rescored = SparsityRobustnessTask(**TINY).rescore(tmp_path, 0, RunContext(tmp_path, cache_dir), method=method)
    for key in ("compression_ratio_bits", "bits_per_weight", "rho2", "robust_accuracy_linf@0.1"):
        assert rescored[key] == m[key], key  # generic encoding: the storage is re-scored too


def test_a_sketch_run_stores_robustness_and_exports_m_binary_bases(tmp_path, cache_dir):
    m_bases = 2
    method, result = run("sketch", tmp_path, cache_dir, {"m": m_bases})
    m = result.metrics
    _stores_robustness_and_storage(m)
    for name, weight in _weights(tmp_path).items():
        for row in weight.reshape(weight.shape[0], -1):  # each output filter
            assert torch.unique(row).numel() <= 2 ** m_bases, name  # Σ_j a_j B_j, B_j ∈ {±1}^n
    # the method's own encoding: m bits per weight plus a 32-bit a_j per basis and filter
    n, out = 784, 10
    assert m["bits_per_weight"] == pytest.approx(m_bases + 32 * m_bases * out / (n * out))
    rescored = SparsityRobustnessTask(**TINY).rescore(tmp_path, 0, RunContext(tmp_path, cache_dir))
    assert "compression_ratio_bits" not in rescored and rescored["rho2"] == m["rho2"]


# -- robust bases --------------------------------------------------------------------------

BASE = {"recipe": "deepdefense", "params": {"c": 10}, "epochs": 1}


def test_a_robust_base_is_trained_once_and_serves_both_tasks(tmp_path, cache_dir, monkeypatch):
    from robench.tasks.compression.task import CompressionTask

    recipe = registry.methods.get("deepdefense", task="robust_training")
    calls = []
    original = recipe.train

    def counted(self, *args, **kwargs):
        calls.append(args[2:4])
        return original(self, *args, **kwargs)
    monkeypatch.setattr(recipe, "train", counted)
    results = []
    for method, params in (("magnitude", {"sparsity": 0.5}), ("dns-target", {"sparsity": 0.9})):
        results.append(run(method, tmp_path / method, cache_dir, params, base=BASE)[1])
    compression = CompressionTask(model="linear", baseline_epochs=1, finetune_epochs=1, batch_size=128,
                                  latency_batch_size=8, latency_repeats=2, base=BASE)
    dense = registry.methods.get("dense", task="compression")()
    compressed = compression.run(dense, 0, RunContext(tmp_path / "compression", cache_dir))
    assert len(calls) == 1  # DeepDefense trained once, for the first run; reused by the others
    assert len(list((cache_dir / "robust-bases").glob("linear-mnist-5k-deepdefense-*.pt"))) == 1
    start = results[0].metrics["baseline_accuracy"]  # the robust base's accuracy
    assert results[1].metrics["baseline_accuracy"] == start == compressed.metrics["baseline_accuracy"]
    # one shared prerequisite for both tasks (an executor trains it once, before the runs)
    sr_key = SparsityRobustnessTask(**TINY, base=BASE).prerequisites(None, 0)[0][0]
    assert sr_key == compression.prerequisites(None, 0)[0][0] and sr_key.startswith("robust-bases/")
    # and without a base the run starts from the vanilla baseline
    plain = run("magnitude", tmp_path / "plain", cache_dir, {"sparsity": 0.5})[1]
    assert plain.metrics["baseline_accuracy"] != start and len(calls) == 1


def test_deepdefense_then_dns_then_attacked_is_one_suite_entry(tmp_path):
    from robench.api import validate

    suite = tmp_path / "s.yaml"
    suite.write_text("suite: s\ntasks:\n  - task: sparsity_robustness\n    params: {model: lenet-5}\n"
                     "    grid:\n      base: [null, {recipe: deepdefense, params: {c: 10}}]\n"
                     "    methods:\n      - name: dns-target\n        params: {sparsity: 0.95}\n")
    specs = validate(suite)
    assert len(specs) == 2 and len({s.id for s in specs}) == 2
    with_base = next(s for s in specs if "base" in s.task_params)
    assert with_base.task_params["base"]["recipe"] == "deepdefense" and with_base.task_params["base"]["epochs"] == 5
    assert "base" not in next(s for s in specs if s is not with_base).task_params  # added(): left out at None
    bad = tmp_path / "bad.yaml"
    bad.write_text(suite.read_text().replace("recipe: deepdefense", "recipe: deepdefence"))
    message = check_one_line_user_error(lambda: validate(bad), "did you mean 'deepdefense'")
    assert message.startswith(f"{bad}: tasks[0].params")


# -- the study: suite, figures, leaderboard matrix -----------------------------------------

def test_the_study_suite_expands_to_the_matrix():
    from robench.api import validate

    specs = validate(ROOT / "suites" / "studies" / "compression-robustness.yaml")
    models = {s.task_params["model"] for s in specs}
    bases = {(s.task_params.get("base") or {}).get("recipe", "vanilla") for s in specs}
    methods = {s.method for s in specs}
    assert models == {"lenet-5", "lenet-300-100"} and bases == {"vanilla", "deepdefense"}
    assert {"magnitude", "dns-target", "random", "inq", "uniform", "sketch", "bwn", "dns+inq", "dense"} <= methods
    assert {s.seed for s in specs} == {0, 1, 2}
    for method in methods - {"dense", "bwn", "dns+inq"}:  # two or three strengths each
        strengths = {s.method_label for s in specs if s.method == method}
        assert 2 <= len(strengths) <= 3, method
    per_setting = {(s.task_params["model"], str(s.task_params.get("base"))) for s in specs}
    assert len(specs) == len(per_setting) * len({s.method_label for s in specs}) * 3


def test_the_task_declares_the_matrix_for_the_leaderboard():
    info = SparsityRobustnessTask.report_info()
    assert info["label_params"] == ["model"] and info["sweep_params"] == ["sparsity"]  # (stores before v3)
    assert {"compression_ratio_bits", "robust_accuracy_linf@0.1"} <= set(info["headline_metrics"])
    fronts = {p["name"]: p for p in info["plots"] if p.get("front")}
    assert {(p["x"], p["y"]) for p in fronts.values()} == {("compression_ratio_bits", "rho2"),
                                                           ("compression_ratio_bits", "robust_accuracy_linf@0.1")}


def fake_frame():
    """A results table shaped like robench.api.results(): two models, vanilla and
    DeepDefense bases, dense plus three methods at two strengths, three seeds."""
    import pandas as pd

    base = {"recipe": "deepdefense", "params": {"c": 10}, "epochs": 5, "lr": 0.005, "batch_size": 64,
            "version": "1"}
    configs = [("dense", "dense", {}, 1.0, 0.60, 0.20), ("magnitude", "magnitude(sparsity=0.9)", {"sparsity": 0.9},
               8.0, 0.55, 0.19), ("magnitude", "magnitude(sparsity=0.98)", {"sparsity": 0.98}, 30.0, 0.30, 0.12),
               ("inq", "inq(bits=5)", {"bits": 5}, 6.5, 0.59, 0.20), ("inq", "inq(bits=3)", {"bits": 3}, 10.5, 0.50,
               0.17), ("sketch", "sketch(m=2)", {"m": 2}, 15.0, 0.20, 0.08)]
    rows = []
    for model in ("lenet-5", "lenet-300-100"):
        for with_base in (False, True):
            params = {"model": model, "dataset": "mnist-5k", "baseline_epochs": 10, "finetune_epochs": 2,
                      "finetune_lr": 0.02, "batch_size": 64, "n_test": 100, "attack_preset": "mnist-default",
                      "exclude_attacks": [], "attacks": None, **({"base": base} if with_base else {})}
            for method, label, mp, ratio, robust, rho in configs:
                for seed in range(3):
                    boost = 0.2 if with_base and method != "sketch" else 0.0
                    metrics = {"compression_ratio_bits": ratio * (1 + 0.01 * seed), "rho2": rho + boost / 4,
                               "robust_accuracy_linf@0.1": robust + boost + 0.002 * seed,
                               "robust_accuracy_linf@0.2": robust / 2, "test_accuracy": 0.95, "clean_accuracy": 0.95,
                               "clean_accuracy_attacked": 0.94,
                               "bits_per_weight": 32 / ratio, "weight_sparsity": mp.get("sparsity", 0.0)}
                    rows.append({"task": "sparsity_robustness", "status": "done", "method": method,
                                 "method_label": label, "method_params": mp, "seed": seed, "task_params": params,
                                 "suites": ["compression-robustness"], "metrics": metrics,
                                 "task_label": f"model={model}" + (", base=dd" if with_base else "")})
    return pd.DataFrame(rows)


def test_figures_write_the_plot_the_table_and_what_held(tmp_path):
    from robench.report.figures import FIGURES, make_figures

    assert FIGURES["compression-robustness"][1] == "suites/studies/compression-robustness.yaml"
    files = make_figures("compression-robustness", fake_frame(), tmp_path)
    assert {f.name for f in files} == {"results.csv", "compression_robustness.png", "report.md"}
    assert all(f.stat().st_size > 0 for f in files)
    assert (tmp_path / "compression-robustness" / "compression_robustness.svg").exists()
    report = (tmp_path / "compression-robustness" / "report.md").read_text()
    # question 1: 5 compressed configurations × 4 settings against their dense model
    assert "- **robust**: of 20 compressed configurations (all settings), 16 are below" in report
    assert "| lenet-5 | vanilla | 4–12× | inq(bits=5) | 6.6× |" in report
    # question 2: inq keeps the most, sketch the least
    assert "**inq** keeps the most robust accuracy" in report and "**sketch** the least" in report
    # question 3: the DeepDefense base stays ahead except for sketch (no boost in the fake data)
    assert ("the robust base is clearly ahead after compression in 8 of 10 compressed configurations, within noise "
            "in 2, behind in 0; mean advantage dense +20 points, compressed +16 points.") in report
    assert "| lenet-5 | deepdefense | sketch(m=2) |" in report  # one DeepDefense base: its name says it
    assert "starting models: deepdefense (batch_size=64, c=10, epochs=5, lr=0.005); vanilla" in report
    import pandas as pd
    csv = pd.read_csv(tmp_path / "compression-robustness" / "results.csv")
    assert len(csv) == 2 * 2 * 6 and {"robust_mean", "rho2_std", "storage_mean"} <= set(csv.columns)


def test_bases_are_told_apart_by_what_differs():
    from robench.report.figures.compression_robustness import base_labels

    dd = {"recipe": "deepdefense", "params": {"c": 10, "lam": 15}, "epochs": 5}
    params = [{}, {"base": dd}, {"base": {**dd, "params": {"c": 25, "lam": 15}}}, {"base": {"recipe": "adv-pgd"}}]
    assert base_labels(params) == ["vanilla", "deepdefense(c=10)", "deepdefense(c=25)", "adv-pgd"]


def test_figures_without_runs_say_what_to_run(tmp_path):
    import pandas as pd

    from robench.report.figures import make_figures
    frame = pd.DataFrame([{"task": "compression", "status": "done"}])  # no sparsity_robustness run
    message = check_one_line_user_error(lambda: make_figures("compression-robustness", frame, tmp_path))
    assert message.endswith("run suites/studies/compression-robustness.yaml first")
    assert not any(tmp_path.rglob("*.png"))  # no empty figure written


def test_the_sparse_robustness_figures_read_the_sparsity_from_the_method():
    from types import SimpleNamespace

    from robench.report.figures.sparse_robustness import run_sparsity, without_sparsity

    assert without_sparsity("magnitude(sparsity=0.9)") == "magnitude"
    assert without_sparsity("magnitude(scope=global, sparsity=0.5)") == "magnitude(scope=global)"
    assert without_sparsity("dns-target(mask_update_fraction=0.3, sparsity=0.5)") == \
        "dns-target(mask_update_fraction=0.3)"
    assert without_sparsity("magnitude @ sparsity=0.9") == "magnitude"
    run_ = SimpleNamespace(method_params={"sparsity": 0.75}, task_params={}, metrics={"weight_sparsity": 0.7})
    assert run_sparsity(run_) == 0.75
    assert run_sparsity(SimpleNamespace(method_params={}, task_params={"sparsity": 0.5}, metrics={})) == 0.5
    assert run_sparsity(SimpleNamespace(method_params={"bits": 4}, task_params={},
                                        metrics={"weight_sparsity": 0.4321})) == 0.43
    assert math.isnan(run_sparsity(SimpleNamespace(method_params={}, task_params={}, metrics={})))


def test_ls_names_every_task_a_method_runs_in():
    from typer.testing import CliRunner

    from robench.cli import app

    result = CliRunner().invoke(app, ["ls", "methods"])
    assert result.exit_code == 0, result.output
    headings = [line for line in result.output.splitlines() if line.startswith("methods (")]
    assert "methods (compression, corruption_robustness, sparsity_robustness):" in headings
    assert not any(h.startswith("methods (sparsity_robustness") for h in headings)  # listed once
