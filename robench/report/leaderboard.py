"""The leaderboard: a static HTML site built from the results table (``robench.results()``).

Reads only the table it is given; never imports tasks, torch or the store. Layout of
``out_dir``::

    index.html                 one card per task
    <task>.html                per setting (task_label): plots + sortable table of configurations
    runs/<config_id>.html      every run (seed) of one configuration, failed ones included
    plots/<task>/*.png|svg     the trade-off plots the task declares (``task_info["plots"]``)

Every page is rendered by Jinja2 with autoescaping on and works from ``file://`` offline:
CSS and the table-sorting script are inline, and nothing is fetched from the network.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import re
import sys
from collections import Counter
from importlib import metadata
from pathlib import Path
from typing import Any

from .table import as_dict, is_missing, metric_values, mode, normalize, summarize, task_info, to_float

_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
_RESERVED_PAGES = {"index"}


# ---------------------------------------------------------------------------- helpers

def _hash8(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:8]


def _slug(text: str, maxlen: int = 48) -> str:
    """File- and anchor-safe form of free text, made unique by a short hash of the text."""
    base = re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-")[:maxlen].strip("-")
    return f"{base}-{_hash8(str(text))}" if base else _hash8(str(text))


def _safe_name(name: str) -> str:
    """``name`` itself when it is already a safe file name, else a slug of it."""
    name = str(name)
    if _SAFE_NAME.fullmatch(name) and name.lower() not in _RESERVED_PAGES:
        return name
    return _slug(name)


def format_number(x: Any, digits: int = 4) -> str:
    """Compact display of a float: 4 significant digits, thousands separators for big ones,
    '—' for missing values."""
    x = to_float(x)
    if math.isnan(x):
        return "—"
    if math.isinf(x):
        return "∞" if x > 0 else "−∞"
    if abs(x) >= 10 ** digits:
        return f"{x:,.0f}"
    return f"{x:.{digits}g}"


def _format_value(value: Any) -> str:
    """Any params/provenance value as one line of text."""
    if is_missing(value):
        return "—"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


def _format_duration(seconds: Any) -> str:
    s = to_float(seconds)
    if math.isnan(s):
        return "—"
    if s < 60:
        return f"{s:.3g} s"
    minutes, sec = divmod(s, 60)
    if minutes < 60:
        return f"{int(minutes)} min {sec:02.0f} s"
    hours, minutes = divmod(minutes, 60)
    return f"{int(hours)} h {int(minutes):02d} min"


def _robench_version() -> str:
    try:
        return metadata.version("robench")
    except metadata.PackageNotFoundError:
        return str(getattr(sys.modules.get("robench"), "__version__", "unknown"))


# ---------------------------------------------------------------------------- tables

def metric_order(runs) -> list[str]:
    """Metric names of a setting: the primary metric first, then the others in the order
    they first appear in the runs' metric dicts."""
    seen: dict[str, None] = {}
    primary = mode(runs["primary_metric"]) if "primary_metric" in runs.columns else None
    if primary is not None:
        seen[str(primary)] = None
    for m in runs["metrics"]:
        for name in as_dict(m):
            seen.setdefault(str(name), None)
    return list(seen)


def summarize_configs(runs):
    """Per-configuration statistics of ``runs`` (rows of the results table, usually one
    setting of one task).

    Returns ``(info, stats)``, both indexed by config_id in order of first appearance:
    ``info`` has columns ``method``, ``method_label``, ``n_runs``, ``n_done``, ``n_failed``;
    ``stats`` has a (metric, stat) column MultiIndex, stat in {"mean", "std", "count"}.
    Statistics use done runs only and skip NaN values; std is pandas' default (ddof=1),
    NaN for a single seed. Configurations without a done run have NaN statistics.
    """
    import pandas as pd

    runs = normalize(runs)
    groups = runs.groupby("config_id", sort=False)
    info = pd.DataFrame({
        "method": groups["method"].first(),
        "method_label": groups["method_label"].first(),
        "n_runs": groups.size(),
        "n_done": groups["status"].agg(lambda s: int((s == "done").sum())),
        "n_failed": groups["status"].agg(lambda s: int((s == "failed").sum())),
    })
    names = metric_order(runs)
    done = runs[runs["status"] == "done"]
    columns = pd.MultiIndex.from_product([names, ["mean", "std", "count"]])
    if not names or done.empty:
        return info, pd.DataFrame(math.nan, index=info.index, columns=columns)
    values = metric_values(done, names).assign(config_id=done["config_id"])
    stats = summarize(values, "config_id", names, sort=True, flat=False)
    return info, stats.reindex(index=info.index, columns=columns)


