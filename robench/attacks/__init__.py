"""The shared attack layer: versioned attack configs (foolbox; the AutoAttack attacks: robench's
own APGD-CE and APGD-T, :func:`robench.attacks.apgd.apgd`, and torchattacks' FAB-T and Square),
a batched evaluator that keeps per-sample results, worst-case robust accuracy
with the attack that first broke each point, ρ2, and sanity flags.

    from robench.attacks import evaluate_robustness, sanity_flags
    report = evaluate_robustness(model, x, y, "mnist-default")
    report.as_metrics()["robust_accuracy_linf@0.1"], report.save_npz("run.npz")

Importing this package (or resolving attack configs, as a task's parameter validation
does) imports neither torch, NumPy nor foolbox: the evaluator (:mod:`robench.attacks.evaluate`)
loads when one of its names is first used, and it imports torch, foolbox and torchattacks
only when an attack runs.
"""

from robench.attacks.configs import (ATTACKS_VERSION, PRESETS, AttackConfig, apgd_ce, apgd_t, cw_l2,
                                     deepfool_l2, describe_attacks, fab_t, fgsm, format_epsilon,
                                     get_preset, pgd_l2, pgd_linf, square)
from robench.attacks.sanity import SanityResult, run_sanity_checks, sanity_flags, sanity_messages

_EVALUATE = ("RobustnessReport", "activation_sparsity", "evaluate_robustness", "frozen", "weight_sparsity")

__all__ = [
    "ATTACKS_VERSION", "PRESETS", "AttackConfig", "apgd_ce", "apgd_t", "cw_l2", "deepfool_l2",
    "describe_attacks", "fab_t", "fgsm", "format_epsilon", "get_preset", "pgd_l2", "pgd_linf", "square", "RobustnessReport", "activation_sparsity",
    "evaluate_robustness", "frozen", "weight_sparsity", "SanityResult", "run_sanity_checks",
    "sanity_flags", "sanity_messages",
]


def __getattr__(name: str):
    if name in _EVALUATE:  # NumPy loads with the evaluator, not with the configs
        from robench.attacks import evaluate

        return getattr(evaluate, name)
    raise AttributeError(f"module 'robench.attacks' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
