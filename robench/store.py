"""The results store: one SQLite file (WAL) plus an artifact folder beside it.

Only the driver process writes. Each run is committed in one transaction together with
its suite membership, so a crash loses at most the run in flight. A file that is not a
robench store is refused, never initialised over.
"""

from __future__ import annotations

import json
import random
import re
import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any, Iterable

from robench.errors import UserError

DEFAULT_STORE = Path(".robench") / "results.sqlite"
SCHEMA_NAME = "robench-results"
SCHEMA_VERSION = 1
_SQLITE_MAGIC = b"SQLite format 3\x00"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    config_id TEXT NOT NULL,
    task TEXT NOT NULL,
    method TEXT NOT NULL,
    task_params TEXT NOT NULL,
    method_params TEXT NOT NULL,
    task_label TEXT NOT NULL,
    method_label TEXT NOT NULL,
    seed INTEGER NOT NULL,
    task_version TEXT NOT NULL,
    method_version TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('done', 'failed')),
    metrics TEXT NOT NULL,
    primary_metric TEXT,
    greater_is_better INTEGER,
    primary_value REAL,
    error TEXT,
    started_at TEXT,
    finished_at TEXT,
    duration_s REAL,
    provenance TEXT NOT NULL,
    artifacts TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS suite_runs (
    suite TEXT NOT NULL, run_id TEXT NOT NULL REFERENCES runs(id),
    PRIMARY KEY (suite, run_id)
);
CREATE INDEX IF NOT EXISTS runs_task ON runs(task);
"""

# What the report needs to know of a task (Task.report_info), written by the driver, so the
# report never imports a task. Additive: a store without it reads as before.
_TASK_INFO = """
CREATE TABLE IF NOT EXISTS task_info (
    task TEXT PRIMARY KEY, task_version TEXT NOT NULL, info TEXT NOT NULL
);
"""

# Runs a driver is computing right now (several `robench run` on one store share the work).
_CLAIMS = """
CREATE TABLE IF NOT EXISTS claims (
    run_id TEXT PRIMARY KEY, host TEXT NOT NULL, pid INTEGER NOT NULL, heartbeat REAL NOT NULL
);
"""
CLAIM_STALE_S = 600  # a claim whose owner has not refreshed it for this long is taken over


def _stale(host: str, pid: int, heartbeat: float, now: float) -> bool:
    import os
    import socket

    if now - heartbeat > CLAIM_STALE_S:
        return True
    if host == socket.gethostname():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True  # its process is gone
        except PermissionError:
            return False
    return False


_JSON_COLUMNS = ("task_params", "method_params", "metrics", "provenance", "artifacts", "components")

# Runs that came from a bundle (robench import): a contributor's claims, kept apart from the
# runs computed here, so an import never stands in for a local run (`robench run` computes a
# configuration that only an import holds) and two claims of one run id can coexist. Each
# claim is keyed by (run id, origin), origin "bundle:<sha256 of the bundle>"; so is the verdict
# of `robench verify`. Additive: a store without these tables reads as before.
_IMPORTED = """
CREATE TABLE IF NOT EXISTS imported_runs (
    id TEXT NOT NULL, origin TEXT NOT NULL, source TEXT NOT NULL, imported_at TEXT NOT NULL,
    config_id TEXT NOT NULL, task TEXT NOT NULL, method TEXT NOT NULL, task_params TEXT NOT NULL,
    method_params TEXT NOT NULL, task_label TEXT NOT NULL, method_label TEXT NOT NULL, seed INTEGER NOT NULL,
    task_version TEXT NOT NULL, method_version TEXT NOT NULL, status TEXT NOT NULL, metrics TEXT NOT NULL,
    primary_metric TEXT, greater_is_better INTEGER, primary_value REAL, error TEXT, started_at TEXT,
    finished_at TEXT, duration_s REAL, provenance TEXT NOT NULL, artifacts TEXT NOT NULL,
    components TEXT NOT NULL, suites TEXT NOT NULL,
    PRIMARY KEY (id, origin)
);
CREATE TABLE IF NOT EXISTS verdicts (
    run_id TEXT NOT NULL, origin TEXT NOT NULL, status TEXT NOT NULL, checked_at TEXT NOT NULL,
    details TEXT NOT NULL, PRIMARY KEY (run_id, origin)
);
"""
LOCAL = "local"  # the origin of a run computed by `robench run` into this store


def claim_folder(origin: str, run_id: str) -> str:
    """Where an imported claim's artifacts live, relative to the artifact folder (apart
    from the local run's ``<id>/``)."""
    return f"bundles/{origin.split(':', 1)[-1][:16]}/{run_id}"

