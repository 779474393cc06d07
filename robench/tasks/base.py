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
from typing import Annotated, Any, ClassVar, Optional

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
                "plots": [dict(p) for p in cls.plots]}

    def run(self, method: Method, seed: int, ctx: RunContext) -> TaskResult:
        raise NotImplementedError

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

    def rescore(self, artifact_dir: Path, seed: int, ctx: RunContext) -> dict[str, float]:
        """Recompute a stored run's deterministic metrics from its exported artifacts alone
        (``model.pt``, predictions, restored images under ``artifact_dir``), under this
        task's protocol and parameters, without retraining: what ``robench verify`` compares
        with the metrics a run claims. Wall-clock metrics are left out. Tasks that cannot
        raise NotImplementedError."""
        raise NotImplementedError(f"task {self.name!r} cannot re-score a run from its artifacts")

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


def param_names(cls: type) -> list[str]:
    """Constructor parameter names of a method class, in order."""
    sig = inspect.signature(cls.__init__)
    return [p.name for p in list(sig.parameters.values())[1:]
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
