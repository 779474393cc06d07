"""Standardized, versioned attack configurations on top of foolbox 3.

An :class:`AttackConfig` names one foolbox attack and every parameter that changes its
result. Two modes:

- **minimal** (``epsilons=None``): the attack searches the smallest perturbation that
  changes the prediction (DeepFool, Carlini–Wagner); the evaluator stores its norm per sample.
- **fixed-ε** (``epsilons=(ε₁ < ε₂ < ...)``): the attack runs once per ε inside the ε-ball
  (FGSM, PGD); the evaluator stores success per (sample, ε).

Kinds, norms and the foolbox class each maps to:

=========  ======  ===============================  =====================================
kind       norm    foolbox                          defaults (version 1)
=========  ======  ===============================  =====================================
deepfool   l2      ``L2DeepFoolAttack``             steps 50, overshoot 0.02, candidates 10
deepfool   linf    ``LinfDeepFoolAttack``           same
cw         l2      ``L2CarliniWagnerAttack``        5 binary-search steps × 100 Adam steps,
                                                    stepsize 0.1, initial_const 1
fgsm       linf    ``LinfFastGradientAttack``       one step of size ε (FGSM)
fgsm       l2      ``L2FastGradientAttack``         one step of size ε (FGM)
pgd        linf    ``LinfPGD``                      40 steps, step 2.5·ε/steps, random start
pgd        l2      ``L2PGD``                        50 steps, step 2.5·ε/steps, random start
=========  ======  ===============================  =====================================

The C&W budget (5 binary-search steps × 100 Adam steps) is deliberately small so that a
1000-image MNIST evaluation fits a CPU in minutes; foolbox's own default is 9×10000. With
so few steps foolbox's Adam stepsize 0.01 is useless on MNIST: C&W optimizes in tanh space,
where the saturated pixels 0 and 1 sit at ±7.25 (``arctanh(0.999999)``) and cannot move in
100 steps of 0.01; on a trained LeNet-5 its median norm was twice DeepFool's. Stepsize 0.1
with ``initial_const=1`` (then ×10 until found, bisection below) gave a median 4% below
DeepFool's, beating it on ~75% of the points, with every point broken (measured on 100
MNIST-5k test images). It is an *upper bound* on the minimal norm, like every attack:
report it as "C&W-L2 (5×100)". The step size 2.5·ε/steps for
PGD is Madry et al.'s rule (the iterate can travel 2.5 ε-radii in total).

A config's ``version`` is part of every stored result: change a default here → bump
:data:`ATTACKS_VERSION`, so old and new numbers are never mixed.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, fields
from types import MappingProxyType
from typing import Any, Mapping

from robench.errors import UserError

ATTACKS_VERSION = "1"

KINDS = ("deepfool", "cw", "fgsm", "pgd")
NORMS = ("l2", "linf")
MINIMAL_KINDS = ("deepfool", "cw")

# (kind, norm) -> foolbox class name
FOOLBOX_CLASSES = {
    ("deepfool", "l2"): "L2DeepFoolAttack",
    ("deepfool", "linf"): "LinfDeepFoolAttack",
    ("cw", "l2"): "L2CarliniWagnerAttack",
    ("fgsm", "linf"): "LinfFastGradientAttack",
    ("fgsm", "l2"): "L2FastGradientAttack",
    ("pgd", "linf"): "LinfProjectedGradientDescentAttack",
    ("pgd", "l2"): "L2ProjectedGradientDescentAttack",
}

# Parameters each kind takes and their version-1 defaults. ``None`` for rel_stepsize
# means 2.5 / steps (Madry et al.).
_DEFAULTS: dict[str, dict[str, Any]] = {
    "deepfool": {"steps": 50, "overshoot": 0.02, "candidates": 10},
    "cw": {"binary_search_steps": 5, "steps": 100, "stepsize": 0.1, "initial_const": 1.0,
           "confidence": 0.0},
    "fgsm": {"steps": 1, "random_start": False},
    "pgd": {"steps": None, "rel_stepsize": None, "random_start": True, "restarts": 1},
}
_PGD_STEPS = {"linf": 40, "l2": 50}
_PARAMS = ("steps", "overshoot", "candidates", "binary_search_steps", "stepsize",
           "initial_const", "confidence", "rel_stepsize", "random_start", "restarts")


@dataclass(frozen=True)
class AttackConfig:
    """One attack with all the parameters that change its result.

    kind: ``deepfool`` | ``cw`` | ``fgsm`` | ``pgd``; norm: ``l2`` | ``linf``.
    epsilons: ``None`` for the minimal-perturbation kinds (deepfool, cw); a strictly
    increasing tuple of non-negative perturbation budgets (in input units, same norm) for
    fgsm and pgd. Parameters that do not apply to ``kind`` must stay ``None``; those left
    ``None`` get the kind's version-1 default (see the module docstring).
    name: key of this attack in reports and metric names (default ``<kind>_<norm>``).
    """

    kind: str
    norm: str
    epsilons: tuple[float, ...] | None = None
    steps: int | None = None
    overshoot: float | None = None
    candidates: int | None = None
    binary_search_steps: int | None = None
    stepsize: float | None = None
    initial_const: float | None = None
    confidence: float | None = None
    rel_stepsize: float | None = None
    random_start: bool | None = None
    restarts: int | None = None
    name: str | None = None
    version: str = ATTACKS_VERSION

    def __post_init__(self):
        label = self.name or f"{self.kind}_{self.norm}"
        if self.kind not in KINDS:
            raise UserError(f"attack {label!r}: unknown kind {self.kind!r}, expected one of {', '.join(KINDS)}")
        if (self.kind, self.norm) not in FOOLBOX_CLASSES:
            norms = [n for (k, n) in FOOLBOX_CLASSES if k == self.kind]
            raise UserError(f"attack {label!r}: kind {self.kind!r} does not support norm {self.norm!r}, "
                            f"expected one of {', '.join(norms)}")
        set_ = object.__setattr__  # frozen: fill defaults once, here
        set_(self, "name", label)
        defaults = _DEFAULTS[self.kind]
        for param in _PARAMS:
            value = getattr(self, param)
            if param not in defaults:
                if value is not None:
                    raise UserError(f"attack {label!r}: parameter {param!r} does not apply to kind "
                                    f"{self.kind!r} (it takes {', '.join(defaults)})")
            elif value is None:
                set_(self, param, defaults[param])
        if self.kind == "pgd":
            if self.steps is None:
                set_(self, "steps", _PGD_STEPS[self.norm])
            if self.rel_stepsize is None:
                set_(self, "rel_stepsize", 2.5 / self.steps)
        self._validate(label)

    def _validate(self, label: str) -> None:
        minimal = self.kind in MINIMAL_KINDS
        if minimal and self.epsilons is not None:
            raise UserError(f"attack {label!r}: {self.kind} runs in minimal-perturbation mode and takes "
                            f"epsilons=None, got {self.epsilons!r}")
        if not minimal:
            if self.epsilons is None:
                raise UserError(f"attack {label!r}: {self.kind} needs an epsilon grid, e.g. epsilons=(0.1, 0.3)")
            try:
                eps = tuple(float(e) for e in self.epsilons)
            except (TypeError, ValueError):
                raise UserError(f"attack {label!r}: epsilons must be a sequence of numbers, "
                                f"got {self.epsilons!r}") from None
            if not eps:
                raise UserError(f"attack {label!r}: epsilons is empty, expected at least one budget")
            if any(not math.isfinite(e) or e < 0 for e in eps):
                raise UserError(f"attack {label!r}: epsilons must be finite and non-negative, got {list(eps)}")
            if any(b <= a for a, b in zip(eps, eps[1:])):
                raise UserError(f"attack {label!r}: epsilons must be strictly increasing, got {list(eps)}")
            labels = [format_epsilon(e) for e in eps]
            if len(set(labels)) != len(labels):
                raise UserError(f"attack {label!r}: epsilons {list(eps)} are too close to name apart "
                                f"in metric names ({labels})")
            object.__setattr__(self, "epsilons", eps)
        if self.kind == "fgsm" and self.steps != 1:
            raise UserError(f"attack {label!r}: fgsm is a single step, got steps={self.steps}; use kind 'pgd'")
        for param in ("steps", "candidates", "binary_search_steps", "restarts"):
            value = getattr(self, param)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise UserError(f"attack {label!r}: {param} must be a positive integer, got {value!r}")
        for param in ("overshoot", "stepsize", "initial_const", "confidence", "rel_stepsize"):
            value = getattr(self, param)
            if value is not None and (not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0):
                raise UserError(f"attack {label!r}: {param} must be a non-negative number, got {value!r}")
        if not self.name.replace("_", "").replace("-", "").isalnum():
            raise UserError(f"attack name {self.name!r}: use letters, digits, '_' and '-' only")

    # -- views -------------------------------------------------------------------------
    @property
    def minimal(self) -> bool:
        """True for minimal-perturbation attacks (per-sample norm), False for fixed-ε ones."""
        return self.epsilons is None

    @property
    def foolbox_class(self) -> str:
        return FOOLBOX_CLASSES[(self.kind, self.norm)]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict of every parameter that applies (defaults filled in) plus the foolbox class."""
        out: dict[str, Any] = {"name": self.name, "kind": self.kind, "norm": self.norm,
                               "epsilons": None if self.epsilons is None else list(self.epsilons)}
        for param in _DEFAULTS[self.kind]:
            out[param] = getattr(self, param)
        out["foolbox"] = self.foolbox_class
        out["version"] = self.version
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "AttackConfig":
        """Inverse of :meth:`to_dict` (the ``foolbox`` key is derived, so it is ignored)."""
        known = {f.name for f in fields(cls)}
        extra = set(data) - known - {"foolbox"}
        if extra:
            raise UserError(f"attack config {data.get('name', '?')!r}: unknown keys {sorted(extra)}")
        kwargs = {k: v for k, v in data.items() if k in known}
        if kwargs.get("epsilons") is not None:
            kwargs["epsilons"] = tuple(kwargs["epsilons"])
        return cls(**kwargs)

    def build(self):
        """The configured foolbox attack object (imports foolbox)."""
        import foolbox.attacks as fa

        cls = getattr(fa, self.foolbox_class)
        if self.kind == "deepfool":
            return cls(steps=self.steps, overshoot=self.overshoot, candidates=self.candidates, loss="logits")
        if self.kind == "cw":
            return cls(binary_search_steps=self.binary_search_steps, steps=self.steps,
                       stepsize=self.stepsize, initial_const=self.initial_const,
                       confidence=self.confidence, abort_early=True)
        if self.kind == "fgsm":
            return cls(random_start=self.random_start)
        attack = cls(rel_stepsize=self.rel_stepsize, steps=self.steps, random_start=self.random_start)
        return attack.repeat(self.restarts) if self.restarts > 1 else attack

    def gradient_evaluations(self) -> int | None:
        """Forward+backward passes per sample for fixed-ε attacks (all ε); None for minimal ones."""
        if self.minimal:
            return None
        return self.steps * self.restarts * len(self.epsilons)


