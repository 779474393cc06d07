"""Bundles: a store's runs, their artifacts and provenance in one zip file, to publish
several people's results together (``robench export`` / ``robench import``).

Layout of a bundle (schema ``robench-bundle``, version :data:`BUNDLE_VERSION`)::

    manifest.json              schema, version, robench version, the run ids, and the
                               SHA-256 of every other file of the bundle
    runs.json                  the runs as stored (metrics, params, versions, provenance,
                               suites; artifact paths relative: <run id>/<file>)
    task_info.json             task → [version, report_info] of the runs' tasks
    artifacts/<run id>/<file>  the runs' artifacts

An import checks everything before it changes anything: the schema and version, that the
files are exactly those listed with their checksums, that each run is well formed and
that its id and configuration id are the hashes of its spec (task, params, method,
versions, seed: :class:`robench.spec.RunSpec`), and that its artifacts are in the bundle.
A bad bundle is one line and leaves the store as it was. Checksums catch damage and naive
edits; a run whose files were edited and re-checksummed is caught by ``robench verify``,
which re-scores it from its artifacts.

A bundle is a contributor's claim, never trusted: every run's parameters pass its task's
and method's own validation, and everything derivable (labels, versions, ids, the primary
metric) is computed here, not read (``task_info.json`` is ignored); artifacts are data
files only (:data:`ARTIFACT_TYPES`); extraction is streamed within :class:`Limits`. The
runs are stored as claims of their bundle (``Store.import_runs``), apart from local runs.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import io
import json
import math
import os
import re
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Iterable

from robench.errors import UserError

BUNDLE_SCHEMA = "robench-bundle"
BUNDLE_VERSION = 2  # 2: runs carry their components (plug-in identities)
_RUN_KEYS = {  # key → accepted types
    "id": (str,), "config_id": (str,), "task": (str,), "method": (str,), "task_params": (dict,),
    "method_params": (dict,), "task_label": (str,), "method_label": (str,), "seed": (int,),
    "task_version": (str,), "method_version": (str,), "status": (str,), "metrics": (dict,),
    "primary_metric": (str, type(None)), "greater_is_better": (bool, type(None)),
    "primary_value": (float, int, type(None)), "error": (str, type(None)), "started_at": (str, type(None)),
    "finished_at": (str, type(None)), "duration_s": (float, int, type(None)), "provenance": (dict,),
    "artifacts": (dict,), "suites": (list,),
}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, sort_keys=True, indent=1, allow_nan=True) + "\n").encode("utf-8")


# ---------------------------------------------------------------------------- export

def select_ids(db, suite: str | None, run_ids: Iterable[str] | None) -> list[str]:
    """The run ids to export: the suite's, the given ones (a unique prefix is enough), or
    every stored run."""
    stored = [r[0] for r in db.conn.execute("SELECT id FROM runs ORDER BY id")]
    run_ids = list(run_ids or [])
    if suite is not None and run_ids:
        raise UserError("robench export: give --suite or run ids, not both")
    if suite is not None:
        ids = [r[0] for r in db.conn.execute("SELECT run_id FROM suite_runs WHERE suite = ? ORDER BY run_id",
                                             (suite,))]
        if not ids:
            suites = sorted({r[0] for r in db.conn.execute("SELECT suite FROM suite_runs")})
            raise UserError(f"results store {db.path}: no run of suite {suite!r} "
                            f"(stored suites: {', '.join(suites) or 'none'})")
        return ids
    if not run_ids:
        if not stored:
            raise UserError(f"results store {db.path}: no runs to export")
        return stored
    out = []
    for prefix in run_ids:
        matches = [i for i in stored if i.startswith(prefix)]
        if len(matches) != 1:
            what = "no run" if not matches else f"{len(matches)} runs"
            raise UserError(f"robench export: {what} in {db.path} with an id starting {prefix!r} "
                            "(expected one; see `robench results`)")
        out.append(matches[0])
    return list(dict.fromkeys(out))


def export_bundle(store_path, out, *, suite: str | None = None, run_ids: Iterable[str] | None = None) -> dict:
    """Write the runs of ``suite`` (or ``run_ids``, or every run) of the store at
    ``store_path`` with their artifacts to the zip file ``out``. Returns a summary dict:
    ``path``, ``runs``, ``files``, ``bytes``."""
    from robench import __version__ as version
    from robench.store import Store

    out = Path(out)
    if out.is_dir():
        raise UserError(f"robench export: -o {out} is a folder (expected a .zip file path)")
    with Store(store_path, create=False) as db:
        ids = select_ids(db, suite, run_ids)
        rows = db.export_rows(ids)
        info = db.task_info()
        versions = dict(db.conn.execute("SELECT task, task_version FROM task_info")) if info else {}
        artifact_root = db.artifact_root
    files: dict[str, Path] = {}
    for row in rows:
        for rel in row["artifacts"].values():
            source = artifact_root / rel
            if not source.is_file():
                raise UserError(f"results store {store_path}: run {row['id']}: artifact {rel} is missing "
                                f"from {artifact_root}; it cannot be exported")
            files[f"artifacts/{rel}"] = source
    tasks = sorted({r["task"] for r in rows})
    texts = {"runs.json": _json_bytes(rows),
             "task_info.json": _json_bytes({t: [versions.get(t, ""), info[t]] for t in tasks if t in info})}
    manifest = {
        "schema": BUNDLE_SCHEMA, "version": BUNDLE_VERSION, "robench": version,
        "created_at": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
        "runs": [r["id"] for r in rows], "suite": suite,
        "files": {**{name: sha256(data) for name, data in texts.items()},
                  **{name: _file_sha256(path) for name, path in sorted(files.items())}},
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".bundle-", suffix=".zip", dir=out.parent)
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("manifest.json", _json_bytes(manifest))
            for name, data in texts.items():
                zf.writestr(name, data)
            for name, path in sorted(files.items()):
                zf.write(path, name)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return {"path": str(out), "runs": len(rows), "files": len(files), "bytes": out.stat().st_size}


# ---------------------------------------------------------------------------- import

# What a bundle may hold as artifacts: data and weights, never a page, a script or an SVG
# (a contributor's file is published on the maintainer's site).
ARTIFACT_TYPES = (".png", ".jpg", ".jpeg", ".csv", ".json", ".npz", ".pt")


@dataclass(frozen=True)
class Limits:
    """Caps on what an import reads (a zip can expand a thousandfold): members, bytes in
    all, bytes of one member, bytes of one JSON file (read into memory). Extraction is
    streamed, so memory stays bounded whatever the bundle."""
    max_files: int = 20_000
    max_bytes: int = 8 << 30
    max_file_bytes: int = 2 << 30
    max_json_bytes: int = 256 << 20


@dataclass
class Bundle:
    """A validated bundle: its runs (re-derived here), and a folder holding its artifacts."""
    path: Path
    sha256: str
    manifest: dict
    runs: list[dict]
    files: dict[str, Path] = field(default_factory=dict)  # artifact path relative to artifacts/ → file


def _bad(path: Path, what: str) -> UserError:
    return UserError(f"bundle {path}: {what}; nothing was imported")


def _safe_member(name: str) -> bool:
    p = PurePosixPath(name)
    return (bool(name) and not p.is_absolute() and ".." not in p.parts and "\\" not in name
            and not re.match(r"^[A-Za-z]:", name) and not name.endswith("/")
            and all(part not in ("", ".") for part in name.split("/")))


def read_bundle(path, folder: Path, limits: Limits = Limits()) -> Bundle:
    """Validate the bundle at ``path`` and extract its artifacts into ``folder`` (scratch
    space), streaming, within ``limits``. Every run is re-derived here: its parameters pass
    its task's and method's own validation, its labels, versions, primary metric and ids
    are computed from its spec (a bundle's claims about them are not taken). Raises a
    one-line UserError for anything wrong."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"bundle {path}: no such file (expected a .zip written by `robench export`)")
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError):
        raise _bad(path, "not a zip file (expected a bundle written by `robench export`)") from None
    with zf:
        infos = zf.infolist()
        names = [i.filename for i in infos]
        if len(infos) > limits.max_files:
            raise _bad(path, f"{len(infos):,} files, more than the limit of {limits.max_files:,} (--max-files)")
        if len(set(names)) != len(names):
            raise _bad(path, "a file name repeats in the zip")
        for info in infos:
            if not _safe_member(info.filename):
                raise _bad(path, f"unsafe file name {info.filename!r} (expected a relative path)")
            if info.file_size > limits.max_file_bytes:
                raise _bad(path, f"{info.filename}: {info.file_size:,} bytes unpacked, more than the limit of "
                                 f"{limits.max_file_bytes:,} (--max-file-bytes)")
        total = sum(i.file_size for i in infos)
        if total > limits.max_bytes:
            raise _bad(path, f"{total:,} bytes unpacked, more than the limit of {limits.max_bytes:,} (--max-bytes)")
        clash = _prefix_clash(names)
        if clash:
            raise _bad(path, f"{clash} is both a file and a folder in the zip")
        if "manifest.json" not in names:
            raise _bad(path, "no manifest.json (expected a bundle written by `robench export`)")
        manifest = _load_json(zf, "manifest.json", path, limits)
        schema = manifest.get("schema") if isinstance(manifest, dict) else None
        if schema != BUNDLE_SCHEMA:
            raise _bad(path, f"manifest.json: schema {schema!r}, expected {BUNDLE_SCHEMA!r}")
        version = manifest.get("version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise _bad(path, f"manifest.json: version {version!r}, expected a positive integer")
        if version > BUNDLE_VERSION:
            raise _bad(path, f"written by a newer robench (bundle version {version}, this one reads "
                             f"{BUNDLE_VERSION}); upgrade robench")
        listed = manifest.get("files")
        if not isinstance(listed, dict) or not all(isinstance(v, str) for v in listed.values()):
            raise _bad(path, "manifest.json: files must map each file to its SHA-256")
        present = set(names) - {"manifest.json"}
        extra, missing = sorted(present - set(listed)), sorted(set(listed) - present)
        if extra:
            raise _bad(path, f"{extra[0]} is not listed in manifest.json")
        if missing:
            raise _bad(path, f"{missing[0]} is listed in manifest.json but missing")
        odd = sorted(n for n in listed if n not in ("runs.json", "task_info.json") and not n.startswith("artifacts/"))
        if odd:
            raise _bad(path, f"{odd[0]}: not a file of a bundle (expected runs.json, task_info.json, artifacts/...)")
        runs = _load_json(zf, "runs.json", path, limits, listed["runs.json"]) if "runs.json" in listed else None
        if not isinstance(runs, list):
            raise _bad(path, "runs.json must hold a list of runs")
        artifact_names = {n[len("artifacts/"):] for n in listed if n.startswith("artifacts/")}
        derived, seen, needed = [], set(), set()
        for i, row in enumerate(runs):
            row = _check_run(row, i, path, version)
            if row["id"] in seen:
                raise _bad(path, f"runs.json: run {row['id']} appears twice")
            seen.add(row["id"])
            for name, rel in row["artifacts"].items():
                if not isinstance(rel, str) or not _safe_member(rel) or PurePosixPath(rel).parts[0] != row["id"] \
                        or len(PurePosixPath(rel).parts) < 2:
                    raise _bad(path, f"runs.json: run {row['id']}: artifact {name!r} at {rel!r}, expected "
                                     f"'{row['id']}/<file>'")
                if PurePosixPath(rel).suffix.lower() not in ARTIFACT_TYPES:
                    raise _bad(path, f"runs.json: run {row['id']}: artifact {rel!r} is not a data file (expected "
                                     f"one of {', '.join(ARTIFACT_TYPES)})")
                if rel not in artifact_names:
                    raise _bad(path, f"run {row['id']}: artifact {rel} is not in the bundle")
                needed.add(rel)
            derived.append(_derive(row, i, path))
        if manifest.get("runs") != [r["id"] for r in runs]:
            raise _bad(path, "manifest.json: runs do not match runs.json")
        if artifact_names - needed:
            raise _bad(path, f"artifacts/{sorted(artifact_names - needed)[0]} belongs to no run")
        files = {}
        for rel in sorted(needed):
            target = Path(folder) / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if _extract(zf, f"artifacts/{rel}", target) != listed[f"artifacts/{rel}"]:
                raise _bad(path, f"artifacts/{rel}: checksum mismatch (the file changed after export)")
            files[rel] = target
    return Bundle(path, _file_sha256(path), manifest, derived, files)


def _prefix_clash(names: list[str]) -> str | None:
    """A name that is also the folder of another (``x`` beside ``x/y``), or None."""
    folders = {str(p) for n in names for p in PurePosixPath(n).parents if str(p) != "."}
    clash = sorted(folders & set(names))
    return clash[0] if clash else None


def _extract(zf: zipfile.ZipFile, name: str, target: Path) -> str:
    """Copy the member ``name`` to ``target`` in blocks; returns its SHA-256."""
    digest = hashlib.sha256()
    with zf.open(name) as src, open(target, "wb") as dst:
        for block in iter(lambda: src.read(1 << 20), b""):
            digest.update(block)
            dst.write(block)
    return digest.hexdigest()


def _load_json(zf, name: str, path: Path, limits: Limits, checksum: str | None = None):
    if zf.getinfo(name).file_size > limits.max_json_bytes:
        raise _bad(path, f"{name}: more than {limits.max_json_bytes:,} bytes (a bundle's JSON files are small)")
    try:
        data = zf.read(name)
        if checksum is not None and sha256(data) != checksum:
            raise _bad(path, f"{name}: checksum mismatch (the file changed after export)")
        return json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise _bad(path, f"{name}: not valid JSON ({exc.__class__.__name__})") from None
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise _bad(path, f"{name}: cannot be read ({exc})") from None


def _check_run(row: Any, i: int, path: Path, version: int) -> dict:
    where = f"runs.json[{i}]"
    if not isinstance(row, dict):
        raise _bad(path, f"{where}: expected an object")
    keys = dict(_RUN_KEYS, **({"components": (dict,)} if version >= 2 else {}))
    for key, types in keys.items():
        if key not in row:
            raise _bad(path, f"{where}: missing key {key!r}")
        value = row[key]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise _bad(path, f"{where}.{key}: {type(value).__name__}, expected "
                             f"{' or '.join(t.__name__ for t in types)}")
    unknown = sorted(set(row) - set(keys))
    if unknown:
        raise _bad(path, f"{where}: unknown key {unknown[0]!r}")
    if row["status"] not in ("done", "failed"):
        raise _bad(path, f"{where}.status: {row['status']!r}, expected 'done' or 'failed'")
    for name, value in row["metrics"].items():
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise _bad(path, f"{where}.metrics.{name}: {type(value).__name__}, expected a number")
    for name, value in row.get("components", {}).items():
        if not isinstance(value, str):
            raise _bad(path, f"{where}.components.{name}: expected a string")
    if not all(isinstance(s, str) and re.fullmatch(r"[A-Za-z0-9_.+-]{1,100}", s) for s in row["suites"]):
        raise _bad(path, f"{where}.suites: expected a list of suite names (letters, digits, . _ + -)")
    return row


def _derive(row: dict, i: int, path: Path) -> dict:
    """``row`` with everything derivable computed here: its spec re-validated (task and
    method parameters through their own validation), labels, versions, ids, the primary
    metric and its value. What stays the contributor's claim: status, metrics, error,
    timings, provenance, artifacts, suites."""
    from robench import registry
    from robench.spec import rebuild_spec

    where = f"runs.json[{i}]"
    try:
        spec = rebuild_spec(row, f"bundle {path}", where)
    except UserError as exc:
        raise UserError(f"{exc}; nothing was imported") from None
    if spec.id != row["id"] or spec.config_id != row["config_id"]:
        raise _bad(path, f"{where}: run {row['id']}: its id is not the hash of its spec (task, params, method, "
                         "versions, seed, components); the run was edited after export")
    task_cls = registry.tasks.get(spec.task)
    primary = task_cls.primary_metric
    if row["status"] == "done" and primary not in row["metrics"]:
        raise _bad(path, f"{where}: a done run without its task's primary metric {primary!r}")
    return {**row, "task_params": spec.task_params, "method_params": spec.method_params,
            "task_label": spec.task_label, "method_label": spec.method_label,
            "task_version": spec.task_version, "method_version": spec.method_version,
            "components": dict(spec.components), "primary_metric": primary,
            "greater_is_better": bool(task_cls.greater_is_better),
            "primary_value": row["metrics"].get(primary) if row["status"] == "done" else None}


def import_bundle(bundle_path, store_path, limits: Limits = Limits(), plugins: tuple = ()) -> dict:
    """Validate the bundle and add its runs to the store at ``store_path`` (created if
    needed) as claims of the origin "bundle:<its sha256>"; claims of this bundle already
    stored are skipped. ``plugins``: files registering the plug-in methods and models its
    runs use. Returns a summary dict: ``imported``, ``skipped`` (run ids), ``store``,
    ``origin``."""
    from robench import registry
    from robench.store import Store

    registry.setup(plugins)
    with tempfile.TemporaryDirectory(prefix="robench-import-") as tmp:
        bundle = read_bundle(bundle_path, Path(tmp), limits)
        origin = f"bundle:{bundle.sha256}"
        with Store(store_path) as db:
            if db.read_only:
                raise UserError(f"results store {db.path}: read-only; `robench import` adds the bundle's runs "
                                "to it (check the file's and its folder's permissions)")
            imported, skipped = db.import_runs(bundle.runs, bundle.files, origin=origin,
                                               source=Path(bundle_path).name)
            for task in sorted({r["task"] for r in bundle.runs} - set(db.task_info())):
                task_cls = registry.tasks.get(task)  # what the report knows of a task: from its code here
                db.save_task_info(task, task_cls.version, task_cls.report_info())
            where = str(db.path)
    return {"imported": imported, "skipped": skipped, "store": where, "origin": origin,
            "bundle_sha256": bundle.sha256}
