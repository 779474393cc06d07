"""``robench check METHOD``: does a (plug-in) method honour its task's contract?

Three layers of checks, each reported as one line (pass/fail and why):

1. registration: the method is registered for the task and subclasses the task's method
   base class; its constructor stores its parameters (``get_params()`` gives back what it
   was built with) and they are JSON-serialisable (so run ids are stable);
2. the task's own contract checks on tiny data (``Task.conformance``), e.g. a training
   recipe must return a model with the same outputs' shape, train only on the training
   split and be deterministic for a seed;
3. one end-to-end run of the task at its tiny ``check_params`` settings in a scratch
   folder: the primary metric is present, every metric is a finite float (or NaN) and
   every declared artifact exists.

Nothing is written to the results store.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Callable

from robench.errors import UserError
from robench.tasks.contract import Check, guarded


def resolve_task(method: str, task: str | None) -> str:
    from robench import registry

    if task is not None:
        registry.tasks.get(task)  # raises a UserError with suggestions
        return task
    owners = sorted({e.task for e in registry.methods.entries(task=...) if e.name == method and e.task})
    if not owners:
        import difflib
        names = sorted({e.name for e in registry.methods.entries(task=...)})
        hint = difflib.get_close_matches(method, names, n=1, cutoff=0.5)
        raise UserError(f"unknown method {method!r}" + (f"; did you mean {hint[0]!r}?" if hint else
                                                         "; `robench ls methods` lists them"))
    if len(owners) > 1:
        raise UserError(f"method {method!r} exists for several tasks ({', '.join(owners)}); pass --task")
    return owners[0]


def check_method(method: str, task: str | None = None, params: dict | None = None,
                 plugins: tuple = (), run_task: bool = True,
                 on_check: Callable[[Check], None] | None = None,
                 device: str | None = "cpu") -> tuple[str, list[Check]]:
    """Run every check on ``method`` (of ``task``, found from the registry when omitted).
    Returns ``(task name, checks)``; ``on_check`` is called with each group of checks as it
    finishes (for progress output); the end-to-end run uses ``device`` (``auto``, ``cpu``,
    ``cuda``...). Raises UserError for an unknown method/task, bad params or a missing device."""
    from robench import registry
    from robench.spec import canonical_json, canonical_method_params

    registry.setup(plugins)
    task = resolve_task(method, task)
    task_cls = registry.tasks.get(task)
    method_cls = registry.methods.get(method, task=task)
    canonical = canonical_method_params(method_cls, params or {}, "robench check", "params")

    checks = _Reported(on_check)
    checks.append(Check(f"subclasses {task_cls.method_base.__name__}",
                    isinstance(method_cls, type) and issubclass(method_cls, task_cls.method_base),
                    f"{getattr(method_cls, '__name__', method_cls)!r} does not"))
    if not checks[0].ok:
        return task, list(checks)

    def make():
        return method_cls(**canonical)

    check, instance = guarded("constructor accepts its parameters", make)
    checks.append(check)
    if instance is None:
        return task, list(checks)

    def params_round_trip():
        got = instance.get_params()
        if canonical_json(got) != canonical_json(canonical):
            raise AssertionError(f"get_params() gives {got!r}, built with {canonical!r}: store each "
                                 f"constructor argument as an attribute of the same name")
        canonical_json(got)
    checks.append(guarded("parameters round-trip and are JSON", params_round_trip)[0])

    from robench.executors import resolve_device
    device = resolve_device(device)
    with tempfile.TemporaryDirectory(prefix="robench-check-") as tmp:
        import torch

        with torch.device(device):  # the contract checks run where the runs would
            checks.extend(task_cls.conformance(make, Path(tmp)))
        if run_task:
            checks.extend(_run_once(task_cls, make, Path(tmp), device))
    return task, list(checks)


class _Reported(list):
    """A list of checks that reports each one to ``on_check`` as it is added."""

    def __init__(self, on_check):
        super().__init__()
        self._on_check = on_check

    def append(self, check: Check) -> None:
        super().append(check)
        if self._on_check is not None:
            self._on_check(check)

    def extend(self, checks) -> None:
        for check in checks:
            self.append(check)


def _run_once(task_cls, make, folder: Path, device: str = "cpu") -> list[Check]:
    from robench.seeding import seed_everything
    from robench.tasks.base import RunContext, execute

    artifacts, cache = folder / "artifacts", folder / "cache"
    artifacts.mkdir()
    cache.mkdir()
    label = f"runs through '{task_cls.name}' at its check settings"

    def run_once():
        task, method = task_cls(**task_cls.check_params), make()
        seed_everything(0)
        return execute(task, method, 0, RunContext(artifact_dir=artifacts, cache_dir=cache, device=device))
    check, result = guarded(label, run_once)
    if result is None:
        return [check]
    problems = []
    metrics = getattr(result, "metrics", None)
    if not isinstance(metrics, dict):
        return [Check(label, False, f"run() returned {type(result).__name__}; expected a TaskResult")]
    if task_cls.primary_metric not in metrics:
        problems.append(f"no primary metric {task_cls.primary_metric!r}")
    for name, value in metrics.items():
        try:
            value = float(value)
        except (TypeError, ValueError):
            problems.append(f"metric {name!r} is {value!r}, not a number")
            continue
        if math.isinf(value):
            problems.append(f"metric {name!r} is infinite")
    missing = [rel for rel in (result.artifacts or {}).values() if not (artifacts / rel).exists()]
    if missing:
        problems.append(f"declared artifacts not written: {', '.join(missing)}")
    return [Check(label, not problems, "; ".join(problems))]
