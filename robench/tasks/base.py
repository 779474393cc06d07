"""The contracts every task and method keeps.

A task is a protocol: its parameters (a pydantic model, ``Params``), its metrics and
primary metric, and ``run(method, seed, ctx)``, which returns a :class:`TaskResult`.
Tasks know nothing about suites, executors, the store or HTML.

A method is a plug-in with scikit-learn manners: the constructor stores parameters only
(so a suite can be validated by constructing it), the task calls the method's steps, and
``version`` changes whenever its results would.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Optional

from pydantic import AfterValidator, BaseModel, ConfigDict

from robench.errors import UserError, validation_message


class TaskParams(BaseModel):
    """Base of every task's parameter model: unknown keys are errors, and so are NaN and
    infinite floats (no protocol takes them)."""
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def added(default: Any, description: str = "", **constraints) -> Any:
    """A task parameter added after runs were stored: at its default it is left out of the
    canonical parameters (so the run ids stored before it existed stay the same); any other
    value is part of the id as usual. ``constraints`` are pydantic's (``ge=0``, ...)."""
    from pydantic import Field

    return Field(default, description=description, json_schema_extra={"omit_default": True}, **constraints)


def _canonical_base(value):
    from robench.training import RobustBase

    return RobustBase.canonical(value)


# A classification task's `base` parameter: None (the dense baseline) or a robust_training
# recipe to start from, e.g. {recipe: deepdefense, params: {c: 10}} (see training.RobustBase)
RobustBaseParam = Annotated[Optional[dict], AfterValidator(_canonical_base)]


# The forward passes of a classification task's training and evaluation (protocol: in the run
# id when not fp32): bf16/fp16 run under torch.autocast (robench.training.autocast); attacks
# and the adversarial examples of robust training stay fp32, since low precision can mask
# gradients.
Precision = Literal["fp32", "bf16", "fp16"]


def precision_param() -> Any:
    return added("fp32", "forward passes of training and clean evaluation: fp32, or bf16/fp16 mixed precision "
                 "(torch.autocast; fp16 needs a GPU); attacks stay fp32")


def weights_param() -> Any:
    return added(None, "checkpoint file the baseline is loaded from instead of trained (torchvision's, "
                 "RobustBench's or robench's state dict; read with weights_only=True, never downloaded)")


def weights_normalization_param() -> Any:
    return added("model", "model: the model's own input normalization (ImageNet's for tv:/timm:, CIFAR's for the "
                 "CIFAR built-ins); none: the checkpoint's network takes raw [0, 1] input (most RobustBench models)")


def _head_needs_weights(value: str, info) -> str:
    if value == "new" and not info.data.get("weights"):
        raise ValueError("'new' starts a new classifier head on a checkpoint's body; expected "
                         "weights: PATH beside it")
    return value


# A task's `weights_head` parameter: "load" (the checkpoint is the whole baseline) or "new" (the
# checkpoint initializes the body, the classifier head is new; needs `weights`, declared before it)
WeightsHead = Annotated[Literal["load", "new"], AfterValidator(_head_needs_weights)]


def weights_head_param() -> Any:
    return added("load", "load: the checkpoint is the whole baseline, loaded and not trained; new: it initializes "
                 "all but the classifier head (the last Linear, else the last Conv2d), which is new, and the "
                 "baseline is fine-tuned for baseline_epochs (transfer learning, e.g. ImageNet weights on CIFAR-10)")


def registered(kind: str, default: Any, description: str = "") -> Any:
    """A task parameter that names a registered model or dataset (``kind``: "models" or
    "datasets"): suite expansion checks the name against the registry (with a did-you-mean
    answer), so ``robench validate`` rejects a typo before anything runs."""
    from pydantic import Field

    return Field(default, description=description, json_schema_extra={"registry": kind})


@dataclass
class RunContext:
    """What the executor hands a run: where to write, where shared caches live, and the
    device its models and tensors go to (an execution detail: not part of the run's id)."""
    artifact_dir: Path  # empty folder; files written here are kept with the run
    cache_dir: Path  # shared across runs and processes (trained baselines)
    progress: Any = None  # optional callable(str) for status lines; may be None
    device: str = "cpu"  # "cpu", "cuda", "cuda:N" or "mps"

    def say(self, message: str) -> None:
        if self.progress is not None:
            self.progress(message)


@dataclass
class TaskResult:
    """metrics: flat name → float; artifacts: name → path relative to ``artifact_dir``."""
    metrics: dict[str, float]
    artifacts: dict[str, str] = field(default_factory=dict)


