"""Dynamic Network Surgery (Guo, Yao & Chen, NIPS 2016, arXiv 1608.04493): accuracy against
compression ratio per model — DNS vs one-shot magnitude pruning vs DNS without splicing —
and ``report.md``.

Reads only the results table of the ``compression`` runs (those of the ``dns`` suite when
the store has any, else every done run of the methods below); nothing is re-run. When a
model was run with several task settings, the one with the most runs is used and the
report says so. Writes under ``out_dir``: ``results.csv`` (mean/std/n of every metric per
model, method and setting), ``accuracy_vs_compression.png`` (mean ± std over seeds in both
axes; a second row zooms on the dense model's accuracy) and ``report.md`` (the paper's
numbers beside ours, the scale, one verdict per claim, latency and both ratios per setting).

Shared helpers (run selection, summaries, formatting, ``make_paper``) are in
``_compression.py``.
"""

from __future__ import annotations

import math
from pathlib import Path

from robench.report import papers
from robench.report.figures._compression import (MATCH_POINTS, dense_band, family_rows, first_row,
                                                 latency_measured, make_paper, metric_table, models_of,
                                                 noise_points, save, scale_lines, scale_title, z, zoom)
from robench.report.plots import log_ticks
from robench.report.style import method_colors
from robench.report.table import pm

SUITE = "dns"
METHODS = ("dense", "magnitude", "dns", "dns-nosplice")
FAMILY_ORDER = ("magnitude", "dns", "dns-nosplice")
REQUIRED = ("accuracy", "compression_ratio", "compression_ratio_bits", "sparsity", "latency_ms",
            "latency_dense_ms", "speedup_measured")

# The paper's numbers (robench.report.papers: DNS, Table 1), per model.
PAPER = {model: {key: papers.value("dns", f"{model}.{key}") for key in ("dense_error", "ratio", "error")}
         for model in ("lenet-5", "lenet-300-100")}
UNVERIFIED = "(from the paper's Table 1, not verified by us)"


# ------------------------------------------------------------------ the table

def _c_text(c) -> str:
    return "[" + ", ".join(f"{v:g}" for v in c) + "]" if isinstance(c, (list, tuple)) else f"{c:g}"


def describe(method: str, params: dict, metrics: dict):
    if method == "dense":
        return "dense", "—", math.nan
    if method == "magnitude":
        scope = params.get("scope", "layer")
        family = "magnitude" if scope == "global" else f"magnitude ({scope})"
        return family, f"sparsity={params.get('sparsity', math.nan):g}", params.get("sparsity", math.nan)
    if method in ("dns", "dns-nosplice"):
        other = {k: v for k, v in params.items() if k != "c"
                 and v != {"gamma": 1e-4, "power": 1.0, "mask_update_fraction": 1.0}.get(k)}
        setting = f"c={_c_text(params.get('c', 3.0))}" + "".join(f", {k}={v}" for k, v in sorted(other.items()))
        return method, setting, math.nan
    return None, None, math.nan


def _by_ratio(row: dict) -> float:
    return row["compression_ratio_mean"]


def _rows(summary, model: str, family: str) -> list[dict]:
    return family_rows(summary, model, family, key=_by_ratio)


def _dense(summary, model: str) -> dict | None:
    return first_row(summary, model, "dense", key=_by_ratio)


def best_matched(rows: list[dict], dense_accuracy: float) -> dict | None:
    """The setting with the highest mean compression ratio whose mean accuracy is within
    MATCH_POINTS of dense's mean accuracy (None if no setting is)."""
    ok = [r for r in rows if r["accuracy_mean"] >= dense_accuracy - MATCH_POINTS / 100]
    return max(ok, key=lambda r: r["compression_ratio_mean"]) if ok else None


def interpolated_accuracy(rows: list[dict], ratio: float) -> tuple[float, float]:
    """(accuracy, std) of a family's mean curve at ``ratio``: linear in log(ratio) between its
    two neighbouring settings (std: the larger of theirs); NaNs outside the family's range."""
    points = sorted(rows, key=lambda r: r["compression_ratio_mean"])
    for a, b in zip(points, points[1:]):
        x0, x1 = a["compression_ratio_mean"], b["compression_ratio_mean"]
        if x0 <= ratio <= x1:
            t = 0.0 if x1 == x0 else (math.log(ratio) - math.log(x0)) / (math.log(x1) - math.log(x0))
            return (a["accuracy_mean"] + t * (b["accuracy_mean"] - a["accuracy_mean"]),
                    max(z(a["accuracy_std"]), z(b["accuracy_std"])))
    return math.nan, math.nan


