"""Network Sketching (Guo, Yao, Wang & Chen, CVPR 2017, arXiv 1706.02021): approximation
error and accuracy against the number of binary bases m per model, direct vs refined
sketching, with BWN, unscaled sign and the float model as references, and ``report.md``.

Reads only the results table of the ``compression`` runs (those of the ``sketching`` suite
when the store has any, else every done run of the methods below); nothing is re-run.
Writes under ``out_dir``: ``results.csv`` (mean/std/n of every metric per model, method and
m), ``sketching.png`` (two rows: relative squared error Σ‖W−Ŵ‖²/Σ‖W‖² and test accuracy
against m; mean ± std over seeds) and ``report.md``.
"""

from __future__ import annotations

import math
from pathlib import Path

from robench.report import papers
from robench.report.figures._compression import (MATCH_POINTS, dense_band, family_rows, first_row,
                                                 latency_measured, make_paper, metric_table, models_of,
                                                 noise_points, save, scale_lines, scale_title, z)
from robench.report.style import KNOWN, PALETTE
from robench.report.table import pm

SUITE = "sketching"
REQUIRED = ("accuracy", "sketch_error", "additions_saved", "compression_ratio_bits", "latency_ms",
            "latency_dense_ms", "speedup_measured")
METHODS = ("dense", "sketch", "bwn", "sign")
DIRECT, REFINED, TUNED, BWN, SIGN = "direct", "refined", "refined + fine-tuned", "bwn", "sign"
VARIANTS = (DIRECT, REFINED)
# each method's colour everywhere (robench.report.style); direct sketching a shade of its own
COLORS = {DIRECT: PALETTE[12], REFINED: KNOWN["sketch"], TUNED: KNOWN["sketch"], BWN: KNOWN["bwn"], SIGN: KNOWN["sign"]}
FEW_BASES = 3  # "a few bases": m ≤ this


# ------------------------------------------------------------------ the table

def describe(method: str, params: dict, metrics: dict):
    if method == "dense":
        return "dense", "—", math.nan
    if method == "sketch":
        m = params.get("m", 3)
        variant = params.get("variant", "refined")
        if params.get("finetune"):
            return (TUNED if variant == "refined" else f"{variant} + fine-tuned"), f"m={m}", m
        return variant, f"m={m}", m
    if method in (BWN, SIGN):
        return method, "m=1", 1
    return None, None, math.nan


def _by_m(summary, model: str, family: str) -> dict[int, dict]:
    return {int(r["x"]): r for r in family_rows(summary, model, family) if math.isfinite(r["x"])}


# ------------------------------------------------------------------ the plot

def plot(summary, runs, out: Path) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = models_of(summary)
    fig, axes = plt.subplots(2, len(models), figsize=(max(5.6 * len(models), 7.5), 7.6), squeeze=False)
    ms = sorted({int(x) for x in summary["x"] if math.isfinite(x)})
    for j, model in enumerate(models):
        for i, (col, label) in enumerate((("sketch_error", "relative squared error Σ‖W−Ŵ‖²/Σ‖W‖²"),
                                          ("accuracy", "test accuracy (%)"))):
            ax = axes[i][j]
            scale = 100.0 if col == "accuracy" else 1.0
            if col == "accuracy":
                dense = first_row(summary, model, "dense")
                if dense is not None:
                    dense_band(ax, dense["accuracy_mean"], dense["accuracy_std"], label="float (dense, mean ± std)")
            for family in VARIANTS:
                rows = list(_by_m(summary, model, family).values())
                rows = [r for r in rows if math.isfinite(r.get(f"{col}_mean", math.nan))]
                if not rows:
                    continue
                x = [r["x"] for r in rows]
                y = [scale * r[f"{col}_mean"] for r in rows]
                s = [scale * z(r[f"{col}_std"]) for r in rows]
                ax.plot(x, y, "o-", ms=4, color=COLORS[family], label=f"sketch, {family}")
                ax.fill_between(x, [a - b for a, b in zip(y, s)], [a + b for a, b in zip(y, s)],
                                color=COLORS[family], alpha=0.15, lw=0)
            sketched = summary.loc[(summary["model"] == model) & summary["family"].isin(VARIANTS), f"{col}_mean"]
            for family, style in ((BWN, "-."), (SIGN, ":")):
                r = first_row(summary, model, family)
                if r is None or not math.isfinite(r.get(f"{col}_mean", math.nan)):
                    continue
                value = r[f"{col}_mean"]
                if col == "sketch_error" and sketched.notna().any() and value > 10 * sketched.max():
                    # unscaled sign is orders of magnitude off: say so instead of squashing the curves
                    ax.plot([], [], ls=style, color=COLORS[family], label=f"{family}: {value:.3g} (off scale)")
                    continue
                ax.axhline(scale * value, color=COLORS[family], ls=style, lw=1.2, label=f"{family} (m = 1)")
            if col == "accuracy":
                for k, r in enumerate(family_rows(summary, model, TUNED)):
                    ax.errorbar([r["x"]], [100 * r["accuracy_mean"]], yerr=[100 * z(r["accuracy_std"])],
                                fmt="D", ms=6, mfc="white", capsize=3, color=COLORS[TUNED],
                                label="refined, a_j fine-tuned" if k == 0 else None)
            elif (sketched > 0).any():
                ax.set_yscale("log")
            ax.set_xticks(ms)
            ax.set_xlabel("binary bases per filter, m")
            ax.set_ylabel(label + (" (log)" if col == "sketch_error" else ""))
            ax.grid(alpha=0.3, which="both")
            if i == 0:
                ax.set_title(f"{model} — {scale_title(runs, model, retrained=False)}", fontsize=10)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7, loc="upper right" if col == "sketch_error" else "lower right")
    fig.suptitle("Network Sketching: error and accuracy vs m, no retraining (mean ± std over seeds)")
    return save(fig, out / "sketching.png")


