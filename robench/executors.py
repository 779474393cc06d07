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

import contextlib
import io
import json
import os
import shutil
import tarfile
import tempfile
import time
import traceback
import uuid
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass
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
FAKE_CUDA_ENV = "ROBENCH_TEST_FAKE_CUDA"
DASK_ONE_GPU_PER_WORKER = ("on a Dask cluster each worker uses its own GPU (one worker per GPU, declaring "
                           "--resources GPU=1: see the README's Devices and clusters); run with --device cuda")


def is_cuda(device) -> bool:
    """Whether ``device`` (``cuda``, ``cuda:N``, a torch.device) names a CUDA device."""
    return str(device).startswith("cuda")


def fake_cuda_count() -> int:
    """How many fake CUDA devices a test asked for with ``ROBENCH_TEST_FAKE_CUDA=N`` (1 to
    16), else 0: then ``cuda`` and ``cuda:K`` (K < N) are accepted where named explicitly
    (never by ``auto``), and a run "on" one executes on the CPU, its provenance saying so
    (``fake_cuda``, ``executed_on``). For testing device assignment, memory waits and Dask GPU
    routing on machines without a GPU. Ignored where torch sees a real CUDA device, so it can
    never stand in for one."""
    raw = os.environ.get(FAKE_CUDA_ENV, "")
    if not raw:
        return 0
    if not (raw.isascii() and raw.isdigit() and 1 <= int(raw) <= 16):
        raise UserError(f"{FAKE_CUDA_ENV}={raw}: expected a number of fake CUDA devices from 1 to 16 "
                        f"(a testing aid; unset it to use real devices)")
    import torch

    return 0 if torch.cuda.is_available() else int(raw)


