"""Everything that runs RunSpecs: serial, a process pool, and Dask (a ``LocalCluster`` or any
scheduler: SSH, Slurm/PBS through dask-jobqueue, Kubernetes).

An executor has one job: ``submit_run(spec_json, artifact_root, cache_dir, plugins,
device, needs) -> concurrent.futures.Future`` of the run's record, with ``capacity`` (how
many runs to keep in flight) and ``shutdown()``, so the driver loop in :func:`run_specs`
does not care where a run executes. Workers never touch the store: they return a record
(with the run's artifact files, for Dask), and the driver commits it.

Shared prerequisites (a dense baseline that every method of a seed starts from, a
reference network) are declared by the task (``Task.prerequisites``). Under Dask each
distinct one is a Dask task of its own, all started first and in parallel; a run that
needs one is submitted once it is done, with its cache files inside the run's task, so it
is computed once, workers need no shared filesystem, and a worker that dies later loses
nothing. The process pool relies on the cache's file lock instead (one trains, the others
wait).
"""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import tempfile
import time
import traceback
import uuid
from concurrent.futures import FIRST_COMPLETED, Future, wait
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from robench.errors import UserError

EXECUTORS = ("auto", "serial", "process", "dask")
WORKER_RETRIES = 2  # Dask: a run whose worker dies is tried on another worker this many more times
_worker_threads: int | None = None  # a Dask worker's threads per run (set by setup_dask_worker)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# -- devices -------------------------------------------------------------------------------
def resolve_device(device: str | None) -> str:
    """The device runs use here: ``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda``,
    ``cuda:N`` or ``mps``; a device this machine does not have is a one-line UserError."""
    import re

    requested = (device or "auto").strip().lower()
    if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", requested):
        raise UserError(f"--device {device}: unknown device (expected auto, cpu, cuda, cuda:N or mps)")
    if requested == "cpu":
        return "cpu"
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError(f"--device {device}: no CUDA device on this machine (torch {torch.__version__}, "
                            f"torch.cuda.is_available() is False); use --device cpu or auto")
        index = int(requested.split(":")[1]) if ":" in requested else 0
        if index >= torch.cuda.device_count():
            raise UserError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s) "
                            f"(cuda:0 .. cuda:{torch.cuda.device_count() - 1})")
        return requested
    if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UserError(f"--device {device}: MPS is not available on this machine; use --device cpu or auto")
    return "mps"


# -- one run ----------------------------------------------------------------------------------
def execute_run(spec_json: str, artifact_root: str, cache_dir: str, plugins: tuple = (),
                device: str = "cpu") -> dict:
    """Run one RunSpec on ``device`` and return its record; never raises for a failing task
    or method. Artifacts are left in ``record["artifact_tmp"]`` under ``artifact_root``."""
    from robench import registry
    from robench.spec import RunSpec

    started = time.perf_counter()
    record: dict = {"started_at": _now(), "metrics": {}, "artifacts": {}}
    spec = RunSpec.model_validate_json(spec_json)
    tmp = Path(artifact_root) / f".partial-{spec.id}-{uuid.uuid4().hex[:8]}"
    record["artifact_tmp"] = str(tmp)
    try:
        registry.setup(plugins)
        task_cls = registry.tasks.get(spec.task)
        method_cls = registry.methods.get(spec.method, task=spec.task)
        record.update(primary_metric=task_cls.primary_metric, greater_is_better=task_cls.greater_is_better)
        from robench.seeding import seed_everything
        from robench.tasks.base import RunContext, execute

        tmp.mkdir(parents=True, exist_ok=True)
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        task = task_cls(task_cls.Params(**spec.task_params))
        method = method_cls(**spec.method_params)
        seed_everything(spec.seed)  # the only place a run's global generators are seeded
        result = execute(task, method, spec.seed, RunContext(artifact_dir=tmp, cache_dir=Path(cache_dir),
                                                             device=device))
        metrics = {k: float(v) for k, v in result.metrics.items()}
        if task_cls.primary_metric not in metrics:
            raise RuntimeError(f"task {spec.task!r} returned no primary metric {task_cls.primary_metric!r}")
        missing = [name for name, rel in result.artifacts.items() if not (tmp / rel).exists()]
        if missing:
            raise RuntimeError(f"artifacts declared but not written: {', '.join(missing)}")
        record.update(status="done", metrics=metrics, artifacts=dict(result.artifacts),
                      primary_value=metrics[task_cls.primary_metric])
    except BaseException as exc:  # noqa: BLE001 — a failing plug-in must not stop the suite
        if isinstance(exc, KeyboardInterrupt):
            raise
        record.update(status="failed", error="".join(traceback.format_exception(exc)).strip())
    from robench import provenance

    info = provenance.collect(device)
    if spec.components:  # versions and plug-in source hashes this run's id covers
        info["components"] = dict(spec.components)
    plugin_files = registry.plugin_files()
    if plugin_files:
        info["plugin_files"] = {Path(path).name: digest for path, digest in plugin_files.items()}
    record.update(finished_at=_now(), duration_s=time.perf_counter() - started, provenance=info)
    return record


