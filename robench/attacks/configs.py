"""Standardized, versioned attack configurations: foolbox 3, torchattacks 3.5 and robench's own APGD.

An :class:`AttackConfig` names one attack and every parameter that changes its result.
Two modes:

- **minimal** (``epsilons=None``): the attack searches the smallest perturbation that
  changes the prediction (DeepFool, Carlini–Wagner); the evaluator stores its norm per sample.
- **fixed-ε** (``epsilons=(ε₁ < ε₂ < ...)``): the attack runs once per ε inside the ε-ball
  (FGSM, PGD, the AutoAttack attacks); the evaluator stores success per (sample, ε).

Kinds, norms and the implementation each maps to (defaults of version 3):

=========  ==========  ======================================  ==========================================
kind       norm        class                                   defaults
=========  ==========  ======================================  ==========================================
deepfool   l2, linf    foolbox ``L2DeepFoolAttack`` / Linf     steps 50, overshoot 0.02, candidates 10
cw         l2          foolbox ``L2CarliniWagnerAttack``       5 binary-search steps × 100 Adam steps,
                                                               stepsize 0.1, initial_const 1
fgsm       linf, l2    foolbox ``LinfFastGradientAttack`` / L2 one step of size ε (FGSM / FGM)
pgd        linf, l2    foolbox ``LinfPGD`` / ``L2PGD``         40 (l∞) / 50 (l2) steps, step 2.5·ε/steps,
                                                               random start, restarts 1
apgd_ce    linf, l2    robench ``APGD-CE`` (attacks/apgd.py)   100 steps, restarts 1, rho 0.75
apgd_t     linf, l2    robench ``APGD-T`` (targeted DLR)       100 steps, restarts 1, 9 target classes,
                                                               rho 0.75
fab_t      linf, l2    torchattacks ``FAB`` (multi-targeted)   100 steps, restarts 1, 9 target classes
square     linf, l2    torchattacks ``Square`` (margin loss)   5000 queries, restarts 1, p_init 0.8
=========  ==========  ======================================  ==========================================

**The AutoAttack kinds** (Croce & Hein, ICML 2020, "Reliable evaluation of adversarial
robustness with an ensemble of diverse parameter-free attacks") default to the settings of
the paper's *standard* version, as its reference code (fra31/auto-attack) sets them:
APGD-CE 100 iterations, 1 restart; APGD-T 100 iterations, 1 restart per target, the 9
highest-scoring wrong classes as targets, targeted DLR loss; FAB-T 100 iterations, 1
restart, 9 targets (α_max 0.1, η 1.05, β 0.9: torchattacks' defaults, the paper's); Square
5000 queries, 1 restart, p_init 0.8, margin loss, the p schedule *not* rescaled to the query
budget (``resc_schedule=False``, as AutoAttack builds it); APGD's ρ = 0.75 and its
checkpoints at 22 %, 6 %, 3 % of the iterations are the paper's. APGD-CE and APGD-T are
robench's own implementation (:mod:`robench.attacks.apgd`), whose iterates and returned
examples are those of torchattacks 3.5.1's ``APGD``/``APGDT`` to the last bit (tested), at
the same passes with less host work per iteration; FAB-T and Square are torchattacks'.
Where torchattacks 3.5.1 differs from the paper's code, and what robench does about it:

- torchattacks' own ``AutoAttack`` class leaves APGD, APGD-T and FAB at the library
  default of **10** iterations (the paper: 100) and Square's schedule rescaled; robench
  does not use that class: it builds each attack with the paper's settings above.
- torchattacks' ``APGDT`` with the l2 norm steps every point with the step size of the
  batch's first point (``step_size[0]``); the paper's code, and robench's APGD-T, keep one
  step size per point (on a batch of one point the two agree).
- FAB-T and Square draw their random starts from torch's global generator, which they
  reseed (``torch.manual_seed(seed)``); the evaluator runs them inside
  ``torch.random.fork_rng``, so the caller's generators and foolbox's random starts are
  left as they were. robench's APGD draws from its own generator seeded alike. Every
  attack is seeded per (run seed, attack, batch, ε): reproducible per seed.
- They work on inputs in [0, 1] and 4-D batches: the evaluator maps the declared
  ``bounds`` onto [0, 1] (ε scaled alike) and feeds flat inputs as (N, 1, 1, D); Square
  needs image inputs (N, C, H, W). The targeted DLR loss needs at least 4 classes.
  The number of targets is capped at (classes − 1).
- The evaluator does not take a library's word for success: a point counts as broken only
  if the model misclassifies the returned input *and* that input lies in the ε-ball and
  the box (a violation is counted in ``meta["invalid_adversarials"]``).

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
:data:`ATTACKS_VERSION`, so old and new numbers are never mixed. Version 2 added the
AutoAttack kinds and put APGD-CE and APGD-T into the ``mnist-default`` and ``smoke``
presets. Version 3 runs APGD-CE and APGD-T with robench's own APGD: the same results as
version 2 except l2 APGD-T (one step size per point, as the paper).
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, fields, replace
from types import MappingProxyType
from typing import Any, Mapping

from robench.errors import UserError

ATTACKS_VERSION = "3"

KINDS = ("deepfool", "cw", "fgsm", "pgd", "apgd_ce", "apgd_t", "fab_t", "square")
NORMS = ("l2", "linf")
MINIMAL_KINDS = ("deepfool", "cw")

# (kind, norm) -> (library, class name); "robench": robench.attacks.apgd
LIBRARY_CLASSES = {
    ("deepfool", "l2"): ("foolbox", "L2DeepFoolAttack"),
    ("deepfool", "linf"): ("foolbox", "LinfDeepFoolAttack"),
    ("cw", "l2"): ("foolbox", "L2CarliniWagnerAttack"),
    ("fgsm", "linf"): ("foolbox", "LinfFastGradientAttack"),
    ("fgsm", "l2"): ("foolbox", "L2FastGradientAttack"),
    ("pgd", "linf"): ("foolbox", "LinfProjectedGradientDescentAttack"),
    ("pgd", "l2"): ("foolbox", "L2ProjectedGradientDescentAttack"),
    **{(kind, norm): (library, cls) for kind, library, cls in
       (("apgd_ce", "robench", "APGD-CE"), ("apgd_t", "robench", "APGD-T"),
        ("fab_t", "torchattacks", "FAB"), ("square", "torchattacks", "Square"))
       for norm in NORMS},
}
FOOLBOX_CLASSES = {key: cls for key, (lib, cls) in LIBRARY_CLASSES.items() if lib == "foolbox"}

# Parameters each kind takes and their version-3 defaults. ``None`` for rel_stepsize
# means 2.5 / steps (Madry et al.).
_DEFAULTS: dict[str, dict[str, Any]] = {
    "deepfool": {"steps": 50, "overshoot": 0.02, "candidates": 10},
    "cw": {"binary_search_steps": 5, "steps": 100, "stepsize": 0.1, "initial_const": 1.0,
           "confidence": 0.0},
    "fgsm": {"steps": 1, "random_start": False},
    "pgd": {"steps": None, "rel_stepsize": None, "random_start": True, "restarts": 1},
    # the AutoAttack paper's standard version (module docstring)
    "apgd_ce": {"steps": 100, "restarts": 1, "rho": 0.75},
    "apgd_t": {"steps": 100, "restarts": 1, "target_classes": 9, "rho": 0.75},
    "fab_t": {"steps": 100, "restarts": 1, "target_classes": 9},
    "square": {"queries": 5000, "restarts": 1, "p_init": 0.8},
}
_PGD_STEPS = {"linf": 40, "l2": 50}
_PARAMS = ("steps", "overshoot", "candidates", "binary_search_steps", "stepsize",
           "initial_const", "confidence", "rel_stepsize", "random_start", "restarts",
           "target_classes", "rho", "queries", "p_init")
_COUNTS = ("steps", "candidates", "binary_search_steps", "restarts", "target_classes", "queries")
_FRACTIONS = ("rho", "p_init")  # in (0, 1]


@dataclass(frozen=True)
class AttackConfig:
    """One attack with all the parameters that change its result.

    kind: one of :data:`KINDS`; norm: ``l2`` | ``linf``.
    epsilons: ``None`` for the minimal-perturbation kinds (deepfool, cw); a strictly
    increasing tuple of non-negative perturbation budgets (in input units, same norm) for
    the fixed-ε kinds. Parameters that do not apply to ``kind`` must stay ``None``; those
    left ``None`` get the kind's default (see the module docstring). ``target_classes``:
    how many of the highest-scoring wrong classes a targeted attack tries, one after the
    other (capped at classes − 1 when it runs).
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
    target_classes: int | None = None
    rho: float | None = None
    queries: int | None = None
    p_init: float | None = None
    name: str | None = None
    version: str = ATTACKS_VERSION

    def __post_init__(self):
        label = self.name or f"{self.kind}_{self.norm}"
        if self.kind not in KINDS:
            raise UserError(f"attack {label!r}: unknown kind {self.kind!r}, expected one of {', '.join(KINDS)}")
        if (self.kind, self.norm) not in LIBRARY_CLASSES:
            norms = [n for (k, n) in LIBRARY_CLASSES if k == self.kind]
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
        for param in _COUNTS:
            value = getattr(self, param)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise UserError(f"attack {label!r}: {param} must be a positive integer, got {value!r}")
        for param in ("overshoot", "stepsize", "initial_const", "confidence", "rel_stepsize", *_FRACTIONS):
            value = getattr(self, param)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not math.isfinite(value) or value < 0):
                raise UserError(f"attack {label!r}: {param} must be a non-negative number, got {value!r}")
        for param in _FRACTIONS:
            value = getattr(self, param)
            if value is not None and not 0 < value <= 1:
                raise UserError(f"attack {label!r}: {param} must lie in (0, 1], got {value!r}")
        if not self.name.replace("_", "").replace("-", "").isalnum():
            raise UserError(f"attack name {self.name!r}: use letters, digits, '_' and '-' only")

    # -- views -------------------------------------------------------------------------
    @property
    def minimal(self) -> bool:
        """True for minimal-perturbation attacks (per-sample norm), False for fixed-ε ones."""
        return self.epsilons is None

    @property
    def library(self) -> str:
        """``"foolbox"``, ``"torchattacks"`` or ``"robench"`` (its APGD): who implements this attack."""
        return LIBRARY_CLASSES[(self.kind, self.norm)][0]

    @property
    def library_class(self) -> str:
        return LIBRARY_CLASSES[(self.kind, self.norm)][1]

    @property
    def foolbox_class(self) -> str | None:
        """The foolbox class name (None for the other kinds)."""
        return self.library_class if self.library == "foolbox" else None

    def with_epsilons(self, epsilons) -> "AttackConfig":
        """The same attack on another ε grid (a task that derives its budgets at run time)."""
        return replace(self, epsilons=tuple(epsilons))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict of every parameter that applies (defaults filled in) plus the
        implementing class under the library's name (``"foolbox"``, ``"torchattacks"``, ``"robench"``)."""
        out: dict[str, Any] = {"name": self.name, "kind": self.kind, "norm": self.norm,
                               "epsilons": None if self.epsilons is None else list(self.epsilons)}
        for param in _DEFAULTS[self.kind]:
            out[param] = getattr(self, param)
        out[self.library] = self.library_class
        out["version"] = self.version
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "AttackConfig":
        """Inverse of :meth:`to_dict` (the library keys are derived, so they are ignored)."""
        known = {f.name for f in fields(cls)}
        extra = set(data) - known - {"foolbox", "torchattacks", "robench"}
        if extra:
            raise UserError(f"attack config {data.get('name', '?')!r}: unknown keys {sorted(extra)}")
        kwargs = {k: v for k, v in data.items() if k in known}
        if kwargs.get("epsilons") is not None:
            kwargs["epsilons"] = tuple(kwargs["epsilons"])
        return cls(**kwargs)

    def build(self):
        """The configured foolbox attack object (imports foolbox); the torchattacks kinds
        are built per model and ε by :meth:`build_torchattacks`, robench's APGD takes
        :meth:`apgd_arguments`."""
        import foolbox.attacks as fa

        if self.library != "foolbox":
            raise TypeError(f"attack {self.name!r} is not a foolbox attack ({self.library})")
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

    def build_torchattacks(self, model, eps: float, num_classes: int, seed: int):
        """The configured torchattacks attack on ``model`` (inputs in [0, 1], 4-D) at budget
        ``eps`` (in those units), seeded with ``seed``; targets capped at num_classes − 1."""
        import torchattacks

        if self.library != "torchattacks":
            raise TypeError(f"attack {self.name!r} is not a torchattacks attack ({self.library})")
        norm = {"linf": "Linf", "l2": "L2"}[self.norm]
        targets = min(self.target_classes or 1, num_classes - 1)
        if self.kind == "fab_t":
            return torchattacks.FAB(model, norm=norm, eps=eps, steps=self.steps, n_restarts=self.restarts,
                                    alpha_max=0.1, eta=1.05, beta=0.9, seed=seed, multi_targeted=True,
                                    n_classes=targets + 1)
        return torchattacks.Square(model, norm=norm, eps=eps, n_queries=self.queries, n_restarts=self.restarts,
                                   p_init=self.p_init, loss="margin", resc_schedule=False, seed=seed)

    def apgd_arguments(self, num_classes: int) -> dict[str, Any]:
        """Keyword arguments of :func:`robench.attacks.apgd.apgd` for the APGD kinds (besides
        model, inputs, ε and seed); targets capped at num_classes − 1."""
        if self.library != "robench":
            raise TypeError(f"attack {self.name!r} is not robench's APGD ({self.library})")
        targets = None if self.kind == "apgd_ce" else min(self.target_classes, num_classes - 1)
        return {"norm": self.norm, "steps": self.steps, "restarts": self.restarts, "rho": self.rho,
                "target_classes": targets}

    def gradient_evaluations(self) -> int | None:
        """Forward+backward passes per sample for fixed-ε attacks (all ε; for the targeted
        ones an upper bound: every target runs on the points the earlier ones left; Square
        counts forward passes); None for minimal ones."""
        if self.minimal:
            return None
        per_eps = {"apgd_ce": (self.steps or 0) + 1, "apgd_t": ((self.steps or 0) + 1) * (self.target_classes or 1),
                   "fab_t": (self.steps or 0) * (self.target_classes or 1),
                   "square": self.queries or 0}.get(self.kind, self.steps)
        return per_eps * self.restarts * len(self.epsilons)

    def describe(self) -> str:
        """A short human-readable label: ``APGD-T l∞ (100 steps, 9 targets)``."""
        norm = {"linf": "l∞", "l2": "l2"}[self.norm]
        title = {"deepfool": "DeepFool", "cw": "C&W", "fgsm": "FGSM" if self.norm == "linf" else "FGM",
                 "pgd": "PGD", "apgd_ce": "APGD-CE", "apgd_t": "APGD-T", "fab_t": "FAB-T",
                 "square": "Square"}[self.kind]
        if self.kind == "cw":
            budget = f"{self.binary_search_steps}×{self.steps} steps"
        elif self.kind == "square":
            budget = f"{self.queries} queries"
        elif self.kind == "fgsm":
            budget = "1 step"
        else:
            budget = f"{self.steps} steps"
        extras = [budget]
        if self.restarts and self.restarts > 1:
            extras.append(f"{self.restarts} restarts")
        if self.target_classes:
            extras.append(f"{self.target_classes} targets")
        return f"{title} {norm} ({', '.join(extras)})"


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


