"""What compression forgets (robench's own study, ``suites/studies/compression-corruptions.yaml``):
mCE on natural corruptions against the storage ratio per compression method, with the
Pareto front, per model and starting model (vanilla or a robust base); Hooker et al.'s
comparison ("What do compressed deep neural networks forget?", 2019) of the accuracy a
compressed model loses on corrupted images against what it loses on clean ones; the
corruptions compression hurts most; and restore-then-classify where the store has it.
Writes ``report.md``.

Reads only the results table of the ``corruption_robustness`` runs (those of the
``compression-corruptions`` suite when the store has any, else every done run); nothing is
re-run. Storage ratio: ``compression_ratio_bits``; mCE: ``mce`` (1 = the task's reference
model); clean and corrupted accuracy: ``clean_accuracy`` and ``corrupted_accuracy`` (the
mean over the corruptions and severities). A configuration's **drops** are paired by seed:
the dense model of the same setting and seed minus the configuration, on clean and on
corrupted images; the **extra drop** is the corrupted drop minus the clean drop (> 0:
compression costs more on corrupted images than its clean cost says). Hooker et al.'s
question is asked of the configurations whose clean accuracy stays within MODERATE_DROP (5
points) of dense, as they compared pruned models of nearly unchanged top-1: a model that
collapses towards chance cannot lose much more on corrupted images (a floor).

Writes under ``out_dir``: ``results.csv`` (mean, std and count per setting and
configuration), ``compression_corruptions.png`` (row 1: mCE against the storage ratio, log
scales, dashed: the Pareto front of more storage saving and lower mCE, dotted: dense; row 2:
drop on corrupted against drop on clean images, the diagonal dashed, shaded: clean drops up
to MODERATE_DROP, collapsed configurations named in a note; one column per model and base),
``forgotten_corruptions.png`` (the mean extra drop per corruption, per model, over the
moderately compressed configurations) and ``report.md``.

A difference is called out only when it exceeds the noise: the larger std over seeds of the
compared values and a floor of 0.2 points of accuracy (1 % of an mCE).
"""

from __future__ import annotations

import math
import re
import statistics
from pathlib import Path

from robench.report.figures.compression_robustness import base_labels, describe_base
from robench.report.plots import PAPER, log_ticks, pareto_front, save_figure
from robench.report.style import method_colors, method_markers
from robench.report.table import as_dict, order_key, ordered, pm, select_runs, summarize, to_float

TASK = "corruption_robustness"
SUITE = "compression-corruptions"
MODEL_ORDER = ("lenet-5", "lenet-300-100", "linear")
REFERENCE = "dense"
ACCURACY_FLOOR = 0.002  # 0.2 points: two images of the 1000-image test split
MCE_FLOOR = 0.01  # relative
# Hooker et al. compare pruned models whose top-1 barely moved: the configurations that lose at
# most this much clean accuracy (a model that collapses towards chance cannot lose much more
# on corrupted images than on clean ones: a floor, not robustness)
MODERATE_DROP = 0.05
OFF_AXES_DROP = 0.30  # the drop panels show clean drops up to this; beyond, a note
BANDS = (1.0, 4.0, 12.0, 24.0, 48.0, math.inf)
_FAMILY = re.compile(r"^accuracy_([a-z0-9_]+)@([1-5])$")


# ------------------------------------------------------------------ the table

def _finite(v) -> float:
    v = to_float(v)
    return v if math.isfinite(v) else math.nan


def _zero(v) -> float:
    v = to_float(v)
    return v if math.isfinite(v) else 0.0


def families_of(runs) -> list[str]:
    """The corruptions the runs measured, in their first run's order."""
    seen: dict[str, None] = {}
    for m in runs["metrics"]:
        for name in as_dict(m):
            match = _FAMILY.match(str(name))
            if match:
                seen.setdefault(match.group(1), None)
    return list(seen)


