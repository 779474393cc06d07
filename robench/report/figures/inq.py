"""Incremental Network Quantization (Zhou et al., ICLR 2017, arXiv 1702.03044): accuracy
against bit-width per model — INQ (magnitude and random partition), one-shot power-of-two
rounding, uniform k-bit — with DNS+INQ as a separate point, and ``report.md``.

Reads only the results table of the ``compression`` runs (those of the ``inq`` suite when
the store has any, else every done run of the methods below); nothing is re-run. Writes
under ``out_dir``: ``results.csv`` (mean/std/n of every metric per model, method and
bit-width), ``accuracy_vs_bits.png`` (mean ± std bands over seeds, dense as a reference
band; a second row zooms near dense) and ``report.md``.
"""

from __future__ import annotations

import math
from pathlib import Path

from robench.report import papers
from robench.report.figures._compression import (dense_band, family_rows, first_row, make_paper, metric_table,
                                                 models_of, noise_points, save, scale_lines, scale_title, zoom)
from robench.report.style import KNOWN, PALETTE
from robench.report.table import pm

SUITE = "inq"
REQUIRED = ("accuracy", "compression_ratio", "compression_ratio_bits", "bits_per_weight", "latency_ms",
            "latency_dense_ms", "latency_int8_dynamic_ms", "latency_float_ms", "accuracy_int8_dynamic")
METHODS = ("dense", "inq", "inq-oneshot", "uniform", "dns+inq")
INQ, RANDOM, ONESHOT, UNIFORM, DNS_INQ = ("INQ (magnitude)", "INQ (random partition)", "one-shot",
                                          "uniform", "DNS+INQ")
FAMILY_ORDER = (INQ, RANDOM, ONESHOT, UNIFORM)
# each method's colour everywhere (robench.report.style); INQ's random-partition variant a shade of its own
COLORS = {INQ: KNOWN["inq"], RANDOM: PALETTE[13], ONESHOT: KNOWN["inq-oneshot"], UNIFORM: KNOWN["uniform"],
          DNS_INQ: KNOWN["dns+inq"]}
DEFAULT_PORTIONS = [0.5, 0.75, 0.875, 1.0]
LOW_BITS, HIGH_BITS = (2, 3), (4, 5)


# ------------------------------------------------------------------ the table

def describe(method: str, params: dict, metrics: dict):
    if method == "dense":
        return "dense", "—", math.nan
    if method == "inq":
        bits = params.get("bits", metrics.get("bits", math.nan))
        family = RANDOM if params.get("partition", "magnitude") == "random" else INQ
        extra = "".join(f", {k}={params[k]}" for k in ("portions", "keep_zeros")
                        if k in params and params[k] != {"portions": DEFAULT_PORTIONS, "keep_zeros": True}[k])
        return family, f"bits={bits}{extra}", bits
    if method == "inq-oneshot":
        return ONESHOT, f"bits={params.get('bits')}", params.get("bits", math.nan)
    if method == "uniform":
        return UNIFORM, f"bits={params.get('bits')}", params.get("bits", math.nan)
    if method == "dns+inq":
        inq = params.get("inq") or {}
        bits = inq.get("bits", metrics.get("bits", 5))
        c = (params.get("dns") or {}).get("c", "default")
        return DNS_INQ, f"dns c={c}, inq bits={bits}", bits
    return None, None, math.nan


def _by_bits(summary, model: str, family: str) -> dict[int, dict]:
    """bits → summary row (the first setting per bit-width, i.e. the default portions)."""
    out: dict[int, dict] = {}
    for r in family_rows(summary, model, family):
        if math.isfinite(r["x"]):
            out.setdefault(int(r["x"]), r)
    return out


# ------------------------------------------------------------------ the plot

