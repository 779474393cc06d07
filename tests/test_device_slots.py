"""Devices as executor slots (issue 24), tested on the CPU: device lists and their one-line
errors, workers pinned to GPUs round-robin, the wait for GPU memory, out-of-memory runs that
fail alone while their worker goes on, and Dask GPU runs that go only to workers declaring a
GPU.

No GPU is needed: ``ROBENCH_TEST_FAKE_CUDA=N`` (robench.executors.fake_cuda_count) makes
``cuda:0 .. cuda:N-1`` valid names whose runs execute on the CPU, with their provenance
saying so; torch.cuda's memory calls are monkeypatched where a test needs them to answer.
Every cluster a test starts listens on 127.0.0.1 and is stopped by the test.
"""

import importlib.util
import os
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from conftest import ROOT, TOY, check_one_line_user_error, robench_cmd
from robench import api, executors
from robench.errors import UserError

needs_dask = pytest.mark.skipif(importlib.util.find_spec("distributed") is None,
                                reason="dask.distributed is not installed (pip install 'robench[dask]')")
torch = pytest.importorskip("torch")
no_real_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="the fake devices are ignored beside real CUDA")

GIB = 1 << 30
# what torch 2.x says when an allocation fails (the reason's numbers are read from it)
TORCH_OOM = ("CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 8.00 GiB of which "
             "512.00 MiB is free. Including non-PyTorch memory, this process has 7.40 GiB memory in use.")

GPU_METHODS = f'''
"""Toy-task methods that behave like GPU code (tests/test_device_slots.py)."""
import os
import weakref

import torch

from robench import register_method
from robench.tasks.base import Method


def _event(text):
    if os.environ.get("ROBENCH_TEST_EVENTS"):
        with open(os.environ["ROBENCH_TEST_EVENTS"], "a") as log:
            log.write(text + "\\n")


@register_method("toy", "oom")
class OutOfMemory(Method):
    """raises CUDA's out-of-memory error when ``fail``, holding a tensor as a real run would"""
    def __init__(self, fail: bool = True):
        self.fail = fail

    def estimate(self, sample):
        _event(f"{{os.getpid()}} run fail={{self.fail}}")
        if self.fail:
            held = torch.zeros(1000)
            weakref.finalize(held, _event, f"{{os.getpid()}} the failed run's tensor freed")
            raise torch.cuda.OutOfMemoryError({TORCH_OOM!r})
        return float(sample.mean())
'''


@pytest.fixture(scope="module")
def gpu_methods(tmp_path_factory, toy_plugin):
    """The file registering the toy task's GPU-like methods (written and registered once)."""
    from robench import registry

    path = tmp_path_factory.mktemp("plugins") / "gpu_methods.py"
    path.write_text(GPU_METHODS)
    registry.setup((toy_plugin, str(path)))
    return str(path)


@pytest.fixture
def fake_gpus(monkeypatch, tmp_path):
    """Two fake CUDA devices, this test's own list of runs per GPU, quick polling."""
    monkeypatch.setenv(executors.FAKE_CUDA_ENV, "2")
    monkeypatch.setattr(executors, "DEVICE_RUNS_ROOT", tmp_path / "gpu-runs")
    monkeypatch.setattr(executors, "MEMORY_POLL_S", 0.02)


