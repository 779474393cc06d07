"""The ``robench`` command: a thin typer layer over :mod:`robench.api`.

User errors print one line (``robench: error: ...``) and exit 2; a suite with failed runs
exits 1. Nothing here imports torch: that happens only when a run starts.
"""

from __future__ import annotations

import contextlib
import json
import re
import sys
from pathlib import Path
from typing import List, Optional

import typer
import typer.core

from robench.errors import UserError, one_line

class _OneLineErrors(typer.core.TyperGroup):
    """Usage errors (an unknown option, a missing or malformed value) as one line, like
    robench's own errors, instead of click's usage block: ``robench: error: ...``, exit 2."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:  # typer >= 0.28 carries its own copy of click
            from typer import _click as click
        except ImportError:  # pragma: no cover - older typer on click itself
            import click

        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as exc:
            click.echo(exc.ctx.get_help())
            code = 0
        except click.exceptions.ClickException as exc:
            ctx = getattr(exc, "ctx", None)
            hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
            click.echo(f"robench: error: {one_line(exc.format_message())}{hint}", err=True)
            code = exc.exit_code
        except typer.Abort:
            click.echo("robench: aborted", err=True)
            code = 1
        code = code if isinstance(code, int) else 0
        if standalone_mode:
            sys.exit(code)
        return code


app = typer.Typer(
    cls=_OneLineErrors,
    help="robench: standardized benchmarks for robustness, compression and restoration.\n\n"
         "Run a suite, then publish:  robench run suites/smoke.yaml && robench leaderboard",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]})

StoreOpt = typer.Option(None, "--store", help="results store (SQLite file) [default: .robench/results.sqlite]")
PluginOpt = typer.Option(None, "--plugin", help="Python file that registers methods/models (repeatable)")
MaxRunsOpt = typer.Option(10_000, "--max-runs", min=1, help="refuse a suite that expands to more runs than this")
DeviceOpt = typer.Option(None, "--device", help="auto | cpu | cuda | cuda:N | mps  [default: the suite's "
                         "device:, else auto = CUDA when available]")


@contextlib.contextmanager
def _user_errors():
    try:
        yield
    except UserError as exc:
        typer.echo(f"robench: error: {one_line(exc)}", err=True)
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
    parts = [s.strip() for s in text.split(",")]
    if not all(p.isascii() and p.isdigit() for p in parts) or not all(int(p) < 2**63 for p in parts):
        raise UserError(f"--seeds {text!r}: expected comma-separated integers from 0 to 2^63-1, e.g. 0,1,2")
    return [int(p) for p in parts]


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
    device: Optional[str] = typer.Option(None, "--device", help="auto | cpu | cuda | cuda:N | cuda:all | mps  "
                                         "[default: the suite's device:, else auto = CUDA when available]; "
                                         "--workers N share one GPU, cuda:all spreads them over every GPU"),
    devices: Optional[str] = typer.Option(None, "--devices", help="several GPUs, comma-separated (cuda:0,cuda:1): "
                                          "the workers are pinned to them round-robin (needs --workers >= their "
                                          "number)"),
    threads: Optional[int] = typer.Option(None, "--threads", help="intra-op threads per run [default: cores / workers]"),
    store: Optional[Path] = StoreOpt,
    plugin: Optional[List[Path]] = PluginOpt,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress output"),
    max_runs: int = MaxRunsOpt,
):
    """Run a suite (or one task × methods × seeds); runs already stored are skipped."""
    from robench import api

    with _user_errors():
        summary = api.run(suite, task=task, methods=_split(method) or None, seeds=_parse_seeds(seeds),
                          params=_parse_params(param), store=store, workers=workers, executor=executor,
                          scheduler=scheduler, device=device, devices=devices, threads=threads,
                          plugins=tuple(plugin or ()), progress=not quiet, max_runs=max_runs)
    elsewhere = f", {summary.elsewhere} left to another robench run on this store" if summary.elsewhere else ""
    gpus = [d for d in summary.devices if d.startswith("cuda")]
    on = f" on {','.join(gpus)}" if gpus and (summary.done or summary.failed) else ""
    typer.echo(f"{summary.suite}: {summary.total} runs — {summary.skipped} already stored, "
               f"{summary.done} done, {summary.failed} failed{elsewhere}{on} → {summary.store}", err=True)
    if summary.failed:
        typer.echo(f"robench: {summary.failed} run(s) failed; see `robench results --status failed`", err=True)
        raise typer.Exit(1)


@app.command()
def validate(suite: Path = typer.Argument(..., help="suite YAML file"), plugin: Optional[List[Path]] = PluginOpt,
             max_runs: int = MaxRunsOpt,
             workers: int = typer.Option(1, "--workers", "-w", help="workers the estimate assumes", min=1),
             store: Optional[Path] = StoreOpt):
    """Check a suite file, list the runs it expands to and estimate their wall time (nothing runs).

    The estimate comes from the store's past runs of the same configurations (else of the
    same task and method), else from each task's typical run time; runs already stored cost nothing."""
    from robench import api
    from robench.costs import estimate

    with _user_errors():
        specs = api.validate(suite, plugins=tuple(plugin or ()), max_runs=max_runs)
        done = api.stored_ids(store)
    for spec in specs:
        typer.echo(f"{spec.id}  {spec.task}[{spec.task_label}]  {spec.method_label}  seed={spec.seed}"
                   + ("  (stored)" if spec.id in done else ""))
    stored = sum(s.id in done for s in specs)
    typer.echo(f"{suite}: valid, {len(specs)} runs" + (f" ({stored} already stored)" if stored else ""), err=True)
    if len(specs) > stored:
        typer.echo(f"{suite}: {estimate(specs, store, workers, done).describe()}", err=True)


