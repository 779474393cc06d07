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
BUNDLE_VERSION = 1
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

@dataclass
class Bundle:
    """A validated bundle: its runs, task infos, and a folder holding its artifacts."""
    path: Path
    sha256: str
    manifest: dict
    runs: list[dict]
    task_info: dict[str, tuple[str, dict]]
    files: dict[str, Path] = field(default_factory=dict)  # artifact path relative to artifacts/ → file


def _bad(path: Path, what: str) -> UserError:
    return UserError(f"bundle {path}: {what}; nothing was imported")


def _safe_member(name: str) -> bool:
    p = PurePosixPath(name)
    return not p.is_absolute() and ".." not in p.parts and "\\" not in name and not re.match(r"^[A-Za-z]:", name)


def read_bundle(path, folder: Path) -> Bundle:
    """Validate the bundle at ``path`` and extract its artifacts into ``folder`` (scratch
    space). Raises a one-line UserError for anything wrong."""
    from robench.spec import RunSpec

    path = Path(path)
    if not path.is_file():
        raise UserError(f"bundle {path}: no such file (expected a .zip written by `robench export`)")
    data = path.read_bytes()
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise _bad(path, "not a zip file (expected a bundle written by `robench export`)") from None
    with zf:
        names = zf.namelist()
        if len(set(names)) != len(names):
            raise _bad(path, "a file name repeats in the zip")
        if "manifest.json" not in names:
            raise _bad(path, "no manifest.json (expected a bundle written by `robench export`)")
        manifest = _load_json(zf, "manifest.json", path)
        schema = manifest.get("schema") if isinstance(manifest, dict) else None
        if schema != BUNDLE_SCHEMA:
            raise _bad(path, f"manifest.json: schema {schema!r}, expected {BUNDLE_SCHEMA!r}")
        version = manifest.get("version")
        if not isinstance(version, int) or version < 1:
            raise _bad(path, f"manifest.json: version {version!r}, expected a positive integer")
        if version > BUNDLE_VERSION:
            raise _bad(path, f"written by a newer robench (bundle version {version}, this one reads "
                             f"{BUNDLE_VERSION}); upgrade robench")
        listed = manifest.get("files")
        if not isinstance(listed, dict) or not all(isinstance(v, str) for v in listed.values()):
            raise _bad(path, "manifest.json: files must map each file to its SHA-256")
        present = set(names) - {"manifest.json"}
        extra = sorted(present - set(listed))
        missing = sorted(set(listed) - present)
        if extra:
            raise _bad(path, f"{extra[0]} is not listed in manifest.json")
        if missing:
            raise _bad(path, f"{missing[0]} is listed in manifest.json but missing")
        for name in sorted(listed):
            if not _safe_member(name):
                raise _bad(path, f"unsafe file name {name!r} (expected a relative path)")
            if sha256(zf.read(name)) != listed[name]:
                raise _bad(path, f"{name}: checksum mismatch (the file changed after export)")
        runs = _load_json(zf, "runs.json", path) if "runs.json" in listed else None
        if not isinstance(runs, list):
            raise _bad(path, "runs.json must hold a list of runs")
        info = _load_json(zf, "task_info.json", path) if "task_info.json" in listed else {}
        if not isinstance(info, dict) or not all(isinstance(v, list) and len(v) == 2 and isinstance(v[1], dict)
                                                 for v in info.values()):
            raise _bad(path, "task_info.json must map each task to [version, info]")
        artifact_names = {n[len("artifacts/"):] for n in listed if n.startswith("artifacts/")}
        seen, needed = set(), set()
        for i, row in enumerate(runs):
            _check_run(row, i, path)
            if row["id"] in seen:
                raise _bad(path, f"runs.json: run {row['id']} appears twice")
            seen.add(row["id"])
            spec = RunSpec(task=row["task"], task_params=row["task_params"], method=row["method"],
                           method_params=row["method_params"], seed=row["seed"], task_version=row["task_version"],
                           method_version=row["method_version"])
            if spec.id != row["id"] or spec.config_id != row["config_id"]:
                raise _bad(path, f"runs.json: run {row['id']}: its id is not the hash of its spec (task, params, "
                                 "method, versions, seed); the run was edited after export")
            for name, rel in row["artifacts"].items():
                if not isinstance(rel, str) or not _safe_member(rel) or PurePosixPath(rel).parts[0] != row["id"]:
                    raise _bad(path, f"runs.json: run {row['id']}: artifact {name!r} at {rel!r}, expected "
                                     f"'{row['id']}/<file>'")
                if rel not in artifact_names:
                    raise _bad(path, f"run {row['id']}: artifact {rel} is not in the bundle")
                needed.add(rel)
        if manifest.get("runs") != [r["id"] for r in runs]:
            raise _bad(path, "manifest.json: runs do not match runs.json")
        if artifact_names - needed:
            raise _bad(path, f"artifacts/{sorted(artifact_names - needed)[0]} belongs to no run")
        files = {}
        for rel in sorted(needed):
            target = Path(folder) / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(zf.read(f"artifacts/{rel}"))
            files[rel] = target
    return Bundle(path, sha256(data), manifest, runs, {t: (str(v[0]), v[1]) for t, v in info.items()}, files)


def _load_json(zf, name: str, path: Path):
    try:
        return json.loads(zf.read(name).decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise _bad(path, f"{name}: not valid JSON ({exc.__class__.__name__})") from None


def _check_run(row: Any, i: int, path: Path) -> None:
    where = f"runs.json[{i}]"
    if not isinstance(row, dict):
        raise _bad(path, f"{where}: expected an object")
    for key, types in _RUN_KEYS.items():
        if key not in row:
            raise _bad(path, f"{where}: missing key {key!r}")
        value = row[key]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise _bad(path, f"{where}.{key}: {type(value).__name__}, expected "
                             f"{' or '.join(t.__name__ for t in types)}")
    unknown = sorted(set(row) - set(_RUN_KEYS))
    if unknown:
        raise _bad(path, f"{where}: unknown key {unknown[0]!r}")
    if row["status"] not in ("done", "failed"):
        raise _bad(path, f"{where}.status: {row['status']!r}, expected 'done' or 'failed'")
    for name, value in row["metrics"].items():
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise _bad(path, f"{where}.metrics.{name}: {type(value).__name__}, expected a number")
    if row["status"] == "done" and row["primary_metric"] is not None:
        claimed, value = row["metrics"].get(row["primary_metric"]), row["primary_value"]
        both_nan = value is not None and claimed is not None and math.isnan(value) and math.isnan(claimed)
        if claimed is not None and value != claimed and not both_nan:
            raise _bad(path, f"{where}: primary_value {value!r} differs from its metric "
                             f"{row['primary_metric']} = {claimed!r}")
    if not all(isinstance(s, str) for s in row["suites"]):
        raise _bad(path, f"{where}.suites: expected a list of names")


def import_bundle(bundle_path, store_path) -> dict:
    """Validate the bundle and add its runs to the store at ``store_path`` (created if
    needed); runs already stored are skipped. Returns a summary dict: ``imported``,
    ``skipped`` (run ids), ``store``."""
    from robench.store import Store

    with tempfile.TemporaryDirectory(prefix="robench-import-") as tmp:
        bundle = read_bundle(bundle_path, Path(tmp))
        with Store(store_path) as db:
            imported, skipped = db.import_runs(bundle.runs, bundle.files, source=Path(bundle_path).name,
                                               bundle_sha256=bundle.sha256, task_info=bundle.task_info)
            where = str(db.path)
    return {"imported": imported, "skipped": skipped, "store": where, "bundle_sha256": bundle.sha256}
