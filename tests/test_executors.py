"""Executors beyond one process: Dask (LocalCluster and a real scheduler with workers as
subprocesses, all on 127.0.0.1), devices, and shared prerequisites computed once.

Every cluster a test starts listens on loopback only and is stopped by the test.
"""

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

pytest.importorskip("distributed")

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
    death) on 127.0.0.1; all stopped at the end."""
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
        workers = []
        for i in range(2):
            workers.append(subprocess.Popen(
                [sys.executable, "-m", "distributed.cli.dask_worker", address, "--host", "127.0.0.1",
                 "--nthreads", "1", "--no-nanny", "--no-dashboard", "--name", f"w{i}"],
                env=env, cwd=tmp_path, stdout=open(logs / f"worker{i}.log", "w"), stderr=subprocess.STDOUT))
        procs += workers
        _wait_for_workers(address, 2)
        yield address, workers
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()


@pytest.mark.slow
def test_scheduler_runs_a_plugin_suite_and_survives_a_killed_worker(tmp_path, dask_cluster, cli_env):
    """Through --scheduler, with the plug-in shipped to the workers; one worker is killed
    (SIGKILL) mid-run: every run ends up done exactly once."""
    address, workers = dask_cluster
    suite = _suite(tmp_path, sleep=1.5)
    store = tmp_path / "r.sqlite"
    driver = subprocess.Popen(robench_cmd("run", suite, "--plugin", TOY, "--scheduler", address,
                                          "--store", store), env=cli_env, cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(6)  # the clusters' workers are busy with runs by now
    workers[0].send_signal(signal.SIGKILL)
    out, err = driver.communicate(timeout=180)
    assert driver.returncode == 0, err[-2000:]
    with sqlite3.connect(store) as conn:
        rows = conn.execute("SELECT id, status FROM runs").fetchall()
    assert len(rows) == 6 and len({r[0] for r in rows}) == 6
    assert {r[1] for r in rows} == {"done"}


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
