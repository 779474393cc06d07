"""The shape of the code: one declaration per component, light imports, one-way layers.

These tests read the source or import modules in a fresh interpreter; none runs a task.
"""

import ast
import subprocess
import sys

import pytest

from conftest import ROOT
from robench import registry

PACKAGE = ROOT / "robench"
TASKS = sorted(p.name for p in (PACKAGE / "tasks").iterdir() if (p / "task.py").exists())
HEAVY = ("torch", "numpy", "scipy", "skimage", "sklearn", "pandas", "matplotlib", "foolbox")


def _builtin_modules(task: str | None = None) -> list[str]:
    modules = []
    for e in registry.scan_builtins():
        if task is None or e["task"] == task or e["target"].startswith(f"robench.tasks.{task}."):
            modules.append(e["target"].split(":")[0])
    return sorted(set(modules))


@pytest.mark.parametrize("task", TASKS)
def test_declarations_import_without_heavy_packages(task):
    """Task parameters, method signatures and versions load without torch or numpy, so
    `robench validate` and re-running a finished suite never import them."""
    modules = _builtin_modules(task)
    assert modules, f"no registered component found for task {task!r}"
    code = ("import sys\n" + "".join(f"import {m}\n" for m in modules) +
            f"print(sorted(h for h in {HEAVY!r} if h in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", f"importing {task}'s declarations imports {out.stdout.strip()}"


@pytest.mark.parametrize("task", TASKS)
def test_task_folder_has_the_common_shape(task):
    """Folder name = task name; task.py; methods/ with the contract in base.py."""
    folder = PACKAGE / "tasks" / task
    for name in ("__init__.py", "task.py", "methods/__init__.py", "methods/base.py"):
        assert (folder / name).exists(), f"robench/tasks/{task}/{name} is missing"
    registry.load_builtins()
    assert task in registry.tasks, f"folder robench/tasks/{task} holds no task named {task!r}"


def test_every_decorator_is_in_the_index():
    """Importing every built-in module registers nothing the lazy index did not list."""
    modules = _builtin_modules()
    code = ("from robench import registry\nregistry.load_builtins()\n"
            "before = {k: {(e.task, e.name) for e in r.entries()} for k, r in registry.REGISTRIES.items()}\n" +
            "".join(f"import {m}\n" for m in modules) +
            "after = {k: {(e.task, e.name) for e in r.entries()} for k, r in registry.REGISTRIES.items()}\n"
            "loaded = all(e.obj is not None for r in registry.REGISTRIES.values() for e in r.entries())\n"
            "print(before == after, loaded)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "True"]


# -- the import graph ---------------------------------------------------------------------
#
# Every import of every module of robench/ is resolved with `ast`: `import a.b`, `from a.b
# import c` (an edge to a.b.c when c is a submodule, else to a.b), relative imports
# (`from . import x`, `from ..report import table`), `from robench import api`, at module
# level and inside functions and methods. Two kinds of import are left out, because neither
# makes the importer depend on the imported module:
#   * imports under `if TYPE_CHECKING:` (never executed);
#   * the lazy re-exports in a package's PEP 562 `__getattr__`/`__dir__` (`robench` -> api,
#     `robench.attacks` -> evaluate): they add names to the package's namespace for its
#     users; the package's own code does not use them.
# Importing a.b.c also runs a/__init__ and a/b/__init__; those implicit edges are not
# counted (the packages' own imports are).
#
# The rule: the graph of the remaining edges, function-local imports included, has no cycle.
# A function-local import defers loading a heavy module; it must not hide a cycle, which
# would make two modules understandable, testable and importable only together.

MODULES = {".".join(p.relative_to(ROOT).with_suffix("").parts[:-1] if p.name == "__init__.py"
                    else p.relative_to(ROOT).with_suffix("").parts): p
           for p in sorted(PACKAGE.rglob("*.py"))}
FACADES = ("__getattr__", "__dir__")


def _type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def resolve_imports(module: str, source: str, is_package: bool, known) -> list[tuple[str, int, bool]]:
    """(imported robench module, line, function-local) for every import of ``module``'s
    ``source`` that names something inside robench (``known``: every module name). An
    import of a robench name that is no module of ``known`` raises AssertionError."""
    package = module if is_package else module.rpartition(".")[0]
    found: list[tuple[str, int, bool]] = []

    def target(name: str, line: int) -> str:
        assert name in known, f"{module}:{line} imports {name}, which is no module of robench/"
        return name

    def visit(node: ast.AST, local: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _type_checking(child.test):
                for stmt in child.orelse:
                    visit_one(stmt, local)
            else:
                visit_one(child, local)

    def visit_one(node: ast.AST, local: bool) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "robench" or alias.name.startswith("robench."):
                    found.append((target(alias.name, node.lineno), node.lineno, local))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                assert node.level <= len(parts), f"{module}:{node.lineno}: relative import beyond robench"
                base = ".".join(parts[:len(parts) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if base != "robench" and not base.startswith("robench."):
                return
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.append((sub if sub in known else target(base, node.lineno), node.lineno, local))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if is_package and not local and node.name in FACADES:
                return  # a lazy re-export of the package (see above)
            visit(node, True)
        elif isinstance(node, ast.Lambda):
            visit(node, True)
        else:
            visit(node, local)

    visit(ast.parse(source), False)
    return found


def import_graph() -> dict[str, list[tuple[str, int, bool]]]:
    return {m: resolve_imports(m, p.read_text(encoding="utf-8"), p.name == "__init__.py", MODULES)
            for m, p in MODULES.items()}


def test_the_resolver_sees_every_import_form():
    """Relative, aliased, function-local, `from robench import api`; not TYPE_CHECKING, not
    a package's lazy `__getattr__` re-export; an unknown robench module is an error."""
    known = {"robench", "robench.api", "robench.errors", "robench.report", "robench.report.table",
             "robench.tasks", "robench.tasks.compression", "robench.tasks.compression.metrics",
             "robench.tasks.compression.task", "robench.tasks.compression.methods",
             "robench.tasks.compression.methods.base", "robench.tasks.compression.methods.dns"}
    source = """
from __future__ import annotations
import os, robench.errors as errors_alias
from typing import TYPE_CHECKING
from robench import api, UserError
from . import task
from .metrics import layer_stats
from .. import compression
from ...report import table
from ..compression.methods import dns
if TYPE_CHECKING:
    from robench.tasks.compression.methods import base
else:
    import robench.report
def f():
    import robench
    return lambda: __import__("x")
class C:
    def m(self):
        from .methods.base import prunable_layers
def __getattr__(name):
    from robench import api
"""
    edges = resolve_imports("robench.tasks.compression.metrics", source, False, known)
    assert sorted(edges) == sorted([
        ("robench.errors", 3, False), ("robench.api", 5, False), ("robench", 5, False),
        ("robench.tasks.compression.task", 6, False), ("robench.tasks.compression.metrics", 7, False),
        ("robench.tasks.compression", 8, False), ("robench.report.table", 9, False),
        ("robench.tasks.compression.methods.dns", 10, False), ("robench.report", 14, False),
        ("robench", 16, True), ("robench.tasks.compression.methods.base", 20, True),
        ("robench.api", 22, True)])  # __getattr__ of a plain module is an ordinary function
    in_package = resolve_imports("robench.tasks.compression", "from . import metrics\n"
                                 "def __getattr__(name):\n    from .methods import base\n", True, known)
    assert in_package == [("robench.tasks.compression.metrics", 1, False)]
    with pytest.raises(AssertionError, match="robench.tasks.nothing, which is no module"):
        resolve_imports("robench.tasks.compression.metrics", "from ..nothing import x\n", False, known)


# Every module is in one layer; a layer imports only the layers it lists. Lowest first.
LAYERS = {
    # the package facade, errors, ids, the registry and the cache every layer uses
    "core": ("robench", "robench.errors", "robench.seeding", "robench.registry", "robench.spec",
             "robench.cache"),
    # what several tasks share
    "shared": ("robench.models", "robench.data", "robench.metrics", "robench.attacks", "robench.training"),
    "tasks": ("robench.tasks",),
    # reads the results table only: no task, no store, no executor
    "report": ("robench.report",),
    # the driver side: runs tasks, stores and moves results, checks plug-ins, estimates a
    # suite's cost from the store, documents the parameters
    "running": ("robench.executors", "robench.dask_worker", "robench.provenance", "robench.store",
                "robench.bundle", "robench.verify", "robench.check", "robench.costs", "robench.reference"),
    "interface": ("robench.api", "robench.cli"),
}
MAY_IMPORT = {
    "core": {"core"},
    "shared": {"core", "shared"},
    "tasks": {"core", "shared", "tasks"},
    "report": {"core", "report"},
    "running": {"core", "shared", "tasks", "running"},
    "interface": set(LAYERS),
}


def layer_of(module: str) -> str:
    """The layer whose entry is ``module`` or the package holding it (the longest such; the
    entry ``robench`` is the package's ``__init__`` only, not everything under it)."""
    matches = [(len(entry), layer) for layer, entries in LAYERS.items() for entry in entries
               if module == entry or (entry != "robench" and module.startswith(entry + "."))]
    assert matches, f"{module} is in no layer: add it to LAYERS in tests/test_architecture.py"
    return max(matches)[1]


def _edges(graph=None):
    graph = import_graph() if graph is None else graph
    return [(m, t, line, local) for m, found in graph.items() for t, line, local in found if t != m]


def test_every_module_is_in_exactly_one_layer():
    assert MAY_IMPORT.keys() == LAYERS.keys()
    entries = [e for group in LAYERS.values() for e in group]
    assert len(entries) == len(set(entries)), "an entry appears in two layers"
    assert all(e in MODULES for e in entries), [e for e in entries if e not in MODULES]
    top_level = {m for m in MODULES if m.count(".") <= 1}
    assert top_level <= set(entries), f"top-level modules in no layer: {sorted(top_level - set(entries))}"
    for module in MODULES:
        layer_of(module)


def test_layers_import_one_way():
    """Lower layers never import upper ones; tasks and the report never import each other."""
    bad = [f"{m}:{line} ({layer_of(m)}) imports {t} ({layer_of(t)})" for m, t, line, _ in _edges()
           if layer_of(t) not in MAY_IMPORT[layer_of(m)]]
    assert not bad, "; ".join(bad)


NOT_FOR_TASKS = ("robench.report", "robench.executors", "robench.dask_worker", "robench.api",
                 "robench.cli", "robench.check", "robench.store", "robench.bundle", "robench.verify",
                 "robench.provenance")


def _names(module: str, prefixes) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def test_tasks_never_import_the_driver_or_the_report_and_the_report_never_a_task():
    """DESIGN: tasks know nothing about suites, executors, the store or HTML; reports read
    only the store's table and never import a task."""
    edges = _edges()
    bad = [f"{m}:{line} imports {t}" for m, t, line, _ in edges
           if (_names(m, ("robench.tasks",)) and _names(t, NOT_FOR_TASKS))
           or (_names(m, ("robench.report",)) and _names(t, ("robench.tasks",)))]
    assert not bad, "; ".join(bad)


def test_task_protocol_modules_import_no_task():
    """tasks/base.py and tasks/contract.py are what every task builds on: no task below them."""
    bad = [f"{m}:{line} imports {t}" for m, t, line, _ in _edges()
           if m in ("robench.tasks.base", "robench.tasks.contract") and t.startswith("robench.tasks.")
           and t not in ("robench.tasks.base", "robench.tasks.contract")]
    assert not bad, "; ".join(bad)


def test_tasks_import_no_other_task_except_through_methods():
    """A task's modules import another task only for a documented reuse (none but the
    compression methods that sparsity_robustness and corruption_robustness adapt, and the
    restoration methods corruption_robustness restores with)."""
    allowed = {("sparsity_robustness", "compression"), ("corruption_robustness", "compression"),
               ("corruption_robustness", "restoration_spectrum")}
    bad = []
    for m, t, line, _ in _edges():
        if m.startswith("robench.tasks.") and t.startswith("robench.tasks."):
            task, other = m.split(".")[2], t.split(".")[2]
            if task in TASKS and other not in (task, "base", "contract") and (task, other) not in allowed:
                bad.append(f"{m}:{line} imports {t}")
    assert not bad, "; ".join(bad)


def find_cycle(edges) -> list[str] | None:
    """One cycle of the directed graph ``edges`` (pairs), as [a, b, ..., a], or None."""
    succ: dict[str, list[str]] = {}
    for a, b in edges:
        succ.setdefault(a, []).append(b)
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def walk(node):
        state[node] = 1
        path.append(node)
        for nxt in sorted(set(succ.get(node, ()))):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = walk(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(succ):
        if node not in state:
            found = walk(node)
            if found:
                return found
    return None


def test_find_cycle_finds_one():
    assert find_cycle([("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")]) == ["a", "b", "c", "a"]
    assert find_cycle([("a", "b"), ("a", "c"), ("b", "c")]) is None


def test_no_import_cycle_among_robench_modules():
    """The rule above: no cycle, function-local imports included."""
    edges = _edges()
    where = {(m, t): f"{m}:{line}{' (in a function)' if local else ''}" for m, t, line, local in edges}
    cycle = find_cycle([(m, t) for m, t, _, _ in edges])
    assert cycle is None, "import cycle: " + " -> ".join(cycle) + "; edges: " + \
        ", ".join(where[a, b] for a, b in zip(cycle, cycle[1:]))


# Every run id of the shipped suites, pinned (count and a digest of the sorted ids): a
# change of an id recomputes stored results, so it must come with a version bump and a
# reason in the commit message (then update the pin).
PINNED_IDS = [
    ("suites/default.yaml", 139, "95ebbb8056681ded"),  # 130 + corruption_robustness (9): old ids unchanged
    ("suites/papers/deepdefense.yaml", 54, "768ca12aeb88fab9"),
    ("suites/papers/dlnet.yaml", 60, "41660c443b19683a"),
    ("suites/papers/dns.yaml", 90, "afbc60c7792e0a82"),
    ("suites/papers/inq.yaml", 114, "05557a81815ab933"),
    ("suites/papers/sketching.yaml", 90, "6e9b7b0e251d55eb"),
    ("suites/papers/sparse-robustness.yaml", 63, "239677810458edf9"),
    ("suites/papers/stpio.yaml", 18, "0ef9f2eadace70c3"),
    ("suites/smoke.yaml", 2, "1554e641a91fba0a"),
    ("suites/studies/compression-robustness.yaml", 180, "beeab943893916dc"),
    ("suites/studies/compression-corruptions.yaml", 126, "c940716dccef095b"),
]


@pytest.mark.parametrize("suite, count, digest", PINNED_IDS, ids=[s for s, _, _ in PINNED_IDS])
def test_run_ids_of_shipped_suites_are_pinned(suite, count, digest):
    import hashlib

    from robench import api

    ids = sorted(s.id for s in api.validate(ROOT / suite))
    assert len(ids) == count
    assert hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16] == digest
    assert "0b1a13365f3b2583" in ids if suite == "suites/smoke.yaml" else True
