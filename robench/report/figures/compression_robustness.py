"""Compression meets robustness (robench's own study, ``suites/studies/compression-robustness.yaml``):
robust accuracy and ρ2 against the storage ratio per compression method, with the Pareto
front, per model and starting model (vanilla or a robust base), and ``report.md``.

Reads only the results table of the ``sparsity_robustness`` runs (those of the
``compression-robustness`` suite when the store has any, else every done run); nothing is
re-run. The storage ratio is ``compression_ratio_bits`` (32 · parameters / bits to store
the attacked model, the compression task's accounting); the robust accuracy is the l∞ one
at the headline ε (0.1 when measured). Writes under ``out_dir``: ``results.csv`` (mean,
std and count per model, base and configuration), ``compression_robustness.png`` (one
column per model and base, rows: robust accuracy, ρ2 and clean accuracy against the
storage ratio, log scale, dashed: the Pareto front of more storage saving and more
robustness) and ``report.md`` (the scale, and the three questions: does compression cost
robustness at equal storage, which method keeps the most, does a robust base keep its
advantage after compression).

Differences are called out only when they exceed the noise: the larger std over seeds of
the two means and, for an accuracy, two attacked points (2/n_test); for ρ2, 2% of the
larger mean (the floor of :mod:`robench.report.figures.sparse_robustness`).
"""

from __future__ import annotations

import math
from pathlib import Path

from robench.report.plots import PAPER, pareto_front, save_figure
from robench.report.style import method_colors, method_markers
from robench.report.table import as_dict, order_key, ordered, pm, select_runs, summarize, to_float
from robench.spec import short_value

TASK = "sparsity_robustness"
SUITE = "compression-robustness"
MODEL_ORDER = ("lenet-5", "lenet-300-100", "linear")
REFERENCE = "dense"  # the uncompressed model fine-tuned with the same budget
X = "compression_ratio_bits"
PREFERRED_EPS = 0.1
# storage-ratio bands (×, from the low end) in which methods are compared at equal storage
BANDS = (1.0, 4.0, 12.0, 24.0, 48.0, math.inf)


# ------------------------------------------------------------------ the table

def base_settings(base) -> dict:
    """A robust base's recipe parameters and protocol (epochs, lr, batch size), flat."""
    base = as_dict(base)
    return {**as_dict(base.get("params")), **{k: base[k] for k in ("epochs", "lr", "batch_size") if k in base}}


def describe_base(base) -> str:
    """The whole base, for the scale section: ``deepdefense (c=10, ..., epochs=2)``."""
    if not base:
        return "vanilla (the dense baseline)"
    inner = ", ".join(f"{k}={short_value(v)}" for k, v in sorted(base_settings(base).items()))
    return f"{as_dict(base).get('recipe', '?')} ({inner})"


def base_labels(all_params) -> list[str]:
    """One short label per run's task params: ``vanilla`` for the dense baseline, else the
    robust base's recipe, with the settings that tell apart several bases of one recipe
    (``deepdefense(c=10)`` next to ``deepdefense(c=25)``)."""
    bases = [as_dict(p).get("base") or None for p in all_params]
    by_recipe: dict[str, list[dict]] = {}
    for base in filter(None, bases):
        by_recipe.setdefault(str(base.get("recipe", "?")), []).append(base_settings(base))
    labels = []
    for base in bases:
        if base is None:
            labels.append("vanilla")
            continue
        recipe, mine = str(base.get("recipe", "?")), base_settings(base)
        differ = sorted(k for k in mine if any(other.get(k) != mine[k] for other in by_recipe[recipe]))
        inner = ", ".join(f"{k}={short_value(mine[k])}" for k in differ)
        labels.append(f"{recipe}({inner})" if inner else recipe)
    return labels


