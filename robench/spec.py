"""Suites (YAML) and RunSpecs.

A suite file is validated with pydantic (unknown keys are errors) and expanded into
RunSpecs: one per (task setting, method configuration, seed), where ``grid`` entries
expand into their cartesian product. Parameters are canonicalized (defaults filled in,
types coerced) before hashing, so two suites that spell the same run differently share
its id and its stored result.

Errors name the file, the key path and what was expected, in one line.
"""

from __future__ import annotations

import hashlib
import inspect
import itertools
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from robench.errors import UserError, validation_message


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MethodEntry(_Strict):
    name: str
    params: dict[str, Any] = Field(default_factory=dict)
    grid: dict[str, list[Any]] = Field(default_factory=dict)

    @field_validator("grid")
    @classmethod
    def _non_empty(cls, grid):
        for key, values in grid.items():
            if not values:
                raise ValueError(f"grid {key!r} has no values")
        return grid


class TaskEntry(_Strict):
    task: str
    params: dict[str, Any] = Field(default_factory=dict)
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    seeds: list[int] | None = None
    methods: list[MethodEntry] = Field(min_length=1)

    _non_empty = field_validator("grid")(MethodEntry._non_empty.__func__)


class Suite(_Strict):
    suite: str = Field(pattern=r"^[A-Za-z0-9_.+-]+$")
    description: str = ""
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    # where the runs execute (auto | cpu | cuda | cuda:N | mps): not part of any run's id;
    # `robench run --device` overrides it
    device: str | None = Field(None, pattern=r"^(auto|cpu|mps|cuda(:\d+)?)$")
    tasks: list[TaskEntry] = Field(min_length=1)


class RunSpec(BaseModel):
    """One run: a task setting, a method configuration and a seed (all canonical)."""
    model_config = ConfigDict(extra="forbid", frozen=True)
    task: str
    task_params: dict[str, Any]
    method: str
    method_params: dict[str, Any]
    seed: int
    task_version: str
    method_version: str
    task_label: str = ""
    method_label: str = ""

    def _hash(self, with_seed: bool) -> str:
        blob = {k: getattr(self, k) for k in ("task", "task_params", "method", "method_params",
                                              "task_version", "method_version")}
        if with_seed:
            blob["seed"] = self.seed
        return hashlib.sha256(canonical_json(blob).encode()).hexdigest()[:16]

    @property
    def id(self) -> str:
        return self._hash(with_seed=True)

    @property
    def config_id(self) -> str:
        return self._hash(with_seed=False)


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


# -- loading ---------------------------------------------------------------------------
def load_suite(path: str | Path) -> Suite:
    import yaml

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such suite file (expected a YAML suite, e.g. suites/smoke.yaml)")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UserError(f"{where}: YAML syntax error: {problem}") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a text file (expected a YAML suite)") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping with keys 'suite' and 'tasks', got {type(data).__name__}")
    return parse_suite(data, source=str(path))


def parse_suite(data: dict, source: str = "<suite>") -> Suite:
    try:
        return Suite.model_validate(data)
    except ValidationError as exc:
        raise UserError(validation_message(exc, source)) from None


# -- expanding ---------------------------------------------------------------------------
def _grid_points(params: dict, grid: dict) -> list[dict]:
    keys = list(grid)
    points = []
    for values in itertools.product(*(grid[k] for k in keys)):
        point = dict(params)
        point.update(zip(keys, values))
        points.append(point)
    return points


def canonical_task_params(task_cls, params: dict, source: str, path: str) -> dict:
    try:
        return task_cls.Params(**params).model_dump(mode="json")
    except ValidationError as exc:
        raise UserError(validation_message(exc, source, path)) from None


def method_param_names(method_cls) -> list[str]:
    sig = inspect.signature(method_cls.__init__)
    return [p.name for p in list(sig.parameters.values())[1:]
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def canonical_method_params(method_cls, params: dict, source: str, path: str) -> dict:
    """Fill defaults from the constructor signature and coerce annotated types."""
    sig = inspect.signature(method_cls.__init__)
    accepted = {name: sig.parameters[name] for name in method_param_names(method_cls)}
    for key in params:
        if key not in accepted:
            names = ", ".join(accepted) or "none"
            raise UserError(f"{source}: {path}.{key}: unknown parameter of method "
                            f"{method_cls.registered_name or method_cls.__name__!r} (expected one of: {names})")
    out = {}
    hints = _annotations(method_cls.__init__)
    for name, p in accepted.items():
        if name in params:
            value = params[name]
        elif p.default is not inspect.Parameter.empty:
            value = p.default
        else:
            raise UserError(f"{source}: {path}.{name}: required parameter of method "
                            f"{method_cls.registered_name!r} is missing")
        if name in hints:
            adapter = TypeAdapter(hints[name])
            try:
                value = adapter.dump_python(adapter.validate_python(value), mode="json")
            except ValidationError as exc:
                err = exc.errors()[0]
                raise UserError(f"{source}: {path}.{name}: {err['msg']} (got {value!r})") from None
        out[name] = json.loads(canonical_json(value))
    return out


def _annotations(fn) -> dict:
    import typing
    try:
        hints = typing.get_type_hints(fn)
    except Exception:
        return {}
    hints.pop("return", None)
    return hints


def _label(name: str, params: dict, defaults: dict, always: tuple = ()) -> str:
    shown = {k: v for k, v in params.items() if k in always or defaults.get(k, object()) != v}
    if not shown:
        return name
    inner = ", ".join(f"{k}={short_value(v)}" for k, v in sorted(shown.items()))
    return f"{name}({inner})" if name else inner


def short_value(value) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, dict)):
        return canonical_json(value).replace(",", ", ")
    return str(value)


