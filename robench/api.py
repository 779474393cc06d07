"""The Python API. Everything the CLI does is one call of a function here."""

from __future__ import annotations

import contextlib
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
    elsewhere: int = 0  # runs another `robench run` on the same store was computing
    estimate_s: float | None = None  # the expected wall time of the runs to do, said before they started
    devices: list[str] = field(default_factory=list)  # where the runs went (empty: resolved by a Dask cluster)

    @property
    def ok(self) -> bool:
        return self.failed == 0


def load(suite: str | Path, plugins: tuple = (), max_runs: int | None = None):
    """Load and expand a suite file: ``(Suite, [RunSpec, ...])``. Raises UserError on bad
    input, and for a suite of more than ``max_runs`` runs (default ``spec.MAX_RUNS``)."""
    from robench import registry
    from robench.spec import MAX_RUNS, expand, load_suite

    registry.setup(plugins)
    parsed = load_suite(suite)
    return parsed, expand(parsed, source=str(suite), max_runs=max_runs or MAX_RUNS)


def validate(suite: str | Path, plugins: tuple = (), max_runs: int | None = None) -> list:
    """Validate a suite file and return its RunSpecs (nothing runs, nothing is stored)."""
    return load(suite, plugins, max_runs)[1]


def stored_ids(store: str | Path | None = None) -> set[str]:
    """The ids of the runs done in the store (none when it does not exist yet)."""
    from robench.store import DEFAULT_STORE, Store

    path = Path(store) if store is not None else DEFAULT_STORE
    if not path.is_file():
        return set()
    with Store(path, create=False) as db:
        return db.done_ids()