def format_epsilon(eps: float) -> str:
    """ε as it appears in metric names: ``0.1`` → ``"0.1"``, ``1.0`` → ``"1"`` (6 significant digits)."""
    return f"{float(eps):g}"


def deepfool_l2(**kw) -> AttackConfig:
    """L2 DeepFool, minimal mode (steps 50, overshoot 0.02): the r behind ρ2."""
    return AttackConfig("deepfool", "l2", **kw)


def cw_l2(**kw) -> AttackConfig:
    """L2 Carlini–Wagner, minimal mode (5 binary-search steps × 100 steps by default)."""
    return AttackConfig("cw", "l2", **kw)


def fgsm(epsilons, **kw) -> AttackConfig:
    """FGSM (l∞, one signed-gradient step of size ε)."""
    return AttackConfig("fgsm", "linf", epsilons=tuple(epsilons), **kw)


def pgd_linf(epsilons, **kw) -> AttackConfig:
    """PGD in the l∞ ball (40 steps of 2.5·ε/40, random start by default)."""
    return AttackConfig("pgd", "linf", epsilons=tuple(epsilons), **kw)


def pgd_l2(epsilons, **kw) -> AttackConfig:
    """PGD in the l2 ball (50 steps of 2.5·ε/50, random start by default)."""
    return AttackConfig("pgd", "l2", epsilons=tuple(epsilons), **kw)


