"""One registry mechanism for tasks, methods, models and datasets.

A component is declared once, by its decorator (``@register_task``, ``@register_method``,
``@register_model``, ``@register_dataset``). For the built-ins, :func:`load_builtins`
builds a lazy index by *reading* the decorators in the package's source (``models/``,
``data/``, ``tasks/``) without importing anything, so ``robench --help`` and ``robench ls``
never import torch; a module is imported when one of its entries is first used, and its
decorators then resolve the lazy entries. A new task is a folder under ``robench/tasks/``:
nothing else lists it. Third-party code registers with the same decorators, from a package
exposing the entry-point group ``robench.plugins`` or from a file given with ``--plugin``.

Methods are scoped by task (``magnitude`` of ``compression`` and of another task are two
entries) and must subclass their task's ``method_base``: a method of an unknown task, or
of the wrong type, is refused when it registers. A task may take another task's methods
instead of its own: its class attribute ``methods_from = "compression"`` makes every
method look-up for it (``get``, ``entry``, ``entries``, ``names``, ``in``) resolve to that
task's entries, and registering a method for it is refused. Tasks, models and datasets
live in one flat namespace each; a model name with a library prefix (``tv:resnet18``,
``timm:convnext_tiny``, see ``MODEL_PREFIXES``) gets its entry when first looked up.
"""

from __future__ import annotations

import ast
import difflib
import importlib
import importlib.util
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from robench.errors import UserError

KINDS = ("tasks", "methods", "models", "datasets")
# Model names with a library prefix name one of that library's architectures ("tv:resnet18",
# "timm:convnext_tiny"). Their entries are made when a name is first looked up, by the
# function named here ("module:attr", given the whole name; an unknown architecture is its
# UserError), so listing models imports no library. The text is what `robench ls models` says.
MODEL_PREFIXES = {
    "tv": ("robench.models.zoo:resolve",
           "any torchvision classification architecture (tv:resnet18, tv:vgg16_bn, tv:googlenet...), untrained, "
           "ImageNet mean/std inside"),
    "timm": ("robench.models.zoo:resolve",
             "any timm architecture (timm:resnet50, timm:convnext_tiny...; needs timm: pip install 'robench[timm]'), "
             "untrained, its mean/std inside"),
}
_SINGULAR = {"tasks": "task", "methods": "method", "models": "model", "datasets": "dataset"}
_KIND_OF = {"task": "tasks", "method": "methods", "model": "models", "dataset": "datasets"}


@dataclass
class Entry:
    kind: str
    name: str
    description: str | None = ""  # None: read from the source when first asked for
    task: str | None = None  # methods only
    target: str | None = None  # "module:attr" for lazy entries
    obj: Any = field(default=None, repr=False)
    source: str = "builtin"
    file: str | None = None  # the source file of a lazy built-in entry
    meta: dict = field(default_factory=dict)  # declared with the decorator (version; datasets: root)
    source_hash: str | None = None  # a plug-in's module source (sha256, 12 hex): part of run ids

    @property
    def version(self) -> str:
        """The component's version: a model's or dataset's declared ``version`` (default
        "1"); a task's or method's class attribute ``version``."""
        if self.kind in ("models", "datasets"):
            return str(self.meta.get("version", "1"))
        return str(getattr(self.load(), "version", "1"))

    def identity(self) -> str | None:
        """What a run id must cover of this component beyond its name and the versions the
        spec already holds: a model's or dataset's version when it is not "1", and the
        source hash of a plug-in's module (so editing the file recomputes its runs). None
        for a built-in at version 1."""
        parts = []
        if self.kind in ("models", "datasets") and self.version != "1":
            parts.append(f"v{self.version}")
        if self.source_hash:
            parts.append(f"src:{self.source_hash}")
        return "+".join(parts) or None

    def load(self) -> Any:
        if self.obj is None:
            module_name, attr = self.target.split(":")
            module = importlib.import_module(module_name)  # its decorators fill self.obj
            if self.obj is None:
                self.obj = getattr(module, attr)
        return self.obj

    @property
    def doc(self) -> str:
        """The description: given at registration, else the first line of the docstring."""
        if self.description is None:
            self.description = (_first_line(self.obj) if self.obj is not None
                                else _source_docstring(self.file, self.target))
        return self.description