def run(suite: str | Path | None = None, *, task: str | None = None, methods: list[str] | None = None,
        seeds: list[int] | None = None, params: dict[str, Any] | None = None, store: str | Path | None = None,
        workers: int = 1, executor: str = "auto", scheduler: str | None = None, device: str | None = None,
        devices: list[str] | str | None = None, threads: int | None = None, plugins: tuple = (),
        progress: bool = True, max_runs: int | None = None) -> RunSummary:
    """Run a suite file, or an ad-hoc ``task`` × ``methods`` × ``seeds``; skip runs already done.

    Results go to ``store`` (default ``.robench/results.sqlite``). ``executor``: ``auto``
    (serial for one worker, else a process pool), ``serial``, ``process`` or ``dask`` (a
    ``LocalCluster`` of ``workers`` processes, or the cluster at ``scheduler``,
    ``tcp://host:port``). ``device``: ``auto`` (CUDA when available, else CPU), ``cpu``,
    ``cuda``, ``cuda:N``, ``cuda:all`` (every GPU here) or ``mps``; default: the suite's
    ``device:``, else ``auto``. ``devices``: several GPUs instead (``["cuda:0", "cuda:1"]``
    or ``"cuda:0,cuda:1"``); the process pool's workers are pinned to them round-robin, so
    it needs ``workers`` ≥ their number (the serial executor and Dask take one device). Several
    workers on one GPU share it; a run waits for GPU memory rather than fail, and a CUDA
    out-of-memory error is its failed record with a one-line reason. The device is recorded
    in each run's provenance, not in its id. ``threads``: intra-op threads per run (default:
    cores / workers). A suite of more than ``max_runs`` runs (default 10,000) is refused.
    Returns counts; failed runs are stored with their traceback and do not stop the others.
    """
    from robench import registry
    from robench.executors import (DASK_ONE_GPU_PER_WORKER, FAKE_CUDA_ENV, check_device_plan, check_executor,
                                   fake_cuda_count, is_cuda, make_executor, resolve_devices, run_specs)
    from robench.spec import MAX_RUNS, expand, load_suite
    from robench.store import Store

    check_executor(executor, workers, scheduler, threads)  # before the store is touched
    registry.setup(plugins)
    if suite is not None:
        if task or methods:
            raise UserError("give a suite file or --task/--method, not both")
        from robench.spec import Suite
        parsed = suite if isinstance(suite, Suite) else load_suite(suite)
        source = parsed.suite if isinstance(suite, Suite) else str(suite)
    else:
        if not task or not methods:
            raise UserError("nothing to run: give a suite file, or --task and --method")
        from robench.spec import adhoc_suite
        parsed = adhoc_suite(task, methods, seeds or [0], params or {})
        source = "command line"
    specs = expand(parsed, source=source, max_runs=max_runs or MAX_RUNS)
    plugin_paths = tuple(str(Path(p).resolve()) for p in plugins)
    requested = device or parsed.device or "auto"
    plan: list[str] = []  # a cluster's workers resolve the device there (the driver may have no GPU)
    if scheduler:
        if devices is not None or requested.strip().lower() == "cuda:all":
            option = "--devices" if devices is not None else f"--device {requested}"
            raise UserError(f"{option}: {DASK_ONE_GPU_PER_WORKER}")
    else:  # a device this machine lacks, or a plan the executor cannot follow: one line, before the store
        plan = resolve_devices(device if devices is not None else requested, devices)
        check_device_plan(plan, executor, workers, scheduler,
                          option=f"--device {requested} ({len(plan)} GPUs here)" if devices is None else None)
    with Store(store) as db:
        for name in dict.fromkeys(s.task for s in specs):
            task_cls = registry.tasks.get(name)
            db.save_task_info(name, task_cls.version, task_cls.report_info())
        db.remove_stale_partials()  # what killed runs left behind
        done = db.done_ids(s.id for s in specs)
        db.add_to_suite(parsed.suite, done)
        todo = [s for s in specs if s.id not in done]
        summary = RunSummary(parsed.suite, len(specs), len(specs) - len(todo), store=str(db.path))
        if not todo:
            _say(progress, f"[bold]{parsed.suite}[/]: all {len(specs)} runs already in {_escape(str(db.path))}; "
                           "nothing to do")
            return summary
        from robench.costs import WARN_S, estimate
        cost = estimate(todo, db.path, workers)
        summary.estimate_s = cost.seconds
        _say(progress, f"{parsed.suite}: {len(todo)} runs to do; {cost.describe()}")
        if cost.seconds > WARN_S:
            _say(progress, f"[yellow]warning[/]: {parsed.suite} is expected to take over an hour at --workers "
                           f"{workers}; Ctrl-C stops it and a re-run resumes")
        if any(is_cuda(d) for d in plan) and fake_cuda_count():
            _say(progress, f"[yellow]warning[/]: {FAKE_CUDA_ENV}={fake_cuda_count()} is set: the runs on "
                           f"{', '.join(plan)} execute on the CPU (a testing aid; their provenance says fake_cuda)")
        summary.devices = list(plan)
        with _sigterm_as_interrupt():  # from here on, SIGTERM stops the workers too
            run_device = plan[0] if len(plan) == 1 else "cuda"  # several GPUs: each worker uses its own
            pool = make_executor(executor, workers, plugin_paths, scheduler, threads, plan or None)
            try:
                if scheduler:  # a cluster's workers may have a GPU the driver lacks
                    run_device = pool.check_device(requested)
                    summary.devices = [run_device]
                with _Progress(progress, parsed.suite, len(specs), len(specs) - len(todo), specs) as bar:
                    def on_done(spec, record):
                        if record["status"] == "done":
                            summary.done += 1
                        else:
                            summary.failed += 1
                            summary.failed_ids.append(spec.id)
                        bar.finished(spec, record)

                    def on_skip(spec):
                        if db.done_ids([spec.id]):  # finished meanwhile by another driver
                            summary.skipped += 1
                        else:
                            summary.elsewhere += 1
                        db.add_to_suite(parsed.suite, db.done_ids([spec.id]))
                        bar.elsewhere(spec)
                    run_specs(todo, db, pool, suite=parsed.suite, plugins=plugin_paths, device=run_device,
                              on_start=bar.started, on_done=on_done, on_skip=on_skip, on_note=bar.note)
            finally:
                pool.shutdown()
    return summary