def plot(summary, runs, out: Path) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = models_of(summary)
    fig, axes = plt.subplots(2, len(models), figsize=(max(5.6 * len(models), 7.5), 7.6), squeeze=False)
    all_bits = sorted({int(x) for x in summary["x"] if math.isfinite(x)})
    for j, model in enumerate(models):
        dense = first_row(summary, model, "dense")
        for i in range(2):
            ax = axes[i][j]
            if dense is not None:
                dense_band(ax, dense["accuracy_mean"], dense["accuracy_std"], label="float (dense, mean ± std)")
            for family in FAMILY_ORDER:
                rows = list(_by_bits(summary, model, family).values())
                if not rows:
                    continue
                x = [r["x"] for r in rows]
                y = [100 * r["accuracy_mean"] for r in rows]
                s = [100 * (r["accuracy_std"] if math.isfinite(r["accuracy_std"]) else 0.0) for r in rows]
                ax.plot(x, y, "o-", ms=4, color=COLORS[family], label=family)
                ax.fill_between(x, [a - b for a, b in zip(y, s)], [a + b for a, b in zip(y, s)],
                                color=COLORS[family], alpha=0.15, lw=0)
            for r in family_rows(summary, model, DNS_INQ):
                ax.errorbar([r["x"] + 0.12], [100 * r["accuracy_mean"]],
                            yerr=[100 * (r["accuracy_std"] if math.isfinite(r["accuracy_std"]) else 0.0)],
                            fmt="*", ms=11, capsize=3, color=COLORS[DNS_INQ], label=DNS_INQ)
                ax.annotate(f"{r['compression_ratio_bits_mean']:.0f}× (storage)",
                            (r["x"] + 0.12, 100 * r["accuracy_mean"]), textcoords="offset points",
                            xytext=(6, -12), fontsize=7)
            ax.set_xticks(all_bits)
            ax.set_xlabel("bit-width b")
            ax.set_ylabel("test accuracy (%)" + (" — zoom near dense" if i == 1 else ""))
            ax.grid(alpha=0.3)
            if i == 1 and dense is not None:
                zoom(ax, dense["accuracy_mean"])
            if i == 0:
                ax.set_title(f"{model} — {scale_title(runs, model)}", fontsize=10)
                ax.legend(fontsize=7, loc="lower right")
    fig.suptitle("INQ: accuracy vs bit-width (mean ± std over seeds; bottom: zoom near dense)")
    return save(fig, out / "accuracy_vs_bits.png")


# ------------------------------------------------------------------ the claims

def _gap(a: dict, b: dict) -> tuple[float, float]:
    """(a − b in accuracy points, the noise band of that difference)."""
    return 100 * (a["accuracy_mean"] - b["accuracy_mean"]), noise_points(a["accuracy_std"], b["accuracy_std"])


def claim_float(summary, model: str) -> tuple[str, str]:
    """5-bit INQ within noise of the float model."""
    dense, inq = first_row(summary, model, "dense"), _by_bits(summary, model, INQ).get(5)
    if dense is None or inq is None:
        return "not testable", "no dense or no 5-bit INQ runs for this model."
    gap, band = _gap(inq, dense)
    text = (f"5-bit INQ {pm(inq['accuracy_mean'], inq['accuracy_std'], 100)}% vs float "
            f"{pm(dense['accuracy_mean'], dense['accuracy_std'], 100)}%: {gap:+.2f} points, noise band ±{band:.2f}")
    if abs(gap) <= band:
        return "held", text + " — within noise."
    if gap > 0:
        return "held", text + " — better than the float model beyond noise (the paper also saw small gains)."
    return "did not hold", text + " — below the float model beyond noise."


def compare_by_bits(summary, model: str, better: str, worse: str) -> tuple[dict, str]:
    """Per bit-width present in both families: gap (points), band, outcome (+1 clearly
    better, −1 clearly worse, 0 within noise); and a text of the gaps."""
    a, b = _by_bits(summary, model, better), _by_bits(summary, model, worse)
    result = {}
    for bits in sorted(set(a) & set(b)):
        gap, band = _gap(a[bits], b[bits])
        result[bits] = (gap, band, 1 if gap > band else -1 if gap < -band else 0)
    text = ", ".join(f"{bits} bits {gap:+.2f} (±{band:.2f})" for bits, (gap, band, _) in result.items())
    return result, text


def claim_oneshot(summary, model: str) -> tuple[str, str]:
    """Incremental beats one-shot at the same budget, more so at 3 and 2 bits."""
    result, text = compare_by_bits(summary, model, INQ, ONESHOT)
    if not result:
        return "not testable", "no INQ and one-shot runs at the same bit-width for this model."
    wins = [b for b, r in result.items() if r[2] > 0]
    losses = [b for b, r in result.items() if r[2] < 0]
    low = [result[b][0] for b in LOW_BITS if b in result]
    high = [result[b][0] for b in HIGH_BITS if b in result]
    more_low = bool(low and high) and sum(low) / len(low) > sum(high) / len(high)
    sentence = (f"INQ − one-shot accuracy: {text} points; INQ is better beyond noise at "
                f"{_bits_list(wins)}, worse at {_bits_list(losses)}")
    if low and high:
        sentence += (f"; mean gap at {'/'.join(map(str, LOW_BITS))} bits {sum(low) / len(low):+.2f} vs "
                     f"{sum(high) / len(high):+.2f} at {'/'.join(map(str, HIGH_BITS))} bits")
    low_won = all(result[b][2] > 0 for b in LOW_BITS if b in result) and any(b in result for b in LOW_BITS)
    if not losses and low_won and more_low:
        return "held", sentence + "."
    if wins and not (losses and len(losses) >= len(wins)):
        return "held only partly", sentence + "."
    if not wins and not losses:
        return "not shown (within noise)", sentence + "."
    return "did not hold", sentence + "."