def matched_ratio_comparison(rows: list[dict], reference: list[dict]) -> tuple[int, int, int, str]:
    """Accuracy of each setting in ``rows`` against ``reference``'s curve interpolated at the
    same mean ratio: (clearly more accurate, clearly less, within noise, detail text), where
    clearly = beyond max(2 · pooled std, 0.5 points). Settings outside the reference's range
    of ratios are left out."""
    better = worse = tie = 0
    parts = []
    for r in rows:
        acc, std = interpolated_accuracy(reference, r["compression_ratio_mean"])
        if not math.isfinite(acc):
            continue
        gap = 100 * (r["accuracy_mean"] - acc)
        band = noise_points(r["accuracy_std"], std)
        better, worse, tie = better + (gap > band), worse + (gap < -band), tie + (abs(gap) <= band)
        parts.append(f"{r['compression_ratio_mean']:.0f}×: {100 * r['accuracy_mean']:.2f}% vs {acc * 100:.2f}%")
    return better, worse, tie, "; ".join(parts)


# ------------------------------------------------------------------ the plot

def plot(summary, runs, out: Path) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = models_of(summary)
    fig, axes = plt.subplots(2, len(models), figsize=(max(5.6 * len(models), 7.5), 7.6), squeeze=False)
    families = [f for f in FAMILY_ORDER if f in set(summary["family"])]
    families += sorted(f for f in set(summary["family"]) if f not in FAMILY_ORDER and f != "dense")
    colours = method_colors(families)  # "magnitude (layer)": magnitude's colour, its own marker and line
    for j, model in enumerate(models):
        dense = _dense(summary, model)
        for i in range(2):
            ax = axes[i][j]
            if dense is not None:
                dense_band(ax, dense["accuracy_mean"], dense["accuracy_std"])
            for family in families:
                rows = _rows(summary, model, family)
                if not rows:
                    continue
                ax.errorbar([r["compression_ratio_mean"] for r in rows], [100 * r["accuracy_mean"] for r in rows],
                            xerr=[z(r["compression_ratio_std"]) for r in rows],
                            yerr=[100 * z(r["accuracy_std"]) for r in rows],
                            fmt="o-" if family in FAMILY_ORDER else "s--", ms=4, capsize=3, color=colours[family],
                            label=family)
            if model in PAPER:
                ax.axvline(PAPER[model]["ratio"], color="gray", ls=":", lw=1,
                           label=f"paper's ratio ({PAPER[model]['ratio']}×, full MNIST)")
            ax.set_xscale("log")
            log_ticks(ax.xaxis)  # 50, 100, 200 rather than 10²
            ax.set_xlabel("compression ratio (all params / nonzero, log)")
            ax.set_ylabel("test accuracy (%)" + (" — zoom near dense" if i == 1 else ""))
            ax.grid(alpha=0.3, which="both")
            if i == 1 and dense is not None:
                zoom(ax, dense["accuracy_mean"])
                level = 100 * dense["accuracy_mean"] - MATCH_POINTS
                ax.axhline(level, color="gray", lw=0.8, ls="-.")
                ax.annotate(f"dense − {MATCH_POINTS:g} point (matched-accuracy criterion)", (0.01, level),
                            xycoords=("axes fraction", "data"), xytext=(0, 2), textcoords="offset points",
                            fontsize=7, color="dimgray")
            if i == 0:
                ax.set_title(f"{model} — {scale_title(runs, model)}", fontsize=10)
                ax.legend(fontsize=7, loc="best")
    fig.suptitle("DNS: accuracy vs compression ratio\n(mean ± std over seeds in both axes; bottom: zoom near dense)")
    return save(fig, out / "accuracy_vs_compression.png")




# ------------------------------------------------------------------ the claims