def results(store: str | Path | None = None, *, task: str | None = None, suite: str | None = None,
            status: str | None = None, imported: bool = True):
    """All stored runs as a pandas DataFrame, one row per run and origin: the runs computed
    into this store (``origin`` "local") and, with ``imported``, every claim imported from
    a bundle (``origin`` "bundle:<sha256>"; one run id may then appear more than once).

    Columns: id, origin, verification (dict: empty for a local run; an imported claim's
    source and ``robench verify`` verdict, see ``Store.verification``), config_id, suites,
    task, method, task_label, method_label, task_params, method_params, seed, status,
    primary_metric, greater_is_better, primary_value, metrics (dict), error, started_at,
    finished_at, duration_s, provenance (dict), artifacts (name → absolute path),
    components, task_version, method_version, task_info (dict: the task's ``report_info()``
    as last recorded, empty if never), artifact_root (the store's artifact folder) and one
    ``metrics.<name>`` column per metric. :func:`trusted` keeps what may be ranked.
    """
    import pandas as pd

    from robench.store import Store

    with Store(store, create=False) as db:
        rows = db.rows(task=task, suite=suite, status=status, imported=imported)
        info = db.task_info()
        artifact_root = str(db.artifact_root.resolve())
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    frame["task_info"] = [info.get(name, {}) for name in frame["task"]]
    frame["artifact_root"] = artifact_root
    metric_names = sorted({k for m in frame["metrics"] for k in m})
    columns = pd.DataFrame({f"metrics.{name}": [m.get(name, float("nan")) for m in frame["metrics"]]
                            for name in metric_names}, index=frame.index)
    return pd.concat([frame, columns], axis=1)


def trusted(frame):
    """The rows of a results frame that may be ranked, compared and plotted: local runs and
    imported claims that ``robench verify`` verified; one row per run id (the local one
    first, then the first verified claim)."""
    if frame.empty or "origin" not in frame:
        return frame
    ok = (frame["origin"] == "local") | frame["verification"].map(lambda v: (v or {}).get("status") == "verified")
    kept = frame[ok]
    kept = kept.assign(_imported=(kept["origin"] != "local").astype(int))
    kept = kept.sort_values("_imported", kind="stable").drop_duplicates("id", keep="first")
    return kept.sort_index().drop(columns=["_imported"]).reset_index(drop=True)


def leaderboard(out: str | Path = "leaderboards", store: str | Path | list | tuple | None = None, *,
                artifacts: bool = True, plots: bool = True, include_unverified: bool = False) -> Path:
    """Write the static leaderboard site from the store (or several stores, merged: a run
    of one origin stored in more than one appears once); returns the index page's path.
    Rankings use local runs and verified imported claims; the other claims are listed,
    labelled, and ranked only with ``include_unverified``. The site is publishable:
    artifacts are copied under it (``artifacts=False``: listed, not copied) and no page
    holds a path of this machine."""
    from robench.report.leaderboard import write_leaderboard

    output_folder(out, "--out")
    stores = list(store) if isinstance(store, (list, tuple)) else [store]
    frame = merged_results(stores)
    if frame.empty:
        raise UserError(f"results store {', '.join(str(s or '.robench/results.sqlite') for s in stores)}: "
                        "no runs yet (run a suite first)")
    private = [Path(s or ".robench/results.sqlite").resolve().parent for s in stores]
    return write_leaderboard(frame, Path(out), artifacts=artifacts, plots=plots, private=private,
                             include_unverified=include_unverified)


def merged_results(stores: list):
    """``results()`` of each store, concatenated; a run of one origin (run id, origin) in
    several stores is kept once: a done copy before a failed one, an imported claim with a
    verdict before one without, else the first store's. A verdict stays with the claim it
    was made for."""
    import pandas as pd

    frames = []
    for i, store in enumerate(stores):
        frame = results(store)
        if not frame.empty:
            frames.append(frame.assign(_store=i))
    if not frames:
        return pd.DataFrame()
    frame = pd.concat(frames, ignore_index=True)
    rank = {"verified": 0, "unverified": 1, "skipped": 2, "imported": 3}
    frame = frame.assign(_done=(frame["status"] != "done").astype(int),
                         _verdict=frame["verification"].map(lambda v: rank.get((v or {}).get("status"), 0)))
    frame = frame.sort_values(["_done", "_verdict", "_store"], kind="stable")
    frame = frame.drop_duplicates(["id", "origin"], keep="first")
    return frame.sort_index().drop(columns=["_done", "_verdict", "_store"]).reset_index(drop=True)


def figures(name: str, out: str | Path = "reports", store: str | Path | None = None) -> list[Path]:
    """Regenerate a paper's figures (PNG, SVG and PDF) and report from the store (nothing is
    re-run); returns every file written. Raises ``MissingRuns`` (with the ``robench run``
    command) when the store has no run of the paper's suite."""
    from robench.report.figures import FIGURES, MissingRuns, make_figures, suite_runs, written_files

    if name not in FIGURES:
        return make_figures(name, None, out)  # raises the did-you-mean error
    output_folder(out, "--out")
    frame = trusted(results(store))
    if not suite_runs(frame, name):
        raise MissingRuns(name)
    return written_files(make_figures(name, frame, out))