class Method:
    """Base of every plug-in method. Subclasses define ``__init__(self, <params with defaults>)``
    that only stores them as attributes of the same names."""
    version: ClassVar[str] = "1"
    registered_name: ClassVar[str] = ""
    label_params: ClassVar[tuple[str, ...]] = ()  # always shown in labels, even at their defaults

    def get_params(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in param_names(type(self))}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"


class Task:
    """Base of every task."""
    name: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    Params: ClassVar[type[TaskParams]] = TaskParams
    method_base: ClassVar[type] = Method  # methods of this task subclass this
    primary_metric: ClassVar[str] = ""
    greater_is_better: ClassVar[bool] = True
    label_params: ClassVar[tuple[str, ...]] = ()  # always shown in setting labels, even at defaults
    # task params that are a sweep axis (e.g. sparsity): the leaderboard puts their values in
    # the rows of one table instead of making a setting per value
    sweep_params: ClassVar[tuple[str, ...]] = ()
    # name → (description, greater_is_better); metrics not listed are shown as they are
    metrics_info: ClassVar[dict[str, tuple[str, bool]]] = {}
    # metrics a reader needs first (after the primary one): the report shows these by default
    headline_metrics: ClassVar[tuple[str, ...]] = ()
    # plots of a setting: dicts with name, x, y (metric names) and optional logx
    plots: ClassVar[tuple[dict[str, Any], ...]] = ()
    # task params of the quick end-to-end run of `robench check` (tiny data and budgets)
    check_params: ClassVar[dict[str, Any]] = {}
    # the task's own data sources (its `dataset` param values) → description, for `robench ls
    # datasets`; tasks on registered datasets (mnist-5k, cifar10, ...) need none
    data_sources: ClassVar[dict[str, str]] = {}
    # reference configurations (method → "upper" or "lower": the side of the contenders it
    # bounds, "" when it bounds nothing): reference lines in the report, never contenders
    reference_methods: ClassVar[dict[str, str]] = {}
    # a trade-off the report ranks on instead of the primary metric alone: {"x": metric, "y":
    # metric, "within": d} (highest x among contenders whose y is within d of the reference's)
    tradeoff: ClassVar[Optional[dict]] = None
    # task params that request metric variants: param → {"primary": m, "headline": [m, ...]}
    variants: ClassVar[dict[str, dict]] = {}
    # rough wall time of one run on a 2-core CPU at the default suite's settings (suites/parts),
    # seconds: what `robench validate`/`run` estimate a run by before the store has history
    typical_run_s: ClassVar[Optional[float]] = None

    def __init__(self, params: TaskParams | None = None, **kwargs):
        """``Task(Params(...))`` or ``Task(key=value, ...)``; bad values raise a one-line
        :class:`UserError` (``task 'name': params.key: what (got value)``)."""
        from pydantic import ValidationError

        try:
            self.params = params if params is not None else self.Params(**kwargs)
        except ValidationError as exc:
            raise UserError(validation_message(exc, f"task {self.name!r}", "params")) from None

    @classmethod
    def report_info(cls) -> dict[str, Any]:
        """What the report needs to know of this task, stored with its runs (JSON), so the
        report never imports a task: primary metric, sweep axes, headline metrics, plots."""
        return {"primary_metric": cls.primary_metric, "greater_is_better": bool(cls.greater_is_better),
                "label_params": list(cls.label_params), "sweep_params": list(cls.sweep_params),
                "headline_metrics": list(cls.headline_metrics),
                "metrics_info": {k: [v[0], bool(v[1])] for k, v in cls.metrics_info.items()},
                "plots": [dict(p) for p in cls.plots],
                "reference_methods": list(cls.reference_methods), "reference_bounds": dict(cls.reference_methods),
                "tradeoff": dict(cls.tradeoff) if cls.tradeoff else None,
                "variants": {k: dict(v) for k, v in cls.variants.items()}}

    def run(self, method: Method, seed: int, ctx: RunContext) -> TaskResult:
        raise NotImplementedError

    @classmethod
    def missing_files(cls, params: dict[str, Any], name: str) -> str | None:
        """What the folder parameter ``name`` (an existing folder, ``params[name]``) lacks of
        the files this task reads from it, in words ("a training.mat"), or None: `robench
        validate` refuses the suite with it before anything runs. None by default."""
        return None

    @classmethod
    def check_params_for(cls, method: Method) -> dict[str, Any]:
        """The tiny settings of ``robench check``'s end-to-end run of ``method`` (a task
        whose methods apply to some settings only picks one that fits)."""
        return dict(cls.check_params)

    def prerequisites(self, method: Method, seed: int) -> list[tuple[str, Any]]:
        """Shared work this run needs before it starts, which other runs need too (the dense
        baseline every method of a seed starts from, a reference network): ``(key, build)``
        pairs, where ``key`` is the path, relative to the cache folder, of the file or folder
        the work leaves there (equal keys are the same work) and ``build(cache_dir, device)``
        makes or finds it and returns the cache paths it consists of. An executor may run each distinct one first, once, and ship its
        files to the workers that need them; the run must still work without that (it finds
        the cache warm, or computes it itself). None by default."""
        return []

    def rescore(self, artifact_dir: Path, seed: int, ctx: RunContext,
                method: Method | None = None, claimed: dict | None = None) -> dict[str, float]:
        """Recompute a stored run's deterministic metrics from its exported artifacts
        (``model.pt``, predictions, restored images under ``artifact_dir``), this task's
        parameters and the maintainer's own data and shared caches (a baseline the run
        started from is taken from ``ctx.cache_dir``, trained there if missing), without
        retraining the run itself: what ``robench verify`` compares with the metrics a run
        claims. Every protocol constant (ε, attack budgets, storage encodings) comes from
        the task's parameters or from ``method`` (the run's method built from its stored name
        and parameters; None: metrics that need it are left out), never from an artifact
        file. Wall-clock metrics are left out; so is whatever cannot be recomputed: a
        metric not returned is a claim. An artifact that is missing or does not load (not
        a weights-only state dict, wrong keys, shapes or dtypes, NaN) raises a one-line
        :class:`UserError`. ``claimed``: the metrics the run claims; a task may take a
        derived protocol constant from it (robust_training's ε_ref) only after finding it
        within :meth:`rescore_tolerance` of its own, so that metrics measured at budgets
        derived from it compare. Tasks that cannot re-score raise NotImplementedError."""
        raise NotImplementedError(f"task {self.name!r} cannot re-score a run from its artifacts")

    def rescore_tolerance(self, metric: str) -> float:
        """Absolute difference within which a re-score of ``metric`` on another CPU kernel
        set (another machine: ``robench.provenance.kernel_set()``) must agree with the value
        the run claims; the verifier also allows a relative 1e-6. On the same kernel set
        and thread count a re-score is bit-exact. Default 0: counts, storage and every
        metric that does not go through floating-point kernels."""
        return 0.0

    @classmethod
    def conformance(cls, make_method, folder) -> list:
        """The task's own contract checks of a method, on tiny data, for ``robench check``:
        ``make_method()`` builds a fresh instance; ``folder`` is scratch space. Returns
        :class:`robench.tasks.contract.Check` items (none by default)."""
        return []