def robust_metric(names) -> str | None:
    """The l∞ robust accuracy plotted: at ε = 0.1 when measured, else the middle of the grid."""
    grid = sorted(float(n.split("@")[1]) for n in names if n.startswith("robust_accuracy_linf@"))
    if not grid:
        return None
    eps = PREFERRED_EPS if PREFERRED_EPS in grid else grid[len(grid) // 2]
    return f"robust_accuracy_linf@{short_value(eps)}"


def long_table(runs):
    """One row per run: model, base, method (name), config (label), seed and the metrics read."""
    import pandas as pd

    names = {k for m in runs["metrics"] for k in as_dict(m)}
    robust = robust_metric(names)
    columns = {"storage": X, "rho2": "rho2", "test_accuracy": "test_accuracy",
               "clean_accuracy_attacked": "clean_accuracy_attacked",  # the n_test attacked points
               "bits_per_weight": "bits_per_weight", "weight_sparsity": "weight_sparsity"}
    if robust:
        columns["robust"] = robust
    rows = []
    for r, base in zip(runs.itertuples(index=False), base_labels(runs["task_params"])):
        metrics = as_dict(r.metrics)
        row = {"model": r.model, "base": base, "method": r.method or r.method_label,
               "config": r.method_label, "seed": r.seed}
        row.update({col: to_float(metrics.get(name)) for col, name in columns.items()})
        rows.append(row)
    return pd.DataFrame(rows), robust


def summary_table(table):
    values = [c for c in table.columns if c not in ("model", "base", "method", "config", "seed")]
    return summarize(table, ["model", "base", "method", "config"], values, sort=True, dropna=True)


def settings_of(table) -> list[tuple[str, str]]:
    """(model, base) pairs in display order: models as MODEL_ORDER, vanilla first."""
    pairs = dict.fromkeys(zip(table["model"], table["base"]))
    return sorted(pairs, key=lambda p: (order_key(p[0], MODEL_ORDER), p[1] != "vanilla", p[1]))


# ------------------------------------------------------------------ the plot

def plot(summary, robust: str | None, out: Path, scale: str = "") -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = ([("robust", f"robust acc. ℓ∞ ε={robust.split('@')[1]} (%)", 100.0)] if robust else []) + \
        [("rho2", "ρ2 (DeepFool-L2 ‖r‖/‖x‖)", 1.0), ("test_accuracy", "clean test accuracy (%)", 100.0)]
    settings = settings_of(summary)
    configs = ordered(summary["config"])
    colours, markers = method_colors(configs), method_markers(configs)
    fig, axes = plt.subplots(len(panels), len(settings), figsize=(4.4 * len(settings), 3.0 * len(panels)),
                             squeeze=False, sharex="col")
    for j, (model, base) in enumerate(settings):
        sub = summary[(summary["model"] == model) & (summary["base"] == base)]
        for i, (col, label, factor) in enumerate(panels):
            ax = axes[i][j]
            points = sub.rename(columns={"storage_mean": "x_mean", f"{col}_mean": "y_mean"})
            points = points[points["x_mean"].map(math.isfinite) & points["y_mean"].map(math.isfinite)]
            for r in points.itertuples(index=False):
                ax.errorbar(r.x_mean, r.y_mean * factor, yerr=_zero(getattr(r, f"{col}_std")) * factor,
                            xerr=_zero(r.storage_std), fmt=markers[r.config], color=colours[r.config], ms=5.5,
                            mec="white", mew=0.5, elinewidth=0.8, capsize=2, label=r.config, zorder=3)
            if len(points) > 1:
                best = pareto_front(points, True, True)
                ax.step(best["x_mean"], best["y_mean"] * factor, where="post", color="0.35", lw=1, ls="--",
                        zorder=1, label="Pareto front")
            if len(points) and (points["x_mean"] > 0).all():
                ax.set_xscale("log")
            ax.set_ylabel(label if j == 0 else "")
            ax.set_xlabel("storage ratio (32-bit dense bits / stored bits)" if i == len(panels) - 1 else "")
            if i == 0:
                ax.set_title(f"{model}, {base} base")
            ax.grid(alpha=0.3)
    handles, labels = {}, []
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in handles:
                handles[lab] = h
                labels.append(lab)
    labels = sorted(labels, key=lambda v: (v == "Pareto front", order_key(v)))
    fig.legend([handles[lab] for lab in labels], labels, loc="lower center", ncol=min(5, len(labels)), fontsize=7,
               frameon=False)
    fig.suptitle("Robustness vs storage per compression method (mean ± std over seeds)"
                 + (f"\n{scale}" if scale else ""))
    fig.tight_layout(rect=(0, 0.04 + 0.022 * math.ceil(len(labels) / 5), 1, 1))
    path = out / "compression_robustness.png"
    save_figure(fig, path.with_suffix(""), PAPER)
    return path


def _zero(v) -> float:
    v = to_float(v)
    return v if math.isfinite(v) else 0.0


# ------------------------------------------------------------------ the questions

def _noise(col: str, a: dict, b: dict, n_test: int) -> float:
    floor = 0.02 * max(abs(a[f"{col}_mean"]), abs(b[f"{col}_mean"])) if col == "rho2" else 2.0 / max(n_test, 1)
    return max(_zero(a.get(f"{col}_std")), _zero(b.get(f"{col}_std")), floor)


def compare(col: str, a: dict, b: dict, n_test: int) -> int:
    """+1 when ``a`` is clearly above ``b`` on ``col``, −1 clearly below, 0 within noise."""
    diff = a[f"{col}_mean"] - b[f"{col}_mean"]
    if not math.isfinite(diff):
        return 0
    noise = _noise(col, a, b, n_test)
    return 1 if diff > noise else -1 if diff < -noise else 0


def band_of(ratio: float) -> int:
    for i in range(len(BANDS) - 1):
        if BANDS[i] <= ratio < BANDS[i + 1]:
            return i
    return -1


def band_text(i: int) -> str:
    lo, hi = BANDS[i], BANDS[i + 1]
    return f"≥ {lo:g}×" if math.isinf(hi) else f"{lo:g}–{hi:g}×"


def cost_lines(summary, cols, n_test: int) -> tuple[list[str], dict]:
    """Question 1: each configuration against the dense model of its setting, and the best
    configuration per storage band. Returns the lines and, per column, the counts of
    configurations above / within noise / below dense."""
    lines = ["| model | base | storage band | best configuration (" + ", ".join(cols) + ") | "
             "its storage | vs dense |", "| --- | --- | --- | --- | --- | --- |"]
    counts = {c: [0, 0, 0] for c in cols}
    for model, base in settings_of(summary):
        rows = summary[(summary["model"] == model) & (summary["base"] == base)].to_dict("records")
        dense = next((r for r in rows if r["method"] == REFERENCE), None)
        compressed = [r for r in rows if r["method"] != REFERENCE and math.isfinite(r["storage_mean"])]
        if dense is not None:
            for r in compressed:
                for c in cols:
                    counts[c][1 - compare(c, r, dense, n_test)] += 1
        for band in sorted({band_of(r["storage_mean"]) for r in compressed}):
            members = [r for r in compressed if band_of(r["storage_mean"]) == band]
            best = max(members, key=lambda r: tuple(_finite(r[f"{c}_mean"]) for c in cols))
            verdict = ("—" if dense is None else ", ".join(
                f"{c} {('above', 'within noise of', 'below')[1 - compare(c, best, dense, n_test)]} dense"
                for c in cols))
            lines.append(f"| {model} | {base} | {band_text(band)} | {best['config']} | "
                         f"{best['storage_mean']:.1f}× | {verdict} |")
    return lines, counts


def _finite(v) -> float:
    v = to_float(v)
    return v if math.isfinite(v) else -math.inf


def kept_lines(summary, col: str) -> tuple[list[str], list[tuple[str, float]]]:
    """Question 2: per method, the share of the dense model's ``col`` its configurations
    keep (mean over its configurations and settings), and how often it is on the front."""
    import statistics

    kept: dict[str, list[float]] = {}
    front: dict[str, int] = {}
    for model, base in settings_of(summary):
        rows = summary[(summary["model"] == model) & (summary["base"] == base)]
        dense = rows[rows["method"] == REFERENCE]
        points = rows.rename(columns={"storage_mean": "x_mean", f"{col}_mean": "y_mean"})
        points = points[points["x_mean"].map(math.isfinite) & points["y_mean"].map(math.isfinite)]
        if len(points):
            for method in pareto_front(points, True, True)["method"]:
                front[method] = front.get(method, 0) + 1
        if dense.empty or not dense[f"{col}_mean"].iloc[0] > 0:
            continue
        reference = dense[f"{col}_mean"].iloc[0]
        for r in rows[rows["method"] != REFERENCE].itertuples(index=False):
            value = getattr(r, f"{col}_mean")
            if math.isfinite(value):
                kept.setdefault(r.method, []).append(value / reference)
    ranking = sorted(((m, statistics.mean(v)) for m, v in kept.items()), key=lambda kv: -kv[1])
    lines = [f"| method | {col} kept (vs dense, mean over its configurations) | configurations on the Pareto front |",
             "| --- | --- | --- |"]
    lines += [f"| {m} | {100 * share:.0f}% | {front.get(m, 0)} |" for m, share in ranking]
    return lines, ranking


def base_lines(summary, col: str, n_test: int) -> tuple[list[str], tuple[int, int, int], dict]:
    """Question 3: per model and configuration, the robust base's ``col`` against the
    vanilla base's; counts (advantage kept, lost in noise, reversed) over compressed ones,
    and the mean advantage (robust − vanilla) of the dense and of the compressed ones."""
    lines = [f"| model | base | configuration | {col}: vanilla base | robust base | advantage |",
             "| --- | --- | --- | --- | --- | --- |"]
    counts = [0, 0, 0]
    gaps: dict[str, list[float]] = {"dense": [], "compressed": []}
    scale = 1.0 if col == "rho2" else 100.0
    for model in ordered(summary["model"], MODEL_ORDER):
        sub = summary[summary["model"] == model]
        vanilla = {r["config"]: r for r in sub[sub["base"] == "vanilla"].to_dict("records")}
        for base in sorted(set(sub["base"]) - {"vanilla"}):
            for r in sorted(sub[sub["base"] == base].to_dict("records"), key=lambda r: order_key(r["config"])):
                v = vanilla.get(r["config"])
                if v is None:
                    continue
                verdict = compare(col, r, v, n_test)
                if r["method"] != REFERENCE:
                    counts[1 - verdict] += 1
                gap = r[f"{col}_mean"] - v[f"{col}_mean"]
                if math.isfinite(gap):
                    gaps["dense" if r["method"] == REFERENCE else "compressed"].append(gap)
                lines.append(f"| {model} | {base} | {r['config']} | "
                             f"{pm(v[f'{col}_mean'], v[f'{col}_std'], scale, 3 if scale == 1 else 1)} | "
                             f"{pm(r[f'{col}_mean'], r[f'{col}_std'], scale, 3 if scale == 1 else 1)} | "
                             f"{('kept', 'within noise', 'reversed')[1 - verdict]} |")
    return lines, tuple(counts), {k: sum(v) / len(v) for k, v in gaps.items() if v}


# ------------------------------------------------------------------ the report

def _scale_lines(runs) -> list[str]:
    lines = []
    for model, group in runs.groupby("model"):
        p = dict(as_dict(group["task_params"].iloc[0]))
        attacks = (", ".join(a.get("name") or f"{a['kind']}_{a['norm']}" for a in p["attacks"]) if p.get("attacks")
                   else f"preset {p.get('attack_preset')}" + (f" minus {', '.join(p['exclude_attacks'])}"
                                                              if p.get("exclude_attacks") else ""))
        bases = sorted({describe_base(as_dict(q).get("base")) for q in group["task_params"]})
        lines.append(f"- **{model}**: {p.get('dataset')}, baseline {p.get('baseline_epochs')} epochs, starting "
                     f"models: {'; '.join(bases)}; {p.get('finetune_epochs')} fine-tuning epochs per method (lr "
                     f"{p.get('finetune_lr')}, batch {p.get('batch_size')}), {p.get('n_test')} attacked test "
                     f"points, attacks: {attacks}; {group['seed'].nunique()} seed(s), "
                     f"{group['method_label'].nunique()} configurations, {len(group)} runs.")
    return lines


def write_report(runs, summary, robust, notes, figure, out: Path) -> Path:
    n_test = int(min(to_float(as_dict(p).get("n_test")) for p in runs["task_params"]))
    cols = (["robust"] if robust else []) + ["rho2"]
    head = "robust accuracy" if robust else "ρ2"
    lines = ["# Compression meets robustness", "",
             "How robust is a compressed model, method by method, at equal storage, and does compressing a "
             "robustly trained model keep its robustness? Every `compression` method (pruning, quantization, "
             "sketching and their pipeline) applied with the compression task's protocol to the same "
             "starting models, then attacked.", "", "## Scale", ""]
    lines += _scale_lines(runs)
    lines += ["", f"Storage ratio: `compression_ratio_bits` (32 · parameters / bits to store the model, "
              f"values and sparse indices). Robust accuracy: `{robust}` (worst case per point over the "
              f"attacks of that norm); ρ2: mean DeepFool ‖r‖₂/‖x‖₂, misclassified = 0. A difference "
              f"counts when it exceeds the larger std over seeds and 2/{n_test} of an accuracy (2% of ρ2).", ""]
    if notes:
        lines += ["Notes on the data used:", ""] + [f"- {n}" for n in notes] + [""]
    lines += [f"![robustness vs storage]({figure.name})", ""]

    band, counts = cost_lines(summary, cols, n_test)
    lines += ["## 1. Does compression cost robustness at equal storage?", ""]
    for c in cols:
        above, same, below = counts[c]
        total = above + same + below
        if total:
            lines.append(f"- **{c}**: of {total} compressed configurations (all settings), {below} are below "
                         f"the dense model of their setting, {same} within noise, {above} above.")
    lines += ["", "Best configuration per storage band (by " + ", then ".join(cols) + "):", ""] + band + [""]

    ranking_lines, ranking = kept_lines(summary, cols[0])
    lines += ["## 2. Which method keeps the most?", ""] + ranking_lines + [""]
    if ranking:
        lines.append(f"**{ranking[0][0]}** keeps the most {head} on average ({100 * ranking[0][1]:.0f}% of the "
                     f"dense model's), **{ranking[-1][0]}** the least ({100 * ranking[-1][1]:.0f}%). The share "
                     f"mixes strengths: compare at equal storage with the table of question 1 and the figure.")
        lines.append("")

    lines += ["## 3. Does a robust base keep its advantage after compression?", ""]
    robust_bases = sorted(set(summary["base"]) - {"vanilla"})
    if not robust_bases or "vanilla" not in set(summary["base"]):
        lines += ["Not measured: the runs have a single base."]
    else:
        for c in cols:
            _, (kept, noise, reversed_), gaps = base_lines(summary, c, n_test)
            total = kept + noise + reversed_
            unit, scale = ("", 1.0) if c == "rho2" else (" points", 100.0)
            mean_gap = "; mean advantage " + ", ".join(f"{k} {scale * v:+.3g}{unit}" for k, v in gaps.items()) \
                if gaps else ""
            lines.append(f"- **{c}**: the robust base is clearly ahead after compression in {kept} of {total} "
                         f"compressed configurations, within noise in {noise}, behind in {reversed_}{mean_gap}.")
        lines += ["", *base_lines(summary, cols[0], n_test)[0]]
    lines += ["", "Caveats: MNIST-5k (4000 training images), short fine-tuning, a cut attack set on "
              f"{n_test} points (see the suite header); the storage ratio counts the stored model, not its "
              "speed. Robust accuracy falls with clean accuracy (misclassified points count as broken).", "",
              "## Numbers", "", _markdown(summary, cols), ""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path


def _markdown(summary, cols) -> str:
    shown = [("storage", "storage ×", 1.0, 1)] + [(c, c, 1.0 if c == "rho2" else 100.0, 3 if c == "rho2" else 1)
                                                  for c in cols] + [("test_accuracy", "clean acc. %", 100.0, 1)]
    rows = ["| model | base | configuration | seeds | " + " | ".join(h for _, h, _, _ in shown) + " |",
            "|" + " --- |" * (4 + len(shown))]
    for model, base in settings_of(summary):
        sub = summary[(summary["model"] == model) & (summary["base"] == base)]
        for r in sorted(sub.to_dict("records"), key=lambda r: _finite(r["storage_mean"])):
            cells = [model, base, r["config"], str(int(r["n"]))]
            cells += [pm(r[f"{c}_mean"], r[f"{c}_std"], s, d) for c, _, s, d in shown]
            rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def make(frame, out_dir) -> list[Path]:
    from robench.errors import UserError

    out = Path(out_dir)
    selection = select_runs(frame, TASK, suite=SUITE, group="model", setting_without=("model", "base"))
    runs, notes = selection.runs, list(selection.notes)
    if selection.tagged is False:
        notes.insert(0, f"no run is tagged with the `{SUITE}` suite; using every stored `{TASK}` run")
    if runs.empty:
        raise UserError(f"no done '{TASK}' runs in the store; run suites/studies/{SUITE}.yaml first")
    table, robust = long_table(runs)
    summary = summary_table(table)
    summary.to_csv(out / "results.csv", index=False)
    figure = plot(summary, robust, out, scale=scale_title(runs))
    return [out / "results.csv", figure, write_report(runs, summary, robust, notes, figure, out)]


def scale_title(runs) -> str:
    """The scale in one line, for the figure's title."""
    p = as_dict(runs["task_params"].iloc[0])
    return (f"{p.get('dataset')}, {p.get('finetune_epochs')} fine-tuning epochs per method, {p.get('n_test')} "
            f"attacked points, {runs['seed'].nunique()} seeds")
