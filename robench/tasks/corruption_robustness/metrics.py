"""Corruption errors, ImageNet-C style (Hendrycks & Dietterich 2019, section 3): pure
functions of error rates, no torch.

With E_{s,f} the top-1 error (in [0, 1]) of the model at severity s of corruption f, and
E^ref the same for the reference model (ImageNet-C's AlexNet; here a named, cached model of
the task):

* corruption error  CE_f = Σ_s E_{s,f} / Σ_s E^ref_{s,f}                (1 = the reference)
* relative CE       rCE_f = Σ_s (E_{s,f} − E_clean) / Σ_s (E^ref_{s,f} − E^ref_clean)
* mCE and relative mCE: their means over the families.

A CE whose denominator is 0 (the reference never errs on that family) is NaN, and so is a
relative CE whose reference drop is ≤ 0 (the reference is not hurt by the corruption:
there is nothing to normalize by); the means are over the families where they are defined,
and NaN when none is.
"""

from __future__ import annotations

import math
from typing import Mapping


def corruption_error(errors: Mapping[int, float], reference: Mapping[int, float]) -> float:
    """CE of one family: ``errors`` and ``reference`` map severity → error rate (the same
    severities)."""
    _same_severities(errors, reference)
    denominator = sum(reference[s] for s in errors)
    return sum(errors.values()) / denominator if denominator > 0 else math.nan


def relative_corruption_error(errors: Mapping[int, float], clean_error: float, reference: Mapping[int, float],
                              reference_clean_error: float) -> float:
    """Relative CE of one family: the model's summed drop from its clean error over the
    reference's (NaN when the reference's summed drop is ≤ 0)."""
    _same_severities(errors, reference)
    denominator = sum(reference[s] - reference_clean_error for s in errors)
    return sum(e - clean_error for e in errors.values()) / denominator if denominator > 0 else math.nan


def mean_defined(values) -> float:
    """Mean of the finite ``values`` (NaN when there is none)."""
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else math.nan


def _same_severities(errors, reference) -> None:
    if set(errors) != set(reference) or not errors:
        raise ValueError(f"severities {sorted(errors)} of the model and {sorted(reference)} of the reference differ")


def corruption_metrics(accuracy: Mapping[str, Mapping[int, float]], clean_accuracy: float,
                       reference: Mapping[str, Mapping[int, float]],
                       reference_clean_accuracy: float) -> dict[str, float]:
    """Every metric of a run from accuracies (family → severity → accuracy, and clean):
    ``accuracy_<family>@<severity>``, ``accuracy@<severity>`` (mean over the families),
    ``corrupted_accuracy`` (mean over families and severities), ``corruption_error@<family>``,
    ``relative_corruption_error@<family>``, ``mce``, ``relative_mce``, ``clean_accuracy``, and
    the reference's ``reference_clean_accuracy`` and ``reference_corrupted_accuracy``."""
    out: dict[str, float] = {"clean_accuracy": float(clean_accuracy)}
    severities = sorted({s for per in accuracy.values() for s in per})
    for family, per in accuracy.items():
        for s, value in sorted(per.items()):
            out[f"accuracy_{family}@{s}"] = float(value)
    for s in severities:
        out[f"accuracy@{s}"] = sum(per[s] for per in accuracy.values()) / len(accuracy)
    out["corrupted_accuracy"] = sum(sum(per.values()) for per in accuracy.values()) / \
        sum(len(per) for per in accuracy.values())
    ces, rces = [], []
    for family, per in accuracy.items():
        errors = {s: 1.0 - a for s, a in per.items()}
        ref = {s: 1.0 - a for s, a in reference[family].items()}
        ce = corruption_error(errors, ref)
        rce = relative_corruption_error(errors, 1.0 - clean_accuracy, ref, 1.0 - reference_clean_accuracy)
        out[f"corruption_error@{family}"], out[f"relative_corruption_error@{family}"] = ce, rce
        ces.append(ce)
        rces.append(rce)
    out["mce"], out["relative_mce"] = mean_defined(ces), mean_defined(rces)
    out["reference_clean_accuracy"] = float(reference_clean_accuracy)
    out["reference_corrupted_accuracy"] = sum(sum(per.values()) for per in reference.values()) / \
        sum(len(per) for per in reference.values())
    return out
