"""Executors beyond one process: Dask (LocalCluster and a real scheduler with workers as
subprocesses, all on 127.0.0.1), devices, and shared prerequisites computed once.

Every cluster a test starts listens on loopback only and is stopped by the test.
"""

import importlib.util
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

from conftest import ROOT, TOY, robench_cmd
from robench import api

# Only the Dask tests need dask.distributed: the device and argument tests run without it.
needs_dask = pytest.mark.skipif(importlib.util.find_spec("distributed") is None,
                                reason="dask.distributed is not installed (pip install 'robench[dask]')")

TOY_SUITE = """
suite: toy-dask
seeds: [0, 1]
tasks:
  - task: toy
    params: {{n: 40, shared: true, sleep: {sleep}}}
    methods:
      - name: mean
        grid: {{trim: [0.0, 0.1]}}
      - name: median
"""


def _suite(tmp_path, sleep=0.0, name="s.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(TOY_SUITE.format(sleep=sleep)))
    return path


def _metrics(store):
    frame = api.results(store)
    return {row.id: (row.status, json.dumps(row.metrics, sort_keys=True)) for row in frame.itertuples()}


@needs_dask
def test_local_cluster_matches_serial_and_computes_shared_work_once(tmp_path, toy_plugin):
    suite = _suite(tmp_path)
    serial = api.run(suite, store=tmp_path / "serial" / "r.sqlite", plugins=(TOY,), progress=False)
    dask = api.run(suite, store=tmp_path / "dask" / "r.sqlite", executor="dask", workers=2,
                   plugins=(TOY,), progress=False)
    assert serial.done == dask.done == 6 and dask.failed == 0
    assert _metrics(tmp_path / "serial" / "r.sqlite") == _metrics(tmp_path / "dask" / "r.sqlite")
    # one shared baseline per seed, computed once each although 3 runs of a seed need it
    log = (tmp_path / "dask" / "cache" / "computed.log").read_text().split()
    assert sorted(log) == ["0", "1"]
    # artifacts came back to the driver with the records
    frame = api.results(tmp_path / "dask" / "r.sqlite")
    for row in frame.itertuples():
        assert os.path.exists(row.artifacts["estimate"])
        assert row.provenance["device"] == "cpu"


@needs_dask
@pytest.mark.slow
def test_local_cluster_smoke_suite_matches_serial(tmp_path):
    """The shipped smoke suite (real training) gives the same metrics under both executors."""
    suite = ROOT / "suites" / "smoke.yaml"
    api.run(suite, store=tmp_path / "serial" / "r.sqlite", progress=False, device="cpu")
    api.run(suite, store=tmp_path / "dask" / "r.sqlite", executor="dask", workers=2, progress=False,
            device="cpu")
    a, b = _metrics(tmp_path / "serial" / "r.sqlite"), _metrics(tmp_path / "dask" / "r.sqlite")
    assert a.keys() == b.keys() and len(a) == 2

    def stable(text):  # wall-clock latency is a measurement, not a result
        return {k: v for k, v in json.loads(text).items() if "latency" not in k and "speedup" not in k}
    for rid in a:
        assert a[rid][0] == b[rid][0] == "done"
        assert stable(a[rid][1]) == stable(b[rid][1])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_workers(address, n, timeout=60):
    from distributed import Client

    with Client(address, timeout="20s") as client:
        client.wait_for_workers(n, timeout=timeout)


@pytest.fixture
def dask_cluster(tmp_path):
    """`dask scheduler` and two `dask worker` processes (no nanny: killing one is a worker
    death) on 127.0.0.1; all stopped at the end. Each worker has its own temporary folder
    (TMPDIR), where a run in progress keeps its scratch folder: ``.partial-<run id>-*``
    there means that worker is inside that run (a SIGKILLed worker leaves it behind)."""
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    logs = tmp_path / "logs"
    logs.mkdir()
    procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                               "--port", str(port), "--no-dashboard"], env=env, cwd=tmp_path,
                              stdout=open(logs / "scheduler.log", "w"), stderr=subprocess.STDOUT)]
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.3)
        workers, tmpdirs = [], []
        for i in range(2):
            tmpdirs.append(tmp_path / f"tmp-w{i}")
            tmpdirs[-1].mkdir()
            workers.append(subprocess.Popen(
                [sys.executable, "-m", "distributed.cli.dask_worker", address, "--host", "127.0.0.1",
                 "--nthreads", "1", "--no-nanny", "--no-dashboard", "--name", f"w{i}"],
                env=dict(env, TMPDIR=str(tmpdirs[-1])), cwd=tmp_path, stdout=open(logs / f"worker{i}.log", "w"),
                stderr=subprocess.STDOUT))
        procs += workers
        _wait_for_workers(address, 2)
        yield address, workers, tmpdirs
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()


def _runs_in_progress(tmpdir) -> set[str]:
    """Ids of the runs whose scratch folder is in a worker's TMPDIR (see dask_cluster)."""
    return {p.name[len(".partial-"):].split("-")[0] for p in tmpdir.glob("robench-run-*/.partial-*")}