def expand(suite: Suite, source: str = "<suite>") -> list[RunSpec]:
    """Validate names and params against the registry and return the suite's RunSpecs."""
    from robench import registry

    registry.load_builtins()
    specs: dict[str, RunSpec] = {}
    for ti, entry in enumerate(suite.tasks):
        tpath = f"tasks[{ti}]"
        try:
            task_cls = registry.tasks.get(entry.task)
        except UserError as exc:
            raise UserError(f"{source}: {tpath}.task: {exc}") from None
        task_defaults = task_cls.Params().model_dump(mode="json") if _all_defaulted(task_cls) else {}
        seeds = entry.seeds if entry.seeds is not None else suite.seeds
        for task_point in _grid_points(entry.params, entry.grid):
            task_params = canonical_task_params(task_cls, task_point, source, f"{tpath}.params")
            task_label = _label("", task_params, task_defaults, tuple(task_cls.label_params))
            for mi, mentry in enumerate(entry.methods):
                mpath = f"{tpath}.methods[{mi}]"
                try:
                    method_cls = registry.methods.get(mentry.name, task=entry.task)
                except UserError as exc:
                    raise UserError(f"{source}: {mpath}.name: {exc}") from None
                defaults = canonical_method_params(method_cls, {}, source, f"{mpath}.params") \
                    if _method_all_defaulted(method_cls) else {}
                for method_point in _grid_points(mentry.params, mentry.grid):
                    method_params = canonical_method_params(method_cls, method_point, source, f"{mpath}.params")
                    try:
                        instance = method_cls(**method_params)  # constructors may reject values
                    except (ValueError, TypeError, UserError) as exc:
                        raise UserError(f"{source}: {mpath}.params: {exc}") from None
                    for seed in seeds:
                        spec = RunSpec(
                            task=entry.task, task_params=task_params, method=mentry.name,
                            method_params=method_params, seed=seed,
                            task_version=str(task_cls.version),
                            # an instance may refine its class's version (a pipeline: its stages')
                            method_version=str(getattr(instance, "version", method_cls.version)),
                            task_label=task_label or "default",
                            method_label=_label(mentry.name, method_params, defaults,
                                                tuple(method_cls.label_params)))
                        specs.setdefault(spec.id, spec)
    return list(specs.values())


def _all_defaulted(task_cls) -> bool:
    return all(not f.is_required() for f in task_cls.Params.model_fields.values())


def _method_all_defaulted(method_cls) -> bool:
    sig = inspect.signature(method_cls.__init__)
    return all(p.default is not inspect.Parameter.empty for p in list(sig.parameters.values())[1:]
               if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))


def adhoc_suite(task: str, methods: list[str], seeds: list[int], params: dict[str, Any]) -> Suite:
    """A suite for ``robench run --task T --method M ...``. ``params`` keys may be written
    ``task.key``/``method.key``; a bare key goes to the task or the method(s) accepting it."""
    from robench import registry

    registry.load_builtins()
    task_cls = registry.tasks.get(task)
    task_keys = set(task_cls.Params.model_fields)
    method_keys = {name: set(method_param_names(registry.methods.get(name, task=task))) for name in methods}
    any_method_keys = set().union(*method_keys.values())
    task_params: dict[str, Any] = {}
    method_params: dict[str, dict[str, Any]] = {name: {} for name in methods}
    for key, value in params.items():
        scope, _, bare = key.rpartition(".")
        if scope not in ("", "task", "method"):
            raise UserError(f"--param {key}: a prefix must be 'task.' or 'method.'")
        if not scope:
            if bare in task_keys and bare in any_method_keys:
                raise UserError(f"--param {key}: both the task and a method take {bare!r}; "
                                f"write task.{bare}= or method.{bare}=")
            scope = "task" if bare in task_keys else "method" if bare in any_method_keys else ""
        if scope == "task" and bare in task_keys:
            task_params[bare] = value
        elif scope == "method" and bare in any_method_keys:
            for name in methods:
                if bare in method_keys[name]:
                    method_params[name][bare] = value
        else:
            raise UserError(f"--param {key}: no parameter {bare!r} in task {task!r} "
                            f"({', '.join(sorted(task_keys))}) or method(s) {', '.join(methods)} "
                            f"({', '.join(sorted(any_method_keys)) or 'none'})")
    data = {"suite": "adhoc", "seeds": seeds,
            "tasks": [{"task": task, "params": task_params,
                       "methods": [{"name": n, "params": method_params[n]} for n in methods]}]}
    return parse_suite(data, source="command line")