# ------------------------------------------------------------------ the claims

def claim_falls(summary, model: str) -> tuple[str, str]:
    """Approximation error and accuracy loss fall as m grows (per variant)."""
    dense = first_row(summary, model, "dense")
    parts, held, partly = [], 0, 0
    variants = [v for v in VARIANTS if len(_by_m(summary, model, v)) >= 2]
    if not variants:
        return "not testable", "fewer than two values of m for this model."
    for variant in variants:
        rows = _by_m(summary, model, variant)
        ms = sorted(rows)
        err = [rows[m]["sketch_error_mean"] for m in ms]
        acc = [rows[m]["accuracy_mean"] for m in ms]
        err_ok = all(b < a for a, b in zip(err, err[1:]))
        drops = [f"{m0}→{m1}" for m0, m1 in zip(ms, ms[1:])
                 if 100 * (rows[m0]["accuracy_mean"] - rows[m1]["accuracy_mean"])
                 > noise_points(rows[m0]["accuracy_std"], rows[m1]["accuracy_std"])]
        gain = 100 * (acc[-1] - acc[0])
        band = noise_points(rows[ms[0]]["accuracy_std"], rows[ms[-1]]["accuracy_std"])
        near = dense is not None and 100 * (dense["accuracy_mean"] - acc[0]) <= band
        acc_ok = not drops and (gain > band or near)
        text = (f"{variant}: error {err[0]:.3g} at m={ms[0]} → {err[-1]:.3g} at m={ms[-1]} "
                f"({'decreasing at every step' if err_ok else 'not decreasing at every step'}), accuracy "
                f"{100 * acc[0]:.2f}% → {100 * acc[-1]:.2f}% ({gain:+.2f} points"
                + (f"; drops beyond noise at {', '.join(drops)}" if drops else "") + ")")
        if dense is not None:
            text += (f", loss vs float {100 * (dense['accuracy_mean'] - acc[0]):.2f} → "
                     f"{100 * (dense['accuracy_mean'] - acc[-1]):.2f} points")
        parts.append(text)
        held += err_ok and acc_ok
        partly += err_ok or acc_ok
    verdict = "held" if held == len(variants) else "held only partly" if partly else "did not hold"
    return verdict, "; ".join(parts) + "."


def claim_refined(summary, model: str) -> tuple[str, str]:
    """Refined sketching has lower error than direct for every m ≥ 2."""
    d, r = _by_m(summary, model, DIRECT), _by_m(summary, model, REFINED)
    ms = [m for m in sorted(set(d) & set(r)) if m >= 2]
    if not ms:
        return "not testable", "no direct and refined runs at the same m ≥ 2 for this model."
    lower = [m for m in ms if r[m]["sketch_error_mean"] < d[m]["sketch_error_mean"]]
    ahead = [m for m in ms if r[m]["accuracy_mean"] > d[m]["accuracy_mean"]]
    text = ("refined / direct error: " + ", ".join(
        f"m={m} {r[m]['sketch_error_mean']:.3g}/{d[m]['sketch_error_mean']:.3g}" for m in ms)
        + f"; refined is lower at {len(lower)} of {len(ms)} m"
        + (f" (not at m = {', '.join(str(m) for m in ms if m not in lower)})" if len(lower) < len(ms) else "")
        + f"; its accuracy is higher in mean at {len(ahead)} of {len(ms)} m (gaps "
        + ", ".join(f"{100 * (r[m]['accuracy_mean'] - d[m]['accuracy_mean']):+.2f}" for m in ms) + " points)")
    verdict = "held" if len(lower) == len(ms) else "held only partly" if lower else "did not hold"
    return verdict, text + "."


