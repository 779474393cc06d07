"""One registry mechanism for tasks, methods, models and datasets.

Built-ins are declared lazily in :mod:`robench.builtins` as ``"module:attr"`` strings with
their descriptions, so listing them never imports torch. Importing a built-in module runs
its ``@register`` decorators, which resolve the lazy entry instead of duplicating it.
Third-party code registers with the same decorators, either from a package exposing the
entry-point group ``robench.plugins`` or from a single file given with ``--plugin``.

Methods are scoped by task (``magnitude`` of ``compression`` and of another task are two
entries); tasks, models and datasets live in one flat namespace each.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from robench.errors import UserError

KINDS = ("tasks", "methods", "models", "datasets")


@dataclass
class Entry:
    kind: str
    name: str
    description: str = ""
    task: str | None = None  # methods only
    target: str | None = None  # "module:attr" for lazy entries
    obj: Any = field(default=None, repr=False)
    source: str = "builtin"

    def load(self) -> Any:
        if self.obj is None:
            module_name, attr = self.target.split(":")
            module = importlib.import_module(module_name)  # its decorators fill self.obj
            if self.obj is None:
                self.obj = getattr(module, attr)
        return self.obj


class Registry:
    """Name → object for one kind. Keys are ``name`` or, for methods, ``(task, name)``."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[tuple[str | None, str], Entry] = {}

    # -- declaring -----------------------------------------------------------------
    def add_lazy(self, name: str, target: str, description: str = "", task: str | None = None):
        key = (task, name)
        existing = self._entries.get(key)
        if existing is not None and existing.target == target:
            existing.description = description or existing.description  # module imported first
            existing.source = "builtin"
            return
        if existing is not None:
            raise UserError(f"duplicate {self._singular} name {self._label(task, name)!r}")
        self._entries[key] = Entry(self.kind, name, description, task, target)

    def add(self, name: str, obj: Any, description: str | None = None, task: str | None = None,
            source: str = "plugin") -> Any:
        key = (task, name)
        existing = self._entries.get(key)
        target = f"{getattr(obj, '__module__', '?')}:{getattr(obj, '__qualname__', '?')}"
        if existing is not None:
            if existing.target == target and existing.obj in (None, obj):
                # the lazy built-in entry's own module is being imported
                existing.obj = obj
                return obj
            raise UserError(
                f"duplicate {self._singular} name {self._label(task, name)!r}: already registered "
                f"from {existing.target or existing.source}")
        doc = description if description is not None else _first_line(obj)
        self._entries[key] = Entry(self.kind, name, doc, task, target, obj, source)
        return obj

    def register(self, name: str, *, task: str | None = None, description: str | None = None
                 ) -> Callable[[Any], Any]:
        if self.kind == "methods" and task is None:
            raise TypeError("methods are registered for a task: register_method(task, name)")

        def decorator(obj):
            self.add(name, obj, description, task)
            if hasattr(obj, "__dict__") and not isinstance(obj, type(sys)):
                try:
                    obj.registered_name = name
                except (AttributeError, TypeError):
                    pass
            return obj
        return decorator

    # -- looking up ----------------------------------------------------------------
    def get(self, name: str, task: str | None = None) -> Any:
        return self.entry(name, task).load()

    def entry(self, name: str, task: str | None = None) -> Entry:
        key = (task, name)
        if key not in self._entries:
            choices = [n for (t, n) in self._entries if t == task]
            where = f" for task {task!r}" if task else ""
            hint = difflib.get_close_matches(name, choices, n=1, cutoff=0.5)
            msg = f"unknown {self._singular} {name!r}{where}"
            msg += f"; did you mean {hint[0]!r}?" if hint else f"; known: {', '.join(sorted(choices)) or 'none'}"
            raise UserError(msg)
        return self._entries[key]

    def __contains__(self, key) -> bool:
        name, task = (key if isinstance(key, tuple) else (key, None))
        return (task, name) in self._entries

    def entries(self, task: str | None = ...) -> Iterator[Entry]:
        for (t, _), entry in sorted(self._entries.items(), key=lambda kv: (kv[0][0] or "", kv[0][1])):
            if task is ... or t == task:
                yield entry

    def names(self, task: str | None = ...) -> list[str]:
        return [e.name for e in self.entries(task)]

    @property
    def _singular(self) -> str:
        return {"tasks": "task", "methods": "method", "models": "model", "datasets": "dataset"}[self.kind]

    @staticmethod
    def _label(task, name):
        return f"{task}/{name}" if task else name


def _first_line(obj) -> str:
    doc = (getattr(obj, "__doc__", None) or "").strip()
    return doc.splitlines()[0] if doc else ""


tasks = Registry("tasks")
methods = Registry("methods")
models = Registry("models")
datasets = Registry("datasets")
REGISTRIES = {"tasks": tasks, "methods": methods, "models": models, "datasets": datasets}


def register_task(name: str, description: str | None = None):
    """Class decorator: ``@register_task("compression")``."""
    return tasks.register(name, description=description)


def register_method(task: str, name: str, description: str | None = None):
    """Class decorator: ``@register_method("compression", "my-pruner")``."""
    return methods.register(name, task=task, description=description)


def register_model(name: str, description: str | None = None):
    """Decorator for a model factory ``f(num_classes=..., **kw) -> nn.Module``."""
    return models.register(name, description=description)


def register_dataset(name: str, description: str | None = None):
    """Decorator for a dataset loader ``f(root=None, **kw) -> (train, test)``."""
    return datasets.register(name, description=description)


# -- built-ins and plug-ins -----------------------------------------------------------
_builtins_loaded = False
_entry_points_loaded = False
_loaded_plugin_files: dict[str, str] = {}


def load_builtins() -> None:
    global _builtins_loaded
    if _builtins_loaded:
        return
    _builtins_loaded = True
    from robench.builtins import all_builtins
    for kind, name, target, description, *task in all_builtins():
        REGISTRIES[kind].add_lazy(name, target, description, task[0] if task else None)


def load_entry_point_plugins() -> None:
    """Import every package exposing the ``robench.plugins`` entry-point group."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    from importlib.metadata import entry_points
    for ep in entry_points(group="robench.plugins"):
        try:
            loaded = ep.load()
        except Exception as exc:  # a broken third-party package must not break robench
            raise UserError(f"plug-in entry point {ep.name!r} ({ep.value}) failed to load: {exc}") from exc
        if callable(loaded) and not isinstance(loaded, type):
            loaded()  # a ``register()`` hook function


def load_plugin_file(path: str | Path) -> None:
    """Execute a single Python file so its ``@register_*`` decorators run (once per path)."""
    path = Path(path).resolve()
    if str(path) in _loaded_plugin_files:
        return
    if not path.is_file():
        raise UserError(f"--plugin {path}: no such file (expected a Python file that registers methods or models)")
    module_name = f"robench_plugin_{abs(hash(str(path))):x}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except UserError:
        raise
    except SyntaxError as exc:
        raise UserError(f"--plugin {path}:{exc.lineno}: syntax error: {exc.msg}") from exc
    except Exception as exc:
        raise UserError(f"--plugin {path}: importing it raised {type(exc).__name__}: {exc}") from exc
    _loaded_plugin_files[str(path)] = module_name


def setup(plugins: tuple | list = ()) -> None:
    """Make every registry complete: built-ins, installed plug-ins, plug-in files."""
    load_builtins()
    load_entry_point_plugins()
    for p in plugins:
        load_plugin_file(p)
