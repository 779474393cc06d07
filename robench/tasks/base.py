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
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict


class TaskParams(BaseModel):
    """Base of every task's parameter model: unknown keys are errors."""
    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass
class RunContext:
    """What the executor hands a run: where to write, where shared caches live."""
    artifact_dir: Path  # empty folder; files written here are kept with the run
    cache_dir: Path  # shared across runs and processes (trained baselines)
    progress: Any = None  # optional callable(str) for status lines; may be None

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
    # task params of the quick end-to-end run of `robench check` (tiny data and budgets)
    check_params: ClassVar[dict[str, Any]] = {}

    def __init__(self, params: TaskParams | None = None, **kwargs):
        self.params = params if params is not None else self.Params(**kwargs)

    def run(self, method: Method, seed: int, ctx: RunContext) -> TaskResult:
        raise NotImplementedError

    @classmethod
    def conformance(cls, make_method, folder) -> list:
        """The task's own contract checks of a method, on tiny data, for ``robench check``:
        ``make_method()`` builds a fresh instance; ``folder`` is scratch space. Returns
        :class:`robench.check.Check` items (none by default)."""
        return []


def param_names(cls: type) -> list[str]:
    """Constructor parameter names of a method class, in order."""
    sig = inspect.signature(cls.__init__)
    return [p.name for p in list(sig.parameters.values())[1:]
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
