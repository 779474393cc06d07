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
import re
from pathlib import Path
from typing import Any

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, Strict, TypeAdapter, ValidationError, field_validator

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


# a seed is a plain integer that SQLite and every generator can hold ('0' and true are not)
Seed = Annotated[int, Strict(), Field(ge=0, lt=2**63)]
MAX_RUNS = 10_000  # default cap on the runs a suite may expand to (--max-runs)


class TaskEntry(_Strict):
    task: str
    params: dict[str, Any] = Field(default_factory=dict)
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    seeds: list[Seed] | None = Field(None, min_length=1)
    methods: list[MethodEntry] = Field(min_length=1)

    _non_empty = field_validator("grid")(MethodEntry._non_empty.__func__)


class Suite(_Strict):
    suite: str = Field(pattern=r"^[A-Za-z0-9_.+-]+$", max_length=100)
    description: str = ""
    seeds: list[Seed] = Field(default_factory=lambda: [0], min_length=1)
    # where the runs execute (auto | cpu | cuda | cuda:N | cuda:all | mps): not part of any
    # run's id; `robench run --device`/`--devices` override it
    device: str | None = Field(None, pattern=r"^(auto|cpu|mps|cuda(:\d+|:all)?)$")
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
    # what else the result depends on: "model:<name>" → "v2+src:<hash>" for a versioned or
    # plug-in model, dataset, task or method (see registry.Entry.identity); built-ins at
    # version 1 add nothing, so their ids are those of earlier robench releases
    components: dict[str, str] = {}

    def _hash(self, with_seed: bool) -> str:
        blob = {k: getattr(self, k) for k in ("task", "task_params", "method", "method_params",
                                              "task_version", "method_version")}
        if self.components:
            blob["components"] = self.components
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
        data = yaml.load(path.read_text(), Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UserError(f"{where}: YAML syntax error: {problem}") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a text file (expected a YAML suite)") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping with keys 'suite' and 'tasks', got {type(data).__name__}")
    return parse_suite(expand_environment(data, str(path)), source=str(path))