# ---------------------------------------------------------------------------- rendering

def _environment():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(Path(__file__).with_name("templates"))),
        autoescape=True,  # every page: labels, params and tracebacks are untrusted text
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = format_number
    env.filters["value"] = _format_value
    env.filters["duration"] = _format_duration
    env.filters["breakable"] = _breakable
    return env


def _breakable(name: Any):
    """Escaped ``name`` with a line-break opportunity after each underscore (long metric headers)."""
    import markupsafe

    return markupsafe.Markup("_<wbr>").join(markupsafe.escape(str(name)).split("_"))


def _artifact_link(path: Any, page_dir: Path) -> str | None:
    """A relative href from ``page_dir`` to an artifact file, or None when it is not a local path."""
    text = str(path)
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", text):
        return None  # a URL: shown as text, never linked (the site must not reach the network)
    p = Path(text)
    if not p.is_absolute():
        return None
    try:
        rel = os.path.relpath(p, page_dir)
    except ValueError:  # another drive on Windows
        return p.as_uri()
    return Path(rel).as_posix()


def _metric_cell(stats, config_id: str, name: str) -> dict:
    try:
        mean = float(stats.at[config_id, (name, "mean")])
        std = float(stats.at[config_id, (name, "std")])
        count = int(stats.at[config_id, (name, "count")])
    except (KeyError, TypeError, ValueError):
        mean, std, count = math.nan, math.nan, 0
    return {"mean": mean, "std": std, "n": count,
            "mean_attr": "" if math.isnan(mean) else repr(mean),
            "std_attr": "" if math.isnan(std) else repr(std),
            "mean_text": format_number(mean),
            "std_text": "" if math.isnan(std) else format_number(std, 2)}


def _sort_key_best_first(mean: float, greater_is_better: bool) -> tuple:
    if math.isnan(mean):
        return (1, 0.0)
    return (0, -mean if greater_is_better else mean)


def _setting_pages(task: str, task_file: str, setting: str, runs, out_dir: Path, env, plots: bool,
                   generated: str, site_title: str) -> dict:
    """Render the runs pages of one setting; return the context of its section on the task page."""
    info, stats = summarize_configs(runs)
    names = metric_order(runs)
    primary = mode(runs["primary_metric"])
    gib = mode([g for g, p in zip(runs["greater_is_better"], runs["primary_metric"]) if p == primary], True)
    greater_is_better = bool(gib)
    setting_id = "setting-" + _slug(setting)

    rows = []
    for config_id in info.index:
        cells = [_metric_cell(stats, config_id, n) for n in names]
        primary_mean = cells[0]["mean"] if primary is not None and cells else math.nan
        rows.append({
            "config_id": config_id,
            "page": f"runs/{_safe_name(config_id)}.html",
            "method": info.at[config_id, "method"],
            "method_label": info.at[config_id, "method_label"],
            "n_runs": int(info.at[config_id, "n_runs"]),
            "n_done": int(info.at[config_id, "n_done"]),
            "n_failed": int(info.at[config_id, "n_failed"]),
            "cells": cells,
            "_key": _sort_key_best_first(primary_mean, greater_is_better),
        })
    rows.sort(key=lambda r: (r["_key"], r["method_label"]))
    for rank, row in enumerate(rows, 1):
        row["rank"] = rank

    # One runs page per configuration.
    runs_dir = out_dir / "runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    template = env.get_template("runs.html")
    for row in rows:
        config_runs = runs[runs["config_id"] == row["config_id"]]
        config_runs = config_runs.assign(_seed_key=[(is_missing(s), to_float(s) if not is_missing(s) else 0)
                                                    for s in config_runs["seed"]])
        config_runs = config_runs.sort_values("_seed_key", kind="stable")
        run_list = []
        for r in config_runs.itertuples(index=False):
            metrics = as_dict(r.metrics)
            run_list.append({
                "id": r.id, "anchor": "run-" + _safe_name(r.id), "seed": r.seed, "status": r.status,
                "metrics": [(n, metrics[n]) for n in names if n in metrics] +
                           [(n, v) for n, v in metrics.items() if n not in names],
                "metric_cells": [format_number(metrics.get(n)) for n in names],
                "task_params": r.task_params, "method_params": r.method_params,
                "provenance": r.provenance,
                "artifacts": [(k, v, _artifact_link(v, runs_dir)) for k, v in r.artifacts.items()],
                "error": None if is_missing(r.error) else str(r.error),
                "started_at": r.started_at, "finished_at": r.finished_at, "duration_s": r.duration_s,
                "task_version": r.task_version, "method_version": r.method_version,
                "suites": r.suites,
            })
        first = config_runs.iloc[0]
        html = template.render(
            title=row["method_label"], task=task, task_page=f"../{task_file}.html",
            setting=setting, setting_anchor=setting_id, row=row, runs=run_list, metric_names=names,
            primary=primary, greater_is_better=greater_is_better,
            task_params=first["task_params"], method_params=first["method_params"],
            task_version=first["task_version"], method_version=first["method_version"],
            generated=generated, version=_robench_version(), root="../", site_title=site_title,
        )
        (out_dir / row["page"]).write_text(html, encoding="utf-8")

    images = []
    if plots and int((runs["status"] == "done").sum()):
        from .plots import scatter_tradeoff

        plot_dir = out_dir / "plots" / task_file
        for plot in task_info(runs).get("plots") or ():
            plot_name, x_metric, y_metric = plot["name"], plot["x"], plot["y"]
            if x_metric not in names or y_metric not in names:
                continue
            base = plot_dir / f"{_slug(setting)}--{plot_name}"
            written = scatter_tradeoff(runs, x_metric, y_metric, base,
                                       title=f"{task}: {y_metric} vs {x_metric}", logx=bool(plot.get("logx")))
            paths = {p.suffix: p for p in written}
            if ".png" in paths:
                images.append({
                    "name": plot_name,
                    "png": paths[".png"].relative_to(out_dir).as_posix(),
                    "svg": paths[".svg"].relative_to(out_dir).as_posix() if ".svg" in paths else None,
                    "alt": f"{y_metric} vs {x_metric} for {setting}",
                })

    statuses = Counter(runs["status"])
    return {
        "label": setting, "anchor": setting_id, "rows": rows, "metric_names": names,
        "primary": primary, "greater_is_better": greater_is_better,
        "n_configs": len(rows), "n_runs": len(runs), "n_done": statuses.get("done", 0),
        "n_failed": statuses.get("failed", 0), "images": images,
    }