def claim_ratio(summary, model: str) -> tuple[str, str]:
    """Claim 1: DNS reaches a higher compression ratio than one-shot magnitude pruning at the
    same accuracy. (verdict, sentence).

    Judged first at matched accuracy (the highest mean ratio among settings within
    MATCH_POINTS of dense), then checked at matched ratio (DNS's accuracy against
    magnitude's curve interpolated at DNS's ratios): the two must agree for "held"."""
    dense = _dense(summary, model)
    dns, mag = _rows(summary, model, "dns"), _rows(summary, model, "magnitude")
    if dense is None or not dns or not mag:
        missing = ", ".join(n for n, v in (("dense", dense), ("dns", dns), ("global magnitude", mag)) if not v)
        return "not testable", f"no {missing} runs for this model."
    d = dense["accuracy_mean"]
    best_dns, best_mag = best_matched(dns, d), best_matched(mag, d)
    better, worse, tie, detail = matched_ratio_comparison(dns, mag)
    if better + worse + tie:
        interp = (f" At matched ratio (magnitude's mean curve interpolated in log ratio at each DNS setting's "
                  f"ratio it covers), DNS is more accurate beyond noise at {better}, less accurate at {worse} "
                  f"and within noise at {tie} of {better + worse + tie} settings ({detail}).")
    else:
        interp = " No DNS setting lies within magnitude's range of ratios, so there is no matched-ratio check."
    crit = f"within {MATCH_POINTS:g} point of dense ({100 * d:.2f}%)"
    if best_dns is None and best_mag is None:
        first, text = None, f"no setting of either method has a mean accuracy {crit}"
    elif best_dns is None:
        first, text = False, (f"no DNS setting has a mean accuracy {crit}, while magnitude pruning reaches "
                              f"{best_mag['compression_ratio_mean']:.0f}× ({best_mag['setting']})")
    else:
        r_dns = best_dns["compression_ratio_mean"]
        text = (f"highest mean ratio with mean accuracy {crit}: DNS "
                f"{pm(r_dns, best_dns['compression_ratio_std'], 1, 0)}× ({best_dns['setting']})")
        if best_mag is None:
            first = True
            text += (f", magnitude pruning none (even its densest setting, {mag[0]['setting']}, loses more "
                     f"than {MATCH_POINTS:g} point)")
        else:
            r_mag = best_mag["compression_ratio_mean"]
            text += f" vs magnitude {pm(r_mag, best_mag['compression_ratio_std'], 1, 0)}× ({best_mag['setting']}"
            text += (", its sparsest tested setting, so a lower bound)" if best_mag is mag[-1] else ")")
            spread = max(z(best_dns["compression_ratio_std"]), z(best_mag["compression_ratio_std"]))
            if r_dns > r_mag + spread:
                first = True
                text += f": DNS is {r_dns / r_mag:.2f}× higher (within the tested grids)"
            elif r_dns > r_mag:
                first = None
                text += f": DNS is higher by less than the seeds' spread of the ratio ({spread:.0f}×)"
            else:
                first = False
                text += ": DNS is not higher"
    second = True if better and not worse else False if worse and not better else None
    if first is True and second is not False:
        verdict = "held"
    elif first is False and second is not True:
        verdict = "did not hold"
    elif first is None and second is None:
        verdict = "not shown (within noise)" if better + worse + tie or best_dns or best_mag else "not testable"
    else:
        verdict = "held only partly"
    return verdict, text + "." + interp