def _threads_for(workers: int) -> int:
    return max(1, (os.cpu_count() or 1) // workers)


def _set_threads(threads: int) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    import torch

    torch.set_num_threads(threads)


# -- serial and process pool -------------------------------------------------------------------
class SerialExecutor:
    """Runs each submitted run at once, in this process."""
    name = "serial"
    capacity = 1

    def __init__(self, threads: int | None = None):
        self.threads = threads

    def submit_run(self, spec_json, artifact_root, cache_dir, plugins, device, needs=()) -> Future:
        if self.threads:
            _set_threads(self.threads)
        future: Future = Future()
        try:
            future.set_result(execute_run(spec_json, artifact_root, cache_dir, plugins, device))
        except BaseException as exc:  # noqa: BLE001
            if isinstance(exc, KeyboardInterrupt):
                raise
            future.set_exception(exc)
        return future

    def shutdown(self) -> None:
        pass


class WorkerDied(RuntimeError):
    """A worker process ended while it held a run (killed, out of memory, crashed)."""


def _process_worker(conn, plugins: tuple, threads: int) -> None:
    """A pool worker: runs one job at a time from ``conn`` until told to stop; exits by
    itself when the driver that started it is gone (no orphans)."""
    import signal
    import threading

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
    parent = os.getppid()

    def watch_parent():
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(3)
    threading.Thread(target=watch_parent, daemon=True).start()
    _set_threads(threads)
    from robench import registry

    registry.setup(plugins)
    while True:
        job = conn.recv()
        if job is None:
            return
        conn.send(execute_run(*job))


class ProcessExecutor:
    """``workers`` spawned processes (safe with torch), each with its share of threads, one
    run at a time each. A worker that dies fails only the run it held (the reason is its
    exit code) and is replaced; the others go on. ``shutdown`` stops every worker."""
    name = "process"

    def __init__(self, workers: int, plugins: tuple = (), threads: int | None = None):
        import multiprocessing
        import threading

        self.capacity = 2 * workers  # one run queued per worker: no idle gap between runs
        self._context = multiprocessing.get_context("spawn")
        self._args = (tuple(plugins), threads or _threads_for(workers))
        self._lock = threading.Lock()
        self._queue: list = []  # (job, future) not started yet
        self._workers: list[dict] = [self._start() for _ in range(workers)]
        self._closing = False
        self._wake_r, self._wake_w = self._context.Pipe(duplex=False)
        self._thread = threading.Thread(target=self._dispatch, name="robench-pool", daemon=True)
        self._thread.start()

    def _start(self) -> dict:
        mine, theirs = self._context.Pipe()
        process = self._context.Process(target=_process_worker, args=(theirs, *self._args), daemon=True)
        process.start()
        theirs.close()
        return {"process": process, "conn": mine, "future": None}

    def submit_run(self, spec_json, artifact_root, cache_dir, plugins, device, needs=()) -> Future:
        future: Future = Future()
        with self._lock:
            self._queue.append(((spec_json, artifact_root, cache_dir, plugins, device), future))
        self._wake_w.send(None)
        return future

    def _dispatch(self) -> None:
        from multiprocessing.connection import wait as wait_any

        while not self._closing:
            with self._lock:
                for worker in self._workers:
                    if worker["future"] is None and self._queue:
                        job, future = self._queue.pop(0)
                        if not future.set_running_or_notify_cancel():
                            continue
                        worker["future"] = future
                        worker["conn"].send(job)
            watched = {self._wake_r: None}
            for worker in self._workers:
                watched[worker["conn"]] = worker
                watched[worker["process"].sentinel] = worker
            for ready in wait_any(list(watched)):
                if ready is self._wake_r:
                    self._wake_r.recv()
                    continue
                worker = watched[ready]
                if worker not in self._workers:
                    continue
                if ready is worker["conn"]:
                    try:
                        record = worker["conn"].recv()
                    except (EOFError, OSError):
                        continue  # its sentinel reports the death
                    future, worker["future"] = worker["future"], None
                    if future is not None:
                        future.set_result(record)
                elif not worker["process"].is_alive() and not self._closing:
                    self._replace(worker)

    def _replace(self, worker: dict) -> None:
        code = worker["process"].exitcode
        reason = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        future = worker["future"]
        with self._lock:
            self._workers[self._workers.index(worker)] = self._start()
        worker["conn"].close()
        if future is not None:
            future.set_exception(WorkerDied(f"the worker process running it died ({reason}); "
                                            f"the pool started a new one"))

    def shutdown(self) -> None:
        """Cancel what is queued and stop every worker (a run in progress is abandoned; its
        partial artifacts are removed by the next run on the store)."""
        self._closing = True
        with self._lock:
            for _, future in self._queue:
                future.cancel()
            self._queue.clear()
        self._wake_w.send(None)
        self._thread.join(timeout=2)
        for worker in self._workers:
            busy = worker["future"] is not None and not worker["future"].done()
            try:
                if busy:
                    worker["process"].terminate()
                else:
                    worker["conn"].send(None)
            except (OSError, ValueError):
                pass
        # a few seconds in all: an idle worker leaves when told, any other one is stopped
        deadline = time.monotonic() + 2
        for worker in self._workers:
            worker["process"].join(timeout=max(0.0, deadline - time.monotonic()))
        for worker in self._workers:
            if worker["process"].is_alive():
                worker["process"].terminate()
                worker["process"].join(timeout=1)
            if worker["process"].is_alive():
                worker["process"].kill()
                worker["process"].join(timeout=2)
            if worker["future"] is not None and not worker["future"].done():
                worker["future"].cancel()


# -- Dask ------------------------------------------------------------------------------------
def _pack(folder: Path) -> bytes:
    """A folder's files as an in-memory tar (how artifacts and cache files travel)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                tar.add(path, arcname=path.relative_to(folder).as_posix())
    return buffer.getvalue()


def _unpack(blob: bytes, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r") as tar:
        tar.extractall(folder, filter="data")  # "data": no absolute paths, links or escapes


def _worker_cache_dir(cache_dir: str) -> Path:
    """The driver's cache folder if this worker can use it (same machine or a shared
    filesystem), else a folder of this worker's own."""
    path = Path(cache_dir)
    try:
        path.mkdir(parents=True, exist_ok=True)
        return path
    except OSError:
        own = Path(tempfile.gettempdir()) / "robench-cache"
        own.mkdir(parents=True, exist_ok=True)
        return own


