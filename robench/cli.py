"""The ``robench`` command: a thin typer layer over :mod:`robench.api`.

User errors print one line (``robench: error: ...``) and exit 2; a suite with failed runs
exits 1. Nothing here imports torch: that happens only when a run starts.
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import List, Optional

import typer

from robench.errors import UserError

app = typer.Typer(
    help="robench: standardized benchmarks for robustness, compression and restoration.\n\n"
         "Run a suite, then publish:  robench run suites/smoke.yaml && robench leaderboard",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]})

StoreOpt = typer.Option(None, "--store", help="results store (SQLite file) [default: .robench/results.sqlite]")
PluginOpt = typer.Option(None, "--plugin", help="Python file that registers methods/models (repeatable)")
DeviceOpt = typer.Option(None, "--device", help="auto | cpu | cuda | cuda:N | mps  [default: the suite's "
                         "device:, else auto = CUDA when available]")


@contextlib.contextmanager
def _user_errors():
    try:
        yield
    except UserError as exc:
        typer.echo(f"robench: error: {exc}", err=True)
        raise typer.Exit(2)
    except KeyboardInterrupt:
        typer.echo("robench: interrupted; completed runs are stored, re-run to finish the rest", err=True)
        raise typer.Exit(130)


def _split(values: Optional[List[str]]) -> list[str]:
    return [v.strip() for item in values or [] for v in item.split(",") if v.strip()]


def _parse_params(items: Optional[List[str]]) -> dict:
    import yaml

    params = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise UserError(f"--param {item!r}: expected key=value (e.g. --param sparsity=0.9)")
        try:
            params[key.strip()] = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            params[key.strip()] = raw
    return params


def _parse_seeds(text: str) -> list[int]:
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise UserError(f"--seeds {text!r}: expected comma-separated integers, e.g. 0,1,2") from None


@app.command()
def run(
    suite: Optional[Path] = typer.Argument(None, help="suite YAML file (or use --task/--method)"),
    task: Optional[str] = typer.Option(None, "--task", "-t", help="ad-hoc run: task name"),
    method: Optional[List[str]] = typer.Option(None, "--method", "-m", help="ad-hoc run: method name(s), comma-separated or repeated"),
    seeds: str = typer.Option("0", "--seeds", help="ad-hoc run: comma-separated seeds"),
    param: Optional[List[str]] = typer.Option(None, "--param", "-p", help="ad-hoc run: key=value for the task or method (prefix task./method. if ambiguous)"),
    workers: int = typer.Option(1, "--workers", "-w", help="parallel workers (processes; Dask: LocalCluster workers)"),
    executor: str = typer.Option("auto", "--executor", help="auto | serial | process | dask"),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Dask scheduler address (tcp://HOST:PORT) "
                                            "to run on an existing cluster instead of a LocalCluster"),
    device: Optional[str] = DeviceOpt,
    store: Optional[Path] = StoreOpt,
    plugin: Optional[List[Path]] = PluginOpt,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress output"),
):
    """Run a suite (or one task × methods × seeds); runs already stored are skipped."""
    from robench import api

    with _user_errors():
        summary = api.run(suite, task=task, methods=_split(method) or None, seeds=_parse_seeds(seeds),
                          params=_parse_params(param), store=store, workers=workers, executor=executor,
                          scheduler=scheduler, device=device, plugins=tuple(plugin or ()), progress=not quiet)
    typer.echo(f"{summary.suite}: {summary.total} runs — {summary.skipped} already stored, "
               f"{summary.done} done, {summary.failed} failed → {summary.store}", err=True)
    if summary.failed:
        typer.echo(f"robench: {summary.failed} run(s) failed; see `robench results --status failed`", err=True)
        raise typer.Exit(1)


@app.command()
def validate(suite: Path = typer.Argument(..., help="suite YAML file"), plugin: Optional[List[Path]] = PluginOpt):
    """Check a suite file and list the runs it expands to (nothing runs)."""
    from robench import api

    with _user_errors():
        specs = api.validate(suite, plugins=tuple(plugin or ()))
    for spec in specs:
        typer.echo(f"{spec.id}  {spec.task}[{spec.task_label}]  {spec.method_label}  seed={spec.seed}")
    typer.echo(f"{suite}: valid, {len(specs)} runs", err=True)


@app.command()
def check(method: str = typer.Argument(..., help="registered method name (yours via --plugin)"),
          task: Optional[str] = typer.Option(None, "--task", "-t", help="the method's task (needed only if "
                                             "several tasks have a method of that name)"),
          param: Optional[List[str]] = typer.Option(None, "--param", "-p", help="method parameter key=value"),
          plugin: Optional[List[Path]] = PluginOpt,
          device: str = typer.Option("cpu", "--device", help="device of the end-to-end run: auto | cpu | cuda | cuda:N | mps"),
          quick: bool = typer.Option(False, "--quick", help="skip the end-to-end run of the task")):
    """Check that a method honours its task's contract, on tiny data (nothing is stored)."""
    from robench import api

    def show(c) -> None:  # printed as each check finishes (the end-to-end run takes seconds)
        typer.echo(f"{'ok  ' if c.ok else 'FAIL'}  {c.name}" + ("" if c.ok or not c.detail else f": {c.detail}"))

    with _user_errors():
        task_name, checks = api.check(method, task=task, params=_parse_params(param),
                                      plugins=tuple(plugin or ()), run_task=not quick, on_check=show,
                                      device=device)
    failed = sum(not c.ok for c in checks)
    typer.echo(f"{task_name}/{method}: {len(checks) - failed}/{len(checks)} checks passed", err=True)
    if failed:
        raise typer.Exit(1)


