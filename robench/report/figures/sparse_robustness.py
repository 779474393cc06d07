"""Sparse DNNs and adversarial robustness (Guo et al., NeurIPS 2018, arXiv 1810.09619):
ρ2 and robust accuracy against weight sparsity, per model, and ``report.md``.

Reads only the results table of the ``sparsity_robustness`` runs (those of the
``sparse-robustness`` suite when the store has any, else all done runs); nothing is re-run.
The sparsity of a run is its method's ``sparsity`` parameter (the methods are the
``compression`` task's; stores from before that have it in the task parameters), else its
measured weight sparsity. When a model was run with several task settings, the setting
with the most runs is used and the report says so. Writes under ``out_dir``:
``results.csv`` (mean/std/n per model, method and sparsity), ``sparsity_robustness.png``
(ρ2, robust accuracy l2 and l∞ at one ε each, clean test accuracy; mean ± std over seeds)
and ``report.md`` (the paper's claim, our scale, whether the trend held, failed sanity flags).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from robench.report import papers
from robench.report.plots import PAPER, save_figure
from robench.report.style import method_colors
from robench.report.table import ordered, pm, select_runs, summarize
from robench.spec import short_value

TASK = "sparsity_robustness"
SUITE = "sparse-robustness"
MODEL_ORDER = ("linear", "lenet-300-100", "lenet-5")
LINEAR_MODELS = ("linear",)
PREFERRED_EPS = {"l2": 1.0, "linf": 0.1}  # the ε shown when the grid has it


# ------------------------------------------------------------------ the table

def pick_epsilon(metric_names, threat: str) -> float | None:
    """The ε of ``robust_accuracy_<threat>@ε`` to plot: the preferred one if present, else the
    middle of the grid."""
    grid = sorted(float(n.split("@")[1]) for n in metric_names if n.startswith(f"robust_accuracy_{threat}@"))
    if not grid:
        return None
    preferred = PREFERRED_EPS[threat]
    return preferred if preferred in grid else grid[len(grid) // 2]


def long_table(runs):
    """One row per run: model, method, seed, sparsity, weight_sparsity and the plotted metrics."""
    import pandas as pd

    names = {k for m in runs["metrics"] for k in m}
    eps = {t: pick_epsilon(names, t) for t in ("l2", "linf")}
    columns = {"rho2": "rho2", "test_accuracy": "test_accuracy",
               "clean_accuracy_attacked": "clean_accuracy_attacked",  # the n_test attacked points
               "weight_sparsity": "weight_sparsity", "activation_sparsity": "activation_sparsity",
               "deepfool_l2_median": "deepfool_l2_median"}
    for threat, e in eps.items():
        if e is not None:
            columns[f"robust_{threat}"] = f"robust_accuracy_{threat}@{_eps_text(e)}"
    rows = []
    for r in runs.itertuples(index=False):
        row = {"model": r.model, "method": without_sparsity(r.method_label), "seed": r.seed,
               "sparsity": run_sparsity(r)}
        row.update({col: r.metrics.get(name, math.nan) for col, name in columns.items()})
        for threat, e in eps.items():
            if e is not None and f"robust_{threat}" in columns:
                row[f"robust_{threat}_without_apgd"] = without_apgd(r.metrics, threat, _eps_text(e))
        rows.append(row)
    table = pd.DataFrame(rows)
    empty = [c for c in table.columns if c.endswith("_without_apgd") and table[c].isna().all()]
    return table.drop(columns=empty), eps


def run_sparsity(run) -> float:
    """The sparsity a run was asked for: its method's ``sparsity`` parameter (the methods
    are the compression task's), else the task's (stores from before that), else the
    measured ``weight_sparsity`` rounded to 0.01 (a method without a sparsity parameter)."""
    for params in (getattr(run, "method_params", None), run.task_params):
        if isinstance(params, dict) and isinstance(params.get("sparsity"), (int, float)):
            return float(params["sparsity"])
    return round(float(run.metrics.get("weight_sparsity", math.nan)), 2)


def without_sparsity(label: str) -> str:
    """A method label without its sparsity, which is the x axis here:
    ``magnitude(scope=global, sparsity=0.5)`` → ``magnitude(scope=global)``, ``magnitude @
    sparsity=0.5`` → ``magnitude``."""
    label = re.sub(r" @ sparsity=[^,\s]+", "", str(label))
    label = re.sub(r"(, )?\bsparsity=[^,)]*", "", label)
    return label.replace("(, ", "(").replace("()", "")


def without_apgd(metrics: dict, threat: str, eps: str) -> float:
    """Robust accuracy at ``eps`` under the attacks before APGD alone (attacks version 1:
    FGSM, PGD, DeepFool), read off the stored record: the APGD attacks come last in the
    preset's order, so the points they broke first are exactly those the earlier attacks
    left robust. NaN when the run has no APGD attack."""
    shares = [v for k, v in metrics.items()
              if k.startswith("broken_first_by_apgd") and k.endswith(f"_{threat}@{eps}")]
    robust = metrics.get(f"robust_accuracy_{threat}@{eps}")
    return float(robust) + float(sum(shares)) if shares and robust is not None else math.nan


def _eps_text(eps: float) -> str:
    """ε as the attack layer writes it in metric names (``robust_accuracy_l2@1``)."""
    return short_value(float(eps))


def summary_table(table):
    values = [c for c in table.columns if c not in ("model", "method", "seed", "sparsity")]
    return summarize(table, ["model", "method", "sparsity"], values, sort=True, dropna=True, size=None)


def _models(table):
    return ordered(table["model"], MODEL_ORDER)


# ------------------------------------------------------------------ the plot

def plot(table, eps, out: Path, scale: str = "") -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    models = _models(table)
    panels = [("rho2", "ρ2 (DeepFool-L2 ‖r‖/‖x‖)")]
    for threat, symbol in (("l2", "ℓ2"), ("linf", "ℓ∞")):
        if f"robust_{threat}" in table:
            panels.append((f"robust_{threat}", f"robust acc. {symbol} ε={_eps_text(eps[threat])}"))
    panels.append(("test_accuracy", "clean test accuracy"))
    sparsities = sorted(table["sparsity"].unique())
    position = {s: i for i, s in enumerate(sparsities)}  # even spacing: the sweep crowds near 1
    data = table.assign(x=table["sparsity"].map(position))
    methods = sorted(data["method"].unique())
    palette = method_colors(methods)  # a method's colour in every panel, figure and page
    fig, axes = plt.subplots(len(panels), len(models), figsize=(4.2 * len(models), 2.6 * len(panels)),
                             squeeze=False, sharex=True)
    for j, model in enumerate(models):
        sub = data[data["model"] == model]
        for i, (col, label) in enumerate(panels):
            ax = axes[i][j]
            sns.lineplot(data=sub, x="x", y=col, hue="method", hue_order=methods, palette=palette, errorbar="sd",
                         marker="o", ax=ax, legend=(i == 0 and j == len(models) - 1))
            ax.set_xticks(range(len(sparsities)), [f"{s:g}" for s in sparsities])
            ax.set_xlabel("weight sparsity" if i == len(panels) - 1 else "")
            ax.set_ylabel(label if j == 0 else "")
            if i == 0:
                ax.set_title(model)
            ax.grid(alpha=0.3)
    fig.suptitle("Robustness vs sparsity (mean ± std over seeds)" + (f"\n{scale}" if scale else ""))
    fig.tight_layout()
    path = out / "sparsity_robustness.png"
    save_figure(fig, path.with_suffix(""), PAPER)
    return path


# ------------------------------------------------------------------ the report

def trend(table, model: str, method: str, col: str, n_test: int = 0) -> tuple[str, str]:
    """(shape, detail) of the mean curve of ``col`` against sparsity.

    Two points differ when their means differ by more than the seeds' spread (the larger
    std of the two) and more than a floor that one seed cannot resolve: 2% of the larger
    mean for ρ2, two test points (2/n_test) for an accuracy. ``inverted U``: the peak lies
    strictly inside the sweep and is above both ends; else ``increasing``, ``decreasing``,
    ``flat (within noise)`` or ``other``.
    """
    sub = table[(table["model"] == model) & (table["method"] == method)]
    stats = sub.groupby("sparsity")[col].agg(["mean", "std"]).sort_index()
    if len(stats) < 3 or stats["mean"].isna().all():
        return "too few points", ""
    means, stds = stats["mean"].to_numpy(), stats["std"].fillna(0).to_numpy()
    s = stats.index.to_numpy()
    k = int(means.argmax())
    last = len(means) - 1

    def above(a, b):  # a clearly above b
        floor = 0.02 * max(abs(means[a]), abs(means[b])) if col == "rho2" else 2.0 / max(n_test, 1)
        return means[a] - means[b] > max(stds[a], stds[b], floor)

    detail = (f"dense {means[0]:.3g}±{stds[0]:.2g}, peak {means[k]:.3g}±{stds[k]:.2g} at {s[k]:g}, "
              f"at {s[-1]:g}: {means[-1]:.3g}±{stds[-1]:.2g}")
    if 0 < k < last and above(k, 0) and above(k, last):
        return "inverted U", detail
    if not any(above(a, b) for a in range(len(means)) for b in range(len(means))):
        return "flat (within noise)", detail
    rising = all(not above(a, b) for a in range(len(means)) for b in range(a + 1, len(means)))
    falling = all(not above(b, a) for a in range(len(means)) for b in range(a + 1, len(means)))
    if rising:
        return "increasing", detail
    if falling:
        return "decreasing", detail
    return "other", detail


def _scale_lines(runs) -> list[str]:
    lines = []
    for model, group in runs.groupby("model"):
        p = dict(group["task_params"].iloc[0])
        sparsities = sorted({run_sparsity(r) for r in group.itertuples(index=False)})
        attacks = (", ".join(a.get("name") or f"{a['kind']}_{a['norm']}" for a in p["attacks"]) if p.get("attacks")
                   else f"preset {p['attack_preset']}" + (f" minus {', '.join(p['exclude_attacks'])}"
                                                          if p.get("exclude_attacks") else ""))
        lines.append(f"- **{model}**: {p['dataset']}, baseline {p['baseline_epochs']} epochs, "
                     f"fine-tuning {p['finetune_epochs']} epochs after pruning (lr {p['finetune_lr']:g}, "
                     f"batch {p['batch_size']}), {p['n_test']} attacked test points, attacks: {attacks}; "
                     f"{group['seed'].nunique()} seed(s), sparsities {', '.join(f'{s:g}' for s in sparsities)}; "
                     f"methods {', '.join(sorted(set(group['method_label'].map(without_sparsity))))}.")
    return lines


def _stronger_attack_lines(table, n_test: int) -> list[str]:
    """What the AutoAttack attacks (APGD-CE, APGD-T) changed: the robust accuracy without
    them (same runs, same points: see :func:`without_apgd`) next to the stored worst case,
    at the dense model, the peak and the sparsest model, and the shape of both curves."""
    lines = ["## Under the stronger attacks", "",
             "Robust accuracy without the APGD attacks (FGSM, PGD and DeepFool only, as robench measured "
             "before attacks version 2; read off the same runs' first-broken record) against the worst "
             "case including APGD-CE and APGD-T. Mean over seeds.", "",
             "| model | method | metric | without APGD: shape | dense → peak → sparsest | with APGD: shape "
             "| dense → peak → sparsest | largest drop |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    survived, total = [], 0
    for model in _models(table):
        for method in sorted(table[table["model"] == model]["method"].unique()):
            sub = table[(table["model"] == model) & (table["method"] == method)]
            for col in ("robust_l2", "robust_linf"):
                old = f"{col}_without_apgd"
                if old not in sub or sub[old].isna().all():
                    continue
                shapes = [trend(table, model, method, c, n_test)[0] for c in (old, col)]
                means = sub.groupby("sparsity")[[old, col]].mean().sort_index()

                def path(c):
                    m = means[c].to_numpy()
                    return f"{m[0]:.3f} → {m.max():.3f} (at {means.index[int(m.argmax())]:g}) → {m[-1]:.3f}"

                drop = (means[old] - means[col])
                lines.append(f"| {model} | {method} | {col} | {shapes[0]} | {path(old)} | {shapes[1]} | "
                             f"{path(col)} | {drop.max():.3f} at {drop.idxmax():g} |")
                if shapes[0] == "inverted U":
                    total += 1
                    survived += [f"{model}/{method}/{col}"] if shapes[1] == "inverted U" else []
    lines.append("")
    if total:
        lines.append(f"**Verdict:** of the {total} inverted-U curve(s) under the earlier attacks, "
                     f"{len(survived)} keep the inverted U under the stronger attacks"
                     + (f" ({'; '.join(survived)})" if survived else "")
                     + ". The APGD attacks lower robust accuracy most where the column 'largest drop' says.")
    else:
        lines.append("**Verdict:** no curve was an inverted U under the earlier attacks either.")
    return lines


def scale_text(runs) -> str:
    """The scale a figure ran at, for its title: "mnist-5k, 3 seeds, 200 attacked points"."""
    params = runs["task_params"]
    datasets = sorted({str(p.get("dataset")) for p in params})
    points = sorted({int(p["n_test"]) for p in params if p.get("n_test") is not None})
    seeds = runs["seed"].nunique()
    return (f"{', '.join(datasets)}, {seeds} seed{'s' if seeds != 1 else ''}"
            + (f", {'/'.join(map(str, points))} attacked test points" if points else "")
            + "; the paper: full MNIST")


def _sanity_lines(runs) -> list[str]:
    lines = []
    for r in runs.sort_values(["model", "method_label", "seed"]).itertuples(index=False):
        failed = sorted(k.removeprefix("sanity_") for k, v in r.metrics.items() if k.startswith("sanity_") and v < 1)
        if failed:
            lines.append(f"- {r.model} / {without_sparsity(r.method_label)} / sparsity {run_sparsity(r):g} / "
                         f"seed {r.seed}: {', '.join(failed)}")
    return lines


def write_report(runs, table, summary, eps, notes, figures, out: Path) -> Path:
    lines = ["# Sparse DNNs and adversarial robustness (arXiv 1810.09619)", "",
             "**Paper's claim.** For nonlinear DNNs, moderately higher weight sparsity gives better "
             "robustness under l2 (and l∞) attacks, while over-sparsified models become less robust "
             "again: an *inverted U* of robustness against sparsity. Linear models behave differently "
             "(the paper contrasts them under l2 attacks). The paper measures LeNet-300-100 and LeNet-5 "
             "on the full MNIST (and VGG-like nets on CIFAR-10), with ρ2 (mean DeepFool ‖r‖₂/‖x‖₂) and "
             "accuracy under fixed-ε attacks.", "",
             "## Our scale", ""]
    lines += _scale_lines(runs)
    apgd = any(c.endswith("_without_apgd") for c in table.columns)
    lines += ["", "ρ2 counts misclassified points as 0 (DeepFool convention). Robust accuracy at ε is the "
              "worst case per point over every attack of that norm (FGSM/PGD at ε"
              + (", APGD-CE and APGD-T (AutoAttack's settings)" if apgd else "")
              + " and, for l2, DeepFool's norm ≤ ε). Plotted: "
              + ", ".join(f"robust accuracy {t} at ε={_eps_text(e)}" for t, e in eps.items() if e is not None)
              + ". Sparsity is the target; the measured weight sparsity is in results.csv.", ""]
    if notes:
        lines += ["Notes on the data used:", ""] + [f"- {n}" for n in notes] + [""]
    lines += [f"![robustness vs sparsity]({figures[0].name})", "", "## Did the trend hold?", "",
              "Shape of the mean curve over seeds: *inverted U* when the peak lies strictly inside the "
              "sweep and is above both the dense and the sparsest model by more than the seed spread "
              "(std) at those points and more than a floor one seed cannot resolve (2% of ρ2; two "
              f"test points, 2/{int(runs['task_params'].map(lambda p: p['n_test']).min())}, of an accuracy).", "",
              "| model | method | metric | shape | detail |", "| --- | --- | --- | --- | --- |"]
    verdicts = {}
    n_test = int(runs["task_params"].map(lambda p: p["n_test"]).min())
    for model in _models(table):
        for method in sorted(table[table["model"] == model]["method"].unique()):
            for col in ("rho2", "robust_l2", "robust_linf"):
                if col not in table:
                    continue
                shape, detail = trend(table, model, method, col, n_test)
                verdicts[model, method, col] = shape
                lines.append(f"| {model} | {method} | {col} | {shape} | {detail} |")
    lines += [""]
    nonlinear = [(k, v) for k, v in verdicts.items() if k[0] not in LINEAR_MODELS]
    if nonlinear:
        held = [k for k, v in nonlinear if v == "inverted U"]
        lines.append(f"**Nonlinear models:** the inverted U appears in {len(held)} of {len(nonlinear)} "
                     f"(model, method, metric) curves"
                     + (f" ({'; '.join(f'{m}/{me}/{c}' for m, me, c in held)})" if held else "")
                     + ". " + ("The claim held at our scale." if held and len(held) == len(nonlinear) else
                               "The claim held only partly at our scale." if held else
                               "The claim did not hold at our scale."))
    l2 = {k: v for k, v in verdicts.items() if k[0] in LINEAR_MODELS and k[2] in ("rho2", "robust_l2")}
    linf = {k: v for k, v in verdicts.items() if k[0] in LINEAR_MODELS and k[2] == "robust_linf"}
    if l2:
        shapes = sorted(set(l2.values()))
        lines.append("")
        lines.append(f"**Linear model, l2 (ρ2, robust l2):** {', '.join(shapes)} — "
                     + ("no inverted U: it differs from the nonlinear nets, as the paper says."
                        if "inverted U" not in shapes else
                        "an inverted U like the nonlinear nets: the paper's contrast did not show at our scale."))
        if linf:
            lines.append(f"Under l∞ its robust accuracy is {', '.join(sorted(set(linf.values())))}.")
    if apgd:
        lines += ["", *_stronger_attack_lines(table, n_test)]
    lines += ["", "Caveats: MNIST-5k (4000 training images), short fine-tuning, a few hundred attacked "
              "points; clean accuracy falls at the highest sparsities, which lowers ρ2 and robust "
              "accuracy by itself (misclassified points count as broken).", "",
              "## Sanity flags", ""]
    failures = _sanity_lines(runs)
    lines += failures if failures else ["Every sanity check passed in every run (monotone robust accuracy, "
                                        "near-zero accuracy at the largest ε, DeepFool complete, "
                                        "wrapped = unwrapped model)."]
    lines += ["", "## Numbers", "", _markdown(summary), ""]
    path = out / "report.md"
    lines += ["", *papers.sources_section("sparse-robustness")]
    path.write_text("\n".join(lines))
    return path


def _markdown(summary) -> str:
    cols = ["model", "method", "sparsity"] + [c for c in summary.columns if c.endswith("_mean")]
    head = "| " + " | ".join(c.removesuffix("_mean") for c in cols) + " |"
    rows = [head, "|" + " --- |" * len(cols)]
    for r in summary[cols].itertuples(index=False):
        cells = []
        for c, v in zip(cols, r):
            std = None
            if c.endswith("_mean"):
                row = summary[(summary["model"] == r[0]) & (summary["method"] == r[1]) & (summary["sparsity"] == r[2])]
                std = row[c.replace("_mean", "_std")].iloc[0]
            if isinstance(v, float):  # (a NaN mean reads "nan", as it always did here)
                cells.append(pm(v, std, digits=3, missing="nan"))
            else:
                cells.append(str(v))
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def make(frame, out_dir) -> list[Path]:
    from robench.errors import UserError

    out = Path(out_dir)
    selection = select_runs(frame, TASK, suite=SUITE, group="model", setting_without=("model", "sparsity"))
    runs, notes = selection.runs, selection.notes
    if runs.empty:
        raise UserError(f"no done '{TASK}' runs in the store; run suites/papers/sparse-robustness.yaml first")
    table, eps = long_table(runs)
    summary = summary_table(table)
    csv = out / "results.csv"
    summary.to_csv(csv, index=False)
    figure = plot(table, eps, out, scale=scale_text(runs))
    report = write_report(runs, table, summary, eps, notes, [figure], out)
    return [csv, figure, report]