def write_leaderboard(df, out_dir, *, title: str = "robench leaderboard", plots: bool = True) -> Path:
    """Write the static leaderboard site for results table ``df`` into ``out_dir``.

    ``df`` is ``robench.results()``: one row per run. Returns the path of ``index.html``.
    ``plots=False`` skips the trade-off figures (faster; the tables are unchanged).
    Files of earlier builds in ``out_dir`` are overwritten, never deleted.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    env = _environment()
    runs = normalize(df)
    generated = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()
    version = _robench_version()

    cards = []
    for task in sorted(runs["task"].unique()):
        task_runs = runs[runs["task"] == task]
        task_file = _safe_name(task)
        settings = [
            _setting_pages(task, task_file, setting, task_runs[task_runs["task_label"] == setting],
                           out_dir, env, plots, generated, title)
            for setting in sorted(task_runs["task_label"].unique())
        ]
        html = env.get_template("task.html").render(
            title=f"{task} — {title}", site_title=title, task=task, settings=settings,
            generated=generated, version=version, root="",
        )
        (out_dir / f"{task_file}.html").write_text(html, encoding="utf-8")

        statuses = Counter(task_runs["status"])
        finished = [str(v) for v in task_runs["finished_at"] if not is_missing(v)]
        run_versions = sorted({str(as_dict(p).get("robench")) for p in task_runs["provenance"]
                               if as_dict(p).get("robench") is not None})
        cards.append({
            "task": task, "page": f"{task_file}.html",
            "n_settings": len(settings),
            "n_configs": int(task_runs["config_id"].nunique()),
            "n_runs": len(task_runs), "n_done": statuses.get("done", 0),
            "n_failed": statuses.get("failed", 0),
            "primary": sorted({str(s["primary"]) for s in settings if s["primary"] is not None}),
            "suites": sorted({s for lst in task_runs["suites"] for s in lst}),
            "last_finished": max(finished) if finished else None,
            "run_versions": run_versions,
            "settings": [{"label": s["label"], "anchor": s["anchor"], "n_configs": s["n_configs"]}
                         for s in settings],
        })

    index = out_dir / "index.html"
    index.write_text(env.get_template("index.html").render(
        title=title, site_title=title, cards=cards, generated=generated, version=version, root="",
        n_runs=len(runs),
    ), encoding="utf-8")
    return index