@needs_dask
@pytest.mark.slow
def test_scheduler_runs_a_plugin_suite_and_survives_a_killed_worker(tmp_path, dask_cluster, cli_env):
    """Through --scheduler, with the plug-in shipped to the workers; one worker is killed
    (SIGKILL) while it is inside a run: that run is run again on the other worker, and every
    run ends up done, computed to its end exactly once."""
    address, workers, tmpdirs = dask_cluster
    suite = _suite(tmp_path, sleep=1.5)
    store = tmp_path / "r.sqlite"
    driver = subprocess.Popen(robench_cmd("run", suite, "--plugin", TOY, "--scheduler", address,
                                          "--store", store), env=cli_env, cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while not _runs_in_progress(tmpdirs[0]) and time.time() < deadline and driver.poll() is None:
            time.sleep(0.05)
        assert _runs_in_progress(tmpdirs[0]), "worker 0 never started a run"
        workers[0].send_signal(signal.SIGKILL)  # inside a run of 1.5 s, which it does not finish
        workers[0].wait(timeout=30)
        out, err = driver.communicate(timeout=180)
    finally:
        if driver.poll() is None:
            driver.kill()
    # the killed worker's scratch folder is still there: the run it was inside when it died
    killed_in = _runs_in_progress(tmpdirs[0])
    assert killed_in, "no run was in flight on the killed worker"
    assert driver.returncode == 0, err[-2000:]
    with sqlite3.connect(store) as conn:
        rows = dict(conn.execute("SELECT id, status FROM runs").fetchall())
    assert len(rows) == 6 and set(rows.values()) == {"done"}, rows
    assert killed_in <= set(rows), (killed_in, rows)  # ...and it was stored done, from the other worker
    frame = api.results(store)
    for row in frame[frame["id"].isin(killed_in)].itertuples():
        assert os.path.exists(row.artifacts["estimate"]) and row.metrics["abs_error"] >= 0
    executed = [line for line in (tmp_path / "cache" / "executed.log").read_text().splitlines() if line]
    assert len(executed) == 6, executed  # the killed attempt never finished; no run finished twice


@needs_dask
@pytest.mark.slow
def test_a_run_that_kills_every_worker_is_stored_failed_and_the_others_done(tmp_path, cli_env):
    """On a LocalCluster (whose nannies restart dead workers), a run that kills its worker
    each time it runs is tried 1 + WORKER_RETRIES = 3 times, then stored `failed` with a
    one-line reason; every other run is done and the driver exits 1."""
    suite = tmp_path / "dies.yaml"
    suite.write_text(textwrap.dedent("""
        suite: dies-dask
        seeds: [0, 1]
        tasks:
          - task: toy
            params: {n: 30}
            methods:
              - name: mean
              - name: dies
              - name: median
    """))
    store = tmp_path / "r.sqlite"
    out = subprocess.run(robench_cmd("run", suite, "--plugin", TOY, "--executor", "dask", "--workers", "2",
                                     "--store", store), env=cli_env, cwd=tmp_path, capture_output=True,
                         text=True, timeout=240)
    assert out.returncode == 1, out.stderr[-3000:]  # (Dask's own log lines may hold tracebacks)
    assert "robench: 1 run(s) failed" in out.stderr, out.stderr[-3000:]
    with sqlite3.connect(store) as conn:
        rows = {(r[0], r[1]): (r[2], r[3]) for r in conn.execute("SELECT method, seed, status, error FROM runs")}
    assert len(rows) == 6, rows
    status, error = rows[("dies", 1)]
    assert status == "failed", rows[("dies", 1)]
    assert "\n" not in error and error.startswith("worker failed: KilledWorker: "), error
    assert "on 3 different workers" in error, error  # the first try and WORKER_RETRIES = 2 more
    assert all(s == "done" for key, (s, _) in rows.items() if key != ("dies", 1)), rows


@needs_dask
def test_wrong_scheduler_address_is_one_line(tmp_path, cli_env):
    port = _free_port()  # nothing listens there
    suite = _suite(tmp_path)
    out = subprocess.run(robench_cmd("run", suite, "--plugin", TOY, "--scheduler", f"tcp://127.0.0.1:{port}",
                                     "--store", tmp_path / "r.sqlite"),
                         env=cli_env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    lines = [line for line in out.stderr.strip().splitlines() if line.startswith("robench")]
    assert lines and lines[-1].startswith(f"robench: error: --scheduler tcp://127.0.0.1:{port}: cannot reach")
    assert "Traceback" not in out.stderr


def test_missing_cuda_is_one_line_and_stores_nothing(tmp_path, cli_env):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    suite = _suite(tmp_path)
    store = tmp_path / "r.sqlite"
    out = subprocess.run(robench_cmd("run", suite, "--plugin", TOY, "--device", "cuda", "--store", store),
                         env=cli_env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1].startswith("robench: error: --device cuda: no CUDA device")
    assert "Traceback" not in out.stderr
    assert not store.exists()


def test_bad_device_names_are_refused(tmp_path, toy_plugin):
    from robench.errors import UserError

    with pytest.raises(UserError, match="--device gpu0: unknown device"):
        api.run(_suite(tmp_path), store=tmp_path / "r.sqlite", device="gpu0", plugins=(TOY,), progress=False)
    bad = tmp_path / "bad.yaml"
    bad.write_text("suite: x\ndevice: tpu\ntasks:\n  - task: toy\n    methods: [{name: mean}]\n")
    with pytest.raises(UserError, match=r"bad\.yaml: device: "):
        api.validate(bad, plugins=(TOY,))


def test_device_is_provenance_not_identity(tmp_path, toy_plugin):
    """The same suite with device: cpu written in it expands to the same run ids."""
    plain = _suite(tmp_path)
    pinned = tmp_path / "pinned.yaml"
    pinned.write_text(plain.read_text().replace("seeds: [0, 1]", "seeds: [0, 1]\ndevice: cpu"))
    assert [s.id for s in api.validate(plain, plugins=(TOY,))] == [s.id for s in api.validate(pinned, plugins=(TOY,))]