class Registry:
    """Name → object for one kind. Keys are ``name`` or, for methods, ``(task, name)``."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[tuple[str | None, str], Entry] = {}
        self._on_demand: dict[str, Entry] = {}  # models: the entries of prefixed names looked up so far

    # -- declaring -----------------------------------------------------------------
    def add_lazy(self, name: str, target: str, description: str | None = None, task: str | None = None,
                 file: str | None = None, meta: dict | None = None) -> None:
        key = (task, name)
        existing = self._entries.get(key)
        if existing is not None and existing.target == target:
            existing.source, existing.file = "builtin", file  # its module was imported first
            if description is not None:
                existing.description = description
            return
        if existing is not None:
            raise UserError(f"duplicate {self._singular} name {self._label(task, name)!r}: declared in "
                            f"{target} and {existing.target or existing.source}")
        self._entries[key] = Entry(self.kind, name, description, task, target, file=file, meta=dict(meta or {}))

    def add(self, name: str, obj: Any, description: str | None = None, task: str | None = None,
            source: str = "plugin", meta: dict | None = None) -> Any:
        key = (task, name)
        existing = self._entries.get(key)
        target = f"{getattr(obj, '__module__', '?')}:{getattr(obj, '__qualname__', '?')}"
        if existing is not None:
            if existing.target == target and existing.obj in (None, obj):
                # the lazy built-in entry's own module is being imported
                existing.obj = obj
                if description is not None:
                    existing.description = description
                return obj
            raise UserError(
                f"duplicate {self._singular} name {self._label(task, name)!r}: already registered "
                f"from {existing.target or existing.source}")
        self._entries[key] = Entry(self.kind, name, description, task, target, obj, source, meta=dict(meta or {}),
                                   source_hash=_module_source_hash(obj))
        return obj

    def register(self, name: str, *, task: str | None = None, description: str | None = None,
                 meta: dict | None = None) -> Callable[[Any], Any]:
        if self.kind == "methods" and task is None:
            raise TypeError("methods are registered for a task: register_method(task, name)")
        if not isinstance(name, str) or not name:
            raise UserError(f"register_{self._singular}: name {name!r}; expected a non-empty string")
        if self.kind == "models" and name.partition(":")[0] in MODEL_PREFIXES and ":" in name:
            raise UserError(f"register_model({name!r}): names starting with {name.partition(':')[0] + ':'!r} are "
                            f"that library's architectures; choose a name without it")

        def decorator(obj):
            load_builtins()  # the index first, so a built-in imported directly is not a duplicate
            declared = dict(meta or {})
            if self.kind == "methods":
                _check_method_class(task, name, obj)
            elif self.kind == "tasks" and getattr(obj, "methods_from", None):
                declared["methods_from"] = _methods_from_value(obj.methods_from, name)
            self.add(name, obj, description, task, meta=declared)
            if "methods_from" in declared:  # (also when inherited, which the source scan misses)
                self._entries[(task, name)].meta["methods_from"] = declared["methods_from"]
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

    def _scope(self, task: str | None) -> str | None:
        """The task whose methods ``task`` uses: itself, or its ``methods_from``."""
        return methods_scope(task) if self.kind == "methods" else task

    def entry(self, name: str, task: str | None = None) -> Entry:
        asked, task = task, self._scope(task)
        key = (task, name)
        if key not in self._entries and task is None and self._prefixed(name):
            return self._resolve(name)
        if key not in self._entries:
            choices = [n for (t, n) in self._entries if t == task]
            where = f" for task {asked!r}" if asked else ""
            where += f" (it takes the methods of {task!r})" if task != asked else ""
            hint = difflib.get_close_matches(name, choices, n=1, cutoff=0.5) if isinstance(name, str) else []
            library = _library_hint(name) if self.kind == "models" and isinstance(name, str) else None
            hint = [library] if library else hint  # "resnet18" means torchvision's, not "resnet20"
            msg = f"unknown {self._singular} {name!r}{where}"
            msg += f"; did you mean {hint[0]!r}?" if hint else f"; known: {', '.join(sorted(choices)) or 'none'}"
            raise UserError(msg)
        return self._entries[key]

    def __contains__(self, key) -> bool:
        name, task = (key if isinstance(key, tuple) else (key, None))
        if (self._scope(task), name) in self._entries:
            return True
        if task is None and self._prefixed(name):
            try:
                self._resolve(name)
            except UserError:  # unknown architecture, library not installed
                return False
            return True
        return False

    def _prefixed(self, name) -> bool:
        """A model name with a library prefix (``MODEL_PREFIXES``), resolved on demand."""
        return self.kind == "models" and isinstance(name, str) and ":" in name \
            and name.partition(":")[0] in MODEL_PREFIXES

    def _resolve(self, name: str) -> Entry:
        """The entry of a prefixed model name, made by its library's resolver on first use."""
        if name not in self._on_demand:
            module_name, attr = MODEL_PREFIXES[name.partition(":")[0]][0].split(":")
            self._on_demand[name] = getattr(importlib.import_module(module_name), attr)(name)
        return self._on_demand[name]

    def entries(self, task: str | None = ...) -> Iterator[Entry]:
        """The entries of ``task`` (of the task it takes its methods from), or of every
        task (``...``: each entry once, under the task it registered for)."""
        if task is not ...:
            task = self._scope(task)
        for (t, _), entry in sorted(self._entries.items(), key=lambda kv: (kv[0][0] or "", kv[0][1])):
            if task is ... or t == task:
                yield entry

    def names(self, task: str | None = ...) -> list[str]:
        return [e.name for e in self.entries(task)]

    @property
    def _singular(self) -> str:
        return _SINGULAR[self.kind]

    @staticmethod
    def _label(task, name):
        return f"{task}/{name}" if task else name