def execute(task: Task, method: Method, seed: int, ctx: RunContext) -> TaskResult:
    """Run ``task.run(method, seed, ctx)`` with ``ctx.device`` as torch's default device, so
    every model and tensor the run creates lands there unless it says otherwise (index
    sampling and data stay on the CPU by saying so), and deterministic kernels on CUDA
    (:func:`robench.seeding.deterministic`). The executor and ``robench check`` call this,
    after seeding the run (:func:`robench.seeding.seed_everything`)."""
    import torch

    from robench.seeding import deterministic

    with torch.device(ctx.device), deterministic(ctx.device):
        return task.run(method, seed, ctx)


# -- re-scoring ----------------------------------------------------------------------

# Tolerances of a re-score on another CPU kernel set (Task.rescore_tolerance); the
# measurements behind them are in tests/test_kernels.py's module doc. A re-score of the same
# weights there moves logits by float rounding only, so a prediction changes only where the
# top two logits are that close: an accuracy over n points allows FLIPS / n (none flipped in
# our measurements). An iterative attack follows the rounded gradients, so its path may end
# on the other side of a boundary for a few more points: ATTACK_FLIPS / n. Attack norms
# (rho2, medians) are continuous in the logits: NORM_TOLERANCE.
FLIPS = 2
ATTACK_FLIPS = 3
NORM_TOLERANCE = 1e-4  # measured: 3.2e-8; rho2 and median norms are about 0.01-1
ACTIVATION_TOLERANCE = 1e-4  # share of ReLU outputs exactly 0; measured: 0
# A metric of a model the maintainer trains itself (a baseline, the vanilla model behind
# eps_ref, restoration's reference networks) is not a re-score but another rounding of a
# whole training, which diverges from the first epoch on. Test accuracy of LeNet-5 baselines
# retrained under other kernels moved by 1, 9, 7, 6, 5 and 11 points of 1000 (RMS 0.0072):
# four times that, as a fraction (training noise moves a share of the points).
RETRAIN_ACCURACY_TOLERANCE = 0.03
# rho2 of a retrained LeNet-5 vanilla model (robust_training's eps_ref) moved by 0.0018 and
# 0.0063 (of 0.174): four times their RMS
RETRAIN_RHO2_TOLERANCE = 0.02