def apgd_ce(norm: str, epsilons, **kw) -> AttackConfig:
    """APGD on the cross-entropy loss (AutoAttack; 100 steps, 1 restart by default)."""
    return AttackConfig("apgd_ce", norm, epsilons=tuple(epsilons), **kw)


def apgd_t(norm: str, epsilons, **kw) -> AttackConfig:
    """Targeted APGD on the DLR loss (AutoAttack; 100 steps, 9 target classes by default)."""
    return AttackConfig("apgd_t", norm, epsilons=tuple(epsilons), **kw)


def fab_t(norm: str, epsilons, **kw) -> AttackConfig:
    """Targeted FAB (AutoAttack; 100 steps, 9 target classes by default)."""
    return AttackConfig("fab_t", norm, epsilons=tuple(epsilons), **kw)


def square(norm: str, epsilons, **kw) -> AttackConfig:
    """Square Attack, score-based black box (AutoAttack; 5000 queries by default)."""
    return AttackConfig("square", norm, epsilons=tuple(epsilons), **kw)


MNIST_LINF_EPSILONS = (0.05, 0.1, 0.2, 0.3)
MNIST_L2_EPSILONS = (0.5, 1.0, 2.0, 3.0)
_GRIDS = {"linf": MNIST_LINF_EPSILONS, "l2": MNIST_L2_EPSILONS}


