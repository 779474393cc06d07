"""The one shared cache: lock, compute, atomic replace.

Trained baselines, reference networks, generated datasets and per-setting numbers that
several runs need are computed once and kept under the store's ``cache/`` folder. Every
such file (or folder) goes through :func:`cached`: concurrent processes wait on a file
lock instead of computing it twice, and the result is written under a temporary name and
renamed into place, so a killed run never leaves half a file where a whole one is
expected. A file that exists is complete.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from pathlib import Path
from typing import Any, Callable

_UNSET = object()


def cached(path: str | Path, compute: Callable[[], Any], save: Callable[[Any, Path], None],
           load: Callable[[Path], Any], *, blocking: bool = True) -> tuple[Any, bool]:
    """``(value, was_cached)`` for the cache entry ``path``.

    ``load(path)`` reads an existing entry. Otherwise, holding ``<path>.lock``,
    ``compute()`` makes the value, ``save(value, tmp)`` writes it to a temporary path
    (a file, or a folder it creates) that then replaces ``path`` atomically, and the
    computed value is returned. With ``blocking=False`` an entry another process is
    computing gives ``(None, False)`` at once instead of waiting.
    """
    path = Path(path)
    if path.exists():
        return load(path), True
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / f"{path.name}.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            return None, False
        if path.exists():  # computed by the process we waited for
            return load(path), True
        value = compute()
        tmp = path.parent / f".{path.name}.tmp-{os.getpid()}"
        _remove(tmp)
        try:
            save(value, tmp)
            os.replace(tmp, path)
        finally:
            _remove(tmp)
    return value, False


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()
