"""robench.report.table: the one selection, summary, mean ± std text and order of the report,
on hand-made results tables (no tasks, no torch)."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from robench.report.table import (mean_std, normalize, order_key, ordered, pm, select_runs, summarize,
                                  task_info)

REPORT = Path(__file__).resolve().parent.parent / "robench" / "report"


def run(task="compression", method="magnitude", label="dataset=mnist-5k, model=lenet-5", seed=0, status="done",
        suites=("dns",), **params):
    params = {"model": "lenet-5", "dataset": "mnist-5k", **params}
    return {"task": task, "method": method, "method_label": method, "task_label": label, "seed": seed,
            "status": status, "suites": list(suites), "task_params": params, "metrics": {"accuracy": 0.9 + seed}}


# ---------------------------------------------------------------------------- select_runs

def test_select_runs_keeps_the_suite_the_done_runs_and_one_setting_per_group():
    frame = pd.DataFrame([
        run(seed=0), run(seed=1), run(seed=2, status="failed"),
        run(seed=0, epochs=3), run(seed=0, suites=()),  # another setting; a run of another suite
        run(seed=0, model="lenet-300-100"), run(seed=0, method="dense"), run(task="robust_training"),
    ])
    sel = select_runs(frame, "compression", suite="dns", methods=["magnitude"], group="model",
                      setting_without=("model",))
    assert sel.tagged is True and sel.failed == 1
    assert sorted(sel.runs["model"]) == ["lenet-300-100", "lenet-5", "lenet-5"]
    assert set(sel.runs["seed"][sel.runs["model"] == "lenet-5"]) == {0, 1}
    (note,) = sel.notes
    assert note.startswith("lenet-5: 2 task settings in the store; using the one with 2 runs ({")
    # the setting is the task label when setting_without is not given
    by_label = select_runs(frame.assign(task_label=[f"s{i % 2}" for i in range(len(frame))]), "compression",
                           suite="dns", group="model")
    assert any("using 's0' (" in n or "using 's1' (" in n for n in by_label.notes)


def test_select_runs_falls_back_to_untagged_runs_and_says_so():
    frame = pd.DataFrame([run(seed=s, suites=("other",)) for s in range(3)])
    sel = select_runs(frame, "compression", suite="dns", group="model")
    assert sel.tagged is False and len(sel.runs) == 3 and not sel.notes
    assert select_runs(frame, "robust_training", suite="dns").runs.empty
    assert select_runs(None, "compression").runs.empty
    assert select_runs(pd.DataFrame(), "compression").tagged is None


def test_select_runs_where_and_prefer():
    frame = pd.DataFrame([run(task="room_layout", label="small", n_train=10, dataset="synthetic-rooms"),
                          run(task="room_layout", label="small", n_train=10, dataset="synthetic-rooms", seed=1),
                          run(task="room_layout", label="large", n_train=99, dataset="synthetic-rooms"),
                          run(task="room_layout", label="lsun", n_train=999, dataset="lsun")])
    sel = select_runs(frame, "room_layout", where=lambda p: p["dataset"] == "synthetic-rooms",
                      prefer=lambda label, p: p["n_train"])
    assert list(sel.runs["task_label"]) == ["large"]
    assert sel.notes == ["2 task settings in the store; using 'large' (1 runs)"]
    assert "_group" not in sel.runs and "_setting" not in sel.runs


def test_select_runs_default_group_value():
    frame = pd.DataFrame([run(task="robust_training")])
    frame["task_params"] = [{}]
    sel = select_runs(frame, "robust_training", group="model", group_default="lenet-5")
    assert list(sel.runs["model"]) == ["lenet-5"]


# ---------------------------------------------------------------------------- summarize

def test_summarize_agrees_with_pandas_and_keeps_the_column_order():
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"model": ["b", "b", "a", "a", "a"], "x": [1.0, 1.0, 2.0, 2.0, math.nan],
                          "acc": rng.random(5), "ratio": [1.0, math.nan, 3.0, 4.0, 5.0]})
    out = summarize(table, ["model", "x"], ["acc", "ratio"])
    assert list(out.columns) == ["model", "x", "acc_mean", "acc_std", "acc_count", "ratio_mean", "ratio_std",
                                 "ratio_count", "n"]
    assert list(out["model"]) == ["b", "a", "a"]  # groups in order of appearance, NaN keys kept
    b = table[table["model"] == "b"]
    assert out.loc[0, "acc_mean"] == pytest.approx(b["acc"].mean())
    assert out.loc[0, "acc_std"] == pytest.approx(b["acc"].std())
    assert out.loc[0, "ratio_count"] == 1 and math.isnan(out.loc[0, "ratio_std"]) and out.loc[0, "n"] == 2
    sorted_out = summarize(table, "model", ["acc"], sort=True, size=None)
    assert list(sorted_out["model"]) == ["a", "b"] and "n" not in sorted_out
    stats = summarize(table, "model", ["acc"], flat=False)
    assert stats.loc["a", ("acc", "count")] == 3


def test_mean_std_of_finite_values():
    assert mean_std([1.0, 3.0, math.nan, None]) == (2.0, pytest.approx(math.sqrt(2)))
    mean, std = mean_std([4.0])
    assert mean == 4.0 and math.isnan(std)
    assert all(math.isnan(v) for v in mean_std([math.nan]))


# ---------------------------------------------------------------------------- pm

@pytest.mark.parametrize("args, kwargs, text", [
    ((0.98765, 0.0012), {}, "0.99 ± 0.00"),
    ((0.98765, 0.0012), {"scale": 100}, "98.77 ± 0.12"),
    ((0.98765, 0.0012, 100, 1), {}, "98.8 ± 0.1"),
    ((12.3, math.nan, 1, 0), {"unit": "×"}, "12×"),
    ((12.3, None, 1, 3), {}, "12.300"),
    ((math.nan, 0.1), {}, "—"),
    ((None, 0.1), {"missing": "–"}, "–"),
    ((math.nan, math.nan), {"digits": 3, "missing": "nan"}, "nan"),
])
def test_pm(args, kwargs, text):
    assert pm(*args, **kwargs) == text


# ---------------------------------------------------------------------------- order

def test_order_key_known_first_then_natural():
    order = ("vanilla", "deepdefense", "adv-fgs")
    labels = ["adv-fgs", "zeta", "deepdefense(c=10)", "deepdefense", "deepdefense(c=4)", "vanilla", "alpha(m=2)"]
    assert ordered(labels, order) == ["vanilla", "deepdefense", "deepdefense(c=4)", "deepdefense(c=10)",
                                      "adv-fgs", "alpha(m=2)", "zeta"]
    assert ordered(["m10", "m2", "m1", "m2"]) == ["m1", "m2", "m10"]
    assert order_key("x²") < order_key("y")  # a digit-like character that is not a number


# ---------------------------------------------------------------------------- normalize

def test_sweep_axes_come_with_the_runs():
    row = {"task": "sparsity_robustness", "method": "magnitude", "method_label": "magnitude",
           "task_label": "model=lenet-5, sparsity=0.9", "task_params": {"model": "lenet-5", "sparsity": 0.9}}
    folded = normalize(pd.DataFrame([{**row, "task_info": {"sweep_params": ["sparsity"]}}]))
    assert folded.loc[0, "task_label"] == "model=lenet-5"
    assert folded.loc[0, "method_label"] == "magnitude @ sparsity=0.9"
    assert normalize(folded).loc[0, "method_label"] == "magnitude @ sparsity=0.9"  # idempotent
    assert task_info(folded) == {"sweep_params": ["sparsity"]}
    plain = normalize(pd.DataFrame([row]))  # an older table: no task_info, nothing folded
    assert plain.loc[0, "task_label"] == row["task_label"] and task_info(plain) == {}


# ---------------------------------------------------------------------------- layering

def _imported_names(path: Path) -> set[tuple[str, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {(node.module or "", alias.name) for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
            for alias in node.names}


def test_leaderboard_and_plots_share_table_not_each_other():
    leaderboard, plots = _imported_names(REPORT / "leaderboard.py"), _imported_names(REPORT / "plots.py")
    assert not any(module.endswith("leaderboard") for module, _ in plots)
    assert all(not name.startswith("_") for module, name in leaderboard | plots if module.endswith("table"))
    assert any(module.endswith("table") for module, _ in leaderboard) and any(
        module.endswith("table") for module, _ in plots)


def test_setting_headings_leave_out_what_every_setting_shares():
    from robench.report.table import distinct_labels, label_parts

    attacks = 'attacks=[{"kind":"deepfool", "norm":"l2"}, {"epsilons":[0.1], "kind":"pgd", "norm":"linf"}]'
    base = 'base={"batch_size":64, "epochs":2, "lr":0.005, "params":{"c":10.0, "candidates":10}, "recipe":"deepdefense"}'
    assert label_parts(f"{attacks}, {base}, model=lenet-5") == [attacks, base, "model=lenet-5"]
    labels = [f"{attacks}, {base}, model=lenet-5", f"{attacks}, model=lenet-5", f"{attacks}, model=mlp"]
    shown, shared = distinct_labels(labels, width=40)
    assert shared == [attacks]  # listed once, whole
    assert shown[labels[1]] == "model=lenet-5" and shown[labels[2]] == "model=mlp"
    # a long dict value is cut after what names it, not after its alphabetically first keys
    assert shown[labels[0]].startswith('base={"recipe":"deepdefense", ') and "…, model=lenet-5" in shown[labels[0]]
    assert len(set(shown.values())) == 3
    # one setting: nothing is shared, its label stays (cut alike); two that would read alike stay whole
    assert distinct_labels(["model=mlp"]) == ({"model=mlp": "model=mlp"}, [])
    a, b = "x=" + "a" * 80 + "1", "x=" + "a" * 80 + "2"
    assert distinct_labels([a, b], width=20)[0] == {a: a, b: b}