def _install_cache_files(cache: Path, entries: dict[str, bytes]) -> None:
    """Install the prerequisites' cache entries (files or folders, each a tar) this worker
    lacks, each atomically (as cache.cached does), so no reader ever sees half of one."""
    for rel, blob in entries.items():
        target = cache / rel
        if target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f".{target.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        try:
            _unpack(blob, tmp)
            os.replace(tmp / target.name, target)
        except OSError:
            if not target.exists():  # else another process installed it first: fine
                raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def build_prerequisite(build: Callable, cache_dir: str, device: str) -> dict[str, bytes]:
    """A Dask task: run a task's prerequisite ``build(cache_dir, device)`` (it returns the
    cache entries, files or folders, it made or found) and return each entry as a tar, by
    its path relative to the cache."""
    cache = _worker_cache_dir(cache_dir)
    return {Path(p).relative_to(cache).as_posix(): _tar(Path(p)) for path in build(cache, device)
            for p in _with_checksum(Path(path))}


def _with_checksum(path: Path) -> list[Path]:
    """A cache entry and the checksum file beside it (see robench.cache), if there is one."""
    sums = path.parent / f"{path.name}.sha256"
    return [path, sums] if sums.exists() else [path]


def _tar(path: Path) -> bytes:
    """A cache entry (a file or a folder) as an in-memory tar holding it under its own name."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(path, arcname=path.name)
    return buffer.getvalue()


def setup_dask_worker(plugin_sources: dict[str, str], threads: int | None) -> None:
    """What every Dask worker of a run does before its first run (restarted ones too), called
    by :class:`robench.dask_worker.RobenchWorkerPlugin`: set its torch thread count (before a
    plug-in file can import torch), write the driver's ``--plugin`` files (file name → source
    text) to the worker and register them there."""
    global _worker_threads
    if threads:
        _worker_threads = threads
        _set_threads(threads)
    from robench import registry

    folder = Path(tempfile.mkdtemp(prefix="robench-plugins-"))
    paths = []
    for i, (name, source) in enumerate(plugin_sources.items()):
        path = folder / str(i) / name  # the file's own name: its module name follows from it
        path.parent.mkdir()
        path.write_text(source, encoding="utf-8")
        paths.append(str(path))
    registry.setup(tuple(paths))


def execute_run_remote(spec_json: str, cache_dir: str, device: str, *needed: dict) -> dict:
    """A Dask task: :func:`execute_run` in a scratch artifact folder of the worker, after
    installing the cache files of its prerequisites (``needed``); the artifacts come back
    in the record (``artifact_files``: a tar), so no shared filesystem is needed."""
    if _worker_threads:  # in the thread that runs it (OpenMP's thread count is per thread)
        _set_threads(_worker_threads)
    cache = _worker_cache_dir(cache_dir)
    for files in needed:
        _install_cache_files(cache, files)
    with tempfile.TemporaryDirectory(prefix="robench-run-") as scratch:
        record = execute_run(spec_json, scratch, str(cache), (), device)
        tmp = Path(record.pop("artifact_tmp"))
        record["artifact_files"] = _pack(tmp) if record.get("status") == "done" and tmp.is_dir() else b""
    return record


class DaskExecutor:
    """Runs on a Dask cluster: a ``LocalCluster`` of ``workers`` processes on this machine
    (threads per worker = cores / workers), or the scheduler at ``scheduler``
    (``tcp://host:port``), which may span many machines."""
    name = "dask"

    def __init__(self, workers: int, plugins: tuple = (), scheduler: str | None = None,
                 threads: int | None = None):
        try:
            import dask
            from distributed import Client, LocalCluster
        except ImportError:
            raise UserError("--executor dask needs dask.distributed: pip install 'robench[dask]'") from None
        self.cluster = None
        # Runs are long CPU-bound tasks: no statistical profiler or frequent monitoring
        # competing with them for the GIL and the cores, and not the Nanny's
        # MALLOC_TRIM_THRESHOLD_=64 KiB, which returns every freed tensor to the OS and made
        # training ~40 % slower (system time) than in a plain process. A LocalCluster's
        # workers get these settings; a remote cluster's workers keep their own.
        environ = {k: v for k, v in dask.config.get("distributed.nanny.pre-spawn-environ", {}).items()
                   if k != "MALLOC_TRIM_THRESHOLD_"}
        dask.config.set({"distributed.scheduler.allowed-failures": WORKER_RETRIES,
                         "distributed.worker.profile.enabled": False,
                         "distributed.admin.system-monitor.interval": "2s",
                         "distributed.admin.system-monitor.gil.enabled": False,
                         "distributed.nanny.pre-spawn-environ": environ})
        try:
            if scheduler:
                self.client = Client(scheduler, timeout="5s")
                threads_per_worker = threads
            else:
                threads_per_worker = threads or _threads_for(workers)
                import logging

                self.cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                            host="127.0.0.1", dashboard_address=None,
                                            worker_dashboard_address=None, silence_logs=logging.ERROR)
                self.client = Client(self.cluster)
        except OSError as exc:
            raise UserError(f"--scheduler {scheduler}: cannot reach a Dask scheduler there ({exc}); "
                            f"expected the address `dask scheduler` printed, e.g. tcp://10.0.0.1:8786") from None
        except ValueError as exc:
            raise UserError(f"--scheduler {scheduler}: {exc}; expected tcp://HOST:PORT") from None
        sources = {Path(p).name: Path(p).read_text(encoding="utf-8") for p in plugins}
        from functools import partial

        from robench.dask_worker import RobenchWorkerPlugin

        # the plug-in carries the setup by reference (robench.executors.setup_dask_worker), so
        # dask_worker imports nothing of robench and executors -> dask_worker stays one-way
        self.client.register_plugin(RobenchWorkerPlugin(partial(setup_dask_worker, sources, threads_per_worker)),
                                    name="robench")
        info = self.client.scheduler_info()["workers"]
        slots = max(1, sum(w.get("nthreads", 1) for w in info.values())) if info else max(1, workers)
        # two runs queued per slot: a worker starts its next run while the driver commits the
        # last one (a killed driver still loses only the runs in flight)
        self.capacity = 2 * slots
        self._prerequisites: dict[str, object] = {}

    def check_device(self, device: str) -> str:
        """Resolve ``device`` on a worker (the driver may have no GPU where the workers do)."""
        if not self.client.scheduler_info()["workers"]:
            raise UserError("the Dask cluster has no workers (start `dask worker SCHEDULER_ADDRESS` on a machine)")
        return self.client.submit(resolve_device, device, pure=False).result()

    def prepare(self, prerequisites: dict[str, Callable], cache_dir: str, device: str) -> None:
        """Start every distinct shared prerequisite at once (they run in parallel); one the
        driver's cache already holds is not recomputed: a LocalCluster's workers share that
        cache, and a remote cluster's get the driver's copy."""
        for key, build in prerequisites.items():
            if key in self._prerequisites:
                continue
            local = Path(cache_dir) / key
            if local.exists():
                self._prerequisites[key] = {} if self.cluster is not None else {
                    p.relative_to(cache_dir).as_posix(): _tar(p) for p in _with_checksum(local)}
            else:
                self._prerequisites[key] = self.client.submit(build_prerequisite, build, cache_dir, device,
                                                              pure=False)

    def prerequisite_files(self, key: str) -> dict[str, bytes]:
        """The cache files of prerequisite ``key`` (waits for it). They travel to each run
        that needs it inside the run's task, so a worker that dies later loses nothing; a
        prerequisite that failed gives none (the run then computes it itself, and reports)."""
        entry = self._prerequisites.get(key)
        if entry is None:
            return {}
        if not isinstance(entry, dict):
            try:
                entry = entry.result()
            except Exception:  # noqa: BLE001 — the run will fail with the real traceback
                entry = {}
            self._prerequisites[key] = entry  # the Dask future is released
        return entry

    def submit_run(self, spec_json, artifact_root, cache_dir, plugins, device, needs=()) -> Future:
        remote = self.client.submit(execute_run_remote, spec_json, cache_dir, device, *needs, pure=False)
        future: Future = Future()
        spec_id = _spec_id(spec_json)

        def done(f):
            try:
                record = f.result()
                blob = record.pop("artifact_files", b"")
                tmp = Path(artifact_root) / f".partial-{spec_id}-{uuid.uuid4().hex[:8]}"
                if blob:
                    _unpack(blob, tmp)
                record["artifact_tmp"] = str(tmp)
                future.set_result(record)
            except BaseException as exc:  # noqa: BLE001 — the worker died (KilledWorker) or similar
                future.set_exception(exc)
        remote.add_done_callback(done)
        self._keep = getattr(self, "_keep", set()) | {remote}  # keep the Dask future alive
        return future

    def shutdown(self) -> None:
        try:
            self.client.close()
        finally:
            if self.cluster is not None:
                self.cluster.close()