def long_table(runs):
    """One row per run: model, base, preprocess, method, config, seed, the metrics read, the
    mean accuracy per corruption (``fam_<name>``) and the paired drops against the dense run
    of the same setting and seed."""
    import pandas as pd

    families = families_of(runs)
    rows = []
    for r, base in zip(runs.itertuples(index=False), base_labels(runs["task_params"])):
        m, params = as_dict(r.metrics), as_dict(r.task_params)
        row = {"model": r.model, "base": base, "preprocess": params.get("preprocess") or "none",
               "method": r.method or r.method_label, "config": r.method_label, "seed": r.seed,
               "storage": _finite(m.get("compression_ratio_bits")), "mce": _finite(m.get("mce")),
               "relative_mce": _finite(m.get("relative_mce")), "clean": _finite(m.get("clean_accuracy")),
               "corrupted": _finite(m.get("corrupted_accuracy"))}
        for family in families:
            values = [to_float(m.get(f"accuracy_{family}@{s}")) for s in range(1, 6)]
            values = [v for v in values if math.isfinite(v)]
            row[f"fam_{family}"] = sum(values) / len(values) if values else math.nan
        for s in range(1, 6):
            row[f"sev_{s}"] = _finite(m.get(f"accuracy@{s}"))
        rows.append(row)
    table = pd.DataFrame(rows)
    keys = ["model", "base", "preprocess", "seed"]
    dense = table[table["method"] == REFERENCE].drop_duplicates(keys).set_index(keys)
    for column in ["clean", "corrupted", "mce"] + [f"fam_{f}" for f in families]:
        reference = [dense[column].get(tuple(row[k] for k in keys), math.nan) for _, row in table.iterrows()]
        table[f"drop_{column}"] = [ref - value for ref, value in zip(reference, table[column])]
    table["extra_drop"] = table["drop_corrupted"] - table["drop_clean"]
    return table, families


def summary_table(table):
    values = [c for c in table.columns if c not in ("model", "base", "preprocess", "method", "config", "seed")]
    return summarize(table, ["model", "base", "preprocess", "method", "config"], values, sort=True, dropna=True)


def settings_of(summary, preprocess: str = "none") -> list[tuple[str, str]]:
    """(model, base) pairs of one preprocess in display order: models as MODEL_ORDER, vanilla first."""
    sub = summary[summary["preprocess"] == preprocess]
    pairs = dict.fromkeys(zip(sub["model"], sub["base"]))
    return sorted(pairs, key=lambda p: (order_key(p[0], MODEL_ORDER), p[1] != "vanilla", p[1]))


def _rows(summary, model, base, preprocess="none") -> list[dict]:
    sub = summary[(summary["model"] == model) & (summary["base"] == base) & (summary["preprocess"] == preprocess)]
    return sub.to_dict("records")


def noise(column: str, *rows: dict) -> float:
    floor = MCE_FLOOR * max(abs(_zero(r.get(f"{column}_mean"))) for r in rows) if "mce" in column else ACCURACY_FLOOR
    return max([_zero(r.get(f"{column}_std")) for r in rows] + [floor])


def verdict(value: float, spread: float) -> int:
    """+1 above noise, −1 below, 0 within (NaN: 0)."""
    if not math.isfinite(value):
        return 0
    return 1 if value > spread else -1 if value < -spread else 0


# ------------------------------------------------------------------ the plots

