"""The one shared cache: lock, compute, verify, atomic replace.

Trained baselines, reference networks, generated datasets and per-setting numbers that
several runs need are computed once and kept under the store's ``cache/`` folder. Every
such file (or folder) goes through :func:`cached`: concurrent processes wait on a file
lock instead of computing it twice; the result is written under a temporary name and
renamed into place, so a killed run never leaves half a file where a whole one is
expected; and a SHA-256 checksum written beside it (``<name>.sha256``) is verified before
every load, so a truncated or overwritten entry is reported in one line, recomputed and
replaced instead of being loaded.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any, Callable


def cached(path: str | Path, compute: Callable[[], Any], save: Callable[[Any, Path], None],
           load: Callable[[Path], Any], *, blocking: bool = True) -> tuple[Any, bool]:
    """``(value, was_cached)`` for the cache entry ``path``.

    ``load(path)`` reads an existing entry whose checksum holds. Otherwise, holding
    ``<path>.lock``, ``compute()`` makes the value, ``save(value, tmp)`` writes it to a
    temporary path (a file, or a folder it creates) that then replaces ``path`` atomically,
    its checksum is written, and the computed value is returned. An entry without a valid
    checksum (damaged, or written by an older robench) is recomputed. With
    ``blocking=False`` an entry another process is computing gives ``(None, False)`` at
    once instead of waiting.
    """
    path = Path(path)
    if verified(path):
        return load(path), True
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / f"{path.name}.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            return None, False
        if verified(path):  # computed by the process we waited for
            return load(path), True
        if path.exists() or path.is_symlink():
            why = "has no checksum" if not _sum_file(path).exists() else "failed its checksum (damaged)"
            sys.stderr.write(f"robench: cache entry {path} {why}; recomputing it\n")
            _remove(path)
        _remove(_sum_file(path))
        value = compute()
        tmp = path.parent / f".{path.name}.tmp-{os.getpid()}"
        _remove(tmp)
        try:
            save(value, tmp)
            digest = checksum(tmp)
            os.replace(tmp, path)
        finally:
            _remove(tmp)
        _write_atomically(_sum_file(path), digest + "\n")
    return value, False


def verified(path: Path) -> bool:
    """The entry exists and matches the checksum written beside it."""
    sums = _sum_file(path)
    if not (path.exists() and sums.is_file()):
        return False
    try:
        return sums.read_text().strip() == checksum(path)
    except OSError:
        return False


def checksum(path: Path) -> str:
    """SHA-256 of a file, or of a folder's files (relative paths and contents, sorted)."""
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        if file != path:
            digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        with open(file, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()


def safe_name(text: str) -> str:
    """``text`` as one file-name component: only letters, digits and ``._-+`` kept (others
    become ``_``), no leading dot, so a user's component name can never leave the cache."""
    name = re.sub(r"[^A-Za-z0-9._+-]", "_", str(text)).lstrip(".")
    return name[:100] or "_"


def _sum_file(path: Path) -> Path:
    return path.parent / f"{path.name}.sha256"


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}"
    tmp.write_text(text)
    os.replace(tmp, path)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()