_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def expand_environment(value: Any, source: str, where: str = "") -> Any:
    """``value`` with every ``${NAME}`` inside its strings replaced by the environment variable
    NAME: how a suite names the user's files (``dataset_root: ${IMAGENET}``) without a path of
    one machine in it. An unset variable is a one-line UserError naming the key."""
    import os

    if isinstance(value, dict):
        return {k: expand_environment(v, source, f"{where}.{k}" if where else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_environment(v, source, f"{where}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value

    def substitute(match):
        name = match.group(1)
        if name not in os.environ:
            raise UserError(f"{source}: {where}: environment variable {name} is not set (this suite reads your "
                            f"files: export {name}=<path>; see the suite's header)")
        return os.environ[name]
    return _ENV_REFERENCE.sub(substitute, value)


def _unique_key_loader():
    import yaml

    class UniqueKeyLoader(yaml.SafeLoader):
        """YAML's safe loader, except that a key written twice in a mapping is an error
        (plain YAML keeps the last one, silently)."""

        def construct_mapping(self, node, deep=False):
            seen = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor` may be overridden
                    continue
                key = self.construct_object(key_node, deep=True)
                if isinstance(key, (str, int, float, bool)) or key is None:
                    if key in seen:
                        raise yaml.constructor.ConstructorError(
                            None, None, f"duplicate key {key!r} (YAML would keep only the last)",
                            key_node.start_mark)
                    seen.add(key)
            return super().construct_mapping(node, deep)
    return UniqueKeyLoader


class _LazyLoader:
    """The unique-key loader class, built on first use (keeps `import yaml` out of imports)."""
    _cls = None

    def __call__(self, stream):
        if _LazyLoader._cls is None:
            _LazyLoader._cls = _unique_key_loader()
        return _LazyLoader._cls(stream)


_UniqueKeyLoader = _LazyLoader()


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
    """Defaults filled in and types coerced; a parameter declared with
    ``robench.tasks.base.added`` is left out while it holds its default."""
    try:
        values = task_cls.Params(**params).model_dump(mode="json")
    except ValidationError as exc:
        raise UserError(validation_message(exc, source, path)) from None
    for name, field in task_cls.Params.model_fields.items():
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        if extra.get("omit_default") and values.get(name) == json.loads(canonical_json(field.default)):
            del values[name]
    return values


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
            if not _finite(value):  # before JSON, where NaN would become null
                raise UserError(f"{source}: {path}.{name}: expected finite numbers (got {value!r})")
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


def _finite(value) -> bool:
    """No NaN or infinity anywhere in a parameter value (lists and dicts included)."""
    import math

    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, (list, tuple)):
        return all(_finite(v) for v in value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    return True


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


def count_runs(suite: Suite) -> int:
    """How many runs the suite expands to at most (before duplicates are merged), computed
    without expanding it."""
    import math

    total = 0
    for entry in suite.tasks:
        settings = math.prod(len(v) for v in entry.grid.values())
        configs = sum(math.prod(len(v) for v in m.grid.values()) for m in entry.methods)
        total += settings * configs * len(entry.seeds if entry.seeds is not None else suite.seeds)
    return total


def expand(suite: Suite, source: str = "<suite>", max_runs: int = MAX_RUNS) -> list[RunSpec]:
    """Validate names and params against the registry and return the suite's RunSpecs.

    A suite that would expand to more than ``max_runs`` runs is refused before expanding."""
    from robench import registry

    n = count_runs(suite)
    if n > max_runs:
        raise UserError(f"{source}: expands to {n:,} runs, more than --max-runs {max_runs:,}; "
                        f"split the suite or raise --max-runs")
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
            check_registered(task_cls, task_params, source, f"{tpath}.params")
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
                    components = component_identities(entry.task, mentry.name, task_cls, task_params)
                    for seed in seeds:
                        spec = RunSpec(
                            task=entry.task, task_params=task_params, method=mentry.name,
                            method_params=method_params, seed=seed,
                            task_version=str(task_cls.version),
                            # an instance may refine its class's version (a pipeline: its stages')
                            method_version=str(getattr(instance, "version", method_cls.version)),
                            task_label=task_label or "default",
                            method_label=_label(mentry.name, method_params, defaults,
                                                tuple(method_cls.label_params)),
                            components=components)
                        specs.setdefault(spec.id, spec)
    return list(specs.values())


def path_params(task_cls) -> list[str]:
    """The task parameters that name a folder or file of the machine the run was made on
    (``dataset_root``, ``root``, ``train_root``, the checkpoint file ``weights``): never read
    from an imported run."""
    return [name for name in task_cls.Params.model_fields
            if name in ("root", "weights") or name.endswith("_root")]


def rebuild_spec(row: dict, source: str, where: str) -> RunSpec:
    """The RunSpec of a run made elsewhere (an imported bundle's ``row``: task, task_params,
    method, method_params, seed, components), re-validated as a suite entry is — task and
    method names, parameter types and ranges, the method's constructor — and with its
    labels and versions derived here. Folder parameters are kept as written (they are part
    of the id) but never checked nor used here. A model or dataset that is registered only
    where the run was made (a plug-in) is accepted when the row's ``components`` carry its
    identity. Raises a one-line UserError."""
    from robench import registry

    registry.load_builtins()
    try:
        task_cls = registry.tasks.get(row["task"])
    except UserError as exc:
        raise UserError(f"{source}: {where}.task: {exc}") from None
    components = {str(k): str(v) for k, v in (row.get("components") or {}).items()}
    task_params = canonical_task_params(task_cls, row["task_params"], source, f"{where}.task_params")
    check_registered(task_cls, task_params, source, f"{where}.task_params", folders=False,
                     elsewhere=frozenset(components))
    try:
        method_cls = registry.methods.get(row["method"], task=row["task"])
    except UserError as exc:
        raise UserError(f"{source}: {where}.method: {exc} (a plug-in's method: load it with --plugin)") from None
    method_params = canonical_method_params(method_cls, row["method_params"], source, f"{where}.method_params")
    try:
        instance = method_cls(**method_params)
    except (ValueError, TypeError, UserError) as exc:
        raise UserError(f"{source}: {where}.method_params: {exc}") from None
    here = component_identities(row["task"], row["method"], task_cls, task_params)
    for key in sorted(set(here) | set(components)):
        kind, _, name = key.partition(":")
        registered_here = kind in ("task", "method") or name in registry.REGISTRIES.get(kind + "s", {})
        if (key in here or registered_here) and components.get(key) != here.get(key):
            raise UserError(f"{source}: {where}: {key} is {components.get(key) or 'the built-in'} where the run was "
                            f"made and {here.get(key) or 'the built-in'} here (expected the same code)")
    for what, theirs, ours in (("task", row.get("task_version"), task_cls.version),
                               ("method", row.get("method_version"), getattr(instance, "version", method_cls.version))):
        if str(theirs) != str(ours):
            raise UserError(f"{source}: {where}: made with {what} {row[what]!r} version {theirs}, this robench has "
                            f"version {ours} (a run is compared only under the same protocol)")
    task_defaults = task_cls.Params().model_dump(mode="json") if _all_defaulted(task_cls) else {}
    method_defaults = canonical_method_params(method_cls, {}, source, where) if _method_all_defaulted(method_cls) else {}
    return RunSpec(task=row["task"], task_params=task_params, method=row["method"], method_params=method_params,
                   seed=row["seed"], task_version=str(task_cls.version),
                   method_version=str(getattr(instance, "version", method_cls.version)),
                   task_label=_label("", task_params, task_defaults, tuple(task_cls.label_params)) or "default",
                   method_label=_label(row["method"], method_params, method_defaults, tuple(method_cls.label_params)),
                   components=components)


def component_identities(task: str, method: str, task_cls, task_params: dict) -> dict[str, str]:
    """``RunSpec.components`` of a run: the identity of each registered component it uses
    (its task, method, and the models and datasets its parameters name) where there is one."""
    from robench import registry

    entries = [("task", registry.tasks.entry(task)), ("method", registry.methods.entry(method, task=task))]
    for name, field in task_cls.Params.model_fields.items():
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        kind, value = extra.get("registry"), task_params.get(name)
        if kind and value is not None and value in registry.REGISTRIES[kind]:
            entries.append((kind[:-1], registry.REGISTRIES[kind].entry(value)))
    out = {}
    for kind, entry in entries:
        identity = entry.identity()
        if identity:
            out[f"{kind}:{entry.name}"] = identity
    return out


def check_registered(task_cls, task_params: dict, source: str, path: str, *, folders: bool = True,
                     elsewhere: frozenset = frozenset()) -> None:
    """Task parameters that name a registered model or dataset (declared with
    ``robench.tasks.base.registered``) must name one; a dataset that reads its files from a
    folder needs a ``dataset_root`` (``folders``: an existing one; an embedded one takes
    none). ``elsewhere``: "kind:name" of components registered only where the run was made
    (an imported run's plug-in model), accepted by name."""
    import os

    from robench import registry

    for name in path_params(task_cls) if folders else ():
        value = task_params.get(name)
        if value is None or name == "dataset_root":  # (dataset_root: below, with the dataset named)
            continue
        folder = Path(str(value)).expanduser()
        if name == "weights":  # a file, not a folder
            if not folder.is_file() or not os.access(folder, os.R_OK):
                what = "is a folder" if folder.is_dir() else "not readable" if folder.exists() else "no such file"
                raise UserError(f"{source}: {path}.weights: {what} {value} (expected a checkpoint file saved "
                                f"with torch.save)")
            continue
        if not folder.is_dir():
            what = "is a file" if folder.exists() else "no such folder"
            raise UserError(f"{source}: {path}.{name}: {what} {value} (expected the folder holding the data's files)")
        if not os.access(folder, os.R_OK | os.X_OK):
            raise UserError(f"{source}: {path}.{name}: folder {value} is not readable (check its permissions)")
        missing = task_cls.missing_files(task_params, name)
        if missing:
            raise UserError(f"{source}: {path}.{name}: {value} does not hold {missing}")
    for name, field in task_cls.Params.model_fields.items():
        kind = (field.json_schema_extra or {}).get("registry") if isinstance(field.json_schema_extra, dict) else None
        value = task_params.get(name)
        if kind is None or value is None:
            continue
        if f"{kind[:-1]}:{value}" in elsewhere and value not in registry.REGISTRIES[kind]:
            continue
        try:
            entry = registry.REGISTRIES[kind].entry(value)
        except UserError as exc:
            raise UserError(f"{source}: {path}.{name}: {exc}") from None
        if kind != "datasets" or "dataset_root" not in task_params:
            continue
        root, needs = task_params["dataset_root"], entry.meta.get("root", "optional")
        if needs == "required" and root is None:
            raise UserError(f"{source}: {path}.dataset_root: dataset {value!r} reads its files from a folder; "
                            f"give dataset_root=<folder> (none given)")
        if needs == "forbidden" and root is not None:
            raise UserError(f"{source}: {path}.dataset_root: dataset {value!r} is embedded and takes no "
                            f"dataset_root (got {root!r})")
        if folders and root is not None and not Path(root).expanduser().is_dir():
            raise UserError(f"{source}: {path}.dataset_root: dataset {value!r}: no such folder {root} "
                            f"(expected the folder holding its files)")


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