def _cuda_count() -> int:
    """CUDA devices torch sees here, else the fake ones a test asked for (see fake_cuda_count)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else fake_cuda_count()


def resolve_device(device: str | None) -> str:
    """The device runs use here: ``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda``,
    ``cuda:N`` or ``mps``; a device this machine does not have is a one-line UserError."""
    import re

    requested = (device or "auto").strip().lower()
    if requested == "cuda:all":
        raise UserError(f"--device {device}: names every GPU; here one device is expected (cpu, cuda, cuda:N or mps)")
    if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", requested):
        raise UserError(f"--device {device}: unknown device (expected auto, cpu, cuda, cuda:N, cuda:all or mps)")
    if requested == "cpu":
        return "cpu"
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"  # never a fake device
    if requested.startswith("cuda"):
        count = _cuda_count()
        if not count:
            raise UserError(f"--device {device}: no CUDA device on this machine (torch {torch.__version__}, "
                            f"torch.cuda.is_available() is False); use --device cpu or auto")
        index = int(requested.split(":")[1]) if ":" in requested else 0
        if index >= count:
            raise UserError(f"--device {device}: this machine has {count} CUDA device(s) (cuda:0 .. cuda:{count - 1})")
        return requested
    if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UserError(f"--device {device}: MPS is not available on this machine; use --device cpu or auto")
    return "mps"


def resolve_devices(device: str | None = None, devices=None) -> list[str]:
    """The devices the workers of a run are pinned to: ``devices`` (CUDA devices, a list or a
    comma-separated string such as ``"cuda:0,cuda:1"``, or ``"cuda:all"``) or else ``device``
    (one device as :func:`resolve_device` takes it, or ``cuda:all``: every CUDA device here).
    Every problem (both given, not a CUDA device, listed twice, an index beyond
    ``torch.cuda.device_count()``) is a one-line UserError naming the option."""
    import re

    if devices is not None and device is not None:
        raise UserError(f"--device {device} and --devices: give one of them (--devices lists several GPUs)")
    if devices is None:
        if (device or "").strip().lower() == "cuda:all":
            return _every_cuda_device(f"--device {device}")
        return [resolve_device(device)]
    items = [str(d).strip().lower() for d in (devices.split(",") if isinstance(devices, str) else devices)]
    option = f"--devices {','.join(items)}"
    if not items or not all(items):
        raise UserError(f"{option}: expected comma-separated CUDA devices, e.g. cuda:0,cuda:1 (or cuda:all)")
    if items == ["cuda:all"]:
        return _every_cuda_device(option)
    bad = [d for d in items if not re.fullmatch(r"cuda:\d+", d)]
    if bad:
        raise UserError(f"{option}: {bad[0]!r} is not a CUDA device (expected cuda:N entries, e.g. cuda:0,cuda:1, "
                        f"or cuda:all; one device of another kind goes to --device)")
    twice = sorted({d for d in items if items.count(d) > 1})
    if twice:
        raise UserError(f"{option}: {twice[0]} is listed twice (each GPU once; --workers sets how many runs "
                        f"share them)")
    count = _cuda_count()
    if not count:
        import torch

        raise UserError(f"{option}: no CUDA device on this machine (torch {torch.__version__}, "
                        f"torch.cuda.is_available() is False)")
    beyond = [d for d in items if int(d.split(":")[1]) >= count]
    if beyond:
        raise UserError(f"{option}: {beyond[0]} is beyond this machine's {count} CUDA device(s) "
                        f"(cuda:0 .. cuda:{count - 1})")
    return items


def _every_cuda_device(option: str) -> list[str]:
    count = _cuda_count()
    if not count:
        import torch

        raise UserError(f"{option}: no CUDA device on this machine (torch {torch.__version__}, "
                        f"torch.cuda.is_available() is False); use --device cpu or auto")
    return [f"cuda:{i}" for i in range(count)]


def check_device_plan(devices: list[str], kind: str, workers: int, scheduler: str | None = None,
                      option: str | None = None) -> None:
    """Refuse, in one line, what several devices cannot do: the serial executor runs on one
    device; on Dask each worker owns its GPU (dask-cuda, or CUDA_VISIBLE_DEVICES per worker);
    and K GPUs need at least K workers (worker i is pinned to ``devices[i % K]``)."""
    if len(devices) <= 1:
        return
    option = option or f"--devices {','.join(devices)}"
    if kind == "dask" or scheduler:
        raise UserError(f"{option}: several GPUs go with the process executor; {DASK_ONE_GPU_PER_WORKER}")
    if kind == "serial":
        raise UserError(f"{option}: the serial executor runs on one device; use --workers {len(devices)} or more "
                        f"(a process per worker, spread over the GPUs) or one --device cuda:N")
    if workers < len(devices):
        raise UserError(f"{option}: {len(devices)} GPUs need --workers {len(devices)} or more (the workers are spread "
                        f"over the GPUs round-robin, each pinned to one; got --workers {workers})")


def assign_devices(workers: int, devices: list[str]) -> list[str]:
    """The device of each of ``workers`` workers: round-robin over ``devices`` (worker i gets
    ``devices[i % len(devices)]``), so N workers over K GPUs put N/K runs on each."""
    return [devices[i % len(devices)] for i in range(workers)]


# -- GPU memory: wait for room, record the peak, recover from running out ---------------------------
GIB = 1 << 30
DEFAULT_GPU_NEED = 4 * GIB  # a run of a task and model never seen on a GPU: at most a quarter of the device
MEMORY_POLL_S = 1.0  # how often a waiting run looks at the free memory again
MEMORY_TIMEOUT_S = 120.0  # then a run that still does not fit starts anyway if no other robench run is there
RAMP_S = 30.0  # a run that started this recently may not have allocated yet: its need counts as taken
DEVICE_RUNS_ROOT: Path | None = None  # where the runs on each GPU are listed (None: the temp folder)


def format_bytes(n: float | None) -> str:
    if n is None:
        return "unknown"
    for unit, size in (("GiB", GIB), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(n) >= size:
            return f"{n / size:.2f} {unit}"
    return f"{int(n)} B"


def _cuda_call(name: str, *args):
    """``torch.cuda.<name>(*args)``, or None where it cannot answer (no CUDA behind a fake
    device, or a driver error): memory bookkeeping never fails a run."""
    import torch

    try:
        return getattr(torch.cuda, name)(*args)
    except Exception:  # noqa: BLE001
        return None


def device_key(device: str) -> str:
    """The same GPU's name in every process of this machine, whatever CUDA_VISIBLE_DEVICES
    each has (dask-cuda gives each worker its own): its UUID."""
    index = int(device.split(":")[1]) if ":" in device else 0
    if fake_cuda_count():
        return f"fake-cuda{index}"
    import torch

    try:
        return f"gpu-{torch.cuda.get_device_properties(index).uuid}"
    except Exception:  # noqa: BLE001
        return f"cuda{index}-{os.environ.get('CUDA_VISIBLE_DEVICES', 'all')}"


def _alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (OSError, ValueError, TypeError):
        return True  # another user's process, or unknown: assume it runs
    return True


class DeviceRuns:
    """The robench runs on each GPU of this machine, seen by every process (pool workers,
    Dask workers, other drivers): a small JSON file per run (process id, state ``running`` or
    ``waiting``, need in bytes, since when) in a folder per device, under the temp folder; an
    entry whose process is gone is dropped. A lock file per device makes "look at the free
    memory, then take a place" one step."""

    def __init__(self, root: str | Path | None = None):
        uid = getattr(os, "getuid", lambda: "user")()
        self.root = Path(root or DEVICE_RUNS_ROOT or Path(tempfile.gettempdir()) / f"robench-gpu-runs-{uid}")

    def folder(self, key: str) -> Path:
        folder = self.root / "".join(c if c.isalnum() or c in "-_." else "_" for c in key)
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    @contextlib.contextmanager
    def locked(self, key: str):
        folder = self.folder(key)
        with open(folder / ".lock", "a") as lock:
            try:
                import fcntl
            except ImportError:  # pragma: no cover - Windows: best effort without the lock
                fcntl = None
            if fcntl is not None:
                fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield folder
            finally:
                if fcntl is not None:
                    fcntl.flock(lock, fcntl.LOCK_UN)

    @staticmethod
    def active(folder: Path) -> list[dict]:
        """The live entries (each with its ``path``); those of dead processes are removed."""
        entries = []
        for path in folder.glob("*.json"):
            try:
                entry = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if not _alive(entry.get("pid")):
                path.unlink(missing_ok=True)
                continue
            entries.append({**entry, "path": path})
        return entries

    @staticmethod
    def enter(folder: Path, need: int, run: str, state: str = "running", path: Path | None = None) -> Path:
        """Write (or rewrite, ``path``) this process's entry for ``run``; returns its path."""
        path = path or folder / f"{os.getpid()}-{uuid.uuid4().hex[:12]}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"pid": os.getpid(), "state": state, "need": int(need), "since": time.time(),
                                   "run": run}))
        os.replace(tmp, path)
        return path


