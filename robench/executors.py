"""Everything that runs RunSpecs: serial, process pool (and room for Dask).

An executor has the ``concurrent.futures`` shape — ``submit(fn, *args) -> Future``,
``capacity`` (how many runs to keep in flight) and ``shutdown()`` — so the driver loop in
:func:`run_specs` does not care where a run executes. Workers never touch the store: they
return a record, and the driver commits it.
"""

from __future__ import annotations

import os
import time
import traceback
import uuid
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from robench.errors import UserError

_worker_plugins: tuple = ()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def execute_run(spec_json: str, artifact_root: str, cache_dir: str, plugins: tuple = (),
                device: str = "cpu") -> dict:
    """Run one RunSpec on ``device`` and return its record; never raises for a failing task
    or method."""
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

    record.update(finished_at=_now(), duration_s=time.perf_counter() - started,
                  provenance=provenance.collect())
    return record


def _init_worker(plugins: tuple, threads: int) -> None:
    global _worker_plugins
    _worker_plugins = plugins
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    import torch

    torch.set_num_threads(threads)
    from robench import registry

    registry.setup(plugins)


class SerialExecutor:
    """Runs each submitted call at once, in this process."""
    name = "serial"
    capacity = 1

    def __init__(self, threads: int | None = None):
        self.threads = threads

    def submit(self, fn: Callable, *args) -> Future:
        if self.threads:
            import torch
            torch.set_num_threads(self.threads)
        future: Future = Future()
        try:
            future.set_result(fn(*args))
        except BaseException as exc:  # noqa: BLE001
            if isinstance(exc, KeyboardInterrupt):
                raise
            future.set_exception(exc)
        return future

    def shutdown(self) -> None:
        pass


class ProcessExecutor:
    """A pool of ``workers`` processes (spawned: safe with torch), each with its share of threads."""
    name = "process"

    def __init__(self, workers: int, plugins: tuple = (), threads: int | None = None):
        import multiprocessing

        self.capacity = workers
        threads = threads or max(1, (os.cpu_count() or 1) // workers)
        self.pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                        initializer=_init_worker, initargs=(tuple(plugins), threads))

    def submit(self, fn: Callable, *args) -> Future:
        return self.pool.submit(fn, *args)

    def shutdown(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def make_executor(kind: str, workers: int, plugins: tuple = ()):
    if workers < 1:
        raise UserError(f"--workers {workers}: expected a positive number of workers")
    if kind == "serial" or (kind == "auto" and workers == 1):
        return SerialExecutor()
    if kind in ("process", "auto"):
        return ProcessExecutor(workers, plugins)
    raise UserError(f"--executor {kind}: unknown executor (expected serial or process)")


def run_specs(specs, store, executor, *, suite: str | None = None, plugins: tuple = (),
              on_start: Callable | None = None, on_done: Callable | None = None) -> list[dict]:
    """Run ``specs`` on ``executor``, committing each record to ``store`` as it finishes.

    Keeps at most ``executor.capacity`` runs in flight, so a crash of the driver loses
    only those. Returns the records in completion order.
    """
    artifact_root = str(store.artifact_root)
    cache_dir = str(store.cache_dir)
    store.artifact_root.mkdir(parents=True, exist_ok=True)
    queue = list(specs)
    in_flight: dict[Future, object] = {}
    records = []

    def fill():
        while queue and len(in_flight) < executor.capacity:
            spec = queue.pop(0)
            if on_start:
                on_start(spec)
            future = executor.submit(execute_run, spec.model_dump_json(), artifact_root, cache_dir, tuple(plugins))
            in_flight[future] = spec

    fill()
    while in_flight:
        finished, _ = wait(list(in_flight), return_when=FIRST_COMPLETED)
        for future in finished:
            spec = in_flight.pop(future)
            try:
                record = future.result()
            except Exception as exc:  # the worker process itself died
                record = {"status": "failed", "metrics": {}, "artifacts": {}, "provenance": {},
                          "error": f"worker failed: {type(exc).__name__}: {exc}", "finished_at": _now()}
            store.save(spec, record, suite=suite)
            records.append(record)
            if on_done:
                on_done(spec, record)
        fill()
    return records
