"""Helpers shared by the figure modules of the ``compression`` task's papers (``dns``,
``inq``, ``sketching``): the per-run table, the scale lines, plot helpers and
:func:`make_paper`, the common ``make``. Selection, summaries and mean ± std text are
those of :mod:`robench.report.table`."""

from __future__ import annotations

import json
import math
from pathlib import Path

from robench.report.table import order_key, pm, select_runs, summarize, to_float

TASK = "compression"
MODEL_ORDER = ("lenet-5", "lenet-300-100")
MATCH_POINTS = 1.0  # "same accuracy": mean accuracy within this many points of dense's mean
# the task's latency metrics: absent from runs with the task param `latency: false`
LATENCY_METRICS = ("latency_ms", "latency_dense_ms", "speedup_measured")
NOT_MEASURED = "latency not measured (`latency: false`)"


def z(v) -> float:
    """``v`` as a float, 0.0 for None/NaN/inf (for plot coordinates)."""
    return 0.0 if v is None or not math.isfinite(v) else float(v)


def make_paper(frame, out_dir, *, suite: str, methods, describe, required, plot, write_report) -> list[Path]:
    """The ``make`` of a paper module: select the suite's runs, summarise, write
    ``results.csv``, the plot and ``report.md``; returns the three paths."""
    from robench.errors import UserError

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    selection = select_runs(frame, TASK, suite=suite, methods=methods, group="model", group_default="?",
                            setting_without=("model",))
    runs, notes, failed = selection.runs, selection.notes, selection.failed
    if selection.tagged is False:
        notes.insert(0, f"no run is tagged with the `{suite}` suite; using every stored `{TASK}` run "
                        f"of {', '.join(methods)}")
    studied = [m for m in methods if m != "dense"]
    if runs.empty or not runs["method"].isin(studied).any():
        raise UserError(f"no done '{TASK}' runs of {', '.join(studied)} in the store; "
                        f"run suites/papers/{suite}.yaml first")
    table = long_table(runs, describe, required)
    summary = summarize(table, ["model", "family", "key", "setting", "x"],
                        [c for c in table.columns if c not in ("model", "family", "setting", "key", "x", "seed")])
    csv = out / "results.csv"
    summary.drop(columns="key").to_csv(csv, index=False)
    figure = plot(summary, runs, out)
    return [csv, figure, write_report(runs, summary, notes, failed, figure, out)]


def models_of(table) -> list[str]:
    return sorted(dict.fromkeys(table["model"]), key=lambda m: order_key(m, MODEL_ORDER))


def family_rows(summary, model: str, family: str, key=lambda r: (r["x"], r["setting"])) -> list[dict]:
    """The summary rows (dicts) of one model and family, sorted by ``key`` (default: the
    sweep value, then the setting)."""
    sub = summary[(summary["model"] == model) & (summary["family"] == family)]
    return sorted(sub.to_dict("records"), key=key)


def first_row(summary, model: str, family: str, key=lambda r: (r["x"], r["setting"])) -> dict | None:
    """The first of :func:`family_rows` (the dense model, a one-setting baseline), None if none."""
    rows = family_rows(summary, model, family, key)
    return rows[0] if rows else None


def long_table(runs, describe, required=()):
    """One row per run: model, family, setting (label), key (the method's params as JSON),
    x (the numeric sweep value, NaN if none), seed, and every metric of these runs.

    ``describe(method, method_params, metrics) -> (family, setting, x)``; a family of
    None drops the run. Metrics in ``required`` get a column (NaN) even where no run has them."""
    import pandas as pd

    names = sorted({k for m in runs["metrics"] for k in m} | set(required))
    rows = []
    for r in runs.itertuples(index=False):
        params = dict(r.method_params or {})
        family, setting, x = describe(r.method, params, r.metrics)
        if family is None:
            continue
        row = {"model": r.model, "family": family, "setting": setting,
               "key": r.method + json.dumps(params, sort_keys=True), "x": float(x), "seed": r.seed}
        row.update({n: to_float(r.metrics.get(n)) for n in names})
        rows.append(row)
    return pd.DataFrame(rows)


def noise_points(std_a, std_b) -> float:
    """The "within noise" band of a difference of two means, in accuracy points:
    max(2 · pooled std, 0.5 points), pooled std = sqrt((s_a² + s_b²) / 2) (NaN stds count as 0)."""
    a = 0.0 if std_a is None or not math.isfinite(std_a) else std_a
    b = 0.0 if std_b is None or not math.isfinite(std_b) else std_b
    return max(2 * 100 * math.sqrt((a * a + b * b) / 2), 0.5)