def claim_splice(summary, model: str) -> tuple[str, str]:
    """Claim 2: DNS without splicing does worse. (verdict, sentence).

    No-splice prunes more at the same c (its masks can only shrink), so accuracy at the same
    c is confounded by the ratio; the verdict rests on the matched-ratio comparison
    (no-splice's accuracy against DNS's curve interpolated at its ratios), then on the
    matched-accuracy ratio; the same-c accuracies are reported alongside."""
    dense = _dense(summary, model)
    dns_rows, nos_rows = _rows(summary, model, "dns"), _rows(summary, model, "dns-nosplice")
    dns, nos = {r["setting"]: r for r in dns_rows}, {r["setting"]: r for r in nos_rows}
    same = [s for s in dns if s in nos]
    if dense is None or not dns_rows or not nos_rows:
        return "not testable", "no DNS or no no-splice runs for this model."
    text = ""
    if same:
        lower = [s for s in same if nos[s]["accuracy_mean"] < dns[s]["accuracy_mean"]]
        higher_ratio = [s for s in same if nos[s]["compression_ratio_mean"] > dns[s]["compression_ratio_mean"]]
        text = (f"at the same c, no-splice accuracy is lower in {len(lower)} of {len(same)} settings (gaps "
                + ", ".join(f"{100 * (nos[s]['accuracy_mean'] - dns[s]['accuracy_mean']):+.2f}" for s in same)
                + f" points) and its ratio is higher in {len(higher_ratio)} of {len(same)}"
                + (" — it prunes more at the same c, so this alone does not show it is worse; "
                   if 2 * len(higher_ratio) > len(same) else "; "))
    better, worse, tie, detail = matched_ratio_comparison(nos_rows, dns_rows)
    if better + worse + tie:
        text += (f"at matched ratio (DNS's mean curve interpolated in log ratio at each no-splice ratio it covers) "
                 f"no-splice is less accurate beyond noise at {worse}, more accurate at {better} and within noise "
                 f"at {tie} of {better + worse + tie} settings ({detail})")
    else:
        text += "no no-splice setting lies within DNS's range of ratios, so there is no matched-ratio check"
    d = dense["accuracy_mean"]
    best_dns, best_nos = best_matched(dns_rows, d), best_matched(nos_rows, d)
    if best_dns is None and best_nos is None:
        frontier = None
        text += f"; no setting of either is within {MATCH_POINTS:g} point of dense"
    else:
        r_dns = best_dns["compression_ratio_mean"] if best_dns else 0.0
        r_nos = best_nos["compression_ratio_mean"] if best_nos else 0.0
        frontier = None if r_nos == r_dns else r_nos < r_dns
        text += (f"; highest ratio within {MATCH_POINTS:g} point of dense: no-splice "
                 + (f"{r_nos:.0f}×" if best_nos else f"none (its least pruned setting reaches {nos_rows[0]['compression_ratio_mean']:.0f}×)")
                 + " vs DNS " + (f"{r_dns:.0f}×" if best_dns else "none"))
    matched = True if worse and not better else False if better and not worse else None
    if matched is True:
        verdict = "held" if frontier is not False else "held only partly"
    elif matched is False:
        verdict = "did not hold" if frontier is not True else "held only partly"
    elif frontier is True:
        verdict = "held only partly"
        text += " (only the matched-accuracy ratio favours DNS; at matched ratio the two are not apart)"
    elif frontier is False:
        verdict = "did not hold"
    else:
        verdict = "not shown (within noise)" if tie else "not testable"
    return verdict, text + "."


# ------------------------------------------------------------------ the report

def paper_table(summary) -> list[str]:
    lines = ["| model | source | dense error (%) | method / setting | compression ratio | ratio incl. storage "
             "bits | error (%) |", "|" + " --- |" * 7]
    for model in models_of(summary):
        paper = PAPER.get(model)
        if paper:
            lines.append(f"| {model} | paper (full MNIST) | {paper['dense_error']:.2f} {UNVERIFIED} | DNS | "
                         f"{paper['ratio']}× | — | {paper['error']:.2f} |")
        dense = _dense(summary, model)
        if dense is None:
            continue
        dense_err = pm(1 - dense["accuracy_mean"], dense["accuracy_std"], 100, 2)
        for family in ("dns", "magnitude"):
            best = best_matched(_rows(summary, model, family), dense["accuracy_mean"])
            if best is None:
                lines.append(f"| {model} | ours | {dense_err} | {family}: no setting within {MATCH_POINTS:g} "
                             f"point of dense | — | — | — |")
                continue
            lines.append(f"| {model} | ours | {dense_err} | {family} {best['setting']} | "
                         f"{pm(best['compression_ratio_mean'], best['compression_ratio_std'], 1, 1)}× | "
                         f"{pm(best['compression_ratio_bits_mean'], best['compression_ratio_bits_std'], 1, 1)}× | "
                         f"{pm(1 - best['accuracy_mean'], best['accuracy_std'], 100, 2)} |")
    return lines