def _module_source_hash(obj: Any) -> str | None:
    """SHA-256 (12 hex) of the source file of the module defining ``obj``, or None."""
    import hashlib

    module = sys.modules.get(getattr(obj, "__module__", "") or "")
    path = getattr(module, "__file__", None)
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12] if path else None
    except OSError:
        return None


def methods_scope(task: str | None) -> str | None:
    """The task whose registered methods ``task`` uses: ``task`` itself, or the task named
    by its class attribute ``methods_from`` (read from the source for a built-in task, so
    no task module is imported). A ``methods_from`` naming an unknown task, or one that
    itself borrows, is a one-line UserError."""
    if task is None or (None, task) not in tasks._entries:
        return task
    source = tasks._entries[(None, task)].meta.get("methods_from")
    if not source:
        return task
    if (None, source) not in tasks._entries:
        raise UserError(f"task {task!r}: methods_from={source!r} names no registered task "
                        f"(known: {', '.join(tasks.names())})")
    if tasks._entries[(None, source)].meta.get("methods_from"):
        raise UserError(f"task {task!r}: methods_from={source!r}, a task that itself takes the methods of "
                        f"{tasks._entries[(None, source)].meta['methods_from']!r}; name that task instead")
    return source


def methods_users(task: str) -> list[str]:
    """``task`` and every task that takes its methods from it (``methods_from``), sorted:
    the tasks a method registered for ``task`` runs in (``robench ls`` can name them)."""
    return sorted({task} | {e.name for e in tasks.entries() if e.meta.get("methods_from") == task})


def _methods_from_value(value: Any, task: str) -> str:
    if not isinstance(value, str) or not value:
        raise UserError(f"task {task!r}: methods_from={value!r}; expected the name of a registered task")
    return value


def _check_method_class(task: str, name: str, obj: Any) -> None:
    """A method registers for a task that exists, and subclasses that task's ``method_base``."""
    if task not in tasks:
        known = ", ".join(tasks.names()) or "none"
        raise UserError(f"register_method({task!r}, {name!r}): unknown task {task!r} (known: {known}); "
                        f"register the task first")
    source = methods_scope(task)
    if source != task:
        raise UserError(f"register_method({task!r}, {name!r}): task {task!r} takes the methods of {source!r}; "
                        f"register it with register_method({source!r}, {name!r})")
    task_cls = tasks.get(task)
    base = getattr(task_cls, "method_base", None)
    if base is not None and not (isinstance(obj, type) and issubclass(obj, base)):
        raise UserError(f"register_method({task!r}, {name!r}): {getattr(obj, '__name__', obj)!r} does not "
                        f"subclass {base.__module__}.{base.__qualname__}, the base of every {task!r} method")