_RUN_COLUMNS = tuple(re.findall(r"^    (\w+) ", _SCHEMA.split("CREATE TABLE IF NOT EXISTS runs (")[1].split(");")[0],
                                re.MULTILINE))


_OPEN_PATIENCE_S = 30.0  # how long opening waits out another driver's lock


class Store:
    """``Store(path)`` opens (``create=True``: or creates) the results store at ``path``."""

    def __init__(self, path: str | Path | None = None, *, create: bool = True):
        self.path = Path(path) if path is not None else DEFAULT_STORE
        self.artifact_root = self.path.parent / "artifacts"
        self.cache_dir = self.path.parent / "cache"
        self.read_only = False
        self._check_file(create)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise UserError(f"results store {self.path}: a part of its folder {self.path.parent} is a file, "
                            f"not a folder (expected a path like .robench/results.sqlite)") from None
        except PermissionError as exc:
            raise UserError(f"results store {self.path}: cannot create its folder ({exc.strerror})") from None
        # Another driver may be creating or switching the same store to WAL right now; some
        # of those steps answer "database is locked" at once instead of waiting: retry them.
        deadline = time.monotonic() + _OPEN_PATIENCE_S
        while True:
            try:
                self._open(create)
                return
            except sqlite3.DatabaseError as exc:
                if getattr(self, "conn", None) is not None:
                    self.conn.close()
                    self.conn = None
                if "locked" in str(exc) and time.monotonic() < deadline:
                    time.sleep(random.uniform(0.02, 0.1))
                    continue
                raise UserError(f"results store {self.path}: unreadable SQLite database ({exc}); "
                                "it was left untouched") from None

    def _open(self, create: bool) -> None:
        self.conn = None
        if self.path.exists() and self.path.stat().st_size:
            self._check_schema()  # read-only: a foreign database is never modified
        self.conn = sqlite3.connect(self.path, timeout=30)
        try:
            self.conn.execute("PRAGMA journal_mode=WAL")
            self._init_schema()
        except sqlite3.OperationalError as exc:
            if "readonly" not in str(exc) and "read-only" not in str(exc):
                raise
            self.conn.close()
            if create:
                raise UserError(f"results store {self.path}: read-only ({exc}); `robench run` needs to "
                                f"write it (check the file's and its folder's permissions)") from None
            # reading commands work on a store they cannot write
            self.conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro&immutable=1", uri=True)
            self.read_only = True

    def _check_file(self, create: bool) -> None:
        p = self.path
        if p.is_dir():
            raise UserError(f"results store {p}: is a directory (expected a .sqlite file path)")
        if not p.exists():
            if not create:
                raise UserError(f"results store {p}: does not exist (run a suite first, or pass --store PATH)")
            return
        try:
            with open(p, "rb") as fh:
                head = fh.read(16)
        except OSError as exc:
            raise UserError(f"results store {p}: cannot be read ({exc.strerror})") from None
        if head and head != _SQLITE_MAGIC:
            raise UserError(f"results store {p}: not a SQLite database (expected a robench results store); "
                            "it was left untouched")

    def _check_schema(self) -> None:
        def read(query: str):
            conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?{query}", uri=True)
            try:
                tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
                meta = dict(conn.execute("SELECT key, value FROM meta").fetchall()) if "meta" in tables else {}
                columns = {r[1] for r in conn.execute("PRAGMA table_info(runs)")} if "runs" in tables else set()
                return tables, meta, columns
            finally:
                conn.close()

        try:
            tables, meta, columns = read("mode=ro")
        except sqlite3.OperationalError as exc:
            if "readonly" not in str(exc) and "read-only" not in str(exc) and "unable to open" not in str(exc):
                raise
            tables, meta, columns = read("mode=ro&immutable=1")  # a read-only folder: WAL cannot open its -shm
        if not tables:
            return
        if meta.get("schema") != SCHEMA_NAME:
            raise UserError(f"results store {self.path}: a SQLite database of another program "
                            f"(tables: {', '.join(sorted(tables))}); it was left untouched")
        version = str(meta.get("version", ""))
        if not version.isdigit():
            raise UserError(f"results store {self.path}: unknown schema version {version!r} (expected an "
                            f"integer, this robench reads {SCHEMA_VERSION}); it was left untouched")
        if int(version) > SCHEMA_VERSION:
            raise UserError(f"results store {self.path}: written by a newer robench (schema "
                            f"{version}, this one reads {SCHEMA_VERSION}); upgrade robench")
        missing = [c for c in _RUN_COLUMNS if c not in columns]
        if "runs" not in tables or missing:
            what = "no runs table" if "runs" not in tables else f"its runs table lacks {', '.join(missing)}"
            raise UserError(f"results store {self.path}: {what} (a damaged store); it was left untouched")

    def _has_runs_table(self) -> bool:
        return bool(self.conn.execute(
            "SELECT count(*) FROM sqlite_master WHERE type='table' AND name='runs'").fetchone()[0])

    def _init_schema(self) -> None:
        conn = self.conn
        if self._has_runs_table():
            self._migrate()
            return
        # tables and their meta rows in one transaction: a kill at any moment leaves either
        # an empty file or a whole store (executescript would commit each statement)
        statements = [s.strip() for s in (_SCHEMA + _TASK_INFO).split(";") if s.strip()]

        def create() -> None:
            if self._has_runs_table():  # another driver created the store while we waited
                return
            for statement in statements:
                conn.execute(statement)
            conn.executemany("INSERT INTO meta(key, value) VALUES (?, ?)",
                             [("schema", SCHEMA_NAME), ("version", str(SCHEMA_VERSION))])

        self._immediate(create)
        self._migrate()

    def _migrate(self) -> None:
        """Bring a store written by an earlier robench up to date, in one transaction: the
        runs' ``components`` column, the imported-claims tables, and imports of the first
        publishing format (rows in ``runs`` listed in ``imports``) moved out of ``runs`` into
        ``imported_runs``, their old verdicts dropped (they compared fewer metrics: verify
        again). A store already up to date is not written."""
        columns = {r[1] for r in self.conn.execute("PRAGMA table_info(runs)")}
        if "components" in columns and self._has_table("verdicts") and not self._has_table("imports"):
            return

        def migrate() -> None:
            if "components" not in {r[1] for r in self.conn.execute("PRAGMA table_info(runs)")}:
                self.conn.execute("ALTER TABLE runs ADD COLUMN components TEXT NOT NULL DEFAULT '{}'")
            for statement in (s.strip() for s in _IMPORTED.split(";")):
                if statement:
                    self.conn.execute(statement)
            if self._has_table("imports"):
                legacy = self.conn.execute("SELECT run_id, source, bundle_sha256, imported_at FROM imports").fetchall()
                for run_id, source, sha, at in legacy:
                    row = self._select_runs("WHERE id = ?", (run_id,))
                    if row:
                        self._insert_imported({**row[0], "origin": f"bundle:{sha}", "source": source,
                                               "imported_at": at})
                        self.conn.execute("DELETE FROM runs WHERE id = ?", (run_id,))
                        self.conn.execute("DELETE FROM suite_runs WHERE run_id = ?", (run_id,))
                self.conn.execute("DROP TABLE imports")
                self.conn.execute("DROP TABLE IF EXISTS verifications")

        self._immediate(migrate)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- writing -----------------------------------------------------------------------
    def done_ids(self, ids: Iterable[str] | None = None) -> set[str]:
        rows = self.conn.execute("SELECT id FROM runs WHERE status = 'done'").fetchall()
        done = {r[0] for r in rows}
        return done if ids is None else done & set(ids)

    def add_to_suite(self, suite: str, ids: Iterable[str]) -> None:
        with self.conn:
            self.conn.executemany("INSERT OR IGNORE INTO suite_runs(suite, run_id) VALUES (?, ?)",
                                  [(suite, i) for i in ids])

    def save(self, spec, record: dict[str, Any], suite: str | None = None) -> dict[str, Any]:
        """Store one finished run (done or failed) in one transaction; returns the record as
        stored (a done run whose artifacts cannot be stored is stored failed).

        ``record`` comes from :func:`robench.executors.execute_run`; its artifacts sit in
        ``record["artifact_tmp"]`` and are moved to ``artifacts/<id>/`` first, so a stored
        row always points at files that exist.
        """
        artifacts = {}
        tmp = record.get("artifact_tmp")
        final = self.artifact_root / spec.id
        if tmp and Path(tmp).is_dir():
            try:
                if final.exists():
                    shutil.rmtree(final)
                if record["status"] == "done" and any(Path(tmp).iterdir()):
                    Path(tmp).rename(final)
                    artifacts = {name: f"{spec.id}/{rel}" for name, rel in record.get("artifacts", {}).items()}
                else:
                    shutil.rmtree(tmp, ignore_errors=True)
            except OSError as exc:  # e.g. the artifacts folder became unwritable: this run fails, alone
                record = {**record, "status": "failed", "metrics": {}, "primary_value": None,
                          "error": f"could not store the run's artifacts in {final}: "
                                   f"{type(exc).__name__}: {exc.strerror or exc}"}
                artifacts = {}
                shutil.rmtree(tmp, ignore_errors=True)
        row = {
            "id": spec.id, "config_id": spec.config_id, "task": spec.task, "method": spec.method,
            "task_params": spec.task_params, "method_params": spec.method_params,
            "task_label": spec.task_label, "method_label": spec.method_label, "seed": spec.seed,
            "task_version": spec.task_version, "method_version": spec.method_version,
            "status": record["status"], "metrics": record.get("metrics", {}),
            "primary_metric": record.get("primary_metric"),
            "greater_is_better": record.get("greater_is_better"),
            "primary_value": record.get("primary_value"), "error": record.get("error"),
            "started_at": record.get("started_at"), "finished_at": record.get("finished_at"),
            "duration_s": record.get("duration_s"), "provenance": record.get("provenance", {}),
            "artifacts": artifacts, "components": dict(spec.components),
        }
        for key in _JSON_COLUMNS:
            row[key] = json.dumps(row[key], sort_keys=True, allow_nan=True)
        cols = ", ".join(row)
        marks = ", ".join(f":{k}" for k in row)
        with self.conn:
            self.conn.execute(f"INSERT OR REPLACE INTO runs({cols}) VALUES ({marks})", row)
            if suite:
                self.conn.execute("INSERT OR IGNORE INTO suite_runs(suite, run_id) VALUES (?, ?)", (suite, spec.id))
        return record

    def save_task_info(self, task: str, version: str, info: dict[str, Any]) -> None:
        """Record what the report needs to know of ``task`` (its ``Task.report_info()``)."""
        with self.conn:
            self.conn.executescript(_TASK_INFO)
            self.conn.execute("INSERT OR REPLACE INTO task_info(task, task_version, info) VALUES (?, ?, ?)",
                              (task, str(version), json.dumps(info, sort_keys=True)))

    # -- claims: several drivers on one store share its work ---------------------------------
    def claim(self, run_id: str) -> bool:
        """Claim ``run_id`` for this process before running it: True if it is ours now (free,
        or held by a stale owner: a dead process on this host, or no heartbeat for
        ``CLAIM_STALE_S``); False if another live ``robench run`` holds it or it is done."""
        import os
        import socket
        import time

        host, pid, now = socket.gethostname(), os.getpid(), time.time()
        self.conn.executescript(_CLAIMS)

        def take() -> bool:
            if self.conn.execute("SELECT 1 FROM runs WHERE id = ? AND status = 'done'", (run_id,)).fetchone():
                return False
            row = self.conn.execute("SELECT host, pid, heartbeat FROM claims WHERE run_id = ?", (run_id,)).fetchone()
            if row is not None and (row[0], row[1]) != (host, pid) and not _stale(*row, now):
                return False
            self.conn.execute("INSERT OR REPLACE INTO claims(run_id, host, pid, heartbeat) VALUES (?, ?, ?, ?)",
                              (run_id, host, pid, now))
            return True

        # check and take in one write transaction: with a deferred one, two drivers could both
        # read "free" before either wrote, and both run it
        return self._immediate(take)

    def _immediate(self, work):
        """``work()`` inside ``BEGIN IMMEDIATE`` … ``COMMIT`` (rolled back if it raises)."""
        level, self.conn.isolation_level = self.conn.isolation_level, None
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                result = work()
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")
            return result
        finally:
            self.conn.isolation_level = level

    def heartbeat(self, run_ids) -> None:
        """Keep this process's claims on ``run_ids`` fresh."""
        import time

        with self.conn:
            self.conn.executemany("UPDATE claims SET heartbeat = ? WHERE run_id = ?",
                                  [(time.time(), i) for i in run_ids])

    def release(self, run_ids) -> None:
        """Drop this process's claims (runs stored, or given up)."""
        import os
        import socket

        with self.conn:
            self.conn.executescript(_CLAIMS)
            self.conn.executemany("DELETE FROM claims WHERE run_id = ? AND host = ? AND pid = ?",
                                  [(i, socket.gethostname(), os.getpid()) for i in run_ids])

    def live_claims(self) -> set[str]:
        """Run ids that a live process holds right now."""
        import time

        exists = self.conn.execute("SELECT count(*) FROM sqlite_master WHERE name='claims'").fetchone()[0]
        if not exists:
            return set()
        now = time.time()
        return {r[0] for r in self.conn.execute("SELECT run_id, host, pid, heartbeat FROM claims")
                if not _stale(r[1], r[2], r[3], now)}

    def remove_stale_partials(self) -> int:
        """Remove the half-written artifact folders (``.partial-<id>-*``) of runs that no live
        process holds: what killed runs left behind. Returns how many."""
        if not self.artifact_root.is_dir():
            return 0
        live = self.live_claims()
        removed = 0
        for folder in self.artifact_root.glob(".partial-*"):
            run_id = folder.name[len(".partial-"):].split("-")[0]
            if run_id not in live:
                shutil.rmtree(folder, ignore_errors=True)
                removed += 1
        return removed

    def import_runs(self, rows: list[dict], files: dict[str, Path], *, origin: str,
                    source: str) -> tuple[list[str], list[str]]:
        """Add a bundle's runs (validated rows, see :mod:`robench.bundle`) as the claims of
        ``origin`` ("bundle:<sha256>"), each with its artifacts (``files``: the row's artifact
        path, ``<id>/<file>``, → the extracted file) copied under
        ``artifacts/bundles/<sha256[:16]>/<id>/``. Claims of this origin already stored are
        skipped; local runs of the same ids are never touched. The check and the writes are
        one write transaction (two imports of one bundle at once import it once); on any
        error the store and its artifact folder are as they were. Returns (imported ids,
        skipped ids)."""
        import datetime as dt
        import uuid

        now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()
        stage = self.artifact_root / f".import-{uuid.uuid4().hex[:12]}"
        placed: list[Path] = []
        try:
            for row in rows:  # copied before the write lock is taken (it may be slow)
                for rel in row["artifacts"].values():
                    target = stage / rel
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(files[rel], target)

            def write() -> tuple[list[str], list[str]]:
                have = {r[0] for r in self.conn.execute("SELECT id FROM imported_runs WHERE origin = ?", (origin,))}
                new = [r for r in rows if r["id"] not in have]
                for row in new:
                    final = self.artifact_root / claim_folder(origin, row["id"])
                    if final.exists():  # left by an import that died: no stored row points at it
                        shutil.rmtree(final)
                    if (stage / row["id"]).is_dir():
                        final.parent.mkdir(parents=True, exist_ok=True)
                        (stage / row["id"]).rename(final)
                        placed.append(final)
                    self._insert_imported({**row, "origin": origin, "source": source, "imported_at": now,
                                           "artifacts": {k: f"{claim_folder(origin, row['id'])}/{v.split('/', 1)[1]}"
                                                         for k, v in row["artifacts"].items()}})
                return [r["id"] for r in new], [r["id"] for r in rows if r["id"] in have]

            self.conn.executescript(_IMPORTED)  # (tables only: commits nothing else)
            return self._immediate(write)
        except BaseException:
            for final in placed:
                shutil.rmtree(final, ignore_errors=True)
            raise
        finally:
            shutil.rmtree(stage, ignore_errors=True)

    def _insert_imported(self, row: dict) -> None:
        values = {k: row.get(k) for k in _IMPORTED_COLUMNS}
        values["components"] = values["components"] or {}
        values["suites"] = json.dumps(sorted(row.get("suites") or []))
        for key in _JSON_COLUMNS:
            values[key] = json.dumps(values[key], sort_keys=True, allow_nan=True)
        gib = values["greater_is_better"]
        values["greater_is_better"] = None if gib is None else int(bool(gib))
        self.conn.execute(f"INSERT INTO imported_runs({', '.join(values)}) VALUES "
                          f"({', '.join(':' + k for k in values)})", values)

    def save_verification(self, run_id: str, origin: str, status: str, details: dict[str, Any]) -> None:
        """Record what ``robench verify`` found for the claim (``run_id``, ``origin``),
        replacing an earlier verdict of that claim (never another claim's)."""
        import datetime as dt

        now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()
        with self.conn:
            self.conn.execute("INSERT OR REPLACE INTO verdicts(run_id, origin, status, checked_at, details) "
                              "VALUES (?, ?, ?, ?, ?)",
                              (run_id, origin, status, now, json.dumps(details, sort_keys=True, allow_nan=True)))

    # -- reading -----------------------------------------------------------------------
    def _has_table(self, name: str) -> bool:
        return bool(self.conn.execute("SELECT count(*) FROM sqlite_master WHERE type='table' AND name=?",
                                      (name,)).fetchone()[0])

    def _select_runs(self, where: str = "", args: tuple = ()) -> list[dict]:
        """Local runs as stored (JSON decoded, artifact paths relative), with ``suites``."""
        cur = self.conn.execute(
            "SELECT runs.*, (SELECT group_concat(suite, '\x1f') FROM suite_runs s WHERE s.run_id = runs.id)"
            f" AS suites FROM runs {where} ORDER BY task, task_label, method, method_label, seed, id", args)
        names = [d[0] for d in cur.description]
        out = []
        for values in cur.fetchall():
            row = dict(zip(names, values))
            row.setdefault("components", "{}")  # a read-only store of an earlier robench
            row["suites"] = sorted(row["suites"].split("\x1f")) if row["suites"] else []
            out.append(self._decode(row))
        return out

    @staticmethod
    def _decode(row: dict) -> dict:
        for key in _JSON_COLUMNS:
            row[key] = json.loads(row[key])
        row["greater_is_better"] = None if row["greater_is_better"] is None else bool(row["greater_is_better"])
        return row

    def export_rows(self, ids: Iterable[str]) -> list[dict]:
        """The local runs ``ids`` as stored (artifact paths relative to the artifact folder,
        JSON columns decoded), each with its ``suites``; in the order of ``ids``."""
        out = []
        for run_id in ids:
            rows = self._select_runs("WHERE id = ?", (run_id,))
            if not rows:
                raise UserError(f"results store {self.path}: no run {run_id!r}")
            out.append(rows[0])
        return out

    def imported(self, ids: Iterable[str] | None = None) -> list[dict]:
        """The imported claims (of the run ``ids``, default every one) as stored: the run's
        columns (artifact paths relative), ``origin``, ``source``, ``imported_at``,
        ``suites`` and ``verification`` (see :meth:`verification`)."""
        if not self._has_table("imported_runs"):
            return []
        wanted = None if ids is None else set(ids)
        verdicts = self.verification()
        out = []
        for values in self.conn.execute("SELECT * FROM imported_runs ORDER BY task, task_label, method, "
                                        "method_label, seed, id, origin").fetchall():
            row = self._decode(dict(zip(_IMPORTED_COLUMNS, values)))
            if wanted is not None and row["id"] not in wanted:
                continue
            row["suites"] = json.loads(row["suites"])
            row["verification"] = verdicts.get((row["id"], row["origin"]), {})
            out.append(row)
        return out

    def verification(self) -> dict[tuple[str, str], dict]:
        """(run id, origin) → what the site shows of an imported claim: ``source``,
        ``bundle_sha256``, ``imported_at`` and ``status``: "imported" until ``robench verify``
        re-scores it, then its verdict ("verified", "unverified" or "skipped") with
        ``checked_at`` and the details (``rescored``, ``claimed``, ``differences``, ``note``,
        ``kernels``)."""
        out: dict[tuple[str, str], dict] = {}
        if not self._has_table("imported_runs"):
            return out
        for run_id, origin, source, at in self.conn.execute(
                "SELECT id, origin, source, imported_at FROM imported_runs"):
            out[(run_id, origin)] = {"status": "imported", "source": source,
                                     "bundle_sha256": origin.split(":", 1)[-1], "imported_at": at}
        for run_id, origin, status, at, details in self.conn.execute(
                "SELECT run_id, origin, status, checked_at, details FROM verdicts"):
            if (run_id, origin) in out:
                out[(run_id, origin)].update({**json.loads(details), "status": status, "checked_at": at})
        return out

    def task_info(self) -> dict[str, dict]:
        """Task name → its recorded ``report_info`` (tasks never recorded are absent)."""
        if not self._has_table("task_info"):
            return {}
        return {task: json.loads(info) for task, info in self.conn.execute("SELECT task, info FROM task_info")}

    def rows(self, task: str | None = None, suite: str | None = None, status: str | None = None,
             imported: bool = True) -> list[dict]:
        """Every run as the results table shows it: the local runs (``origin`` "local") and,
        with ``imported``, every imported claim (``origin`` "bundle:<sha256>", with its
        ``verification``); artifact paths absolute."""
        where, args = [], []
        if task:
            where.append("task = ?"); args.append(task)
        if status:
            where.append("status = ?"); args.append(status)
        if suite:
            where.append("id IN (SELECT run_id FROM suite_runs WHERE suite = ?)"); args.append(suite)
        out = [{**row, "origin": LOCAL, "verification": {}}
               for row in self._select_runs("WHERE " + " AND ".join(where) if where else "", tuple(args))]
        if imported:
            out += [row for row in self.imported() if (not task or row["task"] == task)
                    and (not status or row["status"] == status) and (not suite or suite in row["suites"])]
        for row in out:
            row["artifacts"] = {k: str((self.artifact_root / v).resolve()) for k, v in row["artifacts"].items()}
        return out


# the imported_runs columns, in their order (parsed from the DDL above, like _RUN_COLUMNS)
_IMPORTED_COLUMNS = tuple(c.split()[0] for c in
                          _IMPORTED.split("imported_runs (")[1].split("PRIMARY KEY")[0].split(",") if c.strip())