def _spec_id(spec_json: str) -> str:
    from robench.spec import RunSpec

    return RunSpec.model_validate_json(spec_json).id


def check_executor(kind: str, workers: int, scheduler: str | None = None, threads: int | None = None) -> None:
    """Refuse bad executor settings in one line (before anything is stored)."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise UserError(f"--workers {workers}: expected a positive number of workers")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise UserError(f"--threads {threads}: expected a positive number of threads per run")
    if kind not in EXECUTORS:
        raise UserError(f"--executor {kind}: unknown executor (expected {', '.join(EXECUTORS)})")
    if scheduler and kind not in ("dask", "auto"):
        raise UserError(f"--scheduler goes with --executor dask (got --executor {kind})")


def make_executor(kind: str, workers: int, plugins: tuple = (), scheduler: str | None = None,
                  threads: int | None = None):
    """The executor ``kind`` with ``workers`` workers, each run on ``threads`` intra-op
    threads (default: this machine's cores / workers; a remote cluster: torch's default)."""
    check_executor(kind, workers, scheduler, threads)
    if kind == "dask" or scheduler:
        return DaskExecutor(workers, plugins, scheduler, threads)
    if kind == "serial" or (kind == "auto" and workers == 1):
        return SerialExecutor(threads)
    return ProcessExecutor(workers, plugins, threads)


def _prerequisites_of(spec) -> list:
    """The task's declared shared prerequisites of one run: ``[(key, build), ...]``."""
    from robench import registry

    task_cls = registry.tasks.get(spec.task)
    task = task_cls(task_cls.Params(**spec.task_params))
    method = registry.methods.get(spec.method, task=spec.task)(**spec.method_params)
    return list(task.prerequisites(method, spec.seed))