def check(method: str, *, task: str | None = None, params: dict | None = None, plugins: tuple = (),
          run_task: bool = True, on_check=None, device: str | None = "cpu"):
    """Check a method against its task's contract on tiny data: ``(task, [Check, ...])``
    (see :mod:`robench.check`); ``on_check(check)`` is called as each one finishes; the
    end-to-end run uses ``device``. Nothing is stored."""
    from robench.check import check_method
    return check_method(method, task, params, plugins, run_task, on_check, device)


BENCHMARK_METHODS = {"compression": ["dense"], "sparsity_robustness": ["magnitude"], "robust_training": ["vanilla"],
                     "corruption_robustness": ["dense"]}
# the built-in models a user's model is ranked beside, per dataset shape (same settings, same seeds)
BENCHMARK_PEERS = {"mnist-5k": ["linear", "lenet-300-100", "lenet-5"], "mnist": ["linear", "lenet-300-100", "lenet-5"],
                   "cifar10": ["cifar-convnet"]}


def benchmark(model, *, task: str, methods: list[str] | None = None, seeds: list[int] | tuple = (0,),
              store: str | Path | None = None, device: str | None = None, progress: bool = True,
              compare: bool = False, check: bool = True, plugins: tuple = (), **params):
    """Benchmark your own classifier in one call, as RobustBench's ``benchmark()`` does:
    ``model`` is an ``nn.Module`` (its architecture and its weights, which the task's
    baseline training starts from), a factory ``f(num_classes=10, **kw) -> nn.Module``, or
    the name of a registered model (a plug-in's: ``plugins``).

    A module or factory is registered for this call under a name made of its class and a
    hash of its source and weights (so a changed model gets new run ids). With ``check``
    (the default) the model contract is checked first (``robench check --model``): a model
    that fails it is one line naming the failed check, and nothing runs or is stored.
    ``task`` then runs with ``methods`` (default: the task's reference: compression
    ``dense``, sparsity_robustness ``magnitude``, robust_training ``vanilla``,
    corruption_robustness ``dense``) and the other
    ``params`` (task or method parameters, as ``robench run --param``), in this process.

    Returns the frame of the model's runs (see :func:`results`); with ``compare``, the same
    protocol also runs on the task's built-in models for the dataset (runs already stored
    are reused) and the return value is the ranking instead: one row per model (mean ± std
    of the primary metric over the seeds), best first, ``yours`` marking the given model and
    ``frame.attrs["place"]`` its rank (ties share one), ``frame.attrs["runs"]`` the runs.

    >>> ranking = robench.benchmark(nn.Sequential(nn.Flatten(), nn.Linear(784, 10)),
    ...                             task="sparsity_robustness", sparsity=0.5, compare=True)   # doctest: +SKIP
    """
    from robench import registry
    from robench.spec import expand, parse_suite

    registry.setup(plugins)
    if task not in BENCHMARK_METHODS:
        registry.tasks.get(task)  # unknown: did-you-mean
        raise UserError(f"benchmark: task {task!r} takes no model; expected one of {', '.join(BENCHMARK_METHODS)}")
    if isinstance(model, str):
        registry.models.entry(model)  # unknown: did-you-mean
        name = model
    else:
        name, factory, digest, label = _model_factory(model)
        if name not in registry.models:
            registry.models.add(name, factory, f"{label} given to robench.benchmark()", meta={"version": "1"})
        registry.models.entry(name).source_hash = digest  # its source and weights: part of the run ids
    task_cls = registry.tasks.get(task)
    dataset = params.get("dataset", task_cls.Params.model_fields["dataset"].default)
    if check:
        _preflight(name, dataset)
    peers = [m for m in BENCHMARK_PEERS.get(dataset, []) if m != name] if compare else []
    from robench.spec import adhoc_suite
    base = adhoc_suite(task, list(methods or BENCHMARK_METHODS[task]), list(seeds), {"model": name, **params})
    data = base.model_dump(mode="json")
    data["suite"] = "benchmark"
    data["tasks"][0]["grid"] = {"model": [name, *peers]}
    parsed = parse_suite(data, source="benchmark")
    specs = expand(parsed, source="benchmark")
    summary = run(parsed, store=store, executor="serial", device=device, progress=progress)
    frame = results(summary.store, task=task, imported=False)
    frame = frame[frame["id"].isin({s.id for s in specs})]
    if not compare:
        frame = frame[frame["task_params"].map(lambda p: p.get("model") == name)]
        return frame.reset_index(drop=True)
    return _ranking(frame.reset_index(drop=True), name)