def plot(summary, out: Path, scale: str = "") -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    settings = settings_of(summary)
    configs = ordered(summary["config"])
    colours, markers = method_colors(configs), method_markers(configs)
    fig, axes = plt.subplots(2, len(settings), figsize=(4.4 * len(settings), 7.2), squeeze=False)
    for j, (model, base) in enumerate(settings):
        rows = _rows(summary, model, base)
        dense = next((r for r in rows if r["method"] == REFERENCE), None)
        compressed = [r for r in rows if r["method"] != REFERENCE]
        ax = axes[0][j]
        for r in compressed:
            if math.isfinite(r["storage_mean"]) and math.isfinite(r["mce_mean"]):
                ax.errorbar(r["storage_mean"], 100 * r["mce_mean"], yerr=100 * _zero(r["mce_std"]),
                            fmt=markers[r["config"]], color=colours[r["config"]], ms=5.5, mec="white", mew=0.5,
                            elinewidth=0.8, capsize=2, label=r["config"], zorder=3)
        import pandas as pd

        points = pd.DataFrame([{"x_mean": r["storage_mean"], "y_mean": r["mce_mean"], "method": r["method"]}
                               for r in compressed if math.isfinite(r["storage_mean"] * r["mce_mean"])])
        if len(points) > 1:
            best = pareto_front(points, True, False)
            # the lowest mCE among the configurations storing at least x: constant up to each front point
            ax.step(best["x_mean"], 100 * best["y_mean"], where="pre", color="0.35", lw=1, ls="--", zorder=1,
                    label="Pareto front")
        if dense is not None and math.isfinite(dense["mce_mean"]):
            ax.axhline(100 * dense["mce_mean"], color="0.45", ls=":", lw=1.2, label="dense (reference)")
        ax.set_xscale("log")
        log_ticks(ax.xaxis)
        ax.set_yscale("log")
        log_ticks(ax.yaxis)
        ax.set_xlabel("storage ratio (32-bit dense bits / stored bits)")
        ax.set_ylabel("mCE (%; 100 = the reference model)" if j == 0 else "")
        ax.set_title(f"{model}, {base} base")
        ax.grid(alpha=0.3)
        ax = axes[1][j]
        lim, off = 0.0, []
        for r in compressed:
            x, y = 100 * r["drop_clean_mean"], 100 * r["drop_corrupted_mean"]
            if not (math.isfinite(x) and math.isfinite(y)):
                continue
            if x > 100 * OFF_AXES_DROP:  # a collapsed model: said in a note, not plotted
                off.append(f"{r['config']} ({x:.0f}, {y:.0f})")
                continue
            ax.errorbar(x, y, xerr=100 * _zero(r["drop_clean_std"]), yerr=100 * _zero(r["drop_corrupted_std"]),
                        fmt=markers[r["config"]], color=colours[r["config"]], ms=5.5, mec="white", mew=0.5,
                        elinewidth=0.8, capsize=2, zorder=3)
            lim = max(lim, abs(x), abs(y))
        lim = max(lim * 1.1, 1.0)
        ax.axvspan(-lim, 100 * MODERATE_DROP, color="#0173b2", alpha=0.07, lw=0,
                   label=f"clean drop ≤ {100 * MODERATE_DROP:g} points")
        ax.plot([-lim, lim], [-lim, lim], color="0.35", ls="--", lw=1, label="same drop")
        ax.axhline(0, color="0.8", lw=0.8)
        ax.axvline(0, color="0.8", lw=0.8)
        ax.set_xlim(-lim * 0.15, lim)
        ax.set_ylim(-lim * 0.15, lim)
        if off:
            ax.text(0.98, 0.03, "off the axes:\n" + "\n".join(off), transform=ax.transAxes, ha="right", va="bottom",
                    fontsize=6.5, color="0.3")
        ax.set_xlabel("accuracy drop on clean images vs dense (points)")
        ax.set_ylabel("drop on corrupted images (points)" if j == 0 else "")
        ax.grid(alpha=0.3)
    handles, labels = {}, []
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in handles:
                handles[lab] = h
                labels.append(lab)
    extras = ("Pareto front", "dense (reference)", "same drop", f"clean drop ≤ {100 * MODERATE_DROP:g} points")
    labels = sorted(labels, key=lambda v: (v in extras, order_key(v)))
    fig.legend([handles[lab] for lab in labels], labels, loc="lower center", ncol=min(5, len(labels)), fontsize=7,
               frameon=False)
    fig.suptitle("What compression forgets: mCE vs storage (top), corrupted vs clean accuracy drop (bottom), "
                 "mean ± std over seeds" + (f"\n{scale}" if scale else ""), fontsize=10)
    fig.tight_layout(rect=(0, 0.04 + 0.022 * math.ceil(len(labels) / 5), 1, 1))
    path = out / "compression_corruptions.png"
    save_figure(fig, path.with_suffix(""), PAPER)
    return path


def family_extra_drops(summary, families) -> dict[str, dict[str, float]]:
    """model → corruption → the mean over the moderately compressed configurations (clean
    drop ≤ MODERATE_DROP; every base, no preprocess) of (drop on that corruption − drop on
    clean images)."""
    out: dict[str, dict[str, float]] = {}
    sub = _compressed(summary, moderate=True)
    for model in ordered(sub["model"], MODEL_ORDER):
        rows = sub[sub["model"] == model].to_dict("records")
        out[model] = {}
        for family in families:
            values = [r[f"drop_fam_{family}_mean"] - r["drop_clean_mean"] for r in rows
                      if math.isfinite(r[f"drop_fam_{family}_mean"] - r["drop_clean_mean"])]
            out[model][family] = statistics.mean(values) if values else math.nan
    return out