def write_report(runs, summary, notes, failed, figure: Path, out: Path) -> Path:
    lines = ["# Dynamic Network Surgery (arXiv 1608.04493) at robench scale", "",
             "**Paper's claim.** Pruning *and splicing* during training (masks recomputed from |W| with "
             "per-layer thresholds, pruned weights still receiving the gradient so they can come back) "
             f"compresses LeNet-5 {papers.value('dns', 'lenet-5.ratio'):g}× at "
             f"{papers.value('dns', 'lenet-5.error'):g}% error and LeNet-300-100 "
             f"{papers.value('dns', 'lenet-300-100.ratio'):g}× at {papers.value('dns', 'lenet-300-100.error'):g}% "
             f"error on MNIST (AlexNet {papers.value('dns', 'alexnet.ratio'):g}× on ImageNet, no accuracy loss; "
             "sources below). robench tests the trend: DNS reaches a higher "
             "compression ratio than one-shot magnitude pruning at the same accuracy, and DNS without "
             "splicing does worse.", "", "## Our scale", ""]
    lines += scale_lines(runs)
    lines += ["", "Compression ratio = all parameters (biases included) / nonzero parameters; the storage ratio "
              "= 32 · parameters / bits to store the model (values and sparse indices). The paper counts "
              "parameters the same way (its ratio is our `compression_ratio`). Our data are far smaller than "
              "the paper's, so absolute errors are not comparable; the comparison is between methods.", ""]
    if failed:
        lines += [f"{failed} run(s) of these methods failed and are left out (`robench results --status failed`).", ""]
    if notes:
        lines += ["Notes on the data used:", ""] + [f"- {n}" for n in notes] + [""]
    lines += [f"![accuracy vs compression ratio]({figure.name})", "", "## The paper's numbers and ours", "",
              f"Ours: per model, the setting with the highest mean compression ratio whose mean accuracy is within "
              f"{MATCH_POINTS:g} point of the dense model fine-tuned with the same budget (mean ± std over seeds).", ""]
    lines += paper_table(summary)
    lines += ["", "## Did the trend hold?", "",
              f"Claim 1 is judged at matched accuracy: the highest mean compression ratio among settings whose "
              f"mean accuracy is within {MATCH_POINTS:g} point of dense, per method (a difference of ratios smaller "
              "than the seeds' std counts as only partly); the accuracies at matched ratio (interpolated) are "
              "given as well, and a DNS setting that is clearly less accurate at matched ratio makes it only partly. "
              "Claim 2 is judged at matched ratio (no-splice against DNS's curve), then at matched accuracy; "
              "accuracy at the same c is reported but does not decide, because no-splice prunes more at the same c. "
              "*Beyond noise* = more than max(2 · pooled std, 0.5 points) apart.", ""]
    for model in models_of(summary):
        for number, (title, fn) in enumerate((("DNS beats one-shot magnitude pruning", claim_ratio),
                                              ("DNS without splicing does worse", claim_splice)), start=1):
            verdict, text = fn(summary, model)
            lines.append(f"- **{model}, claim {number} ({title}) — {verdict}.** {text[0].upper() + text[1:]}")
    lines += ["", "## Numbers per setting", "",
              "Latency is the median wall-clock CPU time of one forward pass of the compressed model's inference "
              "path (pruned layers on CSR sparse kernels where that is faster) beside the dense baseline's, "
              "measured in the same run; speedup = dense / compressed." if latency_measured(runs) else
              "Latency was not measured (these runs were made with `latency: false`).", ""]
    rows = []
    for model in models_of(summary):
        for family in ("dense",) + FAMILY_ORDER + tuple(sorted(set(summary["family"]) - set(FAMILY_ORDER) - {"dense"})):
            rows += _rows(summary, model, family)
    lines.append(metric_table(summary, rows, [
        ("accuracy (%)", "accuracy", 100, 2), ("compression ratio", "compression_ratio", 1, 1),
        ("ratio incl. storage bits", "compression_ratio_bits", 1, 1), ("sparsity (%)", "sparsity", 100, 2),
        ("latency (ms)", "latency_ms", 1, 2), ("dense latency (ms)", "latency_dense_ms", 1, 2),
        ("speedup", "speedup_measured", 1, 2)]))
    lines += [""] + papers.sources_section("dns")
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def make(frame, out_dir) -> list[Path]:
    return make_paper(frame, out_dir, suite=SUITE, methods=METHODS, describe=describe, required=REQUIRED,
                      plot=plot, write_report=write_report)
