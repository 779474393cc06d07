"""What a suite will cost before it runs: an estimate of each run's wall time.

Each run is estimated from the store's own past runs, most specific first: the same
configuration (any seed), the same task setting and method, the same task and method, the
same task; a run with no such history takes its task's documented ``typical_run_s`` (a
rough figure for a 2-core CPU at the default suite's settings). Durations are per run on one
worker; the suite's wall time divides their sum by the workers.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

WARN_S = 3600.0  # `robench run` warns above an hour of expected wall time


@dataclass
class Estimate:
    """``seconds``: the expected wall time at ``workers``; ``from_store`` / ``from_task``
    / ``unknown``: how many runs each source estimated; ``per_task``: task → seconds."""
    seconds: float
    workers: int
    runs: int
    from_store: int = 0
    from_task: int = 0
    unknown: int = 0
    per_task: dict[str, float] = field(default_factory=dict)

    def describe(self) -> str:
        """One line: '~12 min with 2 workers (40 runs from this store's past runs, 3 from
        the tasks' typical times)'."""
        sources = []
        if self.from_store:
            sources.append(f"{self.from_store} from this store's past runs")
        if self.from_task:
            sources.append(f"{self.from_task} from the tasks' typical times")
        if self.unknown:
            sources.append(f"{self.unknown} without an estimate")
        if self.unknown == self.runs:
            return "no estimate of the wall time (no past runs of these tasks in this store, and they give no typical time)"
        workers = f"{self.workers} worker" + ("s" if self.workers != 1 else "")
        return f"expected wall time ~{duration(self.seconds)} with {workers} ({'; '.join(sources)})"


def duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _history(store: str | Path | None) -> list[dict]:
    from robench.store import DEFAULT_STORE, Store

    path = Path(store) if store is not None else DEFAULT_STORE
    if not path.is_file():
        return []
    try:
        with Store(path, create=False) as db:
            return [r for r in db.rows(imported=False) if r["status"] == "done" and r.get("duration_s")]
    except Exception:  # noqa: BLE001 — an estimate never stops a command; a bad store is reported where it is used
        return []


def estimate(specs: Iterable, store: str | Path | None = None, workers: int = 1, done: set | None = None) -> Estimate:
    """The expected wall time of running ``specs`` (those not in ``done``) on ``workers``."""
    from robench import registry

    specs = [s for s in specs if not done or s.id not in done]
    levels: list[dict] = [defaultdict(list) for _ in range(4)]
    for row in _history(store):
        for level, key in enumerate(_keys(row["config_id"], row["task"], row["task_label"], row["method"])):
            levels[level][key].append(float(row["duration_s"]))
    out = Estimate(0.0, max(1, int(workers)), len(specs))
    total = 0.0
    for spec in specs:
        seconds = None
        for level, key in enumerate(_keys(spec.config_id, spec.task, spec.task_label, spec.method)):
            if levels[level].get(key):
                seconds = statistics.median(levels[level][key])
                out.from_store += 1
                break
        if seconds is None:
            seconds = getattr(registry.tasks.get(spec.task), "typical_run_s", None)
            if seconds is None:
                out.unknown += 1
                continue
            out.from_task += 1
        total += seconds
        out.per_task[spec.task] = out.per_task.get(spec.task, 0.0) + seconds / out.workers
    out.seconds = total / out.workers
    return out


def _keys(config_id: str, task: str, task_label: str, method: str) -> tuple:
    return (("config", config_id), ("setting", task, task_label, method), ("method", task, method), ("task", task))
