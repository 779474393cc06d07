"""The results store: one SQLite file (WAL) plus an artifact folder beside it.

Only the driver process writes. Each run is committed in one transaction together with
its suite membership, so a crash loses at most the run in flight. A file that is not a
robench store is refused, never initialised over.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
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

_JSON_COLUMNS = ("task_params", "method_params", "metrics", "provenance", "artifacts")


class Store:
    """``Store(path)`` opens (``create=True``: or creates) the results store at ``path``."""

    def __init__(self, path: str | Path | None = None, *, create: bool = True):
        self.path = Path(path) if path is not None else DEFAULT_STORE
        self.artifact_root = self.path.parent / "artifacts"
        self.cache_dir = self.path.parent / "cache"
        self._check_file(create)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            if self.path.exists() and self.path.stat().st_size:
                self._check_schema()  # read-only: a foreign database is never modified
            self.conn = sqlite3.connect(self.path, timeout=30)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self._init_schema()
        except sqlite3.DatabaseError as exc:
            raise UserError(f"results store {self.path}: unreadable SQLite database ({exc}); it was left untouched") from None

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
        conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if not tables:
                return
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall()) if "meta" in tables else {}
        finally:
            conn.close()
        if meta.get("schema") != SCHEMA_NAME:
            raise UserError(f"results store {self.path}: a SQLite database of another program "
                            f"(tables: {', '.join(sorted(tables))}); it was left untouched")
        if int(meta.get("version", 0)) > SCHEMA_VERSION:
            raise UserError(f"results store {self.path}: written by a newer robench (schema "
                            f"{meta.get('version')}, this one reads {SCHEMA_VERSION}); upgrade robench")

    def _init_schema(self) -> None:
        conn = self.conn
        if conn.execute("SELECT count(*) FROM sqlite_master WHERE type='table' AND name='runs'").fetchone()[0]:
            return
        with conn:
            conn.executescript(_SCHEMA + _TASK_INFO)
            conn.executemany("INSERT INTO meta(key, value) VALUES (?, ?)",
                             [("schema", SCHEMA_NAME), ("version", str(SCHEMA_VERSION))])

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

    def save(self, spec, record: dict[str, Any], suite: str | None = None) -> None:
        """Store one finished run (done or failed) in one transaction.

        ``record`` comes from :func:`robench.executors.execute_run`; its artifacts sit in
        ``record["artifact_tmp"]`` and are moved to ``artifacts/<id>/`` first, so a stored
        row always points at files that exist.
        """
        artifacts = {}
        tmp = record.get("artifact_tmp")
        final = self.artifact_root / spec.id
        if tmp and Path(tmp).is_dir():
            if final.exists():
                shutil.rmtree(final)
            if record["status"] == "done" and any(Path(tmp).iterdir()):
                Path(tmp).rename(final)
                artifacts = {name: f"{spec.id}/{rel}" for name, rel in record.get("artifacts", {}).items()}
            else:
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
            "artifacts": artifacts,
        }
        for key in _JSON_COLUMNS:
            row[key] = json.dumps(row[key], sort_keys=True, allow_nan=True)
        cols = ", ".join(row)
        marks = ", ".join(f":{k}" for k in row)
        with self.conn:
            self.conn.execute(f"INSERT OR REPLACE INTO runs({cols}) VALUES ({marks})", row)
            if suite:
                self.conn.execute("INSERT OR IGNORE INTO suite_runs(suite, run_id) VALUES (?, ?)", (suite, spec.id))

    def save_task_info(self, task: str, version: str, info: dict[str, Any]) -> None:
        """Record what the report needs to know of ``task`` (its ``Task.report_info()``)."""
        with self.conn:
            self.conn.executescript(_TASK_INFO)
            self.conn.execute("INSERT OR REPLACE INTO task_info(task, task_version, info) VALUES (?, ?, ?)",
                              (task, str(version), json.dumps(info, sort_keys=True)))

    # -- reading -----------------------------------------------------------------------
    def task_info(self) -> dict[str, dict]:
        """Task name → its recorded ``report_info`` (tasks never recorded are absent)."""
        exists = self.conn.execute("SELECT count(*) FROM sqlite_master WHERE type='table' "
                                   "AND name='task_info'").fetchone()[0]
        if not exists:
            return {}
        return {task: json.loads(info) for task, info in self.conn.execute("SELECT task, info FROM task_info")}

    def rows(self, task: str | None = None, suite: str | None = None, status: str | None = None) -> list[dict]:
        sql = ("SELECT runs.*, (SELECT group_concat(suite, '\x1f') FROM suite_runs s WHERE s.run_id = runs.id)"
               " AS suites FROM runs")
        where, args = [], []
        if task:
            where.append("task = ?"); args.append(task)
        if status:
            where.append("status = ?"); args.append(status)
        if suite:
            where.append("id IN (SELECT run_id FROM suite_runs WHERE suite = ?)"); args.append(suite)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY task, task_label, method, method_label, seed"
        cur = self.conn.execute(sql, args)
        names = [d[0] for d in cur.description]
        out = []
        for values in cur.fetchall():
            row = dict(zip(names, values))
            for key in _JSON_COLUMNS:
                row[key] = json.loads(row[key])
            row["artifacts"] = {k: str((self.artifact_root / v).resolve()) for k, v in row["artifacts"].items()}
            row["suites"] = sorted(row["suites"].split("\x1f")) if row["suites"] else []
            row["greater_is_better"] = None if row["greater_is_better"] is None else bool(row["greater_is_better"])
            out.append(row)
        return out