def claim_close(summary, model: str) -> tuple[str, str]:
    """A few bases come close to the float model without retraining."""
    dense = first_row(summary, model, "dense")
    if dense is None:
        return "not testable", "no dense runs for this model."
    first = {}
    for variant in VARIANTS:
        rows = _by_m(summary, model, variant)
        ok = [m for m in sorted(rows) if rows[m]["accuracy_mean"] >= dense["accuracy_mean"] - MATCH_POINTS / 100]
        if rows:
            first[variant] = ok[0] if ok else None
    if not first:
        return "not testable", "no sketch runs for this model."
    tested = max(m for v in VARIANTS for m in _by_m(summary, model, v))
    text = (f"mean accuracy within {MATCH_POINTS:g} point of the float model "
            f"({pm(dense['accuracy_mean'], dense['accuracy_std'], 100)}%) from "
            + ", ".join(f"m = {m} ({v})" if m is not None else f"no tested m ≤ {tested} ({v})"
                        for v, m in first.items()))
    reached = [m for m in first.values() if m is not None]
    if reached and min(reached) <= FEW_BASES:
        return "held", text + "."
    if reached:
        return "held only partly", text + f" — more than {FEW_BASES} bases are needed."
    return "did not hold", text + "."


def claim_bwn(summary, model: str) -> tuple[str, str]:
    """Sketching (refined, m ≥ 2) beats the BWN baseline."""
    bwn, r = first_row(summary, model, BWN), _by_m(summary, model, REFINED)
    ms = [m for m in sorted(r) if m >= 2]
    if bwn is None or not ms:
        return "not testable", "no BWN or no refined m ≥ 2 runs for this model."
    gaps = {m: (100 * (r[m]["accuracy_mean"] - bwn["accuracy_mean"]),
                noise_points(r[m]["accuracy_std"], bwn["accuracy_std"])) for m in ms}
    wins = [m for m, (g, b) in gaps.items() if g > b]
    text = (f"BWN {pm(bwn['accuracy_mean'], bwn['accuracy_std'], 100)}%; refined minus BWN: "
            + ", ".join(f"m={m} {g:+.2f} (±{b:.2f})" for m, (g, b) in gaps.items())
            + f" points; better beyond noise at {len(wins)} of {len(ms)} m")
    verdict = "held" if len(wins) == len(ms) else "held only partly" if wins else "did not hold"
    return verdict, text + "."


# ------------------------------------------------------------------ the report

def cost_lines(summary) -> list[str]:
    """Additions saved by the associative implementation and its measured latency."""
    lines = []
    for model in models_of(summary):
        rows = [x for v in VARIANTS + (BWN, SIGN) for x in family_rows(summary, model, v)]
        saved = [x["additions_saved_mean"] for x in rows if math.isfinite(x.get("additions_saved_mean", math.nan))]
        speed = [x["speedup_measured_mean"] for x in rows if math.isfinite(x.get("speedup_measured_mean", math.nan))]
        if not saved and not speed:
            continue
        text = f"- **{model}**: "
        if saved:
            text += (f"the associative order saves {100 * min(saved):.0f}–{100 * max(saved):.0f}% of the binary "
                     f"layers' additions per image")
        if speed:
            slower = sum(s < 1 for s in speed)
            text += ("; " if saved else "") + (
                f"measured on this CPU, dense latency / sketched latency is {min(speed):.2f}–{max(speed):.2f} "
                f"(below 1 = slower than the float model) — "
                + ("the sketched model is slower than the float model in every configuration"
                   if slower == len(speed) else
                   "faster than the float model in every configuration" if slower == 0 else
                   f"slower in {slower} of {len(speed)} configurations"))
        lines.append(text + ".")
    return lines