MNIST_LINF_EPSILONS = (0.05, 0.1, 0.2, 0.3)
MNIST_L2_EPSILONS = (0.5, 1.0, 2.0, 3.0)

PRESETS: Mapping[str, tuple[AttackConfig, ...]] = MappingProxyType({
    # The standard MNIST evaluation: both minimal-norm attacks (ρ2, C&W median), the
    # fixed-ε attacks up to budgets where an undefended model must reach ~0 accuracy.
    "mnist-default": (
        deepfool_l2(),
        cw_l2(),
        fgsm(MNIST_LINF_EPSILONS),
        pgd_linf(MNIST_LINF_EPSILONS),
        pgd_l2(MNIST_L2_EPSILONS),
    ),
    # Seconds, not minutes: every code path with tiny budgets (CI and smoke suites only;
    # never report these numbers as robustness).
    "smoke": (
        deepfool_l2(steps=20),
        cw_l2(binary_search_steps=2, steps=20),
        fgsm((0.1, 0.3)),
        pgd_linf((0.1, 0.3), steps=5),
        pgd_l2((1.0, 3.0), steps=5),
    ),
})


def get_preset(name: str) -> tuple[AttackConfig, ...]:
    """The attack list of a named preset; an unknown name gets a "did you mean" answer."""
    try:
        return PRESETS[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(PRESETS), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise UserError(f"unknown attack preset {name!r}{hint} (known: {', '.join(PRESETS)})") from None


def resolve_attacks(attacks) -> tuple[AttackConfig, ...]:
    """A preset name, one config or a sequence of configs/dicts → tuple of configs, names unique."""
    if isinstance(attacks, str):
        configs = get_preset(attacks)
    elif isinstance(attacks, AttackConfig):
        configs = (attacks,)
    else:
        try:
            items = list(attacks)
        except TypeError:
            raise UserError(f"attacks must be a preset name or a list of AttackConfig, got {type(attacks).__name__}") from None
        configs = tuple(a if isinstance(a, AttackConfig) else AttackConfig.from_dict(a) if isinstance(a, Mapping)
                        else _bad_attack(a) for a in items)
    names = [c.name for c in configs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise UserError(f"attack names must be unique, {dupes} appear twice; give one of them name=")
    return configs


def _bad_attack(item):
    raise UserError(f"attacks must hold AttackConfig objects, got {type(item).__name__}")