@app.command()
def check(method: Optional[str] = typer.Argument(None, help="registered method name (yours via --plugin)"),
          model: Optional[str] = typer.Option(None, "--model", help="check a registered model instead of a method"),
          task: Optional[str] = typer.Option(None, "--task", "-t", help="the method's task (needed only if several "
                                             "tasks have a method of that name); with --model: only this task"),
          param: Optional[List[str]] = typer.Option(None, "--param", "-p", help="method parameter key=value"),
          plugin: Optional[List[Path]] = PluginOpt,
          device: str = typer.Option("cpu", "--device", help="device of the end-to-end run: auto | cpu | cuda | cuda:N | mps"),
          quick: bool = typer.Option(False, "--quick", help="skip the end-to-end run(s)")):
    """Check that a method honours its task's contract, or a model (--model) the classification
    tasks' contract, on tiny data (nothing is stored)."""
    from robench import api

    def show(c) -> None:  # printed as each check finishes (the end-to-end run takes seconds)
        typer.echo(f"{'ok  ' if c.ok else 'FAIL'}  {c.name}" + ("" if c.ok or not c.detail else f": {c.detail}"))

    with _user_errors():
        if (method is None) == (model is None):
            raise UserError("robench check: give a METHOD or --model NAME (one of them)")
        if model is not None:
            if param:
                raise UserError("--param goes with a METHOD, not with --model")
            tasks, checks = api.check_model(model, task=task, plugins=tuple(plugin or ()), run_task=not quick,
                                            on_check=show, device=device)
            subject = f"model {model} ({', '.join(tasks)})"
        else:
            task_name, checks = api.check(method, task=task, params=_parse_params(param),
                                          plugins=tuple(plugin or ()), run_task=not quick, on_check=show,
                                          device=device)
            subject = f"{task_name}/{method}"
    failed = sum(not c.ok for c in checks)
    typer.echo(f"{subject}: {len(checks) - failed}/{len(checks)} checks passed", err=True)
    if failed:
        raise typer.Exit(1)