def write_report(runs, summary, notes, failed, figure: Path, out: Path) -> Path:
    lines = ["# Network Sketching (arXiv 1706.02021) at robench scale", "",
             "**Paper's claim.** A trained CNN becomes a binary-weight network without training from scratch by "
             "approximating each filter with m binary bases, W ≈ Σ_j a_j·B_j (direct: greedy B_j = sign(residual), "
             "a_j = mean|residual|; refined: re-fit all a_j by least squares after each basis), and an "
             "associative implementation reuses binary convolutions to cut additions. The paper's results are "
             "AlexNet and ResNet-18 on ImageNet, where the sketched models beat BinaryConnect and BWN \"by large "
             "margins\" at little extra memory (Guo et al., CVPR 2017, its ImageNet experiments). It reports no "
             "MNIST numbers, so this report has no paper column. robench tests the trend: approximation error and "
             "accuracy loss fall as m grows; refined < direct for m ≥ 2; a few bases come close to the float "
             "model without retraining.", "", "## Our scale", ""]
    lines += scale_lines(runs, extra="; sketch, BWN and sign do not retrain (the sketched model is the seed's "
                                     "dense baseline, approximated), except the fine-tuned rows, which train "
                                     "the a_j with the bases fixed; the float reference is the dense model "
                                     "fine-tuned with the same budget")
    lines += ["", "Relative squared error = Σ‖W − Ŵ‖² / Σ‖W‖² over all Conv2d/Linear weights, measured before any "
              "fine-tuning (so the fine-tuned rows share their un-tuned error). A seed selects the dense baseline; "
              "sketching itself is deterministic, so the std is over baselines.", ""]
    if failed:
        lines += [f"{failed} run(s) of these methods failed and are left out (`robench results --status failed`).", ""]
    if notes:
        lines += ["Notes on the data used:", ""] + [f"- {n}" for n in notes] + [""]
    lines += [f"![error and accuracy vs m]({figure.name})", "", "## Did the trend hold?", "",
              f"Rules: two mean accuracies differ when |difference| > max(2 · pooled std, 0.5 points); "
              f"\"close to the float model\" = mean accuracy within {MATCH_POINTS:g} point of the dense model's; "
              f"\"a few bases\" = m ≤ {FEW_BASES}. Error comparisons use the means (the error is deterministic "
              "given the baseline).", ""]
    claims = (("error and accuracy loss fall as m grows", claim_falls),
              ("refined < direct for every m ≥ 2", claim_refined),
              ("a few bases come close to float without retraining", claim_close),
              ("sketching beats BWN (the paper: by large margins on ImageNet)", claim_bwn))
    for model in models_of(summary):
        for number, (title, fn) in enumerate(claims, start=1):
            verdict, text = fn(summary, model)
            lines.append(f"- **{model}, claim {number} ({title}) — {verdict}.** {text[0].upper() + text[1:]}")
    lines += _finetune_lines(summary)
    lines += ["", "## Cost: additions and latency", ""]
    lines += cost_lines(summary) or ["No additions or latency metrics in these runs."]
    lines += ["", "Latency: median wall-clock CPU time of one forward pass (associative binary layers for the "
              "sketched models) beside the dense baseline's in the same run; the savings in additions are counted, "
              "not timed." if latency_measured(runs) else
              "Latency was not measured (these runs were made with `latency: false`); the savings in additions "
              "are counted, not timed.", "", "## Numbers per setting", ""]
    rows = []
    for model in models_of(summary):
        for family in ("dense", DIRECT, REFINED, TUNED, BWN, SIGN):
            rows += family_rows(summary, model, family)
    lines.append(metric_table(summary, rows, [
        ("rel. sq. error", "sketch_error", 1, 4), ("accuracy (%)", "accuracy", 100, 2),
        ("storage ratio", "compression_ratio_bits", 1, 1), ("additions saved (%)", "additions_saved", 100, 1),
        ("latency (ms)", "latency_ms", 1, 2), ("dense latency (ms)", "latency_dense_ms", 1, 2),
        ("speedup", "speedup_measured", 1, 2)]))
    lines += [""] + papers.sources_section("sketching")
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def _finetune_lines(summary) -> list[str]:
    lines = []
    for model in models_of(summary):
        tuned, plain = _by_m(summary, model, TUNED), _by_m(summary, model, REFINED)
        dense = first_row(summary, model, "dense")
        for m, t in sorted(tuned.items()):
            text = f"- {model}, refined m={m} with the a_j fine-tuned: {pm(t['accuracy_mean'], t['accuracy_std'], 100)}%"
            if m in plain:
                text += f" ({100 * (t['accuracy_mean'] - plain[m]['accuracy_mean']):+.2f} points vs no retraining"
                text += (f", {100 * (t['accuracy_mean'] - dense['accuracy_mean']):+.2f} vs float)" if dense else ")")
            lines.append(text + ".")
    return ["", "Fine-tuning the coefficients (not in the claims above):", ""] + lines if lines else []


def make(frame, out_dir) -> list[Path]:
    return make_paper(frame, out_dir, suite=SUITE, methods=METHODS, describe=describe, required=REQUIRED,
                      plot=plot, write_report=write_report)