def _autoattack(*kinds, grids=_GRIDS, **kw) -> tuple[AttackConfig, ...]:
    """The given AutoAttack kinds, in AutoAttack's order, for both norms on ``grids``."""
    return tuple(AttackConfig(kind, norm, epsilons=grids[norm], **kw) for norm in NORMS[::-1] for kind in kinds)


PRESETS: Mapping[str, tuple[AttackConfig, ...]] = MappingProxyType({
    # The standard MNIST evaluation: both minimal-norm attacks (ρ2, C&W median), the
    # fixed-ε attacks up to budgets where an undefended model must reach ~0 accuracy, and
    # (since version 2) APGD-CE and APGD-T with AutoAttack's settings on the same grids.
    # The order is the order of "which attack first broke a point": today's attacks first,
    # so the share of the APGD attacks is what they add.
    "mnist-default": (
        deepfool_l2(),
        cw_l2(),
        fgsm(MNIST_LINF_EPSILONS),
        pgd_linf(MNIST_LINF_EPSILONS),
        pgd_l2(MNIST_L2_EPSILONS),
        *_autoattack("apgd_ce", "apgd_t"),
    ),
    # AutoAttack (Croce & Hein 2020) as RobustBench runs it, on the MNIST grids: APGD-CE,
    # APGD-T, FAB-T and Square, worst case per point.
    "autoattack-standard": _autoattack("apgd_ce", "apgd_t", "fab_t", "square"),
    # Its two gradient attacks only (most of its strength at a fraction of the cost).
    "autoattack-fast": _autoattack("apgd_ce", "apgd_t"),
    # Seconds, not minutes: every code path with tiny budgets (CI and smoke suites only;
    # never report these numbers as robustness).
    "smoke": (
        deepfool_l2(steps=20),
        cw_l2(binary_search_steps=2, steps=20),
        fgsm((0.1, 0.3)),
        pgd_linf((0.1, 0.3), steps=5),
        pgd_l2((1.0, 3.0), steps=5),
        *_autoattack("apgd_ce", "apgd_t", grids={"linf": (0.1, 0.3), "l2": (1.0, 3.0)}, steps=5),
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


def describe_attacks(attacks, exclude=()) -> str:
    """One line naming every attack of a preset name or config list (dicts as stored in task
    params included), minus the names in ``exclude``, with its budget and ε grid, for
    reports: ``DeepFool l2 (50 steps); APGD-T l∞ (100 steps, 9 targets) at ε 0.05, 0.1``."""
    parts = []
    for cfg in resolve_attacks(attacks):
        if cfg.name in exclude:
            continue
        grid = "" if cfg.minimal else " at ε " + ", ".join(format_epsilon(e) for e in cfg.epsilons)
        parts.append(cfg.describe() + grid)
    return "; ".join(parts)
