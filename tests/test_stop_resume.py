"""Stopping `robench run` and running it again: the process pool (`--workers 2`) and the
Dask executor (a LocalCluster of 2 workers on 127.0.0.1) are stopped with SIGTERM and
SIGINT at seeded moments of a short toy suite, each while a run is in progress. After each
stop the store opens, holds
only whole runs (a done row has its metrics and its artifact folder; nothing points into
a half-written ``.partial-*`` folder; no live process holds a claim) and no failed run (a
stop is not a failure); the same command then finishes the suite, recomputing none of the stored runs,
with the run ids, metrics and artifacts of an uninterrupted run.
"""

from __future__ import annotations

import importlib.util
import json
import random
import signal
import sqlite3
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

from conftest import TOY, robench_cmd
from robench import api

SUITE = """
suite: stop-resume
seeds: [0, 1]
tasks:
  - task: toy
    params: {n: 40, shared: true, sleep: 0.4}
    methods:
      - name: mean
        grid: {trim: [0.0, 0.1]}
      - name: median
"""
RUNS = 6

needs_dask = pytest.mark.skipif(importlib.util.find_spec("distributed") is None,
                                reason="dask.distributed is not installed (pip install 'robench[dask]')")
CASES = [pytest.param("process", signal.SIGTERM, id="process-SIGTERM"),
         pytest.param("process", signal.SIGINT, id="process-SIGINT"),
         pytest.param("dask", signal.SIGTERM, id="dask-SIGTERM", marks=needs_dask),
         pytest.param("dask", signal.SIGINT, id="dask-SIGINT", marks=needs_dask)]


def _rows(store: Path) -> dict[str, dict]:
    """The store's runs table, read without writing to it: id -> row."""
    conn = sqlite3.connect(f"{store.resolve().as_uri()}?mode=ro", uri=True)
    try:
        conn.row_factory = sqlite3.Row
        return {r["id"]: dict(r) for r in conn.execute("SELECT * FROM runs")}
    finally:
        conn.close()


def _done_count(store: Path) -> int:
    try:
        return sum(r["status"] == "done" for r in _rows(store).values())
    except sqlite3.Error:  # not created yet, or its tables not yet
        return 0


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, toy_plugin):
    """The suite run once without a stop (serial, in this process): id -> (metrics, estimate file)."""
    folder = tmp_path_factory.mktemp("uninterrupted")
    suite = folder / "s.yaml"
    suite.write_text(textwrap.dedent(SUITE))
    summary = api.run(suite, store=folder / "r.sqlite", plugins=(TOY,), progress=False)
    assert summary.done == RUNS and summary.failed == 0
    return {rid: (json.loads(row["metrics"]),
                  (folder / "artifacts" / json.loads(row["artifacts"])["estimate"]).read_text())
            for rid, row in _rows(folder / "r.sqlite").items()}


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def assert_whole(store: Path) -> dict[str, dict]:
    """The store opens, every stored run is complete and done, and no live process holds a
    claim (the next driver takes a dead one's over); returns its rows."""
    with sqlite3.connect(store) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        claims = conn.execute("SELECT run_id, pid FROM claims").fetchall() if "claims" in tables else []
    conn.close()
    assert not [c for c in claims if _alive(c[1])], f"claims of live processes: {claims}"
    listed = api.results(store)  # robench itself opens it
    rows = _rows(store)
    assert len(listed) == len(rows)
    for rid, row in rows.items():
        assert row["status"] == "done", (rid, row["status"], row["error"])
        metrics, artifacts = json.loads(row["metrics"]), json.loads(row["artifacts"])
        assert set(metrics) == {"abs_error", "estimate"}, (rid, metrics)
        assert artifacts == {"estimate": f"{rid}/estimate.txt"}, (rid, artifacts)
        estimate = store.parent / "artifacts" / artifacts["estimate"]
        assert estimate.is_file() and float(estimate.read_text()) == metrics["estimate"], rid
    return rows


@pytest.mark.slow
@pytest.mark.parametrize("executor, sig", CASES)
def test_a_stopped_run_leaves_a_whole_store_and_resumes_to_the_same_results(executor, sig, tmp_path, cli_env,
                                                                            uninterrupted):
    import psutil

    # the moment: once `after` runs are stored and a run is in progress, plus `extra` seconds
    # (seeded per case). A run in progress has its half-written folder: in the store's
    # artifacts (process pool), or in its Dask worker's scratch folder under TMPDIR.
    rng = random.Random(f"{executor}-{sig.name}")
    after, extra = rng.randrange(0, RUNS - 2), rng.uniform(0.0, 0.6)
    suite = tmp_path / "s.yaml"
    suite.write_text(textwrap.dedent(SUITE))
    store = tmp_path / "store" / "r.sqlite"
    artifacts, scratch = store.parent / "artifacts", tmp_path / "tmp"
    scratch.mkdir()

    def in_progress() -> bool:
        return any(artifacts.glob(".partial-*")) or any(scratch.glob("robench-run-*/.partial-*"))

    cmd = robench_cmd("run", suite, "--plugin", TOY, "--workers", "2", "--store", store,
                      *(["--executor", "dask"] if executor == "dask" else []))
    # as from a terminal: SIGINT at its default (a test run started in the background by a
    # non-interactive shell inherits SIGINT ignored, and so would the driver)
    driver = subprocess.Popen(cmd, cwd=tmp_path, env=dict(cli_env, TMPDIR=str(scratch)), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True,
                              preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    children: set[int] = set()
    try:
        deadline = time.time() + 120
        while driver.poll() is None and time.time() < deadline and (_done_count(store) < after
                                                                      or not in_progress()):
            time.sleep(0.02)
        time.sleep(extra)
        assert driver.poll() is None, f"the suite ended before the stop:\n{driver.stderr.read()[-2000:]}"
        children = {c.pid for c in psutil.Process(driver.pid).children(recursive=True)}
        driver.send_signal(sig)
        _, err = driver.communicate(timeout=60)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
        for pid in children:  # nothing of this test keeps running (another test checks that)
            try:
                psutil.Process(pid).kill()
            except psutil.Error:
                pass
    assert driver.returncode == 130, (driver.returncode, err[-3000:])
    assert "Traceback" not in err, err[-3000:]

    stopped = assert_whole(store)
    assert len(stopped) < RUNS, "the stop came after the last run"
    assert len(stopped) >= after
    if executor == "process":  # the runs the pool's workers were in left their folders: removed below
        assert list(artifacts.glob(".partial-*"))

    again = subprocess.run(cmd, cwd=tmp_path, env=cli_env, capture_output=True, text=True, timeout=180)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"{len(stopped)} already stored, {RUNS - len(stopped)} done, 0 failed" in again.stderr, again.stderr[-2000:]
    final = assert_whole(store)
    for rid, row in stopped.items():  # stored before the stop: kept as they were, not recomputed
        assert final[rid] == row, rid
    assert not list(artifacts.glob(".partial-*")), "half-written folders were not removed"
    assert sorted(p.name for p in artifacts.iterdir()) == sorted(uninterrupted)
    got = {rid: (json.loads(row["metrics"]), (artifacts / rid / "estimate.txt").read_text())
           for rid, row in final.items()}
    assert got == uninterrupted