def _library_hint(name: str) -> str | None:
    """``tv:NAME`` for an unknown model name that is a torchvision architecture's (asked
    only on the error path: it imports torchvision)."""
    module_name, _ = MODEL_PREFIXES["tv"][0].split(":")
    return importlib.import_module(module_name).bare_name_hint(name)


def _first_line(obj) -> str:
    return _summary(getattr(obj, "__doc__", None) or "")


def _summary(doc: str) -> str:
    """A docstring's first paragraph as one line (its first sentence if that is long),
    without reST's double backquotes."""
    import inspect

    lines = []
    for line in inspect.cleandoc(doc).splitlines():
        if not line.strip():
            break
        lines.append(line.strip())
    text = " ".join(lines).replace("``", "")
    if len(text) > 110 and ". " in text:
        text = text[:text.index(". ") + 1]
    return text


tasks = Registry("tasks")
methods = Registry("methods")
models = Registry("models")
datasets = Registry("datasets")
REGISTRIES = {"tasks": tasks, "methods": methods, "models": models, "datasets": datasets}


def register_task(name: str, description: str | None = None):
    """Class decorator: ``@register_task("compression")``."""
    return tasks.register(name, description=description)


def register_method(task: str, name: str, description: str | None = None):
    """Class decorator: ``@register_method("compression", "my-pruner")``; the class must
    subclass the task's method base (e.g. ``CompressionMethod``)."""
    return methods.register(name, task=task, description=description)


def register_model(name: str, description: str | None = None, version: str = "1"):
    """Decorator for a model factory ``f(num_classes=..., **kw) -> nn.Module`` (``in_channels=``
    too where the data may have several). Bump ``version`` when a change would alter results:
    the runs using the model get new ids and are recomputed."""
    return models.register(name, description=description, meta={"version": str(version)})


DATASET_ROOTS = ("optional", "required", "forbidden")


def register_dataset(name: str, description: str | None = None, root: str = "optional", version: str = "1"):
    """Decorator for a dataset loader ``f(root=None) -> robench.data.Splits``. ``root``
    says whether it reads files from a folder the user gives: "required" (full public
    data), "forbidden" (embedded data) or "optional"; suite expansion checks it. Bump
    ``version`` when the data a name stands for change (its runs are then recomputed)."""
    if root not in DATASET_ROOTS:
        raise UserError(f"register_dataset({name!r}): root={root!r}; expected one of {', '.join(DATASET_ROOTS)}")
    return datasets.register(name, description=description, meta={"root": root, "version": str(version)})


# -- the built-in index, read from the decorators ------------------------------------------
PACKAGE_ROOT = Path(__file__).resolve().parent
_INDEXED_FOLDERS = ("models", "data", "tasks")
# a decorator line and the class/def it decorates (other decorators may sit in between)
_DECORATED = re.compile(r"^@register_(task|method|model|dataset)\((.*?)^(?:class|def)\s+(\w+)",
                        re.MULTILINE | re.DOTALL)


def scan_builtins(root: Path = PACKAGE_ROOT) -> list[dict]:
    """Every ``@register_*`` decorator in the package's source, without importing it:
    dicts with kind, name, task, target ("module:attr"), description (None: the docstring)
    and file. A decorator whose name or task is not a string literal is an error."""
    found = []
    for folder in _INDEXED_FOLDERS:
        for path in sorted((root / folder).rglob("*.py")):
            text = path.read_text(encoding="utf-8")
            if "@register_" not in text:
                continue
            module = ".".join(("robench", *path.relative_to(root).with_suffix("").parts))
            for match in _DECORATED.finditer(text):
                kind, attr = _KIND_OF[match.group(1)], match.group(3)
                call = "@register_" + match.group(1) + "(" + match.group(2)
                args, kwargs = _decorator_args(call, path)
                if kind == "methods":
                    task, name = args[:2]
                else:
                    task, name = None, args[0]
                meta = _declared_meta(kind, kwargs)
                if kind == "tasks":
                    source = _class_literal(text, attr, "methods_from", path)
                    if source is not None:
                        meta["methods_from"] = _methods_from_value(source, name)
                found.append({"kind": kind, "name": name, "task": task, "target": f"{module}:{attr}",
                              "description": kwargs.get("description", args[2 if kind == "methods" else 1]
                                                        if len(args) > (2 if kind == "methods" else 1) else None),
                              "file": str(path),
                              "meta": meta})
    return found


