"""Readable metric names, units and display scales, derived from the metric names alone.

``robust_accuracy_linf@0.0883436`` reads "robust acc. l∞ ε = 0.088 (%)" and shows 100 ×
its value; ``psnr@8`` reads "PSNR at level 8 (dB)". What a name means is fixed by the tasks'
naming (``<what>@<budget>``); the report never imports a task. A name no rule knows is
shown with spaces for underscores, its values as stored.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    """How one metric is shown: ``label`` (no unit), ``unit`` ("%", "dB", "×", ...) and
    ``scale`` (displayed value = stored value × scale)."""
    name: str
    label: str
    unit: str = ""
    scale: float = 1.0

    @property
    def header(self) -> str:
        """The column header: label and unit."""
        return f"{self.label} ({self.unit})" if self.unit else self.label


PERCENT = ("%", 100.0)
TIMES = ("×", 1.0)
POINTS = ("pp", 100.0)  # percentage points: a difference of two fractions

# name → (label, (unit, scale))
_KNOWN: dict[str, tuple[str, tuple[str, float]]] = {
    "accuracy": ("accuracy", PERCENT),
    "test_accuracy": ("clean accuracy", PERCENT),
    "validation_accuracy": ("clean accuracy, validation split", PERCENT),
    # the same value as test_accuracy (validation_accuracy with eval_split: validation)
    "clean_accuracy": ("clean accuracy (full test set)", PERCENT),
    "clean_accuracy_attacked": ("clean accuracy on the attacked points", PERCENT),
    "baseline_accuracy": ("dense baseline accuracy", PERCENT),
    "baseline_test_accuracy": ("baseline accuracy", PERCENT),
    # accuracy − baseline_accuracy: the dense baseline as trained, BEFORE the fine-tuning every
    # method (dense too) gets, so even "dense" shows a gain here
    "accuracy_delta": ("Δ accuracy vs dense baseline before fine-tuning", POINTS),
    "baseline_validation_accuracy": ("baseline accuracy, validation split", PERCENT),
    "rho2_vanilla": ("ρ2 of the vanilla model", ("", 1.0)),
    "psnr_y_mean": ("PSNR-Y, mean over levels", ("dB", 1.0)),
    "ssim_y_mean": ("SSIM-Y, mean over levels", ("", 1.0)),
    "corner_error_hard": ("corner error, test-hard", PERCENT),
    "pixel_error_hard": ("pixel error, test-hard", PERCENT),
    "compression_ratio": ("params compression", TIMES),
    "compression_ratio_bits": ("storage compression", TIMES),
    "bits_per_weight": ("bits / weight", ("bits", 1.0)),
    "sparsity": ("weight sparsity", PERCENT),
    "weight_sparsity": ("weight sparsity", PERCENT),
    "target_sparsity": ("target sparsity", PERCENT),
    "activation_sparsity": ("activation sparsity", PERCENT),
    "flops_ratio": ("FLOP reduction", TIMES),
    "latency_ms": ("CPU latency", ("ms", 1.0)),
    "latency_dense_ms": ("dense CPU latency", ("ms", 1.0)),
    "speedup_measured": ("measured speed-up", TIMES),
    "rho2": ("ρ2 (DeepFool ‖r‖/‖x‖)", ("", 1.0)),
    "eps_ref": ("ε_ref", ("", 1.0)),
    "eps_ref_rho2_vanilla": ("ρ2 of the ε_ref model", ("", 1.0)),
    "deepfool_l2_median": ("DeepFool l2 median", ("", 1.0)),
    "deepfool_l2_failure_rate": ("DeepFool failures", PERCENT),
    "cw_l2_median": ("C&W l2 median", ("", 1.0)),
    "train_seconds": ("training time", ("s", 1.0)),
    "train_cpu_seconds": ("training CPU time", ("s", 1.0)),
    "eval_seconds": ("evaluation time", ("s", 1.0)),
    "pixel_error": ("pixel error", PERCENT),
    "corner_error": ("corner error", PERCENT),
    "type_accuracy": ("room-type accuracy", PERCENT),
    "psnr_mean": ("PSNR, mean over levels", ("dB", 1.0)),
    "psnr_offtrain_mean": ("PSNR off the training level", ("dB", 1.0)),
    "psnr_auc": ("PSNR area under the level curve", ("dB", 1.0)),
    "psnr_base_offtrain_mean": ("base PSNR off the training level", ("dB", 1.0)),
    "psnr_oracle_offtrain_mean": ("oracle PSNR off the training level", ("dB", 1.0)),
    "ssim_mean": ("SSIM, mean over levels", ("", 1.0)),
    "recovery": ("recovery of the base→oracle gap", PERCENT),
    "sketch_error": ("sketch approximation error", ("", 1.0)),
    "additions_saved": ("additions saved", PERCENT),
    # corruption_robustness: errors normalized by the reference model's (1 = 100 % = the reference)
    "mce": ("mCE (vs the reference model)", PERCENT),
    "relative_mce": ("relative mCE (vs the reference model)", PERCENT),
    "corrupted_accuracy": ("accuracy on corrupted images", PERCENT),
    "reference_clean_accuracy": ("reference model's clean accuracy", PERCENT),
    "reference_corrupted_accuracy": ("reference model's accuracy on corrupted images", PERCENT),
    "restored_families": ("corruptions restored", ("", 1.0)),
}
_NORMS = {"linf": "l∞", "l2": "l2", "l1": "l1", "l0": "l0"}
_ATTACK = re.compile(r"^accuracy_under_([a-z0-9_]+?)_(linf|l2|l1|l0)@(.+)$")
_ROBUST = re.compile(r"^robust_accuracy_(linf|l2|l1|l0)@(.+)$")
_RELATIVE = re.compile(r"^(fgs|pgd|fgsm|apgd_ce|apgd_t|fab_t|square|robust)_accuracy@([0-9.]+)x$")
_FIRST_BROKEN = re.compile(r"^broken_first_by_([a-z0-9_]+?)_(linf|l2|l1|l0)@(.+)$")
# attack kinds as the papers write them (names the attack layer gives by default)
ATTACK_NAMES = {"fgsm": "FGSM", "fgs": "FGS", "pgd": "PGD", "apgd_ce": "APGD-CE", "apgd_t": "APGD-T",
                "fab_t": "FAB-T", "square": "Square", "deepfool": "DeepFool", "cw": "C&W", "robust": "worst-case"}


def attack_name(kind: str) -> str:
    return ATTACK_NAMES.get(kind, kind.upper())


def _budget(text: str) -> str:
    """``0.0883436`` → "ε = 0.088"; ``1x`` → "1 ε_ref" (a budget relative to the reference ε)."""
    if text.endswith("x"):
        return f"ε = {number_text(text[:-1])} × ε_ref"
    return f"ε = {number_text(text, 2)}"
_LEVEL = re.compile(r"^(psnr|ssim)(_y)?@(.+)$")
# corruption_robustness: accuracy@<severity>, accuracy_<corruption>@<severity>, (relative_)corruption_error@<corruption>
_SEVERITY = re.compile(r"^accuracy(?:_([a-z0-9_]+))?@([1-5])$")
_CORRUPTION_ERROR = re.compile(r"^(relative_)?corruption_error@([a-z0-9_]+)$")


def number_text(text: str, digits: int = 3) -> str:
    """A budget or level written in a metric name, with at most ``digits`` significant digits."""
    try:
        value = float(text)
    except ValueError:
        return text
    return f"{value:.{digits}g}" if math.isfinite(value) else text


def metric(name: str) -> Metric:
    """How the metric ``name`` is shown (label, unit, scale)."""
    name = str(name)
    suffix = ""
    base = name
    if name.endswith("_hard") and name[:-5] in _KNOWN:
        base, suffix = name[:-5], ", test-hard"
    if base in _KNOWN:
        label, (unit, scale) = _KNOWN[base]
        return Metric(name, label + suffix, unit, scale)
    match = _ROBUST.match(name)
    if match:
        return Metric(name, f"robust acc. {_NORMS[match.group(1)]} ε = {number_text(match.group(2), 2)}", *PERCENT)
    for pattern, wording in ((_ATTACK, "acc. under"), (_FIRST_BROKEN, "first broken by")):
        match = pattern.match(name)  # <what>_<attack>_<norm>@<budget>
        if match:
            kind, norm, budget = match.groups()
            return Metric(name, f"{wording} {attack_name(kind)} {_NORMS[norm]} {_budget(budget)}", *PERCENT)
    match = _RELATIVE.match(name)
    if match:
        return Metric(name, f"{attack_name(match.group(1))} acc. at {number_text(match.group(2))} ε_ref", *PERCENT)
    match = _LEVEL.match(name)
    if match:  # psnr@2, psnr_y@2 (the Y channel of YCbCr)
        what = ("PSNR" if match.group(1) == "psnr" else "SSIM") + ("-Y" if match.group(2) else "")
        return Metric(name, f"{what} at level {number_text(match.group(3))}", "dB" if what.startswith("PSNR") else "")
    match = _SEVERITY.match(name)
    if match:  # accuracy@3 (mean over the corruptions), accuracy_fog@3
        what = f", {match.group(1).replace('_', ' ')}" if match.group(1) else ""
        return Metric(name, f"accuracy{what} at severity {match.group(2)}", *PERCENT)
    match = _CORRUPTION_ERROR.match(name)
    if match:
        return Metric(name, f"{'relative ' if match.group(1) else ''}CE, {match.group(2).replace('_', ' ')}", *PERCENT)
    if name.startswith("sanity_"):
        return Metric(name, "check: " + name[len("sanity_"):].replace("_", " "), "1 = passed")
    return Metric(name, name.replace("_", " "))


def robust_curves(names) -> dict[str, list[tuple[float, str]]]:
    """The robust-accuracy curves among metric ``names``: threat model ("linf", "l2", ...) →
    [(ε, metric name), ...] sorted by ε, from the ``robust_accuracy_<norm>@<ε>`` names."""
    curves: dict[str, list[tuple[float, str]]] = {}
    for name in names:
        match = _ROBUST.match(str(name))
        if match:
            try:
                curves.setdefault(match.group(1), []).append((float(match.group(2)), str(name)))
            except ValueError:
                continue
    return {norm: sorted(points) for norm, points in curves.items()}


def level_curve(names, prefix: str = "psnr") -> list[tuple[float, str]]:
    """[(level, metric name), ...] of the ``<prefix>@<level>`` metrics (``psnr@8``,
    ``accuracy@3``), sorted by level."""
    pattern = re.compile(rf"^{re.escape(prefix)}@(.+)$")
    points = []
    for name in names:
        match = pattern.match(str(name))
        if match:
            try:
                points.append((float(match.group(1)), str(name)))
            except ValueError:
                continue
    return sorted(points)


def norm_symbol(norm: str) -> str:
    return _NORMS.get(norm, norm)


def first_broken_shares(metrics: dict) -> list[dict]:
    """The ``broken_first_by_<attack>_<norm>@<budget>`` metrics of one run as tables, one per
    norm: ``{"norm", "attacks": [...], "rows": [{"budget", "shares": [value or None]}]}``,
    budgets in increasing order (relative budgets ``<f>x`` after the absolute ones)."""
    found: dict[str, dict[str, dict[str, float]]] = {}
    for name, value in metrics.items():
        match = _FIRST_BROKEN.match(str(name))
        if match:
            kind, norm, budget = match.groups()
            found.setdefault(norm, {}).setdefault(budget, {})[kind] = value

    def order(budget: str):
        relative = budget.endswith("x")
        try:
            return (relative, float(budget[:-1] if relative else budget))
        except ValueError:
            return (relative, math.inf)

    tables = []
    for norm in sorted(found):
        attacks = sorted({k for shares in found[norm].values() for k in shares},
                         key=lambda k: list(ATTACK_NAMES).index(k) if k in ATTACK_NAMES else len(ATTACK_NAMES))
        rows = [{"budget": _budget(b), "shares": [found[norm][b].get(k) for k in attacks]}
                for b in sorted(found[norm], key=order)]
        tables.append({"norm": _NORMS.get(norm, norm), "attacks": [attack_name(k) for k in attacks], "rows": rows})
    return tables


# Why a metric can be NaN, where the task does not say (``metrics_info[name][2]``)
NAN_REASONS = {
    "recovery": "no off-training level where the oracle beats the base by 0.1 dB or more",
    "psnr_offtrain_mean": "no test level other than the training level",
    "psnr_base_offtrain_mean": "no test level other than the training level",
    "psnr_oracle_offtrain_mean": "no test level other than the training level",
}
UNCOMPRESSED = "uncompressed: no speed-up to measure"


def nan_reason(name: str, info: dict | None = None) -> str:
    """Why ``name`` may be missing (NaN) in a run: the reason the task declares (a third
    element of its ``metrics_info`` entry, or ``nan_reasons``), else a known one, else "not
    defined for this run"."""
    info = info or {}
    declared = (info.get("metrics_info") or {}).get(name)
    if isinstance(declared, (list, tuple)) and len(declared) > 2 and isinstance(declared[2], str) and declared[2]:
        return declared[2]
    reasons = info.get("nan_reasons")
    if isinstance(reasons, dict) and isinstance(reasons.get(name), str):
        return reasons[name]
    return NAN_REASONS.get(str(name), "not defined for this run")


def undefined_reason(name: str, values: dict, method: str = "") -> str | None:
    """Why a configuration's value of ``name`` means nothing though it was measured, or None:
    a dense (uncompressed) model has no speed-up, only timing noise (``values``: the
    configuration's metrics or their means)."""
    if name != "speedup_measured":
        return None
    ratios = [values.get(k) for k in ("compression_ratio", "compression_ratio_bits")]
    ratios = [float(v) for v in ratios if isinstance(v, (int, float)) and math.isfinite(float(v))]
    if method == "dense" or (ratios and max(ratios) <= 1.0 + 1e-6):
        return UNCOMPRESSED
    return None