def _preflight(name: str, dataset: str) -> None:
    """The model contract of ``robench check --model`` before a benchmark stores anything: a
    model that fails is one line naming the first failed check."""
    from robench.check import check_model

    if dataset not in ("mnist-5k", "mnist"):
        return  # the contract's tiny data are MNIST-shaped; a run on other data fails as a run
    _, checks = check_model(name, run_task=False)
    failed = [c for c in checks if not c.ok]
    if failed:
        raise UserError(f"benchmark: model {name!r} fails the model contract: {failed[0].name}: {failed[0].detail} "
                        f"(nothing was run or stored; `robench check --model` lists every check)")


def _ranking(frame, yours: str):
    """One row per model of a benchmark's runs: mean ± std of the primary metric over its
    done seeds, best first; ties share a rank under the site's rule
    (:func:`robench.report.ranking.tied`: means within the seeds' spread, or one seed)."""
    import pandas as pd

    from robench.report.ranking import shared_ranks

    done = frame[frame["status"] == "done"]
    if done.empty:
        raise UserError("benchmark: no run finished (see `robench results --status failed`)")
    primary, greater = done.iloc[0]["primary_metric"], bool(done.iloc[0]["greater_is_better"])
    rows = []
    for model, runs in done.groupby(done["task_params"].map(lambda p: p["model"])):
        values = runs["primary_value"].astype(float)
        rows.append({"model": model, "yours": model == yours, "seeds": len(values), primary: values.mean(),
                     "std": values.std(ddof=1) if len(values) > 1 else float("nan")})
    table = pd.DataFrame(rows).sort_values(primary, ascending=not greater, kind="stable").reset_index(drop=True)
    ranks, ties = shared_ranks(list(zip(table[primary], table["std"], table["seeds"])))
    table.insert(0, "rank", ranks)
    table.insert(1, "tie", ties)
    table.attrs.update(place=int(table.loc[table["yours"], "rank"].iloc[0]) if table["yours"].any() else None,
                       primary_metric=primary, greater_is_better=greater, runs=frame)
    return table


def _model_factory(model):
    """(registry name, factory, digest, label) of a module or a factory given to :func:`benchmark`."""
    import copy
    import hashlib
    import inspect
    import io
    import re

    digest = hashlib.sha256()
    if hasattr(model, "state_dict") and hasattr(model, "parameters"):
        import torch

        cls = type(model)
        try:
            digest.update(inspect.getsource(cls).encode())
        except (OSError, TypeError):
            digest.update(repr(model).encode())  # built-in containers: their structure
        digest.update(repr(model).encode())
        buffer = io.BytesIO()
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buffer)
        digest.update(buffer.getvalue())
        template = copy.deepcopy(model).cpu()

        def factory(num_classes: int = 10, **kwargs):
            return copy.deepcopy(template)
        label = cls.__name__
    elif callable(model):
        try:
            digest.update(inspect.getsource(model).encode())
        except (OSError, TypeError):
            digest.update(repr(model).encode())
        factory, label = model, getattr(model, "__name__", "model")
    else:
        raise UserError(f"benchmark: model is a {type(model).__name__}; expected an nn.Module or a factory "
                        f"f(num_classes=10) -> nn.Module")
    short = digest.hexdigest()[:12]
    name = f"{re.sub(r'[^a-z0-9]+', '-', label.lower()).strip('-') or 'model'}-{short[:8]}"
    return name, factory, short, label


def check_model(model: str, *, task: str | None = None, plugins: tuple = (), run_task: bool = True,
                on_check=None, device: str | None = "cpu"):
    """Check a registered model against the classification tasks' model contract on tiny
    data, then one tiny end-to-end run per classification task (or ``task``):
    ``(tasks, [Check, ...])`` (see :func:`robench.check.check_model`). Nothing is stored."""
    from robench.check import check_model as run_checks
    return run_checks(model, task, plugins, run_task, on_check, device)