def plot_families(extra: dict, out: Path) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(extra)
    families = sorted({f for per in extra.values() for f in per},
                      key=lambda f: -statistics.mean([_zero(extra[m].get(f)) for m in models]))
    fig, ax = plt.subplots(figsize=(8.0, 3.6))
    width = 0.8 / max(len(models), 1)
    for i, model in enumerate(models):
        ax.bar([k + (i - (len(models) - 1) / 2) * width for k in range(len(families))],
               [100 * _zero(extra[model].get(f)) for f in families], width, label=model,
               color=("#0173b2", "#de8f05", "#029e73")[i % 3])
    ax.axhline(0, color="0.3", lw=0.8)
    ax.set_xticks(range(len(families)), [f.replace("_", " ") for f in families], rotation=40, ha="right", fontsize=8)
    ax.set_ylabel("extra drop (points)")
    ax.set_title("Accuracy compression costs on each corruption beyond its clean cost\n"
                 f"(mean over the configurations losing ≤ {100 * MODERATE_DROP:g} clean points, both bases)",
                 fontsize=9)
    ax.legend(fontsize=8, frameon=False)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path = out / "forgotten_corruptions.png"
    save_figure(fig, path.with_suffix(""), PAPER)
    return path


# ------------------------------------------------------------------ the report

def band_of(ratio: float) -> int:
    for i in range(len(BANDS) - 1):
        if BANDS[i] <= ratio < BANDS[i + 1]:
            return i
    return -1


def band_text(i: int) -> str:
    lo, hi = BANDS[i], BANDS[i + 1]
    return f"≥ {lo:g}×" if math.isinf(hi) else f"{lo:g}–{hi:g}×"


