"""The shape of the code: one declaration per component, light imports, one-way layers.

These tests read the source or import modules in a fresh interpreter; none runs a task.
"""

import ast
import subprocess
import sys
from pathlib import Path

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


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


LAYERS = [
    # (files, what they must not import)
    ("report", ("robench.tasks", "robench.executors", "robench.api", "robench.cli", "robench.check")),
    ("tasks/contract.py", ("robench.tasks.", "robench.check", "robench.executors", "robench.api")),
    ("tasks/base.py", ("robench.tasks.", "robench.check", "robench.executors", "robench.api")),
    ("attacks", ("robench.tasks", "robench.report", "robench.check", "robench.api")),
    ("models", ("robench.tasks", "robench.report", "robench.check", "robench.api")),
    ("data", ("robench.tasks", "robench.report", "robench.check", "robench.api")),
    ("metrics", ("robench.tasks", "robench.report", "robench.check", "robench.api")),
    ("training.py", ("robench.tasks", "robench.report", "robench.check", "robench.api")),
    ("cache.py", ("robench.tasks", "robench.report", "robench.check", "robench.api")),
    ("store.py", ("robench.tasks", "robench.report", "robench.check", "robench.api")),
    ("registry.py", ("robench.tasks", "robench.report", "robench.check", "robench.api")),
    ("spec.py", ("robench.tasks", "robench.report", "robench.check", "robench.api")),
]


@pytest.mark.parametrize("where, forbidden", LAYERS, ids=[w for w, _ in LAYERS])
def test_layers_import_one_way(where, forbidden):
    """Lower layers never import upper ones; the report never imports a task."""
    target = PACKAGE / where
    files = [target] if target.is_file() else sorted(target.rglob("*.py"))
    bad = [f"{f.relative_to(ROOT)} imports {name}" for f in files for name in sorted(_imports(f))
           if any(name == b.rstrip(".") or name.startswith(b if b.endswith(".") else b + ".") or name == b
                  for b in forbidden)]
    assert not bad, "; ".join(bad)


def test_tasks_import_no_other_task_except_through_methods():
    """A task's modules import another task only for a documented reuse (none but the
    compression methods that sparsity_robustness adapts)."""
    allowed = {("sparsity_robustness", "compression")}
    bad = []
    for task in TASKS:
        for f in sorted((PACKAGE / "tasks" / task).rglob("*.py")):
            for name in _imports(f):
                if name.startswith("robench.tasks."):
                    other = name.split(".")[2]
                    if other not in (task, "base", "contract") and (task, other) not in allowed:
                        bad.append(f"{f.relative_to(ROOT)} imports {name}")
    assert not bad, "; ".join(bad)


# Every run id of the shipped suites, pinned (count and a digest of the sorted ids): a
# change of an id recomputes stored results, so it must come with a version bump and a
# reason in the commit message (then update the pin).
PINNED_IDS = [
    ("suites/default.yaml", 130, "4d72eb24482fdddc"),
    ("suites/papers/deepdefense.yaml", 54, "ea46ebf979b4c14b"),
    ("suites/papers/dlnet.yaml", 60, "41660c443b19683a"),
    ("suites/papers/dns.yaml", 90, "afbc60c7792e0a82"),
    ("suites/papers/inq.yaml", 114, "05557a81815ab933"),
    ("suites/papers/sketching.yaml", 90, "6e9b7b0e251d55eb"),
    ("suites/papers/sparse-robustness.yaml", 63, "6e0faf674e442d79"),
    ("suites/papers/stpio.yaml", 18, "0ef9f2eadace70c3"),
    ("suites/smoke.yaml", 2, "1554e641a91fba0a"),
    ("suites/studies/compression-robustness.yaml", 180, "d021af838782bb22"),
]


@pytest.mark.parametrize("suite, count, digest", PINNED_IDS, ids=[s for s, _, _ in PINNED_IDS])
def test_run_ids_of_shipped_suites_are_pinned(suite, count, digest):
    import hashlib

    from robench import api

    ids = sorted(s.id for s in api.validate(ROOT / suite))
    assert len(ids) == count
    assert hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16] == digest
    assert "0b1a13365f3b2583" in ids if suite == "suites/smoke.yaml" else True