def ls(kind: str | None = None, plugins: tuple = ()) -> list[dict]:
    """Registered tasks/methods/models/datasets as dicts (kind, name, task, description)."""
    from robench import registry

    registry.setup(plugins)
    kinds = registry.KINDS if kind is None else (kind,)
    if kind is not None and kind not in registry.KINDS:
        raise UserError(f"robench ls {kind}: unknown kind (expected one of: {', '.join(registry.KINDS)})")
    out = [{"kind": k, "name": e.name, "task": e.task, "description": e.doc, "source": e.source}
           for k in kinds for e in registry.REGISTRIES[k].entries()]
    if "models" in kinds:  # a library's architectures, resolved by name when used: one row per prefix
        at = max((i + 1 for i, row in enumerate(out) if row["kind"] == "models"), default=len(out))
        out[at:at] = [{"kind": "models", "name": f"{prefix}:NAME", "task": None, "description": text,
                       "source": prefix} for prefix, (_, text) in registry.MODEL_PREFIXES.items()]
    if "datasets" in kinds:  # a task's own data sources (its `dataset` parameter's values)
        for entry in registry.tasks.entries():
            for name, description in getattr(entry.load(), "data_sources", {}).items():
                out.append({"kind": "datasets", "name": name, "task": entry.name, "description": description,
                            "source": entry.source})
    return out


def aggregate(frame, fmt: str = "table") -> str:
    """A results table as mean ± std per configuration, as text: ``table`` (plain text),
    ``markdown`` or ``latex`` (the primary and headline metrics, per task and setting), or
    ``csv`` / ``json`` (every metric: one row per configuration and metric)."""
    from robench.report.formats import FORMATS, aggregate as tidy, render

    if fmt not in FORMATS:
        raise UserError(f"--format {fmt}: expected one of {', '.join(FORMATS)}")
    return render(tidy(frame, every_metric=fmt in ("csv", "json")), fmt)


def compare(store_a: str | Path, store_b: str | Path, out: str | Path | None = None):
    """Per-configuration differences (B − A) of the primary and headline metrics of two
    stores: ``(table, page)``, the table a DataFrame (:func:`robench.report.formats.compare`)
    and ``page`` the HTML page written at ``out`` (None when ``out`` is None)."""
    from robench.report.formats import compare as compare_tables, write_comparison

    a, b = trusted(results(store_a)), trusted(results(store_b))
    if a.empty and b.empty:
        raise UserError(f"results stores {store_a} and {store_b}: no runs in either")
    table = compare_tables(a, b)
    page = None
    if out is not None:
        out = Path(out)
        if out.is_dir():
            raise UserError(f"--out {out}: is a folder (expected an .html file path)")
        page = write_comparison(table, out, name_a=_store_name(store_a), name_b=_store_name(store_b))
    return table, page


def _store_name(store: str | Path) -> str:
    """A store as shown on a published page: its folder's and file's names, no full path."""
    path = Path(store)
    return f"{path.parent.name}/{path.name}" if path.parent.name else path.name


def export(out: str | Path, store: str | Path | None = None, *, suite: str | None = None,
           run_ids: list[str] | None = None) -> dict:
    """Write a bundle (zip) of the runs of ``suite`` or ``run_ids`` (default: every run) of
    the store, with their artifacts, provenance, a schema version and checksums; returns a
    summary (path, runs, files, bytes). See :mod:`robench.bundle`."""
    from robench.bundle import export_bundle

    return export_bundle(store, out, suite=suite, run_ids=run_ids)


def import_bundle(bundle: str | Path, store: str | Path | None = None, *, limits=None, plugins: tuple = ()) -> dict:
    """Validate a bundle (schema, checksums, size ``limits`` (:class:`robench.bundle.Limits`),
    each run re-validated by its task and method and its id recomputed) and add its runs to
    the store as claims of that bundle, apart from local runs; a bad bundle is a one-line
    UserError and changes nothing. ``plugins``: files registering the plug-ins its runs
    use. Returns a summary (imported and skipped run ids, store, origin)."""
    from robench.bundle import Limits, import_bundle as run_import

    return run_import(bundle, store, limits or Limits(), plugins)


