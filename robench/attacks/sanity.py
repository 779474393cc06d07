"""Sanity flags for a :class:`~robench.attacks.evaluate.RobustnessReport` (stored with every run).

Each flag is True when the check passed. They catch the usual ways a robustness number
is wrong: gradient masking (accuracy that rises with ε, or stays high at a budget where
any undefended MNIST model is broken), a minimal-norm attack that silently gave up, and a
foolbox wrapper that does not see the model the user evaluated.

Flags (present only where they apply):

- ``robust_accuracy_monotone_<threat>``: robust accuracy is non-increasing along the ε
  grid of threat ``linf`` / ``l2`` (up to ``monotone_tolerance``, default 0: exact).
- ``robust_accuracy_near_zero_<threat>``: at the largest ε, robust accuracy is at most
  ``near_zero_threshold`` (default :data:`NEAR_ZERO_THRESHOLD` = 0.05). Only checked when
  that ε is "large", i.e. ≥ :data:`LARGE_EPSILON` × (high − low) of the bounds
  (l∞ 0.3, l2 3.0: budgets at which an undefended MNIST classifier is broken; the
  ``mnist-default`` preset reaches both). For a certified-robust model this flag is
  *expected* to fail: read it as "make sure this is not gradient masking".
- ``<deepfool>_complete``: every DeepFool attack broke every correctly classified point.
- ``worst_case_le_every_attack_<threat>``: the worst case is at most every single attack
  of that norm, point by point: no point the first-broken record counts as robust at ε was
  broken there by one of the attacks on its own (so robust accuracy ≤ accuracy under each
  attack at every ε). It fails when the stored record and the attacks' results disagree
  (a corrupted or hand-edited report, or a bug in the aggregation).
- ``wrapped_matches_unwrapped``: the foolbox-wrapped model's clean accuracy equals the
  plain ``model(x)`` accuracy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from robench.attacks.configs import format_epsilon

NEAR_ZERO_THRESHOLD = 0.05
LARGE_EPSILON = {"linf": 0.3, "l2": 3.0}  # × (high − low) of the input bounds


@dataclass
class SanityResult:
    """flags: name → passed; messages: one human-readable line per failed flag."""
    flags: dict[str, bool] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(self.flags.values())

    def as_metrics(self) -> dict[str, float]:
        """``sanity_<flag>`` → 1.0 (passed) / 0.0 (failed), for the results store."""
        return {f"sanity_{name}": float(ok) for name, ok in self.flags.items()}


def run_sanity_checks(report, *, near_zero_threshold: float = NEAR_ZERO_THRESHOLD,
                      large_epsilon: dict[str, float] | None = None,
                      monotone_tolerance: float = 0.0) -> SanityResult:
    """All checks on ``report``; see the module docstring for the flags."""
    result = SanityResult()
    large = dict(LARGE_EPSILON if large_epsilon is None else large_epsilon)
    lo, hi = report.meta.get("bounds", (0.0, 1.0))
    scale = float(hi) - float(lo)

    def record(name: str, ok: bool, message: str) -> None:
        result.flags[name] = bool(ok)
        if not ok:
            result.messages.append(message)

    for threat in ("linf", "l2"):
        curve = report.robust_accuracy(threat)
        if not curve:
            continue
        eps = list(curve)
        acc = [curve[e] for e in eps]
        rises = [(eps[k], eps[k + 1]) for k in range(len(eps) - 1) if acc[k + 1] > acc[k] + monotone_tolerance]
        record(f"robust_accuracy_monotone_{threat}", not rises,
               f"{threat} robust accuracy rises with epsilon between "
               + ", ".join(f"{format_epsilon(a)}->{format_epsilon(b)} ({curve[a]:.3f}->{curve[b]:.3f})" for a, b in rises)
               + " (attack too weak or gradient masking)")
        eps_max = eps[-1]
        if threat in large and eps_max >= large[threat] * scale - 1e-12:
            record(f"robust_accuracy_near_zero_{threat}", curve[eps_max] <= near_zero_threshold,
                   f"{threat} robust accuracy at the largest epsilon {format_epsilon(eps_max)} is "
                   f"{curve[eps_max]:.3f} > {near_zero_threshold:g} (gradient masking, a weak attack, "
                   f"or a genuinely robust model: cross-check)")
        _check_worst_case(report, threat, record)

    correct = report.clean_correct
    for cfg in report.configs:
        if cfg.kind != "deepfool":
            continue
        failed = int((correct & ~(report.minimal_norms[cfg.name] < math.inf)).sum())
        record(f"{cfg.name}_complete", failed == 0,
               f"{cfg.name} failed on {failed} of {int(correct.sum())} correctly classified points "
               f"within {cfg.steps} steps (their norm is inf; rho2 leaves them out)")

    wrapped, plain = float(correct.mean()), float(report.clean_correct_unwrapped.mean())
    record("wrapped_matches_unwrapped", wrapped == plain,
           f"clean accuracy of the foolbox-wrapped model ({wrapped:.4f}) differs from the plain "
           f"model's ({plain:.4f}): preprocessing, bounds or device mismatch")
    return result


def sanity_flags(report, **kwargs) -> dict[str, bool]:
    """Flag name → True when the check passed (see :func:`run_sanity_checks`)."""
    return run_sanity_checks(report, **kwargs).flags


def sanity_messages(report, **kwargs) -> list[str]:
    """One human-readable line per failed check; empty when all passed."""
    return run_sanity_checks(report, **kwargs).messages


def _check_worst_case(report, threat: str, record) -> None:
    """``worst_case_le_every_attack_<threat>`` (module doc): the first violation, in words."""
    grid, robust = report.robust_mask(threat)
    if not len(grid):
        return
    for cfg in report.configs:
        if cfg.norm != threat:
            continue
        bad = robust & report.broken_mask(cfg.name, grid)
        if bad.any():
            k = int(bad.any(axis=0).argmax())
            own = float((report.clean_correct & ~report.broken_mask(cfg.name, grid)[:, k]).mean())
            record(f"worst_case_le_every_attack_{threat}", False,
                   f"{threat} worst case is not <= every attack: at epsilon {format_epsilon(grid[k])} robust "
                   f"accuracy {float(robust[:, k].mean()):.3f} counts {int(bad[:, k].sum())} point(s) that "
                   f"{cfg.name} broke (its own accuracy there: {own:.3f}); the first-broken record disagrees "
                   f"with the attacks' results")
            return
    record(f"worst_case_le_every_attack_{threat}", True, "")
