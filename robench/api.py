"""The Python API. Everything the CLI does is one call of a function here."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from robench.errors import UserError


@dataclass
class RunSummary:
    suite: str
    total: int
    skipped: int
    done: int = 0
    failed: int = 0
    failed_ids: list[str] = field(default_factory=list)
    store: str = ""

    @property
    def ok(self) -> bool:
        return self.failed == 0


def load(suite: str | Path, plugins: tuple = ()):
    """Load and expand a suite file: ``(Suite, [RunSpec, ...])``. Raises UserError on bad input."""
    from robench import registry
    from robench.spec import expand, load_suite

    registry.setup(plugins)
    parsed = load_suite(suite)
    return parsed, expand(parsed, source=str(suite))


def validate(suite: str | Path, plugins: tuple = ()) -> list:
    """Validate a suite file and return its RunSpecs (nothing runs, nothing is stored)."""
    return load(suite, plugins)[1]


def run(suite: str | Path | None = None, *, task: str | None = None, methods: list[str] | None = None,
        seeds: list[int] | None = None, params: dict[str, Any] | None = None, store: str | Path | None = None,
        workers: int = 1, executor: str = "auto", scheduler: str | None = None, device: str | None = None,
        plugins: tuple = (), progress: bool = True) -> RunSummary:
    """Run a suite file, or an ad-hoc ``task`` × ``methods`` × ``seeds``; skip runs already done.

    Results go to ``store`` (default ``.robench/results.sqlite``). ``executor``: ``auto``
    (serial for one worker, else a process pool), ``serial``, ``process`` or ``dask`` (a
    ``LocalCluster`` of ``workers`` processes, or the cluster at ``scheduler``,
    ``tcp://host:port``). ``device``: ``auto`` (CUDA when available, else CPU), ``cpu``,
    ``cuda``, ``cuda:N`` or ``mps``; default: the suite's ``device:``, else ``auto``. The
    device is recorded in each run's provenance, not in its id. Returns counts; failed
    runs are stored with their traceback and do not stop the others.
    """
    from robench import registry
    from robench.executors import make_executor, resolve_device, run_specs
    from robench.spec import expand, load_suite
    from robench.store import Store

    registry.setup(plugins)
    if suite is not None:
        if task or methods:
            raise UserError("give a suite file or --task/--method, not both")
        parsed = load_suite(suite)
        source = str(suite)
    else:
        if not task or not methods:
            raise UserError("nothing to run: give a suite file, or --task and --method")
        from robench.spec import adhoc_suite
        parsed = adhoc_suite(task, methods, seeds or [0], params or {})
        source = "command line"
    specs = expand(parsed, source=source)
    plugin_paths = tuple(str(Path(p).resolve()) for p in plugins)
    requested = device or parsed.device or "auto"
    if requested not in ("auto", "cpu") and not (executor == "dask" or scheduler):
        resolve_device(requested)  # a device this machine lacks: one line, before the store is touched
    with Store(store) as db:
        for name in dict.fromkeys(s.task for s in specs):
            task_cls = registry.tasks.get(name)
            db.save_task_info(name, task_cls.version, task_cls.report_info())
        done = db.done_ids(s.id for s in specs)
        db.add_to_suite(parsed.suite, done)
        todo = [s for s in specs if s.id not in done]
        summary = RunSummary(parsed.suite, len(specs), len(specs) - len(todo), store=str(db.path))
        if not todo:
            _say(progress, f"[bold]{parsed.suite}[/]: all {len(specs)} runs already in {db.path}; nothing to do")
            return summary
        pool = make_executor(executor, workers, plugin_paths, scheduler)
        try:  # the workers' device: a cluster's workers may have a GPU the driver lacks
            run_device = pool.check_device(requested) if hasattr(pool, "check_device") else resolve_device(requested)
        except BaseException:
            pool.shutdown()
            raise
        with _Progress(progress, parsed.suite, len(specs), len(specs) - len(todo)) as bar:
            def on_done(spec, record):
                if record["status"] == "done":
                    summary.done += 1
                else:
                    summary.failed += 1
                    summary.failed_ids.append(spec.id)
                bar.finished(spec, record)
            try:
                run_specs(todo, db, pool, suite=parsed.suite, plugins=plugin_paths, device=run_device,
                          on_start=bar.started, on_done=on_done)
            finally:
                pool.shutdown()
    return summary


def results(store: str | Path | None = None, *, task: str | None = None, suite: str | None = None,
            status: str | None = None):
    """All stored runs as a pandas DataFrame, one row per run.

    Columns: id, config_id, suites, task, method, task_label, method_label, task_params,
    method_params, seed, status, primary_metric, greater_is_better, primary_value, metrics
    (dict), error, started_at, finished_at, duration_s, provenance (dict), artifacts
    (name → absolute path), task_version, method_version, task_info (dict: the task's
    ``report_info()`` as last recorded, empty if never) and one ``metrics.<name>`` column
    per metric.
    """
    import pandas as pd

    from robench.store import Store

    with Store(store, create=False) as db:
        rows = db.rows(task=task, suite=suite, status=status)
        info = db.task_info()
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    frame["task_info"] = [info.get(name, {}) for name in frame["task"]]
    metric_names = sorted({k for m in frame["metrics"] for k in m})
    columns = pd.DataFrame({f"metrics.{name}": [m.get(name, float("nan")) for m in frame["metrics"]]
                            for name in metric_names}, index=frame.index)
    return pd.concat([frame, columns], axis=1)


def leaderboard(out: str | Path = "leaderboards", store: str | Path | None = None) -> Path:
    """Write the static leaderboard site from the store; returns the index page's path."""
    from robench.report.leaderboard import write_leaderboard

    frame = results(store)
    if frame.empty:
        raise UserError(f"results store {store or '.robench/results.sqlite'}: no runs yet (run a suite first)")
    return write_leaderboard(frame, Path(out))


def figures(name: str, out: str | Path = "reports", store: str | Path | None = None) -> list[Path]:
    """Regenerate a paper's figures and report from the store (nothing is re-run)."""
    from robench.report.figures import FIGURES, make_figures

    if name not in FIGURES:
        return make_figures(name, None, out)  # raises the did-you-mean error
    frame = results(store)
    if frame.empty:
        raise UserError(f"results store {store or '.robench/results.sqlite'}: no runs yet "
                        f"(run {FIGURES[name][1]} first)")
    return make_figures(name, frame, out)


def check(method: str, *, task: str | None = None, params: dict | None = None, plugins: tuple = (),
          run_task: bool = True, on_check=None, device: str | None = "cpu"):
    """Check a method against its task's contract on tiny data: ``(task, [Check, ...])``
    (see :mod:`robench.check`); ``on_check(check)`` is called as each one finishes; the
    end-to-end run uses ``device``. Nothing is stored."""
    from robench.check import check_method
    return check_method(method, task, params, plugins, run_task, on_check, device)


def ls(kind: str | None = None, plugins: tuple = ()) -> list[dict]:
    """Registered tasks/methods/models/datasets as dicts (kind, name, task, description)."""
    from robench import registry

    registry.setup(plugins)
    kinds = registry.KINDS if kind is None else (kind,)
    if kind is not None and kind not in registry.KINDS:
        raise UserError(f"robench ls {kind}: unknown kind (expected one of: {', '.join(registry.KINDS)})")
    return [{"kind": k, "name": e.name, "task": e.task, "description": e.doc, "source": e.source}
            for k in kinds for e in registry.REGISTRIES[k].entries()]


# -- progress ------------------------------------------------------------------------------
def _say(enabled: bool, message: str) -> None:
    if enabled:
        from rich.console import Console
        Console(stderr=True).print(message)


class _Progress:
    """A rich progress bar with ETA plus one line per finished run (to stderr)."""

    def __init__(self, enabled: bool, suite: str, total: int, skipped: int):
        self.enabled, self.suite, self.total, self.skipped = enabled, suite, total, skipped

    def __enter__(self):
        if self.enabled:
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                       TimeElapsedColumn, TimeRemainingColumn)
            self.console = Console(stderr=True)
            self.bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                                console=self.console)
            self.bar.__enter__()
            if self.skipped:
                self.console.print(f"{self.suite}: {self.skipped} of {self.total} runs already stored; skipping them")
            self.tid = self.bar.add_task(self.suite, total=self.total - self.skipped)
        return self

    def started(self, spec) -> None:
        if self.enabled:
            self.bar.update(self.tid, description=f"{self.suite}: {spec.task}/{spec.method_label} seed {spec.seed}")

    def finished(self, spec, record) -> None:
        if not self.enabled:
            return
        label = _escape(f"{spec.task}/{spec.method_label} seed={spec.seed}")
        if record["status"] == "done":
            self.console.print(f"[green]done[/]   {label} {record.get('primary_metric')}="
                               f"{record.get('primary_value'):.4g} ({record.get('duration_s', 0):.1f}s)",
                               highlight=False)
        else:
            last = (record.get("error") or "").strip().splitlines()[-1:] or ["?"]
            self.console.print(f"[red]failed[/] {label}: {_escape(last[0])}", highlight=False)
        self.bar.advance(self.tid)

    def __exit__(self, *exc):
        if self.enabled:
            self.bar.__exit__(*exc)


def _escape(text: str) -> str:
    from rich.markup import escape
    return escape(text)