@dataclass
class MemorySlot:
    """A run's place on a GPU: its entry in :class:`DeviceRuns`, what it was taken to need,
    how long it waited, and whether it started without room (after the timeout)."""
    entry: Path | None
    need: int | None
    waited_s: float
    forced: bool = False

    def leave(self) -> None:
        if self.entry is not None:
            self.entry.unlink(missing_ok=True)


def wait_for_memory(device: str, need: int | None, say: Callable[[str], None] | None = None, run: str = "",
                    runs: DeviceRuns | None = None) -> MemorySlot:
    """Wait until a run needing ``need`` bytes (None: unknown, taken as ``min(DEFAULT_GPU_NEED,
    total / 4)``; never more than 90 % of the device) fits on ``device``, then take a place.

    It fits when the free memory (``torch.cuda.mem_get_info``) is at least its need plus what
    others may still take: the needs of the robench runs started on this GPU in the last
    ``RAMP_S`` seconds (they may not have allocated yet) and of the runs that have waited
    longer than it (first come, first served: a big run is not starved by small ones). Until
    then it polls every ``MEMORY_POLL_S`` seconds, saying once a minute (``say``) that it
    waits and why. It never deadlocks: after ``MEMORY_TIMEOUT_S`` seconds it starts anyway
    when no other robench run is running or waiting ahead of it on that GPU (its
    out-of-memory error, if any, is then its failed record); while others run, their end
    frees memory. Where the free memory cannot be read (a fake device) it starts at once."""
    runs = runs or DeviceRuns()
    key = device_key(device)
    start = time.monotonic()
    said = None
    mine: Path | None = None  # this run's `waiting` entry, once it waits
    try:
        while True:
            with runs.locked(key) as folder:
                entries = runs.active(folder)
                memory = _cuda_call("mem_get_info", device)
                waited = time.monotonic() - start
                if memory is None:
                    place, mine = runs.enter(folder, need or 0, run, path=mine), None
                    return MemorySlot(place, need, waited)
                free, total = int(memory[0]), int(memory[1])
                wanted = int(min(need if need else min(DEFAULT_GPU_NEED, total // 4), 0.9 * total))
                now = time.time()
                running = [e for e in entries if e.get("state", "running") == "running"]
                my_since = next((e["since"] for e in entries if e["path"] == mine), now)
                ahead = [e for e in entries if e.get("state") == "waiting" and e["path"] != mine
                         and float(e.get("since", 0)) < my_since]
                pending = sum(int(e.get("need", 0)) for e in running if now - float(e.get("since", 0)) < RAMP_S)
                pending += sum(int(e.get("need", 0)) for e in ahead)
                if free - pending >= wanted:
                    place, mine = runs.enter(folder, wanted, run, path=mine), None
                    return MemorySlot(place, wanted, waited)
                if not running and not ahead and waited >= MEMORY_TIMEOUT_S:
                    if say:
                        say(f"starts on {device} without room after waiting {waited:.0f} s (needs "
                            f"~{format_bytes(wanted)}, {format_bytes(free)} free, no other robench run there); "
                            f"running out of memory would store it failed")
                    place, mine = runs.enter(folder, wanted, run, path=mine), None
                    return MemorySlot(place, wanted, waited, forced=True)
                if mine is None:
                    mine = runs.enter(folder, wanted, run, state="waiting")
            if say and (said is None or time.monotonic() - said >= 60):
                there = f"{len(running)} other robench run(s) there" if running else "no other robench run there"
                if ahead:
                    there += f", {len(ahead)} waiting before it"
                left = format_bytes(max(0, free - pending))
                say(f"waits for GPU memory on {device}: needs ~{format_bytes(wanted)}, {left} free ({there}); starts "
                    f"when it fits" + ("" if running or ahead else f", or anyway after {MEMORY_TIMEOUT_S:g} s"))
                said = time.monotonic()
            time.sleep(MEMORY_POLL_S)
    finally:
        if mine is not None:  # interrupted while waiting
            mine.unlink(missing_ok=True)


def is_cuda_oom(exc: BaseException) -> bool:
    """Whether ``exc`` (or an exception it was raised from) is CUDA running out of memory:
    ``torch.OutOfMemoryError``/``torch.cuda.OutOfMemoryError``, or a RuntimeError saying
    "out of memory" (older torch, cuDNN, cuBLAS)."""
    import sys

    torch = sys.modules.get("torch")
    kinds = tuple(k for k in (getattr(torch, "OutOfMemoryError", None),
                              getattr(getattr(torch, "cuda", None), "OutOfMemoryError", None)) if k)
    seen = 0
    while exc is not None and seen < 20:
        if kinds and isinstance(exc, kinds):
            return True
        if isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower():
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def oom_reason(exc: BaseException, device: str, need: int | None) -> str:
    """A CUDA out-of-memory error as one line: the device, what it needed (the failed
    allocation when torch says it, else the run's estimate) and what was free."""
    import re

    text = " ".join(str(exc).split())
    tried = re.search(r"[Tt]ried to allocate ([\d.]+ ?[KMGTP]?i?B)", text)
    free = re.search(r"of which ([\d.]+ ?[KMGTP]?i?B) (?:is )?free", text)
    needed = tried.group(1) if tried else f"~{format_bytes(need)} estimated for the run"
    if free:
        free_text = free.group(1)
    else:
        memory = _cuda_call("mem_get_info", device)
        free_text = format_bytes(memory[0]) if memory else "unknown"
    return f"CUDA out of memory on {device} (needed {needed}, free {free_text}); try fewer --workers per GPU"


class MemoryEstimates:
    """What a GPU run will need, in bytes, for :func:`wait_for_memory`: the largest peak (the
    caching allocator's ``gpu_peak_reserved_bytes``, else ``gpu_peak_allocated_bytes``)
    recorded for the same task and model, in the store and in this session; None (the
    conservative default) for a task and model never run on a GPU."""

    def __init__(self):
        self.peaks: dict[tuple[str, str], int] = {}

    @staticmethod
    def key(task: str, task_params: dict) -> tuple[str, str]:
        return task, str((task_params or {}).get("model", ""))

    def add(self, task: str, task_params: dict, provenance: dict | None) -> None:
        info = provenance or {}
        peak = info.get("gpu_peak_reserved_bytes") or info.get("gpu_peak_allocated_bytes")
        if isinstance(peak, (int, float)) and peak > 0:
            key = self.key(task, task_params)
            self.peaks[key] = max(self.peaks.get(key, 0), int(peak))

    def need(self, spec) -> int | None:
        return self.peaks.get(self.key(spec.task, spec.task_params))

    @classmethod
    def from_store(cls, store, tasks) -> "MemoryEstimates":
        estimates = cls()
        for task in dict.fromkeys(tasks):
            try:
                rows = store.rows(task=task, imported=False)
            except Exception:  # noqa: BLE001 — an estimate never stops a run
                continue
            for row in rows:
                estimates.add(row["task"], row["task_params"], row["provenance"])
        return estimates


def pin_to_gpu(device: str) -> None:
    """Make ``device`` this process's current CUDA device (what a bare ``cuda`` and libraries
    that allocate on the current device use). ``cuda`` without an index keeps the current
    one (torch.cuda.set_device takes only an index); a fake device pins nothing."""
    import torch

    index = torch.device(device).index
    if index is not None and not fake_cuda_count():
        torch.cuda.set_device(index)


def _begin_gpu_run(device: str) -> None:
    """Pin this process to the run's GPU and start its peak-memory count afresh."""
    pin_to_gpu(device)
    _cuda_call("reset_peak_memory_stats", device)


def _end_gpu_run(device: str, out_of_memory: bool) -> dict:
    """The run's peak GPU memory (bytes; provenance), then its memory handed back: after an
    out-of-memory error the garbage it left is collected first, and the caching allocator's
    blocks are released after every run, so the other runs on that GPU can use them."""
    peaks = {"gpu_peak_allocated_bytes": _cuda_call("max_memory_allocated", device),
             "gpu_peak_reserved_bytes": _cuda_call("max_memory_reserved", device)}
    if out_of_memory:
        import gc

        gc.collect()
    _cuda_call("empty_cache")
    return {k: int(v) for k, v in peaks.items() if isinstance(v, (int, float)) and v > 0}


# -- one run ----------------------------------------------------------------------------------
def execute_run(spec_json: str, artifact_root: str, cache_dir: str, plugins: tuple = (),
                device: str = "cpu", need_bytes: int | None = None,
                say: Callable[[str], None] | None = None) -> dict:
    """Run one RunSpec on ``device`` and return its record; never raises for a failing task
    or method. Artifacts are left in ``record["artifact_tmp"]`` under ``artifact_root``.

    On a CUDA device the run first waits for room (:func:`wait_for_memory`, ``need_bytes``
    its estimate; ``say`` gets the waiting lines); its peak memory is recorded in its
    provenance; a CUDA out-of-memory error is its failed record with a one-line reason, and
    the memory it held is handed back for the next run."""
    from robench import registry
    from robench.spec import RunSpec

    spec = RunSpec.model_validate_json(spec_json)
    gpu = is_cuda(device)
    fake = fake_cuda_count() if gpu else 0
    try:
        slot = wait_for_memory(device, need_bytes, say, run=spec.id) if gpu else None
    except OSError:  # no folder for the list of runs per GPU: run without the memory check
        slot = MemorySlot(None, need_bytes, 0.0)
    try:
        started = time.perf_counter()
        record: dict = {"started_at": _now(), "metrics": {}, "artifacts": {}}
        tmp = Path(artifact_root) / f".partial-{spec.id}-{uuid.uuid4().hex[:8]}"
        record["artifact_tmp"] = str(tmp)
        out_of_memory = False
        try:
            if gpu:
                _begin_gpu_run(device)
            registry.setup(plugins)
            task_cls = registry.tasks.get(spec.task)
            record.update(primary_metric=task_cls.primary_metric, greater_is_better=task_cls.greater_is_better)
            metrics, artifacts = _run_task(spec, task_cls, tmp, Path(cache_dir), "cpu" if fake else device)
            record.update(status="done", metrics=metrics, artifacts=artifacts,
                          primary_value=metrics[task_cls.primary_metric])
        except BaseException as exc:  # noqa: BLE001 — a failing plug-in must not stop the suite
            if isinstance(exc, KeyboardInterrupt):
                raise
            if gpu and is_cuda_oom(exc):
                out_of_memory = True
                record.update(status="failed", error=oom_reason(exc, device, slot.need))
            else:
                record.update(status="failed", error="".join(traceback.format_exception(exc)).strip())
        # (the exception and the frames holding the run's tensors are gone here)
        gpu_info = _end_gpu_run(device, out_of_memory) if gpu else {}
    finally:
        if slot is not None:
            slot.leave()
    from robench import provenance

    info = provenance.collect(device)
    info["worker_pid"] = os.getpid()
    if gpu:
        info.update(gpu_info, gpu_need_bytes=slot.need, gpu_memory_wait_s=round(slot.waited_s, 3))
        if slot.forced:
            info["gpu_started_without_room"] = True
        if fake:
            info.update(fake_cuda=f"{FAKE_CUDA_ENV}={fake}: a test's fake device; the run executed on the CPU",
                        executed_on="cpu")
    if spec.components:  # versions and plug-in source hashes this run's id covers
        info["components"] = dict(spec.components)
    plugin_files = registry.plugin_files()
    if plugin_files:
        info["plugin_files"] = {Path(path).name: digest for path, digest in plugin_files.items()}
    record.update(finished_at=_now(), duration_s=time.perf_counter() - started, provenance=info)
    return record


def _run_task(spec, task_cls, tmp: Path, cache_dir: Path, device: str) -> tuple[dict, dict]:
    """The task's run itself: (metrics, artifacts). Its task, method and tensors are locals
    here, so they are freed when it returns or raises (an out-of-memory run's memory too)."""
    from robench import registry
    from robench.seeding import seed_everything
    from robench.tasks.base import RunContext, execute

    method_cls = registry.methods.get(spec.method, task=spec.task)
    tmp.mkdir(parents=True, exist_ok=True)
    cache_dir.mkdir(parents=True, exist_ok=True)
    task = task_cls(task_cls.Params(**spec.task_params))
    method = method_cls(**spec.method_params)
    seed_everything(spec.seed)  # the only place a run's global generators are seeded
    result = execute(task, method, spec.seed, RunContext(artifact_dir=tmp, cache_dir=cache_dir, device=device))
    metrics = {k: float(v) for k, v in result.metrics.items()}
    if task_cls.primary_metric not in metrics:
        raise RuntimeError(f"task {spec.task!r} returned no primary metric {task_cls.primary_metric!r}")
    missing = [name for name, rel in result.artifacts.items() if not (tmp / rel).exists()]
    if missing:
        raise RuntimeError(f"artifacts declared but not written: {', '.join(missing)}")
    return metrics, dict(result.artifacts)


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

    def submit_run(self, spec_json, artifact_root, cache_dir, plugins, device, needs=(), need_bytes=None,
                   say=None) -> Future:
        if self.threads:
            _set_threads(self.threads)
        future: Future = Future()
        try:
            future.set_result(execute_run(spec_json, artifact_root, cache_dir, plugins, device, need_bytes, say))
        except BaseException as exc:  # noqa: BLE001
            if isinstance(exc, KeyboardInterrupt):
                raise
            future.set_exception(exc)
        return future

    def shutdown(self) -> None:
        pass


class WorkerDied(RuntimeError):
    """A worker process ended while it held a run (killed, out of memory, crashed)."""


def _process_worker(conn, plugins: tuple, threads: int, device: str | None = None) -> None:
    """A pool worker: runs one job at a time from ``conn`` until told to stop; exits by
    itself when the driver that started it is gone (no orphans). Pinned to ``device`` (a
    GPU) when given: its CUDA context lives there. Sends ``("note", text)`` while a run
    waits for GPU memory, then ``("record", record)``."""
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
    if device and is_cuda(device):
        pin_to_gpu(device)
    from robench import registry

    registry.setup(plugins)

    def say(message: str) -> None:
        conn.send(("note", message))
    while True:
        job = conn.recv()
        if job is None:
            return
        conn.send(("record", execute_run(*job, say=say)))


class ProcessExecutor:
    """``workers`` spawned processes (safe with torch), each with its share of threads, one
    run at a time each. A worker that dies fails only the run it held (the reason is its
    exit code) and is replaced; the others go on. ``shutdown`` stops every worker.

    With ``devices`` (GPUs) worker i is pinned to ``devices[i % len(devices)]`` (a replaced
    worker keeps its device) and its runs execute there whatever device they were submitted
    with; several workers on one GPU share it, each with its own CUDA context."""
    name = "process"

    def __init__(self, workers: int, plugins: tuple = (), threads: int | None = None,
                 devices: list[str] | None = None):
        import multiprocessing
        import threading

        self.capacity = 2 * workers  # one run queued per worker: no idle gap between runs
        self._context = multiprocessing.get_context("spawn")
        self._args = (tuple(plugins), threads or _threads_for(workers))
        self._lock = threading.Lock()
        self._queue: list = []  # (job, future, say) not started yet
        self.devices = assign_devices(workers, list(devices)) if devices else [None] * workers
        self._workers: list[dict] = [self._start(i) for i in range(workers)]
        self._closing = False
        self._wake_r, self._wake_w = self._context.Pipe(duplex=False)
        self._thread = threading.Thread(target=self._dispatch, name="robench-pool", daemon=True)
        self._thread.start()

    def _start(self, slot: int) -> dict:
        mine, theirs = self._context.Pipe()
        process = self._context.Process(target=_process_worker, args=(theirs, *self._args, self.devices[slot]),
                                        daemon=True)
        process.start()
        theirs.close()
        return {"process": process, "conn": mine, "future": None, "slot": slot, "device": self.devices[slot],
                "say": None}

    def submit_run(self, spec_json, artifact_root, cache_dir, plugins, device, needs=(), need_bytes=None,
                   say=None) -> Future:
        future: Future = Future()
        with self._lock:
            self._queue.append(((spec_json, artifact_root, cache_dir, plugins, device, need_bytes), future, say))
        self._wake_w.send(None)
        return future

    def _dispatch(self) -> None:
        from multiprocessing.connection import wait as wait_any

        while not self._closing:
            with self._lock:
                for worker in self._workers:
                    if worker["future"] is None and self._queue:
                        job, future, say = self._queue.pop(0)
                        if not future.set_running_or_notify_cancel():
                            continue
                        if worker["device"]:  # a pinned worker runs on its own device
                            job = (*job[:4], worker["device"], *job[5:])
                        worker["future"], worker["say"] = future, say
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
                        kind, record = worker["conn"].recv()
                    except (EOFError, OSError):
                        continue  # its sentinel reports the death
                    if kind == "note":  # its run waits for GPU memory
                        if worker["say"] is not None:
                            try:
                                worker["say"](record)
                            except Exception:  # noqa: BLE001 — a progress line never stops the pool
                                pass
                        continue
                    future, worker["future"], worker["say"] = worker["future"], None, None
                    if future is not None:
                        future.set_result(record)
                elif not worker["process"].is_alive() and not self._closing:
                    self._replace(worker)

    def _replace(self, worker: dict) -> None:
        code = worker["process"].exitcode
        reason = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        future = worker["future"]
        with self._lock:
            self._workers[self._workers.index(worker)] = self._start(worker["slot"])
        worker["conn"].close()
        if future is not None:
            future.set_exception(WorkerDied(f"the worker process running it died ({reason}); "
                                            f"the pool started a new one"))

    def shutdown(self) -> None:
        """Cancel what is queued and stop every worker (a run in progress is abandoned; its
        partial artifacts are removed by the next run on the store)."""
        self._closing = True
        with self._lock:
            for _, future, _ in self._queue:
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

    import hashlib

    # one path per content: a worker that serves a second `robench run` (a long-lived GPU
    # cluster) finds the same file already loaded instead of registering it twice
    folder = Path(tempfile.gettempdir()) / f"robench-plugins-{getattr(os, 'getuid', lambda: 'user')()}"
    paths = []
    for name, source in plugin_sources.items():
        path = folder / hashlib.sha256(source.encode()).hexdigest()[:16] / name  # its own name: its module's
        if not path.is_file() or path.read_text(encoding="utf-8") != source:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{name}.{uuid.uuid4().hex[:8]}")
            tmp.write_text(source, encoding="utf-8")
            os.replace(tmp, path)
        paths.append(str(path))
    registry.setup(tuple(paths))


def execute_run_remote(spec_json: str, cache_dir: str, device: str, need_bytes: int | None, *needed: dict) -> dict:
    """A Dask task: :func:`execute_run` in a scratch artifact folder of the worker, after
    installing the cache files of its prerequisites (``needed``); the artifacts come back
    in the record (``artifact_files``: a tar), so no shared filesystem is needed. The
    worker's address is in the record's provenance (``dask_worker``); a wait for GPU memory
    is said in the worker's log."""
    import logging

    if _worker_threads:  # in the thread that runs it (OpenMP's thread count is per thread)
        _set_threads(_worker_threads)
    cache = _worker_cache_dir(cache_dir)
    for files in needed:
        _install_cache_files(cache, files)
    with tempfile.TemporaryDirectory(prefix="robench-run-") as scratch:
        record = execute_run(spec_json, scratch, str(cache), (), device, need_bytes,
                             logging.getLogger("robench").warning)
        tmp = Path(record.pop("artifact_tmp"))
        record["artifact_files"] = _pack(tmp) if record.get("status") == "done" and tmp.is_dir() else b""
    try:
        from distributed import get_worker

        record["provenance"]["dask_worker"] = get_worker().address
    except (ImportError, ValueError):  # not inside a Dask worker
        pass
    return record


def _gpu_resources(device: str | None) -> dict | None:
    """The Dask worker resources a run on ``device`` asks for: one ``GPU`` for a CUDA device
    (only workers started with ``--resources GPU=1`` or more take it), none otherwise."""
    return {"GPU": 1} if device is not None and is_cuda(device) else None


class DaskExecutor:
    """Runs on a Dask cluster: a ``LocalCluster`` of ``workers`` processes on this machine
    (threads per worker = cores / workers; with ``gpu``, each declares the worker resource
    ``GPU=1``, so they share this machine's GPU one run each), or the scheduler at
    ``scheduler`` (``tcp://host:port``), which may span many machines. A run on a CUDA
    device asks for ``GPU=1``: a cluster that mixes CPU and GPU workers sends it to a worker
    that declares a GPU; a CPU run goes to any worker."""
    name = "dask"

    def __init__(self, workers: int, plugins: tuple = (), scheduler: str | None = None,
                 threads: int | None = None, gpu: bool = False):
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

                extra = {"resources": {"GPU": 1}} if gpu else {}
                self.cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                            host="127.0.0.1", dashboard_address=None,
                                            worker_dashboard_address=None, silence_logs=logging.ERROR, **extra)
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
        """Resolve ``device`` on a worker (the driver may have no GPU where the workers do): a
        CUDA one on a worker that declares a GPU. A run on CUDA asks for the ``GPU`` resource,
        so a cluster where no worker declares one is refused here (its runs would wait forever)."""
        workers = self.client.scheduler_info()["workers"]
        if not workers:
            raise UserError("the Dask cluster has no workers (start `dask worker SCHEDULER_ADDRESS` on a machine)")
        gpu_workers = [w for w in workers.values() if (w.get("resources") or {}).get("GPU", 0) >= 1]
        requested = (device or "auto").strip().lower()
        if requested == "cuda:all" or "," in requested:
            raise UserError(f"--device {device}: {DASK_ONE_GPU_PER_WORKER}")
        wants_gpu = is_cuda(requested) or (requested == "auto" and gpu_workers)
        if is_cuda(requested) and not gpu_workers:
            raise UserError(f"--device {device}: no worker of the Dask cluster declares a GPU (a run on CUDA asks for "
                            f"the worker resource GPU=1): start GPU workers with `dask worker SCHEDULER --resources "
                            f"GPU=1` or dask-cuda's LocalCUDACluster(resources={{'GPU': 1}}), or use --device cpu")
        resolved = self.client.submit(resolve_device, device, pure=False, resources=_gpu_resources(
            "cuda" if wants_gpu else None)).result()
        if is_cuda(resolved) and not gpu_workers:
            raise UserError(f"--device {device or 'auto'}: the Dask workers have CUDA but none declares the worker "
                            f"resource GPU (start them with --resources GPU=1), or use --device cpu")
        return resolved

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
                                                              pure=False, resources=_gpu_resources(device))

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

    def submit_run(self, spec_json, artifact_root, cache_dir, plugins, device, needs=(), need_bytes=None,
                   say=None) -> Future:
        remote = self.client.submit(execute_run_remote, spec_json, cache_dir, device, need_bytes, *needs,
                                    pure=False, resources=_gpu_resources(device))
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
                  threads: int | None = None, devices: list[str] | None = None):
    """The executor ``kind`` with ``workers`` workers, each run on ``threads`` intra-op
    threads (default: this machine's cores / workers; a remote cluster: torch's default).
    ``devices`` (from :func:`resolve_devices`): the process pool pins its workers to them
    round-robin; a LocalCluster on a GPU declares ``GPU=1`` per worker."""
    check_executor(kind, workers, scheduler, threads)
    if devices:
        check_device_plan(list(devices), kind, workers, scheduler)
    if kind == "dask" or scheduler:
        return DaskExecutor(workers, plugins, scheduler, threads, gpu=bool(devices) and is_cuda(devices[0]))
    if kind == "serial" or (kind == "auto" and workers == 1):
        return SerialExecutor(threads)
    return ProcessExecutor(workers, plugins, threads, devices)