def latency_measured(runs) -> bool:
    """Whether any of ``runs`` (rows with a ``metrics`` dict) has a finite ``latency_ms``:
    False where every run was made with ``latency: false``."""
    return any(math.isfinite(to_float((m or {}).get("latency_ms"))) for m in runs["metrics"])


def scale_lines(runs, extra: str = "") -> list[str]:
    lines = []
    for model in models_of(runs):
        group = runs[runs["model"] == model]
        p = dict(group["task_params"].iloc[0])
        latency = (f"latency: median of {p.get('latency_repeats', '?')} CPU forward passes of "
                   f"{p.get('latency_batch_size', '?')} images (wall-clock, varies run to run)"
                   if latency_measured(group) else NOT_MEASURED)
        seeds = sorted({int(s) for s in group["seed"]})
        baseline = (f"dense baseline loaded from the checkpoint `{Path(p['weights']).name}`" if p.get("weights")
                    else f"dense baseline trained {p.get('baseline_epochs', '?')} epochs")
        lines.append(f"- **{model}** on `{p.get('dataset', '?')}`: {baseline} (shared by every method of a seed), then "
                     f"{p.get('finetune_epochs', '?')} fine-tuning epochs per method (SGD, cosine lr from "
                     f"{p.get('finetune_lr', '?')}, batch {p.get('batch_size', '?')}){extra}; "
                     f"{len(seeds)} seed(s) ({', '.join(map(str, seeds))}), {len(group)} runs, "
                     f"{group['method_label'].nunique()} configurations; {latency}.")
    return lines


def scale_title(runs, model: str, retrained: bool = True) -> str:
    """A short line of the scale for a plot title: data, budget, seeds."""
    group = runs[runs["model"] == model]
    p = dict(group["task_params"].iloc[0])
    per = group.groupby("method_label")["seed"].nunique()
    seeds = f"{per.min()} seeds" if per.min() == per.max() else f"{per.min()}–{per.max()} seeds"
    budget = (f"{p.get('finetune_epochs', '?')} fine-tuning epochs" if retrained else
              f"no retraining (dense: {p.get('finetune_epochs', '?')} epochs)")
    return f"{p.get('dataset', '?')}, {budget}, {seeds}"


def save(fig, path: Path) -> Path:
    """Write ``fig`` as ``path`` (PNG) and beside it as SVG and PDF; returns ``path``."""
    from robench.report.plots import PAPER, save_figure

    fig.tight_layout()
    save_figure(fig, path.with_suffix(""), PAPER)
    return path


def dense_band(ax, mean, std, scale: float = 100.0, label: str = "dense (mean ± std)") -> None:
    if mean is None or not math.isfinite(mean):
        return
    ax.axhline(mean * scale, color="black", lw=1, ls="--", label=label)
    if std is not None and math.isfinite(std):
        ax.axhspan((mean - std) * scale, (mean + std) * scale, color="black", alpha=0.12, lw=0)


def zoom(ax, dense_mean, below: float = 4.0, above: float = 1.0) -> None:
    """Accuracy axis (in %) from ``below`` points under dense to ``above`` points over it."""
    if dense_mean is not None and math.isfinite(dense_mean):
        ax.set_ylim(100 * dense_mean - below, 100 * dense_mean + above)


def metric_table(summary, rows, columns) -> str:
    """Markdown table; rows: summary rows (dicts), columns: (header, metric, scale, digits).
    A latency column (:data:`LATENCY_METRICS`) no row has a value of is left out (runs
    made with ``latency: false``)."""
    columns = [c for c in columns if c[1] not in LATENCY_METRICS
               or any(math.isfinite(to_float(r.get(f"{c[1]}_mean"))) for r in rows)]
    lines = ["| model | method | setting | seeds | " + " | ".join(h for h, *_ in columns) + " |",
             "|" + " --- |" * (4 + len(columns))]
    for r in rows:
        cells = [r["model"], r["family"], r["setting"], str(int(r["n"]))]
        for _, metric, scale, digits in columns:
            cells.append(pm(r.get(f"{metric}_mean"), r.get(f"{metric}_std"), scale, digits))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