@app.command("ls")
def ls_(kind: Optional[str] = typer.Argument(None, help="tasks | methods | models | datasets"),
        plugin: Optional[List[Path]] = PluginOpt,
        verbose: bool = typer.Option(False, "--verbose", "-v", help="with `tasks`: every task and method "
                                     "parameter with its type, default, range and meaning"),
        fmt: str = typer.Option("text", "--format", "-f", help="with -v: text | markdown")):
    """List registered tasks, methods (grouped by task), models and datasets.

    `robench ls tasks -v` is the parameter reference (the README's table is its markdown)."""
    from robench import api

    with _user_errors():
        if verbose:
            from robench import reference

            if kind not in (None, "tasks"):
                raise UserError(f"robench ls {kind} -v: the parameter reference is `robench ls tasks -v`")
            if fmt not in ("text", "markdown"):
                raise UserError(f"--format {fmt}: expected text or markdown")
            tasks = reference.reference(tuple(plugin or ()))
            typer.echo(reference.markdown(tasks) if fmt == "markdown" else reference.text(tasks), nl=False)
            return
        entries = api.ls(kind, plugins=tuple(plugin or ()))
    from robench.registry import methods_users

    current = None
    width = max((len(e["name"]) for e in entries), default=0)
    for e in entries:
        # a method runs in its task and in every task that takes that task's methods
        users = methods_users(e["task"]) if e["kind"] == "methods" and e["task"] else [e["task"]]
        heading = e["kind"] if not e["task"] else f"{e['kind']} ({', '.join(users)})"
        if heading != current:
            typer.echo(("" if current is None else "\n") + f"{heading}:")
            current = heading
        typer.echo(f"  {e['name']:<{width}}  {e['description']}")


@app.command()
def results(
    task: Optional[str] = typer.Option(None, "--task", "-t", help="only this task"),
    suite: Optional[str] = typer.Option(None, "--suite", help="only runs of this suite"),
    status: Optional[str] = typer.Option(None, "--status", help="done | failed"),
    fmt: str = typer.Option("table", "--format", "-f", help="table | csv | json (with --aggregate also: "
                            "markdown | latex)"),
    aggregate: bool = typer.Option(False, "--aggregate", "-a", help="mean ± std per configuration over its "
                                   "done seeds, instead of one row per run"),
    by: Optional[str] = typer.Option(None, "--by", help="model: per task and protocol (the setting without "
                                     "its model, and the configuration), every model that ran it, ranked"),
    store: Optional[Path] = StoreOpt,
):
    """Print stored runs with metrics, params, seed and provenance.

    With --aggregate: mean ± std per configuration, for a paper (--format markdown | latex | csv).
    With --by model: the model leaderboard of each protocol (local runs and verified claims)."""
    from robench import api

    with _user_errors():
        if by not in (None, "model"):
            raise UserError(f"--by {by}: expected model")
        formats = ("table", "csv", "json", "markdown", "latex") if aggregate else ("table", "csv", "json")
        if fmt not in formats:
            raise UserError(f"--format {fmt}: expected {', '.join(formats[:-1])} or {formats[-1]}"
                            + ("" if aggregate else " (markdown and latex need --aggregate)"))
        if status not in (None, "done", "failed"):
            raise UserError(f"--status {status}: expected done or failed")
        frame = api.results(store, task=task, suite=suite, status=status)
        if by == "model":  # the ranked rows: local runs and verified claims
            from robench.report.formats import model_ranking, render_models

            tidy = model_ranking(api.trusted(frame)) if not frame.empty else model_ranking(frame)
            typer.echo(render_models(tidy, fmt), nl=False)
            return
        if aggregate and not frame.empty:  # the ranked rows: local runs and verified claims
            typer.echo(api.aggregate(api.trusted(frame), fmt), nl=False)
            return
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
        for col in ("task_params", "method_params", "provenance", "artifacts", "suites", "components",
                    "verification"):
            flat[col] = flat[col].map(lambda v: json.dumps(v, sort_keys=True))
        flat.to_csv(sys.stdout, index=False)
    else:
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        table = Table(show_lines=False)
        for col in ("id", "origin", "task", "setting", "method", "seed", "status", "primary", "value", "time"):
            table.add_column(col, justify="right" if col in ("seed", "value", "time") else "left")
        for r in frame.itertuples():
            value = "" if r.status != "done" else f"{r.primary_value:.4g}"
            origin = "local" if r.origin == "local" else \
                f"{r.verification.get('source', 'bundle')} ({r.verification.get('status', 'imported')})"
            cells = (r.id[:10], origin, r.task, r.task_label, r.method_label, str(r.seed), r.status,
                     r.primary_metric or "", value, f"{r.duration_s or 0:.1f}s")
            table.add_row(*(Text(str(c)) for c in cells))  # stored text is never rich markup
        Console(width=None if sys.stdout.isatty() else 200).print(table)


