"""The parameter reference: every task's and method's parameters with their type, default,
range and meaning, read from their declarations (a task's ``Params`` fields; a method's
constructor signature and the ``name: meaning`` lines of its class docstring).

``robench ls tasks -v`` prints it; the README's table is the same text
(``robench ls tasks -v --format markdown``), kept true by a test.
"""

from __future__ import annotations

import inspect
import re
from typing import Any


def _type_name(annotation: Any) -> str:
    if annotation is inspect.Parameter.empty or annotation is None:
        return ""
    if isinstance(annotation, type):
        return annotation.__name__
    text = str(annotation).replace("typing.", "").replace("NoneType", "None")
    return re.sub(r"\bOptional\[(.*)\]$", r"\1 | None", text)


def _range(metadata: list) -> str:
    """'> 0', '≥ 0, ≤ 1' from pydantic's constraint metadata."""
    parts = []
    for item in metadata:
        for attr, sign in (("gt", ">"), ("ge", "≥"), ("lt", "<"), ("le", "≤")):
            value = getattr(item, attr, None)
            if value is not None:
                parts.append(f"{sign} {value:g}" if isinstance(value, (int, float)) else f"{sign} {value}")
    return ", ".join(parts)


def _short(value: Any) -> str:
    from robench.spec import short_value

    return "None" if value is None else short_value(value) if not isinstance(value, str) else value


def task_parameters(task_cls) -> list[dict]:
    rows = []
    for name, field in task_cls.Params.model_fields.items():
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        meaning = field.description or ""
        if extra.get("registry"):
            meaning = meaning or f"a registered {extra['registry'][:-1]}"
        if name == "root" or name.endswith("_root"):
            meaning = meaning or "folder of the dataset's files"
        rows.append({"name": name, "type": _type_name(field.annotation), "default": _short(field.default),
                     "range": _range(field.metadata), "meaning": meaning})
    return rows


def method_parameters(method_cls) -> list[dict]:
    """A method's constructor parameters; meanings from its docstring's ``name: ...`` lines."""
    from robench.spec import _annotations, method_param_names

    sig = inspect.signature(method_cls.__init__)
    hints = _annotations(method_cls.__init__)
    names = method_param_names(method_cls)
    docs: dict[str, str] = {}
    for klass in method_cls.__mro__:  # a subclass (an ablation) may leave its base's parameters to its base's doc
        for name, meaning in _docstring_params(inspect.cleandoc(klass.__doc__ or ""), names).items():
            docs.setdefault(name, meaning)
    rows = []
    for name in names:
        p = sig.parameters[name]
        default = "required" if p.default is inspect.Parameter.empty else _short(p.default)
        meaning = docs.get(name, "")
        found = re.search(r"\bin ([\[(][^\])]*[\])])", meaning)
        rows.append({"name": name, "type": _type_name(hints.get(name, p.annotation)), "default": default,
                     "range": found.group(1) if found else "", "meaning": meaning})
    return rows


def _docstring_params(doc: str, names: list[str]) -> dict[str, str]:
    """Meanings of the parameters ``names`` from ``name: meaning`` passages of a docstring
    (``a, b: meaning`` names several; a meaning runs on to the next such passage or the end
    of its paragraph)."""
    if not names:
        return {}
    alternatives = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
    head = re.compile(rf"(?<![\w`.])(?:``)?((?:{alternatives})(?:``)?(?:,\s*(?:``)?(?:{alternatives})(?:``)?)*):\s")
    out: dict[str, str] = {}
    for paragraph in re.split(r"\n\s*\n", doc):
        text = " ".join(line.strip() for line in paragraph.splitlines())
        found = list(head.finditer(text))
        for i, match in enumerate(found):
            end = found[i + 1].start() if i + 1 < len(found) else len(text)
            meaning = re.sub(r"``([^`]*)``", r"\1", text[match.end():end].strip())
            for name in re.split(r",\s*", match.group(1).replace("``", "")):
                out.setdefault(name, meaning)
    return out


def reference(plugins: tuple = (), builtins_only: bool = False) -> list[dict]:
    """One dict per task: name, description, typical_run_s, params (rows), methods: [{name,
    description, params}] (a task that takes another task's methods lists them too);
    ``builtins_only``: leave out what plug-ins registered (the README's table)."""
    from robench import registry

    registry.setup(plugins)
    out = []
    for entry in registry.tasks.entries():
        if builtins_only and entry.source != "builtin":
            continue
        task_cls = entry.load()
        methods = [{"name": m.name, "description": m.doc, "params": method_parameters(m.load())}
                   for m in registry.methods.entries(entry.name) if not builtins_only or m.source == "builtin"]
        out.append({"name": entry.name, "description": entry.doc,
                    "typical_run_s": getattr(task_cls, "typical_run_s", None),
                    "params": task_parameters(task_cls), "methods": methods})
    return out


def markdown(tasks: list[dict]) -> str:
    """The reference as Markdown: per task, a table of its parameters and one of its methods'."""
    from robench.costs import duration

    def cell(text: str) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    lines = []
    for task in tasks:
        cost = f" One run: ~{duration(task['typical_run_s'])} on a 2-core CPU at the default suite's settings." \
            if task["typical_run_s"] else ""
        lines += [f"### `{task['name']}`", "", f"{cell(task['description'])}{cost}", "",
                  "| parameter | type | default | range | meaning |", "| --- | --- | --- | --- | --- |"]
        lines += [f"| `{r['name']}` | {cell(r['type'])} | {cell(r['default'])} | {cell(r['range'])} | {cell(r['meaning'])} |"
                  for r in task["params"]]
        lines += ["", "| method | parameter | type | default | meaning |", "| --- | --- | --- | --- | --- |"]
        for method in task["methods"]:
            if not method["params"]:
                lines.append(f"| `{method['name']}` | — | | | {cell(method['description'])} |")
            for i, r in enumerate(method["params"]):
                lines.append(f"| {'`' + method['name'] + '`' if i == 0 else ''} | `{r['name']}` | {cell(r['type'])} | "
                             f"{cell(r['default'])} | {cell(r['meaning'])} |")
        lines.append("")
    return "\n".join(lines)


def text(tasks: list[dict]) -> str:
    """The reference as plain text for a terminal."""
    from robench.costs import duration

    lines = []
    for task in tasks:
        cost = f" (~{duration(task['typical_run_s'])} a run at the default suite's settings)" \
            if task["typical_run_s"] else ""
        lines += [f"{task['name']}: {task['description']}{cost}"]
        width = max((len(r["name"]) for r in task["params"]), default=0)
        for r in task["params"]:
            bounds = f" [{r['range']}]" if r["range"] else ""
            lines.append(f"  {r['name']:<{width}}  {r['type']} = {r['default']}{bounds}  {r['meaning']}")
        for method in task["methods"]:
            lines.append(f"  method {method['name']}: {method['description']}")
            for r in method["params"]:
                lines.append(f"      {r['name']}: {r['type']} = {r['default']}  {r['meaning']}")
        lines.append("")
    return "\n".join(lines)