def storage_lines(summary) -> tuple[list[str], list[int]]:
    """Question 1: the lowest-mCE configuration per storage band of each setting against
    dense; counts of compressed configurations with an mCE above / within noise of / below dense's."""
    lines = ["| model | base | storage band | lowest mCE | its storage | mCE | dense's mCE | vs dense |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    counts = [0, 0, 0]
    for model, base in settings_of(summary):
        rows = _rows(summary, model, base)
        dense = next((r for r in rows if r["method"] == REFERENCE), None)
        compressed = [r for r in rows if r["method"] != REFERENCE and math.isfinite(r["storage_mean"])]
        if dense is not None:
            for r in compressed:
                counts[1 - verdict(r["mce_mean"] - dense["mce_mean"], noise("mce", r, dense))] += 1
        for band in sorted({band_of(r["storage_mean"]) for r in compressed}):
            members = [r for r in compressed if band_of(r["storage_mean"]) == band]
            best = min(members, key=lambda r: _zero(r["mce_mean"]) if math.isfinite(r["mce_mean"]) else math.inf)
            word = "—" if dense is None else ("above", "within noise of", "below")[
                1 - verdict(best["mce_mean"] - dense["mce_mean"], noise("mce", best, dense))] + " dense"
            lines.append(f"| {model} | {base} | {band_text(band)} | {best['config']} | {best['storage_mean']:.1f}× | "
                         f"{pm(best['mce_mean'], best['mce_std'], 100.0, 1)} | "
                         f"{pm(dense['mce_mean'], dense['mce_std'], 100.0, 1) if dense else '—'} | {word} |")
    return lines, counts


def _compressed(summary, moderate: bool = False, model: str | None = None):
    """The compressed configurations without preprocess (``moderate``: those losing at most
    MODERATE_DROP clean accuracy; ``model``: of that model only)."""
    sub = summary[(summary["method"] != REFERENCE) & (summary["preprocess"] == "none")]
    if moderate:
        sub = sub[sub["drop_clean_mean"] <= MODERATE_DROP + 1e-9]
    return sub if model is None else sub[sub["model"] == model]


def hooker_counts(rows) -> list[int]:
    """(more, same, less): configurations whose corrupted drop exceeds / is within noise of /
    is below their clean drop."""
    counts = [0, 0, 0]
    for r in rows.to_dict("records"):
        if math.isfinite(r["extra_drop_mean"]):
            counts[1 - verdict(r["extra_drop_mean"], noise("extra_drop", r))] += 1
    return counts


def hooker_lines(summary) -> tuple[list[str], dict[str, list[float]]]:
    """Question 2: per model, how many configurations lose more on corrupted images (all,
    and those losing ≤ MODERATE_DROP clean accuracy); per method, the mean clean and
    corrupted drops. Returns the lines and the extra drops per method (moderate ones)."""
    lines = [f"| model | configurations | lose more on corrupted (beyond noise) | within noise | lose less | "
             f"of them losing ≤ {100 * MODERATE_DROP:g} clean points: more / within / less |",
             "| --- | --- | --- | --- | --- | --- |"]
    sub = _compressed(summary)
    for model in ordered(sub["model"], MODEL_ORDER):
        more, same, less = hooker_counts(_compressed(summary, model=model))
        m_more, m_same, m_less = hooker_counts(_compressed(summary, moderate=True, model=model))
        lines.append(f"| {model} | {more + same + less} | {more} | {same} | {less} | {m_more} / {m_same} / {m_less} |")
    lines += ["", "| method | configurations | drop on clean (points) | drop on corrupted (points) | "
              "extra drop (points) | corrupted / clean drop |", "| --- | --- | --- | --- | --- | --- |"]
    per_method: dict[str, list[float]] = {}
    for method in ordered(sub["method"]):
        rows = [r for r in sub[sub["method"] == method].to_dict("records") if math.isfinite(r["extra_drop_mean"])]
        if not rows:
            continue
        ratios = [r["drop_corrupted_mean"] / r["drop_clean_mean"] for r in rows
                  if r["drop_clean_mean"] > ACCURACY_FLOOR]
        ratio = f"{statistics.median(ratios):.2f} (median)" if ratios else "— (no clean drop)"
        lines.append(f"| {method} | {len(rows)} | {100 * statistics.mean(r['drop_clean_mean'] for r in rows):+.2f} | "
                     f"{100 * statistics.mean(r['drop_corrupted_mean'] for r in rows):+.2f} | "
                     f"{100 * statistics.mean(r['extra_drop_mean'] for r in rows):+.2f} | {ratio} |")
        moderate = [r["extra_drop_mean"] for r in rows if r["drop_clean_mean"] <= MODERATE_DROP + 1e-9]
        if moderate:
            per_method[method] = moderate
    return lines, per_method


def base_lines(summary) -> list[str]:
    """Question 3: the robust base's mCE against the vanilla base's, configuration by configuration."""
    lines = []
    for model in ordered(summary["model"], MODEL_ORDER):
        sub = summary[(summary["model"] == model) & (summary["preprocess"] == "none")]
        vanilla = {r["config"]: r for r in sub[sub["base"] == "vanilla"].to_dict("records")}
        for base in sorted(set(sub["base"]) - {"vanilla"}):
            counts, gaps = [0, 0, 0], []
            dense_gap = None
            for r in sub[sub["base"] == base].to_dict("records"):
                v = vanilla.get(r["config"])
                if v is None:
                    continue
                gap = r["mce_mean"] - v["mce_mean"]
                if r["method"] == REFERENCE:
                    dense_gap = (gap, verdict(-gap, noise("mce", r, v)))
                    continue
                counts[1 - verdict(-gap, noise("mce", r, v))] += 1  # lower mCE is better
                if math.isfinite(gap):
                    gaps.append(gap)
            total = sum(counts)
            dense_text = ("" if dense_gap is None else f"dense: {100 * dense_gap[0]:+.1f} mCE points "
                          f"({('lower', 'within noise', 'higher')[1 - dense_gap[1]]}); ")
            lines.append(f"- **{model}, {base} vs vanilla base**: {dense_text}compressed: lower mCE in {counts[0]} "
                         f"of {total} configurations, within noise in {counts[1]}, higher in {counts[2]}"
                         + (f" (mean {100 * statistics.mean(gaps):+.1f} mCE points)" if gaps else "") + ".")
    return lines or ["Not measured: the runs have a single base."]


def restore_lines(summary) -> list[str]:
    """Question 4: the preprocessed settings against the same configurations classified as they are."""
    lines = []
    for preprocess in sorted(set(summary["preprocess"]) - {"none"}):
        lines += [f"| model | base | configuration | mCE as they are | mCE after {preprocess} | "
                  "corrupted acc. as they are | after |", "| --- | --- | --- | --- | --- | --- | --- |"]
        for model, base in settings_of(summary, preprocess):
            plain = {r["config"]: r for r in _rows(summary, model, base)}
            for r in sorted(_rows(summary, model, base, preprocess), key=lambda r: order_key(r["config"])):
                p = plain.get(r["config"])
                if p is None:
                    continue
                lines.append(f"| {model} | {base} | {r['config']} | {pm(p['mce_mean'], p['mce_std'], 100.0, 1)} | "
                             f"{pm(r['mce_mean'], r['mce_std'], 100.0, 1)} | "
                             f"{pm(p['corrupted_mean'], p['corrupted_std'], 100.0, 1)} | "
                             f"{pm(r['corrupted_mean'], r['corrupted_std'], 100.0, 1)} |")
        lines.append("")
    return lines


def verdict_lines(summary, mce_counts, per_method) -> list[str]:
    """The findings in a few lines: Hooker et al.'s per model (on the moderately compressed
    configurations: held / held in part / did not hold), the mCE cost of compression, the
    robust base, restore-then-classify."""
    lines = []
    for model in ordered(_compressed(summary)["model"], MODEL_ORDER):
        more, same, less = hooker_counts(_compressed(summary, moderate=True, model=model))
        total = more + same + less
        if not total:
            lines.append(f"- **{model}**: no compressed configuration loses ≤ {100 * MODERATE_DROP:g} clean points.")
            continue
        extras = [r["extra_drop_mean"] for r in _compressed(summary, moderate=True, model=model).to_dict("records")
                  if math.isfinite(r["extra_drop_mean"])]
        word = "held" if more > total / 2 else "held in part" if more > less else "did not hold"
        all_more, _, all_less = hooker_counts(_compressed(summary, model=model))
        lines.append(f"- **Hooker et al.'s finding {word} for {model}**: of the {total} configurations losing at "
                     f"most {100 * MODERATE_DROP:g} clean points, {more} lose more accuracy on corrupted images than "
                     f"on clean ones (beyond noise), {less} less; mean extra drop {100 * statistics.mean(extras):+.2f} "
                     f"points (all configurations: {all_more} more, {all_less} less).")
    if per_method:
        ranking = sorted(((m, statistics.mean(v)) for m, v in per_method.items()), key=lambda kv: -kv[1])
        lines.append(f"- **Most forgetful method** (mean extra drop, moderate configurations): {ranking[0][0]} "
                     f"({100 * ranking[0][1]:+.2f} points); least: {ranking[-1][0]} ({100 * ranking[-1][1]:+.2f}).")
    above, within, below = mce_counts
    lines.append(f"- **mCE**: {above} of {above + within + below} compressed configurations have a higher mCE than "
                 f"the dense model of their setting, {below} a lower one.")
    sub = summary[(summary["method"] == REFERENCE) & (summary["preprocess"] == "none")]
    for model in ordered(sub["model"], MODEL_ORDER):
        rows = {r["base"]: r for r in sub[sub["model"] == model].to_dict("records")}
        if "vanilla" in rows:
            for base, r in rows.items():
                if base != "vanilla":
                    gap = r["mce_mean"] - rows["vanilla"]["mce_mean"]
                    side = ("lower", "within noise", "higher")[1 - verdict(-gap, noise("mce", r, rows["vanilla"]))]
                    lines.append(f"- **{base} base, {model} dense**: mCE {100 * r['mce_mean']:.1f} % against "
                                 f"{100 * rows['vanilla']['mce_mean']:.1f} % for the vanilla base ({side}).")
    for preprocess in sorted(set(summary["preprocess"]) - {"none"}):
        gaps = []
        for model, base in settings_of(summary, preprocess):
            plain = {r["config"]: r for r in _rows(summary, model, base)}
            gaps += [(r["config"], r["mce_mean"] - plain[r["config"]]["mce_mean"])
                     for r in _rows(summary, model, base, preprocess) if r["config"] in plain]
        if gaps:
            lines.append(f"- **Restore, then classify ({preprocess})**: the mCE changes by "
                         + ", ".join(f"{100 * g:+.1f} points ({c})" for c, g in gaps) + ".")
    return lines


def _scale_lines(runs) -> list[str]:
    lines = []
    for model, group in runs.groupby("model"):
        p = dict(as_dict(group["task_params"].iloc[0]))
        bases = sorted({describe_base(as_dict(q).get("base")) for q in group["task_params"]})
        preprocess = sorted({as_dict(q).get("preprocess") or "none" for q in group["task_params"]})
        n_test = p.get("n_test") or "the whole test split"
        families = families_of(group)
        reference = p.get("reference_model") or "the default (lenet-300-100 on grey data, cifar-convnet on RGB data)"
        lines.append(f"- **{model}**: {p.get('dataset')}, baseline {p.get('baseline_epochs')} epochs, starting "
                     f"models: {'; '.join(bases)}; {p.get('finetune_epochs')} fine-tuning epochs per method (lr "
                     f"{p.get('finetune_lr')}, batch {p.get('batch_size')}); test images: {n_test}; "
                     f"{len(families)} corruptions ({', '.join(families)}; benchmark {p.get('benchmark')}), "
                     f"severities {', '.join(map(str, p.get('severities') or [1, 2, 3, 4, 5]))}, corruption seed "
                     f"{p.get('corruption_seed', 0)}; reference model: {reference} (seed 0); preprocess: "
                     f"{', '.join(preprocess)}; {group['seed'].nunique()} seed(s), {group['method_label'].nunique()} "
                     f"configurations, {len(group)} runs.")
    return lines


def write_report(runs, summary, families, notes, figures, out: Path) -> Path:
    storage, mce_counts = storage_lines(summary)
    hooker, per_method = hooker_lines(summary)
    extra = family_extra_drops(summary, families)
    lines = ["# What compression forgets: natural corruptions", "",
             "Does a compressed model keep its accuracy on natural corruptions (MNIST-C: noise, blur, geometry, "
             "weather, overlays; five severities each), and is its cost there larger than on clean images, as "
             "Hooker et al. found for pruned ImageNet models? Every `compression` method at two strengths, applied "
             "with the compression task's protocol to the same starting models, then evaluated on the corrupted "
             "test set (`corruption_robustness`).", "", "## Scale", ""]
    lines += _scale_lines(runs)
    lines += ["", "mCE: the mean over the corruptions of Σ_s error / Σ_s the reference model's error (ImageNet-C's "
              "corruption error; 100 % = the reference). A configuration's drops are paired by seed with the dense "
              "model of its setting; extra drop = drop on corrupted − drop on clean images (points). A difference "
              f"counts when it exceeds the larger std over seeds and {100 * ACCURACY_FLOOR:g} points of accuracy "
              f"({100 * MCE_FLOOR:g} % of an mCE).", ""]
    if notes:
        lines += ["Notes on the data used:", ""] + [f"- {n}" for n in notes] + [""]
    lines += ["## What held at this scale", ""] + verdict_lines(summary, mce_counts, per_method) + [""]
    lines += [f"![mCE vs storage; corrupted vs clean drop]({figures[0].name})", "",
              "## 1. Does compression raise the mCE at equal storage?", ""]
    above, same, below = mce_counts
    lines += [f"Of {above + same + below} compressed configurations (all settings), {above} have an mCE above the "
              f"dense model of their setting, {same} within noise, {below} below.", "",
              "Lowest mCE per storage band:", ""] + storage + [""]
    lines += ["## 2. Does compression cost more on corrupted images than on clean ones? (Hooker et al.)", "",
              f"Hooker et al. compare pruned models whose top-1 accuracy barely moved; here the configurations that "
              f"lose at most {100 * MODERATE_DROP:g} points of clean accuracy. A configuration that collapses (clean "
              f"accuracy far below dense) cannot lose much more on corrupted images than on clean ones: its "
              f"\"smaller\" corrupted drop is a floor, not robustness.", ""] + hooker + [""]
    if extra:
        lines += [f"![extra drop per corruption]({figures[1].name})", "",
                  f"Extra drop per corruption (points; mean over the configurations losing at most "
                  f"{100 * MODERATE_DROP:g} clean points, both bases):", "",
                  "| corruption | " + " | ".join(extra) + " |", "|" + " --- |" * (len(extra) + 1)]
        order = sorted(families, key=lambda f: -statistics.mean([_zero(extra[m].get(f)) for m in extra]))
        for family in order:
            cells = " | ".join(f"{100 * _zero(extra[m].get(family)):+.2f}" for m in extra)
            lines.append(f"| {family} | {cells} |")
        lines.append("")
    lines += ["## 3. Does a robust (DeepDefense) base change the corruption error?", ""] + base_lines(summary) + [""]
    restore = restore_lines(summary)
    if restore:
        lines += ["## 4. Restore, then classify", "",
                  "The same configurations with each corrupted input restored first (`preprocess`): the restorer "
                  "handles impulse noise (interpolation) and the blurs (super-resolution); the other corruptions "
                  "reach the classifier as they are.", ""] + restore
    lines += ["Caveats: MNIST-5k (4000 training images, 1000 test), LeNets, short fine-tuning and few seeds (see the "
              "suite header); MNIST-C's severities 1–2 and 4–5 are robench's ladder around the paper's single "
              "setting; the reference model is a LeNet-300-100, so the mCE scale is not ImageNet-C's. Hooker et al. "
              "measured pruned ResNet-50s on ImageNet-C; this is the same question at MNIST scale.", "",
              "## Numbers", "", _markdown(summary), ""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path


def _markdown(summary) -> str:
    shown = [("storage", "storage ×", 1.0, 1), ("mce", "mCE %", 100.0, 1), ("relative_mce", "rel. mCE %", 100.0, 1),
             ("clean", "clean acc. %", 100.0, 1), ("corrupted", "corrupted acc. %", 100.0, 1),
             ("extra_drop", "extra drop (points)", 100.0, 2)]
    rows = ["| model | base | preprocess | configuration | seeds | " + " | ".join(h for _, h, _, _ in shown) + " |",
            "|" + " --- |" * (5 + len(shown))]
    for preprocess in ordered(summary["preprocess"], ("none",)):
        for model, base in settings_of(summary, preprocess):
            for r in sorted(_rows(summary, model, base, preprocess), key=lambda r: _zero(r["storage_mean"])):
                cells = [model, base, preprocess, r["config"], str(int(r["n"]))]
                cells += [pm(r[f"{c}_mean"], r[f"{c}_std"], s, d) for c, _, s, d in shown]
                rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def scale_title(runs) -> str:
    p = as_dict(runs["task_params"].iloc[0])
    benchmark = f" ({p.get('benchmark')})" if p.get("benchmark") not in (None, "auto") else ""
    return (f"{p.get('dataset')}{benchmark}: {len(families_of(runs))} corruptions × "
            f"{len(p.get('severities') or [1, 2, 3, 4, 5])} severities, {p.get('finetune_epochs')} fine-tuning "
            f"epochs per method, {runs['seed'].nunique()} seeds")


def make(frame, out_dir) -> list[Path]:
    from robench.errors import UserError

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    selection = select_runs(frame, TASK, suite=SUITE, group="model",
                            setting_without=("model", "base", "preprocess", "preprocess_params"))
    runs, notes = selection.runs, list(selection.notes)
    if selection.tagged is False:
        notes.insert(0, f"no run is tagged with the `{SUITE}` suite; using every stored `{TASK}` run")
    if runs.empty:
        raise UserError(f"no done '{TASK}' runs in the store; run suites/studies/{SUITE}.yaml first")
    if selection.failed:
        notes.append(f"{selection.failed} run(s) of the task are not done (failed or running); left out")
    table, families = long_table(runs)
    summary = summary_table(table)
    summary.to_csv(out / "results.csv", index=False)
    figures = [plot(summary, out, scale=scale_title(runs)),
               plot_families(family_extra_drops(summary, families), out)]
    return [out / "results.csv", *figures, write_report(runs, summary, families, notes, figures, out)]