@app.command("ls")
def ls_(kind: Optional[str] = typer.Argument(None, help="tasks | methods | models | datasets"),
        plugin: Optional[List[Path]] = PluginOpt):
    """List registered tasks, methods (grouped by task), models and datasets."""
    from robench import api

    with _user_errors():
        entries = api.ls(kind, plugins=tuple(plugin or ()))
    current = None
    width = max((len(e["name"]) for e in entries), default=0)
    for e in entries:
        heading = e["kind"] if e["kind"] != "methods" else f"methods ({e['task']})"
        if heading != current:
            typer.echo(("" if current is None else "\n") + f"{heading}:")
            current = heading
        typer.echo(f"  {e['name']:<{width}}  {e['description']}")


@app.command()
def results(
    task: Optional[str] = typer.Option(None, "--task", "-t", help="only this task"),
    suite: Optional[str] = typer.Option(None, "--suite", help="only runs of this suite"),
    status: Optional[str] = typer.Option(None, "--status", help="done | failed"),
    fmt: str = typer.Option("table", "--format", "-f", help="table | csv | json"),
    store: Optional[Path] = StoreOpt,
):
    """Print stored runs with metrics, params, seed and provenance."""
    from robench import api

    with _user_errors():
        if fmt not in ("table", "csv", "json"):
            raise UserError(f"--format {fmt}: expected table, csv or json")
        if status not in (None, "done", "failed"):
            raise UserError(f"--status {status}: expected done or failed")
        frame = api.results(store, task=task, suite=suite, status=status)
    if frame.empty:
        typer.echo("no runs match", err=True)
        if fmt == "json":
            typer.echo("[]")
        return
    if fmt == "json":
        cols = [c for c in frame.columns if not c.startswith("metrics.")]
        typer.echo(json.dumps(frame[cols].to_dict(orient="records"), indent=1, default=str))
    elif fmt == "csv":
        flat = frame.drop(columns=["metrics"]).copy()
        for col in ("task_params", "method_params", "provenance", "artifacts", "suites"):
            flat[col] = flat[col].map(lambda v: json.dumps(v, sort_keys=True))
        flat.to_csv(sys.stdout, index=False)
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(show_lines=False)
        for col in ("id", "task", "setting", "method", "seed", "status", "primary", "value", "time"):
            table.add_column(col, justify="right" if col in ("seed", "value", "time") else "left")
        for r in frame.itertuples():
            value = "" if r.status != "done" else f"{r.primary_value:.4g}"
            table.add_row(r.id[:10], r.task, r.task_label, r.method_label, str(r.seed), r.status,
                          r.primary_metric or "", value, f"{r.duration_s or 0:.1f}s")
        Console(width=None if sys.stdout.isatty() else 200).print(table)


@app.command()
def leaderboard(out: Path = typer.Option(Path("leaderboards"), "--out", "-o", help="output folder"),
                store: Optional[Path] = StoreOpt):
    """Write the static HTML leaderboard (index + one page per task) from the store."""
    from robench import api

    with _user_errors():
        index = api.leaderboard(out, store)
    typer.echo(f"leaderboard written: {index}")


@app.command()
def figures(name: Optional[str] = typer.Argument(None, help="figure set (a paper); omit to list them"),
            out: Path = typer.Option(Path("reports"), "--out", "-o", help="output folder"),
            store: Optional[Path] = StoreOpt):
    """Regenerate a paper's figures and Markdown report from the store (nothing re-runs)."""
    from robench import api
    from robench.report.figures import FIGURES

    if name is None:
        for key, (_, suite, description) in sorted(FIGURES.items()):
            typer.echo(f"  {key:<18} {description} (data: {suite})")
        return
    with _user_errors():
        paths = api.figures(name, out, store)
    for path in paths:
        typer.echo(str(path))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