def flip_tolerance(n_points: int, flips: int = FLIPS) -> float:
    """Absolute tolerance of a fraction of ``n_points`` points (an accuracy, a robust
    accuracy, a broken-first share) re-scored on another kernel set: ``flips / n_points``."""
    return flips / max(int(n_points), 1)


def attack_tolerance(metric: str, n_attacked: int, n_split: int) -> float:
    """The tolerance of a classification task's ``metric`` re-scored on another kernel set:
    shares of the ``n_attacked`` attacked points ATTACK_FLIPS / n_attacked; the accuracy on
    the whole evaluated split (``n_split`` images) FLIPS / n_split, a retrained baseline's
    RETRAIN_ACCURACY_TOLERANCE; attack norms NORM_TOLERANCE; ``activation_sparsity``
    ACTIVATION_TOLERANCE; everything else (sanity flags, counts, storage) exact."""
    if metric.startswith("baseline_") and metric.endswith("accuracy"):
        return RETRAIN_ACCURACY_TOLERANCE
    if metric in ("clean_accuracy", "test_accuracy", "validation_accuracy"):
        return flip_tolerance(n_split)
    if metric.startswith("sanity_"):
        return 0.0
    if metric == "rho2" or metric.endswith("_median"):
        return NORM_TOLERANCE
    if metric == "activation_sparsity":
        return ACTIVATION_TOLERANCE
    if metric == "clean_accuracy_attacked" or metric.endswith("_failure_rate") or "@" in metric:
        return flip_tolerance(n_attacked, ATTACK_FLIPS)
    return 0.0


def load_exported_model(path: Path, model, where: str):
    """Load the state dict that :func:`robench.models.export_state_dict` wrote at ``path``
    into ``model`` (built on the CPU by the caller) and return ``model``; ``where`` names
    the run in messages (``"task 'compression': <run folder>"``).

    Nothing in the file is trusted: it is read with ``torch.load(weights_only=True)`` on the
    CPU, and must be a mapping with exactly the model's keys, each a dense tensor of the
    model's shape and dtype, every floating value finite. Anything else (a missing file, a
    pickle that is not weights-only, a foreign or damaged file, wrong shapes or dtypes, NaN)
    raises a one-line :class:`UserError`."""
    import torch

    from robench.errors import one_line

    def fail(what: str):
        raise UserError(one_line(f"{where}: cannot read the run's artifacts: {Path(path).name} {what}"))

    def first_line(exc: BaseException) -> str:
        text = str(exc).strip()
        return type(exc).__name__ + (f": {text.splitlines()[0][:200]}" if text else "")

    if not Path(path).is_file():
        fail("is missing")
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as exc:  # noqa: BLE001 - a malicious or damaged file: any error is the user's
        fail(f"is not a weights-only state dict ({first_line(exc)})")
    expected = model.state_dict()
    if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
        fail(f"holds a {type(state).__name__}; expected a state dict of {type(model).__name__}")
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or unexpected:
        fail(f"does not fit {type(model).__name__}: " + "; ".join(
            f"{what} {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
            for what, keys in (("missing", missing), ("unexpected", unexpected)) if keys))
    for key, want in expected.items():
        got = state[key]
        if not isinstance(got, torch.Tensor):
            fail(f"{key}: a {type(got).__name__}; expected a tensor")
        if got.layout != torch.strided or got.is_quantized:
            fail(f"{key}: a {got.layout} tensor; expected a dense one")
        if got.dtype != want.dtype or tuple(got.shape) != tuple(want.shape):
            fail(f"{key}: {str(got.dtype).removeprefix('torch.')} {tuple(got.shape)}; expected "
                 f"{str(want.dtype).removeprefix('torch.')} {tuple(want.shape)}")
        if got.is_floating_point() and not bool(torch.isfinite(got).all()):
            fail(f"{key}: NaN or infinite values")
    try:
        model.load_state_dict(state)
    except Exception as exc:  # noqa: BLE001
        fail(f"does not load into {type(model).__name__} ({first_line(exc)})")
    return model


def param_names(cls: type) -> list[str]:
    """Constructor parameter names of a method class, in order."""
    sig = inspect.signature(cls.__init__)
    return [p.name for p in list(sig.parameters.values())[1:]
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