@app.command()
def leaderboard(out: Path = typer.Option(Path("leaderboards"), "--out", "-o", help="output folder"),
                store: Optional[List[Path]] = typer.Option(None, "--store", help="results store (SQLite file); "
                                                           "repeat to merge several stores into one site "
                                                           "[default: .robench/results.sqlite]"),
                no_artifacts: bool = typer.Option(False, "--no-artifacts", help="list the runs' artifacts "
                                                  "without copying them into the site"),
                no_plots: bool = typer.Option(False, "--no-plots", help="tables only (faster)"),
                include_unverified: bool = typer.Option(False, "--include-unverified", help="rank imported "
                                                        "claims that `robench verify` did not verify too "
                                                        "(badged as claims)")):
    """Write the static HTML leaderboard (index + one page per task) from the store(s).

    A publishable folder: artifacts copied in, no path of this machine on any page. Rankings
    use local runs and verified imported claims; other claims are listed, labelled."""
    from robench import api

    with _user_errors():
        index = api.leaderboard(out, list(store) if store else None, artifacts=not no_artifacts,
                                plots=not no_plots, include_unverified=include_unverified)
    typer.echo(f"leaderboard written: {index}")


@app.command()
def figures(name: Optional[str] = typer.Argument(None, help="figure set (a paper); omit to list them"),
            out: Path = typer.Option(Path("reports"), "--out", "-o", help="output folder"),
            store: Optional[Path] = StoreOpt):
    """Regenerate a paper's figures (PNG, SVG, PDF) and report from the store (nothing re-runs).

    Exits 1 with the `robench run` command when the store has no run of the paper's suite."""
    from robench import api
    from robench.report.figures import FIGURES

    if name is None:
        for key, (_, suite, description) in sorted(FIGURES.items()):
            typer.echo(f"  {key:<18} {description} (data: {suite})")
        return
    from robench.report.figures import MissingRuns

    with _user_errors():
        try:
            paths = api.figures(name, out, store)
        except MissingRuns as exc:  # nothing was wrong with the command: say what to run, exit 1
            typer.echo(f"robench: {exc}", err=True)
            raise typer.Exit(1)
    for path in paths:
        typer.echo(str(path))