def _class_literal(text: str, cls: str, attr: str, path: Path) -> Any:
    """The literal value of class attribute ``attr`` in the body of class ``cls`` in the
    source ``text`` (None when it is not set there); a value that is not a literal is an
    error, as for a decorator's arguments."""
    if attr not in text:
        return None
    for node in ast.parse(text).body:
        if isinstance(node, ast.ClassDef) and node.name == cls:
            for item in node.body:
                targets = item.targets if isinstance(item, ast.Assign) else \
                    [item.target] if isinstance(item, ast.AnnAssign) and item.value is not None else []
                if any(isinstance(t, ast.Name) and t.id == attr for t in targets):
                    try:
                        return ast.literal_eval(item.value)
                    except ValueError:
                        raise RuntimeError(f"{path}: {cls}.{attr} must be a string literal") from None
    return None


def _declared_meta(kind: str, kwargs: dict) -> dict:
    if kind == "datasets":
        return {"root": kwargs.get("root", "optional"), "version": str(kwargs.get("version", "1"))}
    if kind == "models":
        return {"version": str(kwargs.get("version", "1"))}
    return {}


def _decorator_args(call: str, path: Path) -> tuple[list, dict]:
    try:
        tree = ast.parse(call.strip() + "\ndef _(): pass\n")
        node = tree.body[0].decorator_list[0]
        args = [ast.literal_eval(a) for a in node.args]
        kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords}
    except (SyntaxError, ValueError, IndexError) as exc:
        raise RuntimeError(f"{path}: a built-in decorator's arguments must be string literals "
                           f"({call.splitlines()[0]}): {exc}") from None
    return args, kwargs


def _source_docstring(file: str | None, target: str | None) -> str:
    """First docstring line of ``attr`` in ``file``, read without importing it."""
    if not file or not target:
        return ""
    attr = target.split(":")[1]
    try:
        tree = ast.parse(Path(file).read_text(encoding="utf-8"))
    except (OSError, SyntaxError):
        return ""
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)) and node.name == attr:
            return _summary(ast.get_docstring(node) or "")
    return ""


# -- built-ins and plug-ins -----------------------------------------------------------
_builtins_loaded = False
_entry_points_loaded = False
_loaded_plugin_files: dict[str, str] = {}


def load_builtins() -> None:
    global _builtins_loaded
    if _builtins_loaded:
        return
    _builtins_loaded = True
    for e in scan_builtins():
        REGISTRIES[e["kind"]].add_lazy(e["name"], e["target"], e["description"], e["task"], e["file"], e["meta"])


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
        except UserError:
            raise
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
    load_builtins()
    # named by content, not path: a Dask worker that loads the same file from elsewhere
    # gets the same module name, so functions pickled on the driver resolve there
    import hashlib
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    stem = "".join(c if c.isalnum() else "_" for c in path.stem)
    module_name = f"robench_plugin_{stem}_{digest}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except UserError as exc:
        raise UserError(f"--plugin {path}: {exc}") from None
    except SyntaxError as exc:
        raise UserError(f"--plugin {path}:{exc.lineno}: syntax error: {exc.msg}") from exc
    except Exception as exc:
        raise UserError(f"--plugin {path}: importing it raised {type(exc).__name__}: {exc}") from exc
    except SystemExit as exc:  # a plug-in must not end robench (and never with status 0)
        raise UserError(f"--plugin {path}: it called sys.exit({exc.code!r}) while being imported; a plug-in "
                        f"file only defines and registers components") from None
    _loaded_plugin_files[str(path)] = module_name


def plugin_files() -> dict[str, str]:
    """The plug-in files loaded in this process: path → sha256 of its source (12 hex)."""
    import hashlib

    out = {}
    for path in _loaded_plugin_files:
        try:
            out[path] = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]
        except OSError:
            out[path] = "unreadable"
    return out


def setup(plugins: tuple | list = ()) -> None:
    """Make every registry complete: built-ins, installed plug-ins, plug-in files."""
    load_builtins()
    load_entry_point_plugins()
    for p in plugins:
        load_plugin_file(p)