def claim_partition(summary, model: str) -> tuple[str, str]:
    """Magnitude partition beats random partition."""
    result, text = compare_by_bits(summary, model, INQ, RANDOM)
    if not result:
        return "not testable", "no INQ runs of both partitions at the same bit-width for this model."
    wins = [b for b, r in result.items() if r[2] > 0]
    losses = [b for b, r in result.items() if r[2] < 0]
    ahead = [b for b, r in result.items() if r[0] > 0]
    sentence = (f"magnitude − random partition accuracy: {text} points; magnitude is ahead in mean at "
                f"{_bits_list(ahead)}, better beyond noise at {_bits_list(wins)}, worse at {_bits_list(losses)}")
    if len(wins) == len(result):
        return "held", sentence + "."
    if wins and not losses:
        return "held only partly", sentence + "."
    if not wins and not losses:
        return "not shown (within noise)", sentence + "."
    return "did not hold", sentence + "."


def _bits_list(bits: list[int]) -> str:
    return ", ".join(f"{b}" for b in bits) + " bits" if bits else "no bit-width"


# ------------------------------------------------------------------ the report

def paper_table(summary, runs) -> list[str]:
    lines = ["| model (data) | source | float error (%) | 5-bit INQ error (%) | error change (points) | "
             "DNS+INQ storage ratio | DNS+INQ error (%) |", "|" + " --- |" * 7,
             *(_paper_row(name, key, ratio) for name, key, ratio in
               (("ResNet-18", "resnet-18", None), ("AlexNet", "alexnet", "alexnet.dns_inq_ratio")))]
    for model in models_of(summary):
        dense, inq = first_row(summary, model, "dense"), _by_bits(summary, model, INQ).get(5)
        dns_inq = family_rows(summary, model, DNS_INQ)
        data = runs[runs["model"] == model]["task_params"].iloc[0].get("dataset", "?")
        cells = [f"{model} ({data})", "ours",
                 pm(1 - dense["accuracy_mean"], dense["accuracy_std"], 100) if dense else "—",
                 pm(1 - inq["accuracy_mean"], inq["accuracy_std"], 100) if inq else "—",
                 f"{100 * (dense['accuracy_mean'] - inq['accuracy_mean']):+.2f}" if dense and inq else "—"]
        if dns_inq:
            r = dns_inq[0]
            cells += [f"{pm(r['compression_ratio_bits_mean'], r['compression_ratio_bits_std'], 1, 1)}×",
                      pm(1 - r["accuracy_mean"], r["accuracy_std"], 100)]
        else:
            cells += ["—", "—"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _paper_row(name: str, key: str, ratio_key: str | None) -> str:
    """One model's row of the paper (robench.report.papers: INQ, Table 1; Table 5 for DNS+INQ)."""
    before, after = papers.value("inq", f"{key}.float_error"), papers.value("inq", f"{key}.inq5_error")
    ratio = f"{papers.value('inq', ratio_key):g}×" if ratio_key else "—"
    change = f"{after - before:+.2f}".replace("-", "−")
    return f"| {name} (ImageNet, top-1) | paper | {before:.2f} | {after:.2f} | {change} | {ratio} | — |"


def bits_table(summary, model: str) -> list[str]:
    families = [f for f in FAMILY_ORDER if _by_bits(summary, model, f)]
    bits = sorted({b for f in families for b in _by_bits(summary, model, f)})
    lines = ["| bits | " + " | ".join(f"{f} acc. (%)" for f in families) + " |", "|" + " --- |" * (1 + len(families))]
    for b in bits:
        cells = [str(b)]
        for f in families:
            r = _by_bits(summary, model, f).get(b)
            cells.append(pm(r["accuracy_mean"], r["accuracy_std"], 100) if r else "—")
        lines.append("| " + " | ".join(cells) + " |")
    dense = first_row(summary, model, "dense")
    if dense:
        lines.append(f"| float | {pm(dense['accuracy_mean'], dense['accuracy_std'], 100)} (dense) |"
                     + " |" * (len(families) - 1))
    return lines


def write_report(runs, summary, notes, failed, figure: Path, out: Path) -> Path:
    lines = ["# Incremental Network Quantization (arXiv 1702.03044) at robench scale", "",
             "**Paper's claim.** Quantizing weights to powers of two (or zero) incrementally — partition each "
             "layer's weights by magnitude, quantize and freeze the largest portion, retrain the rest, repeat "
             "with accumulated portions 50/75/87.5/100% — loses nothing at 5 bits on ImageNet (ResNet-18 top-1 "
             f"error {papers.value('inq', 'resnet-18.float_error'):.2f} → "
             f"{papers.value('inq', 'resnet-18.inq5_error'):.2f}%, AlexNet {papers.value('inq', 'alexnet.float_error'):.2f} "
             f"→ {papers.value('inq', 'alexnet.inq5_error'):.2f}%), stays close at lower bit-widths, and combined with "
             f"DNS compresses AlexNet {papers.value('inq', 'alexnet.dns_inq_ratio'):g}× (sources below). "
             "robench tests the trend: 5-bit INQ within noise of the float model; "
             "incremental beats one-shot rounding with the same retraining budget, more so at 3 and 2 bits; "
             "the magnitude partition beats a random partition.", "", "## Our scale", ""]
    lines += scale_lines(runs, extra="; INQ restarts the cosine schedule at each of its phases, one-shot "
                                     "quantizes everything before the same budget, uniform retrains with a "
                                     "straight-through estimator, DNS+INQ splits the budget in half")
    lines += ["", "One bit of the b encodes zero, so b-bit INQ has 2^(b−1)+1 values per layer; uniform b-bit is "
              "symmetric with 2^b − 1 levels. Storage ratio = 32 · parameters / bits to store the model "
              "(values and sparse indices).", ""]
    if failed:
        lines += [f"{failed} run(s) of these methods failed and are left out (`robench results --status failed`).", ""]
    if notes:
        lines += ["Notes on the data used:", ""] + [f"- {n}" for n in notes] + [""]
    lines += [f"![accuracy vs bit-width]({figure.name})", "", "## The paper's numbers and ours", ""]
    lines += paper_table(summary, runs)
    lines += ["", "The paper's models and data are far larger than ours; compare the change against the float "
              "model, not the errors.", "", "## Accuracy per bit-width (mean ± std over seeds)", ""]
    for model in models_of(summary):
        lines += [f"**{model}**", ""] + bits_table(summary, model) + [""]
    lines += ["## Did the trend hold?", "",
              "Rule: two mean accuracies are *within noise* when |difference| ≤ max(2 · pooled std, 0.5 points), "
              "pooled std = sqrt((s₁² + s₂²)/2) over the seeds; a method *beats* another at a bit-width when it is "
              "ahead by more than that.", ""]
    claims = (("5-bit INQ within noise of float", claim_float),
              ("incremental beats one-shot, more so at 3 and 2 bits", claim_oneshot),
              ("magnitude partition beats random", claim_partition))
    for model in models_of(summary):
        for number, (title, fn) in enumerate(claims, start=1):
            verdict, text = fn(summary, model)
            lines.append(f"- **{model}, claim {number} ({title}) — {verdict}.** {text[0].upper() + text[1:]}")
    lines += _int8_lines(summary)
    lines += ["", "## Numbers per setting", ""]
    rows = []
    for model in models_of(summary):
        for family in ("dense",) + FAMILY_ORDER + (DNS_INQ,):
            rows += family_rows(summary, model, family)
    lines.append(metric_table(summary, rows, [
        ("accuracy (%)", "accuracy", 100, 2), ("storage ratio", "compression_ratio_bits", 1, 1),
        ("bits/weight", "bits_per_weight", 1, 2), ("param. ratio", "compression_ratio", 1, 2),
        ("latency (ms)", "latency_ms", 1, 2), ("dense latency (ms)", "latency_dense_ms", 1, 2)]))
    lines += [""] + papers.sources_section("inq")
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def _int8_lines(summary) -> list[str]:
    """PyTorch int8 dynamic quantization next to the float model, from the 8-bit uniform runs."""
    rows = [r for model in models_of(summary) for r in family_rows(summary, model, UNIFORM)
            if math.isfinite(r.get("latency_int8_dynamic_ms_mean", math.nan))]
    if not rows:
        return []
    lines = ["", "**PyTorch int8 dynamic quantization** (Linear layers, measured in the 8-bit uniform runs): ", "",
             "| model | int8 accuracy (%) | int8 latency (ms) | float latency (ms) | speedup |", "|" + " --- |" * 5]
    for r in rows:
        lines.append(f"| {r['model']} | {pm(r['accuracy_int8_dynamic_mean'], r['accuracy_int8_dynamic_std'], 100)} | "
                     f"{pm(r['latency_int8_dynamic_ms_mean'], r['latency_int8_dynamic_ms_std'])} | "
                     f"{pm(r['latency_float_ms_mean'], r['latency_float_ms_std'])} | "
                     f"{r['latency_float_ms_mean'] / r['latency_int8_dynamic_ms_mean']:.2f} |")
    return lines


def make(frame, out_dir) -> list[Path]:
    return make_paper(frame, out_dir, suite=SUITE, methods=METHODS, describe=describe, required=REQUIRED,
                      plot=plot, write_report=write_report)