@app.command()
def compare(store_a: Path = typer.Argument(..., help="results store A (SQLite file)"),
            store_b: Path = typer.Argument(..., help="results store B (SQLite file)"),
            out: Path = typer.Option(Path("leaderboards") / "compare.html", "--out", "-o",
                                     help="the HTML page to write")):
    """Compare two stores: B − A per configuration of the primary and headline metrics.

    Printed, and rendered as a static page (--out)."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from robench import api
    from robench.report.formats import comparison_rows

    with _user_errors():
        table, page = api.compare(store_a, store_b, out)
    tables: dict[tuple, Table] = {}  # one per task and setting
    for r in comparison_rows(table):
        if (r["task"], r["setting"]) not in tables:
            shown = tables[(r["task"], r["setting"])] = Table(title=Text(f"{r['task']} · {r['setting']}"),
                                                              title_justify="left")
            for col in ("configuration", "metric", "A", "B", "B − A", ""):
                shown.add_column(col, justify="right" if col in ("A", "B", "B − A") else "left")
        note = r["where"] if r["where"] != "both" else ("within noise" if r["within_noise"] else "")
        tables[(r["task"], r["setting"])].add_row(
            *(Text(str(c)) for c in (r["configuration"], r["label"], r["a"], r["b"], r["delta"], note)))
    console = Console(width=None if sys.stdout.isatty() else 200)
    for shown in tables.values():
        console.print(shown)
    typer.echo(f"comparison written: {page}", err=True)


@app.command("export")
def export_(run_ids: Optional[List[str]] = typer.Argument(None, help="run ids (unique prefixes; default: every "
                                                          "run, or --suite's)"),
            suite: Optional[str] = typer.Option(None, "--suite", help="export the runs of this suite"),
            out: Path = typer.Option(..., "--out", "-o", help="the bundle to write (.zip)"),
            store: Optional[Path] = StoreOpt):
    """Write runs with their artifacts and provenance to a bundle (zip) for `robench import`.

    The bundle has a schema version and the checksum of every file."""
    from robench import api

    with _user_errors():
        summary = api.export(out, store, suite=suite, run_ids=list(run_ids or []))
    typer.echo(f"bundle written: {summary['path']} ({summary['runs']} runs, {summary['files']} artifacts, "
               f"{summary['bytes'] / 1e6:.1f} MB)")


@app.command("benchmark")
def benchmark_(model: str = typer.Option(..., "--model", help="registered model name (yours via --plugin)"),
               task: str = typer.Option(..., "--task", "-t", help="compression | sparsity_robustness | robust_training | "
                                                                "corruption_robustness"),
               seeds: str = typer.Option("0", "--seeds", help="comma-separated seeds"),
               param: Optional[List[str]] = typer.Option(None, "--param", "-p", help="key=value for the task or method"),
               method: Optional[List[str]] = typer.Option(None, "--method", "-m", help="method(s) [default: the "
                                                          "task's reference]"),
               no_compare: bool = typer.Option(False, "--no-compare", help="run your model only (no ranking)"),
               device: Optional[str] = DeviceOpt,
               store: Optional[Path] = StoreOpt,
               plugin: Optional[List[Path]] = PluginOpt,
               quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress output")):
    """How does my model rank? Check it, run the task's reference protocol on it and on the
    built-in models at the same settings, and print the ranking.

    A model that fails the model contract is one line naming the check; nothing is stored.
    Runs already stored are reused."""
    from robench import api

    with _user_errors():
        out = api.benchmark(model, task=task, methods=_split(method) or None, seeds=_parse_seeds(seeds),
                            store=store, device=device, progress=not quiet, compare=not no_compare,
                            plugins=tuple(plugin or ()), **_parse_params(param))
    if no_compare:
        typer.echo(out[["id", "method_label", "seed", "status", "primary_metric", "primary_value"]].to_string(index=False))
        return
    primary = out.attrs["primary_metric"]
    for row in out.to_dict(orient="records"):
        spread = "" if row["std"] != row["std"] else f" ± {row['std']:.4f}"
        mark = "  ← yours" if row["yours"] else ""
        rank = f"{row['rank']}{'=' if row['tie'] else ''}"
        typer.echo(f"{rank:>3}  {row['model']:<24} {primary} {row[primary]:.4f}{spread}  "
                   f"({row['seeds']} seed{'s' if row['seeds'] != 1 else ''}){mark}")
    direction = "higher" if out.attrs["greater_is_better"] else "lower"
    typer.echo(f"{model} ranks {out.attrs['place']} of {len(out)} on {task} by {primary} ({direction} is better; "
               "'=' marks a tie: within the seeds' spread, or one seed)", err=True)


@app.command("import")
def import_(bundle: Path = typer.Argument(..., help="a bundle written by `robench export`"),
            plugin: Optional[List[Path]] = PluginOpt,
            max_files: int = typer.Option(20_000, "--max-files", help="refuse a bundle of more files", min=1),
            max_bytes: str = typer.Option("8G", "--max-bytes", help="refuse a bundle that unpacks to more "
                                          "(bytes; K, M, G suffixes)"),
            max_file_bytes: str = typer.Option("2G", "--max-file-bytes", help="refuse a bundle with a larger "
                                               "file (bytes; K, M, G suffixes)"),
            store: Optional[Path] = StoreOpt):
    """Add the runs of a bundle to the store as that bundle's claims; a bad bundle is refused
    and changes nothing.

    Checked first: schema, sizes, checksums, each run's parameters by its task and method,
    and each run id recomputed from its spec. Labels and the primary metric are derived
    here. Claims never stand in for local runs: `robench run` still computes them."""
    from robench import api
    from robench.bundle import Limits

    with _user_errors():
        limits = Limits(max_files=max_files, max_bytes=_size(max_bytes, "--max-bytes"),
                        max_file_bytes=_size(max_file_bytes, "--max-file-bytes"))
        summary = api.import_bundle(bundle, store, limits=limits, plugins=tuple(plugin or ()))
    typer.echo(f"{bundle}: {len(summary['imported'])} runs imported as claims, {len(summary['skipped'])} already "
               f"stored → {summary['store']} (re-score them: robench verify)")


def _size(text: str, option: str) -> int:
    units = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?\s*", str(text), re.IGNORECASE)
    if not match:
        raise UserError(f"{option} {text}: expected a size in bytes, e.g. 500M or 8G")
    return int(float(match.group(1)) * units[match.group(2).upper()])


@app.command()
def verify(run_ids: Optional[List[str]] = typer.Argument(None, help="run ids (unique prefixes; default: every "
                                                         "imported claim)"),
           data_root: Optional[List[str]] = typer.Option(None, "--data-root", help="NAME=PATH: your copy of a "
                                                         "dataset the claims read from files (NAME: the dataset, "
                                                         "e.g. cifar10, or the parameter, e.g. train_root; "
                                                         "repeatable)"),
           plugin: Optional[List[Path]] = PluginOpt,
           device: str = typer.Option("cpu", "--device", help="cpu | cuda | cuda:N | mps"),
           store: Optional[Path] = StoreOpt):
    """Re-score imported claims from their artifacts, on your data, and record what that proves.

    Each claim's task is rebuilt from its re-validated parameters (folders: yours, from
    --data-root, never the bundle's) and re-evaluates the exported model or predictions.
    Re-scored metrics must agree within the task's tolerance; the rest (latency, timings)
    stay claims. A claim whose re-score differs is unverified and the command exits 1."""
    from robench import api
    from robench.verify import parse_data_roots

    def show(v) -> None:
        where = f"{v.run_id}  {v.task}"
        if v.status == "verified":
            claimed = f"; claimed only: {', '.join(v.claimed)}" if v.claimed else ""
            typer.echo(f"verified    {where}: {len(v.rescored)} metrics re-scored equal{claimed}")
        elif v.status == "unverified":
            diffs = "; ".join(f"{k}: claimed {d['claimed']}, re-scored {d['rescored']}"
                              for k, d in sorted(v.differences.items())) or v.note
            typer.echo(f"UNVERIFIED  {where}: {diffs}")
        else:
            typer.echo(f"skipped     {where}: {v.note}")

    with _user_errors():
        roots = parse_data_roots(data_root or ())
        verdicts = api.verify(store, list(run_ids or []), device=device, data_roots=roots,
                              plugins=tuple(plugin or ()), on_verdict=show)
    bad = sum(v.status == "unverified" for v in verdicts)
    typer.echo(f"{len(verdicts)} claims: {sum(v.status == 'verified' for v in verdicts)} verified, {bad} unverified, "
               f"{sum(v.status == 'skipped' for v in verdicts)} skipped", err=True)
    if bad:
        raise typer.Exit(1)


def main() -> None:
    import faulthandler
    import signal

    if hasattr(signal, "SIGUSR1"):  # `kill -USR1 <pid>` prints where every thread is (a hang's report)
        faulthandler.register(signal.SIGUSR1, all_threads=True)
    app()


if __name__ == "__main__":
    main()