def _prerequisites_of(spec) -> list:
    """The task's declared shared prerequisites of one run: ``[(key, build), ...]``."""
    from robench import registry

    task_cls = registry.tasks.get(spec.task)
    task = task_cls(task_cls.Params(**spec.task_params))
    method = registry.methods.get(spec.method, task=spec.task)(**spec.method_params)
    return list(task.prerequisites(method, spec.seed))


def run_specs(specs, store, executor, *, suite: str | None = None, plugins: tuple = (),
              device: str = "cpu", on_start: Callable | None = None,
              on_done: Callable | None = None, on_skip: Callable | None = None,
              on_note: Callable | None = None) -> list[dict]:
    """Run ``specs`` on ``executor`` (on ``device``), committing each record to ``store`` as
    it finishes.

    Each run is claimed in the store before it starts, so several drivers on one store
    share the work: a run another live driver holds (or has finished meanwhile) is skipped
    (``on_skip(spec)``). Keeps at most ``executor.capacity`` runs in flight, so a crash of
    the driver loses only those. Returns the records in completion order.

    On a CUDA device each run goes with its memory estimate (:class:`MemoryEstimates`, from
    the store's and this session's peaks of the same task and model); ``on_note(spec, text)``
    gets the lines of a run that waits for GPU memory (serial and process executors).
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
    estimates = MemoryEstimates.from_store(store, [s.task for s in queue]) if is_cuda(device) else None

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
            say = (lambda text, spec=spec: on_note(spec, text)) if on_note else None
            future = executor.submit_run(spec.model_dump_json(), artifact_root, cache_dir, tuple(plugins),
                                         device, files, need_bytes=estimates.need(spec) if estimates else None,
                                         say=say)
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
                if estimates is not None:
                    estimates.add(spec.task, spec.task_params, record.get("provenance"))
                record = store.save(spec, record, suite=suite)
                store.release([spec.id])
                records.append(record)
                if on_done:
                    on_done(spec, record)
            fill()
    finally:
        store.release([s.id for s in in_flight.values()])
    return records