def verify(store: str | Path | None = None, run_ids: list[str] | None = None, *, device: str = "cpu",
           data_roots: dict[str, str] | None = None, plugins: tuple = (), on_verdict=None) -> list:
    """Re-score imported claims (default: every one) from their artifacts under their task's
    protocol, on your data (``data_roots``: dataset or parameter name → your folder, for
    claims that read files), and record what each proves; returns the verdicts
    (:class:`robench.verify.Verdict`)."""
    from robench.verify import verify_store

    return verify_store(store, run_ids, device=device, data_roots=data_roots, plugins=plugins,
                        on_verdict=on_verdict)


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """While a suite runs, SIGTERM stops it like Ctrl-C: queued runs are cancelled and the
    workers stopped (finished runs are stored), instead of leaving the workers orphaned."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def output_folder(path: str | Path, what: str) -> Path:
    """``path`` as a folder to write into (created if missing); a file there, or a folder
    that cannot be created, is a one-line UserError naming ``what`` (an option)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{what} {path}: is a file, not a folder (expected a folder to write into)")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise UserError(f"{what} {path}: a part of that path is a file, not a folder") from None
    except PermissionError as exc:
        raise UserError(f"{what} {path}: cannot create it ({exc.strerror})") from None
    return path


# -- progress ------------------------------------------------------------------------------
def _say(enabled: bool, message: str) -> None:
    if enabled:
        from rich.console import Console
        Console(stderr=True).print(message)


class _Progress:
    """A rich progress bar with ETA plus one line per finished run (to stderr)."""

    def __init__(self, enabled: bool, suite: str, total: int, skipped: int, specs: list = ()):
        self.enabled, self.suite, self.total, self.skipped = enabled, suite, total, skipped
        self.shown = _setting_keys(specs)

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

    def label(self, spec) -> str:
        """'task[model=x, dataset=y]/method seed=0': the setting's parts that vary in this
        suite, and those its task always shows (its model and dataset)."""
        from robench.spec import short_value

        shown = ", ".join(f"{k}={short_value(spec.task_params[k])}" for k in self.shown.get(spec.task, ())
                          if k in spec.task_params)
        return f"{spec.task}{f'[{shown}]' if shown else ''}/{spec.method_label} seed={spec.seed}"

    def started(self, spec) -> None:
        if self.enabled:
            self.bar.update(self.tid, description=_escape(f"{self.suite}: {self.label(spec)}"))

    def finished(self, spec, record) -> None:
        if not self.enabled:
            return
        label = _escape(self.label(spec))
        self.bar.advance(self.tid)
        left = self.bar.tasks[0].time_remaining if self.bar.tasks else None
        eta = f", eta {_duration(left)}" if left and not self.bar.finished else ""
        if record["status"] == "done":
            self.console.print(f"[green]done[/]   {label} {record.get('primary_metric')}="
                               f"{record.get('primary_value'):.4g} ({record.get('duration_s', 0):.1f}s{eta})",
                               highlight=False)
        else:
            last = (record.get("error") or "").strip().splitlines()[-1:] or ["?"]
            self.console.print(f"[red]failed[/] {label}: {_escape(last[0])}", highlight=False)

    def note(self, spec, message: str) -> None:
        """A line about a run in flight (it waits for GPU memory)."""
        if self.enabled:
            self.console.print(f"[yellow]waiting[/] {_escape(self.label(spec))}: {_escape(message)}", highlight=False)

    def elsewhere(self, spec) -> None:
        if self.enabled:
            label = _escape(self.label(spec))
            self.console.print(f"[yellow]elsewhere[/] {label}: another robench run on this store has it",
                               highlight=False)
            self.bar.advance(self.tid)

    def __exit__(self, *exc):
        if self.enabled:
            self.bar.__exit__(*exc)


def _setting_keys(specs) -> dict[str, list[str]]:
    """Task → the task parameters a progress line names: those whose value varies among
    the suite's runs of that task, and the task's model and dataset."""
    values: dict[str, dict[str, set]] = {}
    for spec in specs:
        for key, value in spec.task_params.items():
            values.setdefault(spec.task, {}).setdefault(key, set()).add(repr(value))
    return {task: [k for k, seen in sorted(keys.items()) if len(seen) > 1 or k in ("model", "dataset")]
            for task, keys in values.items()}


def _duration(seconds: float) -> str:
    from robench.costs import duration
    return duration(seconds)


def _escape(text: str) -> str:
    from rich.markup import escape
    return escape(text)