def run_specs(specs, store, executor, *, suite: str | None = None, plugins: tuple = (),
              device: str = "cpu", on_start: Callable | None = None,
              on_done: Callable | None = None, on_skip: Callable | None = None) -> list[dict]:
    """Run ``specs`` on ``executor`` (on ``device``), committing each record to ``store`` as
    it finishes.

    Each run is claimed in the store before it starts, so several drivers on one store
    share the work: a run another live driver holds (or has finished meanwhile) is skipped
    (``on_skip(spec)``). Keeps at most ``executor.capacity`` runs in flight, so a crash of
    the driver loses only those. Returns the records in completion order.
    """
    import time

    artifact_root = str(store.artifact_root)
    cache_dir = str(store.cache_dir)
    store.artifact_root.mkdir(parents=True, exist_ok=True)
    queue = list(specs)
    in_flight: dict[Future, object] = {}
    records = []
    needs: dict[str, list[str]] = {}
    if hasattr(executor, "prepare"):  # Dask: shared prerequisites first, each once
        builds: dict[str, Callable] = {}
        for spec in queue:
            try:
                pairs = _prerequisites_of(spec)
            except Exception:  # noqa: BLE001 — the run itself will report what is wrong
                pairs = []
            needs[spec.id] = [key for key, _ in pairs]
            builds.update(pairs)
        executor.prepare(builds, cache_dir, device)

    def fill():
        while queue and len(in_flight) < executor.capacity:
            spec = queue.pop(0)
            if not store.claim(spec.id):
                if on_skip:
                    on_skip(spec)
                continue
            if on_start:
                on_start(spec)
            files = tuple(executor.prerequisite_files(key) for key in needs.get(spec.id, ()))
            future = executor.submit_run(spec.model_dump_json(), artifact_root, cache_dir, tuple(plugins),
                                         device, files)
            in_flight[future] = spec

    try:
        fill()
        beat = time.monotonic()
        while in_flight:
            finished, _ = wait(list(in_flight), timeout=60, return_when=FIRST_COMPLETED)
            if time.monotonic() - beat > 60:  # our claims stay fresh while runs are long
                store.heartbeat(s.id for s in in_flight.values())
                beat = time.monotonic()
            for future in finished:
                spec = in_flight.pop(future)
                try:
                    record = future.result()
                except Exception as exc:  # the worker process itself died
                    record = {"status": "failed", "metrics": {}, "artifacts": {}, "provenance": {},
                              "error": f"worker failed: {type(exc).__name__}: {exc}", "finished_at": _now()}
                record = store.save(spec, record, suite=suite)
                store.release([spec.id])
                records.append(record)
                if on_done:
                    on_done(spec, record)
            fill()
    finally:
        store.release([s.id for s in in_flight.values()])
    return records
