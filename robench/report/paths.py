"""No local path on a published page: folder parameters are shown by their last component,
and absolute paths inside free text (tracebacks, labels) lose their machine-specific part.

``root=/home/ann/data/myimgs`` → ``root=myimgs``; a traceback's
``/home/ann/venv/lib/python3.11/site-packages/robench/tasks/x.py`` → ``…/robench/tasks/x.py``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Iterable

# An absolute POSIX path of two or more components, a home-relative one, or a Windows one;
# not the tail of a URL ("https://...") nor of a relative path ("a/b").
_EMBEDDED = re.compile(r"(?<![\w/.~…-])(?:~|[A-Za-z]:)?[/\\](?:[\w.@+~-]+[/\\])+[\w.@+~-]*")
_WHOLE = re.compile(r"^(?:~|[A-Za-z]:)?[/\\]\S*$|^~$")
_KEEP_FROM = ("robench", "site-packages")


def is_local_path(text: str) -> bool:
    """Whether ``text`` as a whole is an absolute (or ``~``) path."""
    return bool(_WHOLE.match(str(text).strip())) and not str(text).startswith("//")


def last_component(text: str) -> str:
    """The last component of a path (``/a/b/c/`` → ``c``; ``/`` → ``/``)."""
    parts = [p for p in re.split(r"[/\\]+", str(text).strip()) if p]
    return parts[-1] if parts else str(text)


def _shorten(path: str) -> str:
    parts = [p for p in re.split(r"[/\\]+", path) if p]
    for marker in _KEEP_FROM:  # keep what a reader can find in the sources: robench/tasks/x.py
        if marker in parts:
            i = len(parts) - 1 - parts[::-1].index(marker)
            tail = parts[i + 1:] if marker == "site-packages" else parts[i:]
            if tail:
                return "…/" + "/".join(tail)
    return "…/" + parts[-1] if parts else path


def scrub_text(text: Any, roots: Iterable[str | Path] = ()) -> str:
    """``text`` with every absolute path shortened, then the folders in ``roots`` (the store's,
    the home folder) replaced wherever they still appear."""
    text = _EMBEDDED.sub(lambda m: _shorten(m.group(0)), str(text))
    for root in sorted({str(r) for r in roots if r and len(str(r)) > 1}, key=len, reverse=True):
        text = text.replace(root.rstrip("/") + "/", "…/").replace(root.rstrip("/"), "…")
    return text


def scrub_value(value: Any, roots: Iterable[str | Path] = ()) -> Any:
    """A parameter or provenance value as published: a path string by its last component,
    other strings scrubbed, dicts and lists element by element."""
    roots = tuple(roots)
    if isinstance(value, str):
        return last_component(value) if is_local_path(value) else scrub_text(value, roots)
    if isinstance(value, dict):
        return {k: scrub_value(v, roots) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(scrub_value(v, roots) for v in value)
    return value


def scrub_label(label: Any, roots: Iterable[str | Path] = ()) -> str:
    """A setting or method label (``k=v, k=v``) with each path value by its last component."""
    def one(match: re.Match) -> str:
        value = match.group(2)
        return match.group(1) + (last_component(value) if is_local_path(value) else value)
    text = re.sub(r"(\b[\w.]+=)([^,()\s]+)", one, str(label))
    return scrub_text(text, roots)


def private_roots(extra: Iterable[str | Path] = ()) -> list[str]:
    """Folders never to publish: ``extra`` (stores, artifact folders) and the user's home."""
    roots = [str(Path(p).expanduser().resolve()) for p in extra if p]
    home = os.path.expanduser("~")
    if home and home not in ("/", "~"):
        roots.append(home)
    return roots