def _suite(tmp_path, body: str, name="s.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


TOY_SUITE = """
suite: toy-gpu
seeds: [0, 1]
tasks:
  - task: toy
    params: {n: 30}
    methods:
      - name: mean
"""


# -- device lists -------------------------------------------------------------------------------
@no_real_cuda
def test_device_lists_resolve_or_say_what_is_wrong_in_one_line(fake_gpus, toy_plugin, tmp_path):
    assert executors.resolve_devices(devices="cuda:1, cuda:0") == ["cuda:1", "cuda:0"]
    assert executors.resolve_devices(devices=["cuda:0"]) == ["cuda:0"]
    assert executors.resolve_devices("cuda:all") == executors.resolve_devices(devices="cuda:all") == \
        ["cuda:0", "cuda:1"]
    assert executors.resolve_devices("cuda:1") == ["cuda:1"]
    assert executors.resolve_devices("auto") == ["cpu"]  # auto never picks a fake device
    cases = [
        (dict(devices="cuda:0,cuda:2"), ["--devices cuda:0,cuda:2", "cuda:2 is beyond", "2 CUDA device(s)"]),
        (dict(devices="cuda:0,cpu"), ["'cpu' is not a CUDA device"]),
        (dict(devices="cuda:1,cuda:1"), ["cuda:1 is listed twice"]),
        (dict(devices="cuda:0,,cuda:1"), ["expected comma-separated CUDA devices"]),
        (dict(device="cuda", devices="cuda:0"), ["--device cuda and --devices"]),
        (dict(device="cuda:2"), ["--device cuda:2", "has 2 CUDA device(s)"]),
        (dict(device="gpu"), ["--device gpu: unknown device"]),
    ]
    for kwargs, words in cases:
        check_one_line_user_error(lambda: executors.resolve_devices(**kwargs), *words)
    two = ["cuda:0", "cuda:1"]
    check_one_line_user_error(lambda: executors.check_device_plan(two, "auto", 1), "need --workers 2 or more",
                              "round-robin", "got --workers 1")
    check_one_line_user_error(lambda: executors.check_device_plan(two, "serial", 4), "serial executor runs on one")
    check_one_line_user_error(lambda: executors.check_device_plan(two, "dask", 4), "each worker uses its own GPU")
    executors.check_device_plan(two, "auto", 2)  # enough workers: fine
    executors.check_device_plan(["cuda:0"], "serial", 1)
    # through the API: refused before the store exists
    store = tmp_path / "r.sqlite"
    suite = _suite(tmp_path, TOY_SUITE)
    check_one_line_user_error(lambda: api.run(suite, store=store, devices="cuda:0,cuda:1", plugins=(TOY,),
                                              progress=False), "need --workers 2 or more")
    check_one_line_user_error(lambda: api.run(suite, store=store, device="cuda:all", executor="serial", workers=2,
                                              plugins=(TOY,), progress=False), "--device cuda:all (2 GPUs here)",
                              "serial executor")
    check_one_line_user_error(lambda: api.run(suite, store=store, devices="cuda:0", scheduler="tcp://127.0.0.1:1",
                                              plugins=(TOY,), progress=False), "each worker uses its own GPU")
    # a suite's own `device: cuda:all` is the same plan as the option
    every_gpu = _suite(tmp_path, TOY_SUITE.replace("seeds: [0, 1]", "seeds: [0, 1]\ndevice: cuda:all"), "all.yaml")
    check_one_line_user_error(lambda: api.run(every_gpu, store=store, executor="serial", workers=2, plugins=(TOY,),
                                              progress=False), "--device cuda:all (2 GPUs here)", "serial executor")
    assert not store.exists()


@no_real_cuda
def test_the_fake_devices_are_explicit(monkeypatch):
    monkeypatch.delenv(executors.FAKE_CUDA_ENV, raising=False)
    assert executors.fake_cuda_count() == 0
    check_one_line_user_error(lambda: executors.resolve_devices(devices="cuda:0"), "no CUDA device on this machine")
    for bad in ("yes", "0", "17", "2 "):
        monkeypatch.setenv(executors.FAKE_CUDA_ENV, bad)
        check_one_line_user_error(executors.fake_cuda_count, f"{executors.FAKE_CUDA_ENV}={bad}", "from 1 to 16")


@no_real_cuda
def test_cli_device_errors_exit_2_and_leave_the_store_alone(tmp_path, cli_env):
    suite = _suite(tmp_path, TOY_SUITE)
    store = tmp_path / "r.sqlite"
    env = dict(cli_env, **{executors.FAKE_CUDA_ENV: "2"})
    out = subprocess.run(robench_cmd("run", suite, "--plugin", TOY, "--store", store, "--devices", "cuda:0,cuda:3",
                                     "--workers", "2"), env=env, cwd=tmp_path, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert lines == ["robench: error: --devices cuda:0,cuda:3: cuda:3 is beyond this machine's 2 CUDA device(s) "
                     "(cuda:0 .. cuda:1)"], out.stderr
    assert not store.exists()


def test_a_worker_pins_itself_by_index_only(monkeypatch):
    """torch.cuda.set_device takes an index: `cuda:1` pins device 1, a bare `cuda` keeps the
    current device (set_device(torch.device("cuda")) would raise), a fake device pins nothing."""
    monkeypatch.delenv(executors.FAKE_CUDA_ENV, raising=False)
    pinned = []
    monkeypatch.setattr(torch.cuda, "set_device", lambda index: pinned.append(index))
    executors.pin_to_gpu("cuda:1")
    executors.pin_to_gpu("cuda")
    assert pinned == [1]
    if not torch.cuda.is_available():
        monkeypatch.setenv(executors.FAKE_CUDA_ENV, "2")
        executors.pin_to_gpu("cuda:1")
        assert pinned == [1]


def test_workers_are_assigned_to_devices_round_robin():
    assert executors.assign_devices(5, ["cuda:0", "cuda:1"]) == ["cuda:0", "cuda:1", "cuda:0", "cuda:1", "cuda:0"]
    assert executors.assign_devices(2, ["cuda:3", "cuda:1", "cuda:2"]) == ["cuda:3", "cuda:1"]
    assert executors.assign_devices(3, ["cuda"]) == ["cuda"] * 3


# -- the process pool over several (fake) GPUs ------------------------------------------------------
@no_real_cuda
def test_pool_workers_stay_on_their_gpu_and_an_oom_run_fails_alone(tmp_path, gpu_methods, fake_gpus, monkeypatch):
    """3 workers over cuda:0,cuda:1: two on cuda:0, one on cuda:1, each always on its own. The
    first run of each worker runs out of CUDA memory: it is stored failed with the one-line
    reason naming that worker's device, and the workers go on to finish the other runs."""
    events = tmp_path / "events.log"
    monkeypatch.setenv("ROBENCH_TEST_EVENTS", str(events))  # the workers inherit it
    suite = _suite(tmp_path, """
        suite: pool-gpus
        seeds: [0, 1, 2]
        tasks:
          - task: toy
            params: {n: 30, sleep: 0.3}
            methods:
              - name: oom
                grid: {fail: [true, false]}
        """)  # the three failing runs come first: one to each worker
    store = tmp_path / "r.sqlite"
    summary = api.run(suite, store=store, devices="cuda:0,cuda:1", workers=3, plugins=(TOY, gpu_methods),
                      progress=False)
    assert summary.devices == ["cuda:0", "cuda:1"] and summary.failed == 3 and summary.done == 3
    frame = api.results(store)
    device_of = {}
    for row in frame.itertuples():
        info = row.provenance
        assert info["device"] in ("cuda:0", "cuda:1") and info["executed_on"] == "cpu" and "fake_cuda" in info
        assert device_of.setdefault(info["worker_pid"], info["device"]) == info["device"]  # pinned
        assert (row.status == "failed") == row.method_params["fail"]
        if row.status == "failed":
            assert row.error == (f"CUDA out of memory on {info['device']} (needed 2.00 GiB, free 512.00 MiB); "
                                 f"try fewer --workers per GPU")
    assert sorted(device_of.values()) == ["cuda:0", "cuda:0", "cuda:1"]  # every worker ran; round-robin
    first = {}
    for line in events.read_text().splitlines():
        pid, _, what = line.partition(" ")
        first.setdefault(int(pid), what)
    assert set(first) == set(device_of) and set(first.values()) == {"run fail=True"}
    done_by = {r.provenance["worker_pid"] for r in frame.itertuples() if r.status == "done"}
    assert done_by and done_by <= set(first)  # the done runs ran on workers after their out-of-memory run


# -- memory: wait, start anyway, out of memory, estimates -------------------------------------------
class FakeMemory:
    """torch.cuda's memory calls for a fake GPU of ``total`` bytes: ``free`` is what
    mem_get_info answers (a test changes it); peaks are what max_memory_* answer."""

    def __init__(self, monkeypatch, free: int, total: int = 8 * GIB, peak: int | None = None):
        import threading

        self.free, self.total, self.peak = free, total, peak
        self.resets = 0
        self.answers: list[int] = []  # the free memory of each mem_get_info call
        self.asked = threading.Event()
        self.events: list[str] = []
        monkeypatch.setattr(torch.cuda, "mem_get_info", self.mem_get_info)
        monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", self.reset)
        monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device=None: self.peak)
        monkeypatch.setattr(torch.cuda, "max_memory_reserved", lambda device=None: self.peak and self.peak + GIB // 2)
        monkeypatch.setattr(torch.cuda, "empty_cache", lambda: self.events.append("empty_cache"))

    def mem_get_info(self, device=None):
        self.answers.append(self.free)
        self.asked.set()
        return self.free, self.total

    def reset(self, device=None):
        self.resets += 1


def _run(tmp_path, suite_body, name="s.yaml", **kwargs):
    return api.run(_suite(tmp_path, suite_body, name), store=tmp_path / "r.sqlite", plugins=(TOY,), **kwargs)


ONE_RUN = """
suite: one-gpu-run
seeds: [0]
tasks:
  - task: toy
    params: {n: 30}
    methods:
      - name: mean
"""


@no_real_cuda
def test_a_run_waits_for_memory_while_another_run_holds_it(tmp_path, toy_plugin, fake_gpus, monkeypatch, capsys):
    """Another robench run is on cuda:0 and only 1 GiB is free: the run waits (it says so,
    and why), past the timeout too, since the other run will free memory; once it ends and
    the memory is free, it runs."""
    memory = FakeMemory(monkeypatch, free=1 * GIB)
    monkeypatch.setattr(executors, "MEMORY_TIMEOUT_S", 0.1)  # must not apply: something else runs there
    runs = executors.DeviceRuns()
    other = runs.enter(runs.folder(executors.device_key("cuda:0")), 3 * GIB, "another-run")

    def other_run_ends():  # half a second after the run first looks
        memory.asked.wait(60)
        time.sleep(0.5)
        other.unlink()
        memory.free = 6 * GIB
    import threading
    threading.Thread(target=other_run_ends, daemon=True).start()
    summary = _run(tmp_path, ONE_RUN, device="cuda:0", progress=True)
    assert summary.done == 1
    info = api.results(tmp_path / "r.sqlite").iloc[0].provenance
    assert info["device"] == "cuda:0" and info["gpu_memory_wait_s"] >= 0.4
    # it looked many times, well past the timeout, and went in only once the memory was free
    assert memory.answers.count(1 * GIB) > 5 and memory.answers[-1] == 6 * GIB
    assert info["gpu_need_bytes"] == 2 * GIB  # unknown task and model: min(4 GiB, a quarter of 8 GiB)
    assert "gpu_started_without_room" not in info
    err = " ".join(capsys.readouterr().err.split())
    assert ("waiting toy/mean seed=0: waits for GPU memory on cuda:0: needs ~2.00 GiB, 0 B free "
            "(1 other robench run(s) there); starts when it fits") in err, err
    assert not list(runs.folder(executors.device_key("cuda:0")).glob("*.json"))  # its place is left


@no_real_cuda
def test_a_run_does_not_overtake_a_run_waiting_longer(tmp_path, toy_plugin, fake_gpus, monkeypatch, capsys):
    """First come, first served: with 4 GiB free, a run needing 2 GiB does not take room that
    an earlier waiting run (needing 3 GiB) waits for, nor start anyway after the timeout; it
    runs once that run is served."""
    memory = FakeMemory(monkeypatch, free=4 * GIB)
    monkeypatch.setattr(executors, "MEMORY_TIMEOUT_S", 0.1)
    runs = executors.DeviceRuns()
    folder = runs.folder(executors.device_key("cuda:0"))
    earlier = runs.enter(folder, 3 * GIB, "a-big-run", state="waiting")

    def earlier_run_is_served():
        memory.asked.wait(60)
        time.sleep(0.5)
        earlier.unlink()
    import threading
    threading.Thread(target=earlier_run_is_served, daemon=True).start()
    assert _run(tmp_path, ONE_RUN, device="cuda:0", progress=True).done == 1
    info = api.results(tmp_path / "r.sqlite").iloc[0].provenance
    assert info["gpu_memory_wait_s"] >= 0.4 and "gpu_started_without_room" not in info
    assert len(memory.answers) > 5 and set(memory.answers) == {4 * GIB}  # the memory never changed
    err = " ".join(capsys.readouterr().err.split())
    assert "needs ~2.00 GiB, 1.00 GiB free (no other robench run there, 1 waiting before it); starts when it fits" \
        in err, err
    assert not list(folder.glob("*.json"))  # neither a waiting nor a running entry is left


@no_real_cuda
def test_a_run_alone_on_a_full_gpu_starts_after_the_timeout(tmp_path, toy_plugin, fake_gpus, monkeypatch, capsys):
    """Memory held by something that is no robench run never frees: after the timeout the run
    starts anyway (no deadlock), and its provenance says it started without room."""
    FakeMemory(monkeypatch, free=GIB // 2)
    monkeypatch.setattr(executors, "MEMORY_TIMEOUT_S", 0.3)
    started = time.monotonic()
    summary = _run(tmp_path, ONE_RUN, device="cuda:1", progress=True)
    assert summary.done == 1 and time.monotonic() - started >= 0.3
    info = api.results(tmp_path / "r.sqlite").iloc[0].provenance
    assert info["device"] == "cuda:1" and info["gpu_started_without_room"] is True
    assert info["gpu_memory_wait_s"] >= 0.3
    err = " ".join(capsys.readouterr().err.split())
    assert "or anyway after 0.3 s" in err and "starts on cuda:1 without room after waiting" in err, err


@no_real_cuda
def test_an_oom_run_fails_in_one_line_and_the_next_run_goes_on(tmp_path, gpu_methods, fake_gpus, monkeypatch):
    """In one worker (serial): the failing run's memory is released (its tensors freed, then
    the cache emptied) before the next run starts, which is done."""
    memory = FakeMemory(monkeypatch, free=7 * GIB)
    events = tmp_path / "events.log"
    monkeypatch.setenv("ROBENCH_TEST_EVENTS", str(events))
    def empty_cache():
        with events.open("a") as log:
            log.write("empty_cache\n")
    monkeypatch.setattr(torch.cuda, "empty_cache", empty_cache)
    suite = _suite(tmp_path, """
        suite: oom
        seeds: [0]
        tasks:
          - task: toy
            params: {n: 30}
            methods:
              - name: oom
                grid: {fail: [true, false]}
        """)
    summary = api.run(suite, store=tmp_path / "r.sqlite", device="cuda:0", plugins=(TOY, gpu_methods),
                      progress=False)
    assert summary.done == 1 and summary.failed == 1
    frame = api.results(tmp_path / "r.sqlite")
    failed = frame[frame["status"] == "failed"].iloc[0]
    assert failed.error == ("CUDA out of memory on cuda:0 (needed 2.00 GiB, free 512.00 MiB); "
                            "try fewer --workers per GPU")
    pid = os.getpid()
    assert events.read_text().splitlines() == [f"{pid} run fail=True", f"{pid} the failed run's tensor freed",
                                               "empty_cache", f"{pid} run fail=False", "empty_cache"]
    assert memory.resets == 2  # each run's peak counted from its own start


def test_out_of_memory_is_recognised_and_said_in_one_line(monkeypatch):
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (300 << 20, 8 * GIB))
    assert executors.is_cuda_oom(torch.cuda.OutOfMemoryError(TORCH_OOM))
    assert executors.is_cuda_oom(RuntimeError("CUDA error: out of memory"))
    try:  # raised while handling it: still the same cause
        try:
            raise torch.OutOfMemoryError("CUDA out of memory.")
        except RuntimeError as inner:
            raise ValueError("the attack failed") from inner
    except ValueError as outer:
        assert executors.is_cuda_oom(outer)
    assert not executors.is_cuda_oom(RuntimeError("boom: this plug-in is broken"))
    assert executors.oom_reason(torch.cuda.OutOfMemoryError(TORCH_OOM), "cuda:1", None) == \
        "CUDA out of memory on cuda:1 (needed 2.00 GiB, free 512.00 MiB); try fewer --workers per GPU"
    # no numbers in the message: the run's estimate and what mem_get_info says now
    assert executors.oom_reason(RuntimeError("CUDA error: out of memory"), "cuda:0", 3 * GIB) == \
        "CUDA out of memory on cuda:0 (needed ~3.00 GiB estimated for the run, free 300.00 MiB); " \
        "try fewer --workers per GPU"


@no_real_cuda
def test_a_cpu_run_saying_out_of_memory_keeps_its_traceback(tmp_path, gpu_methods, fake_gpus):
    suite = _suite(tmp_path, """
        suite: oom-cpu
        seeds: [0]
        tasks:
          - task: toy
            params: {n: 30}
            methods:
              - name: oom
        """)
    api.run(suite, store=tmp_path / "r.sqlite", device="cpu", plugins=(TOY, gpu_methods), progress=False)
    error = api.results(tmp_path / "r.sqlite").iloc[0].error
    assert error.startswith("Traceback") and "OutOfMemoryError" in error


@no_real_cuda
def test_a_runs_need_is_the_largest_peak_of_its_task_and_model(tmp_path, toy_plugin, fake_gpus, monkeypatch):
    """Each run's peak GPU memory is in its provenance; the next runs of the same task and
    model wait for the largest peak seen, in this session and, later, from the store."""
    memory = FakeMemory(monkeypatch, free=7 * GIB, peak=3 * GIB)
    _run(tmp_path, TOY_SUITE, device="cuda:0", progress=False)
    frame = api.results(tmp_path / "r.sqlite").sort_values("finished_at")
    first, second = frame.iloc[0].provenance, frame.iloc[1].provenance
    assert first["gpu_peak_allocated_bytes"] == 3 * GIB and first["gpu_peak_reserved_bytes"] == 3 * GIB + GIB // 2
    assert first["gpu_need_bytes"] == 2 * GIB  # nothing known yet: the default
    assert second["gpu_need_bytes"] == 3 * GIB + GIB // 2  # learned from the first run
    memory.peak = 5 * GIB
    _run(tmp_path, TOY_SUITE.replace("[0, 1]", "[2]"), name="t.yaml", device="cuda:0", progress=False)
    third = [r.provenance for r in api.results(tmp_path / "r.sqlite").itertuples() if r.seed == 2][0]
    assert third["gpu_need_bytes"] == 3 * GIB + GIB // 2  # from the store
    estimates = executors.MemoryEstimates()
    estimates.add("toy", {"model": "a"}, {"gpu_peak_allocated_bytes": 10})
    estimates.add("toy", {"model": "a"}, {"gpu_peak_reserved_bytes": 30})
    estimates.add("toy", {"model": "b"}, {"gpu_peak_reserved_bytes": 99})
    assert estimates.peaks == {("toy", "a"): 30, ("toy", "b"): 99}


# -- Dask: GPU runs only on workers that declare a GPU ----------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@needs_dask
@no_real_cuda
@pytest.mark.slow
def test_dask_sends_gpu_runs_only_to_gpu_workers(tmp_path, toy_plugin, monkeypatch):
    """`dask scheduler`, a worker declaring `--resources GPU=1` and one without, every one
    with one fake CUDA device: the GPU runs go to the GPU worker only; once it is gone, CPU
    runs go on (to the CPU worker) and a GPU run is refused in one line."""
    from distributed import Client

    monkeypatch.setenv(executors.FAKE_CUDA_ENV, "1")
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env[executors.FAKE_CUDA_ENV] = "1"
    logs = tmp_path / "logs"
    logs.mkdir()
    procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                               "--port", str(port), "--no-dashboard"], env=env, cwd=tmp_path,
                              stdout=open(logs / "scheduler.log", "w"), stderr=subprocess.STDOUT)]
    try:
        for name, extra in (("gpu0", ["--resources", "GPU=1"]), ("cpu0", [])):
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "distributed.cli.dask_worker", address, "--host", "127.0.0.1", "--nthreads",
                 "1", "--no-nanny", "--no-dashboard", "--name", name, *extra],
                env=env, cwd=tmp_path, stdout=open(logs / f"{name}.log", "w"), stderr=subprocess.STDOUT))
        with Client(address, timeout="60s") as client:
            client.wait_for_workers(2, timeout=90)
            by_name = {w["name"]: a for a, w in client.scheduler_info()["workers"].items()}
        suite = _suite(tmp_path, """
            suite: dask-gpu
            seeds: [0, 1, 2]
            tasks:
              - task: toy
                params: {n: 30, sleep: 0.2}
                methods:
                  - name: mean
                  - name: median
            """)
        summary = api.run(suite, store=tmp_path / "gpu.sqlite", scheduler=address, device="cuda", plugins=(TOY,),
                          progress=False)
        assert summary.done == 6 and summary.devices == ["cuda"]
        for row in api.results(tmp_path / "gpu.sqlite").itertuples():
            assert row.provenance["dask_worker"] == by_name["gpu0"], row.provenance
            assert row.provenance["device"] == "cuda" and row.provenance["executed_on"] == "cpu"
        procs[1].terminate()  # the GPU worker leaves
        procs[1].wait(timeout=30)
        with Client(address, timeout="30s") as client:
            deadline = time.time() + 30
            while len(client.scheduler_info()["workers"]) > 1 and time.time() < deadline:
                time.sleep(0.2)
        summary = api.run(suite, store=tmp_path / "cpu.sqlite", scheduler=address, device="cpu", plugins=(TOY,),
                          progress=False)
        assert summary.done == 6
        assert {r.provenance["dask_worker"] for r in api.results(tmp_path / "cpu.sqlite").itertuples()} == \
            {by_name["cpu0"]}
        with pytest.raises(UserError, match="no worker of the Dask cluster declares a GPU"):
            api.run(suite, store=tmp_path / "none.sqlite", scheduler=address, device="cuda", plugins=(TOY,),
                    progress=False)
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
