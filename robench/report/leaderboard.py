"""The leaderboard: a static HTML site built from the results table (``robench.results()``).

Reads only the table it is given; never imports tasks, torch or the store. Layout of
``out_dir``::

    index.html                 per task and setting: the leader and the runner-up, a small plot
    <task>.html                per setting: plots, the headline table, every metric one click away
    runs/<config_id>.html      every run (seed) of one configuration, failed ones included
    plots/<task>/*.png|svg     the plots of each setting (:mod:`robench.report.site_plots`)
    artifacts/<run id>/...     the runs' artifacts, copied (none with ``artifacts=False``)

Every page is rendered by Jinja2 with autoescaping on and works from ``file://`` offline:
CSS and scripts are inline, nothing is fetched from the network. Publishable: no page
holds an absolute path of the machine that built it (artifacts are copied and linked
relatively, path parameters show their last component, tracebacks lose their folders).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import re
import shutil
import sys
from collections import Counter
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable

from .labels import first_broken_shares, metric
from .paths import private_roots, scrub_label, scrub_text, scrub_value
from .style import method_colors
from .table import as_dict, distinct_labels, is_missing, metric_values, mode, normalize, summarize, task_info, to_float

_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
_RESERVED_PAGES = {"index", "compare"}
MINI_ROWS = 6  # configurations in an index card's small plot


# ---------------------------------------------------------------------------- helpers

def _hash8(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:8]


def _slug(text: str, maxlen: int = 48, shown: str | None = None) -> str:
    """File- and anchor-safe form of free text, made unique by a short hash of the text;
    ``shown``: the text to spell it from instead (a label without its local paths)."""
    base = re.sub(r"[^a-z0-9]+", "-", str(text if shown is None else shown).lower()).strip("-")[:maxlen].strip("-")
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


def headline_order(names: list[str], info: dict, primary: str | None) -> list[str]:
    """The columns a reader sees first: the primary metric, then the task's headline metrics
    that the runs have (all metrics when the task declares none)."""
    headline = [m for m in info.get("headline_metrics") or () if m in names and m != primary]
    if not info.get("headline_metrics"):
        return list(names)
    return ([primary] if primary in names else []) + headline


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
    env.filters["label_breaks"] = _label_breaks
    return env


def _breakable(name: Any):
    """Escaped ``name`` with a line-break opportunity after each underscore (long metric names)."""
    import markupsafe

    return markupsafe.Markup("_<wbr>").join(markupsafe.escape(str(name)).split("_"))


def _label_breaks(label: Any):
    """Escaped ``label`` with a line-break opportunity after each "(", ",", "=" and "@", so a
    long configuration wraps between its parameters in a narrow column."""
    import markupsafe

    text = str(markupsafe.escape(str(label)))
    return markupsafe.Markup(re.sub(r"([(,=@+])", r"\1<wbr>", text))


def _column(name: str, info: dict) -> dict:
    """A metric column's header: readable label, unit, and the raw name with its description."""
    m = metric(name)
    described = (info.get("metrics_info") or {}).get(name)
    return {"name": name, "label": m.label, "unit": m.unit, "scale": m.scale,
            "title": f"{name}: {described[0]}" if described else name}


def _metric_cell(stats, config_id: str, column: dict) -> dict:
    name = column["name"]
    try:
        mean = float(stats.at[config_id, (name, "mean")])
        std = float(stats.at[config_id, (name, "std")])
        count = int(stats.at[config_id, (name, "count")])
    except (KeyError, TypeError, ValueError):
        mean, std, count = math.nan, math.nan, 0
    scale = column["scale"]
    return {"mean": mean, "std": std, "n": count,
            "mean_attr": "" if math.isnan(mean) else repr(mean),
            "std_attr": "" if math.isnan(std) else repr(std),
            "mean_text": format_number(mean * scale),
            "std_text": "" if math.isnan(std) else format_number(std * scale, 2)}


def _sort_key_best_first(mean: float, greater_is_better: bool) -> tuple:
    if math.isnan(mean):
        return (1, 0.0)
    return (0, -mean if greater_is_better else mean)


def _verdict(runs) -> dict | None:
    """The configuration's badge from its runs' ``verification`` dicts: unverified when one
    run's re-score differs, verified when every imported run re-scored equal, imported
    while some are not checked yet; None for runs that were not imported."""
    done = runs[runs["status"] == "done"]
    checks = [as_dict(v) for v in done["verification"]] if "verification" in done else []
    if not any(checks):
        return None
    statuses = Counter(v.get("status", "imported") for v in checks if v)
    if statuses.get("unverified"):
        return {"status": "unverified", "text": "unverified",
                "title": f"{statuses['unverified']} run(s) re-scored differently from what they claim"}
    verified = statuses.get("verified", 0)
    if verified == len(checks):
        return {"status": "verified", "text": "verified", "title": "every run re-scored from its artifacts: "
                                                                   "the same metrics"}
    if verified:
        return {"status": "imported", "text": f"verified {verified}/{len(checks)}",
                "title": f"{verified} of {len(checks)} runs re-scored from their artifacts: the same metrics"}
    return {"status": "imported", "text": "imported", "title": "imported from a bundle; not re-scored yet "
                                                               "(robench verify)"}


class _Artifacts:
    """Copies run artifacts under the site (``artifacts/<run id>/<file>``), once each."""

    def __init__(self, out_dir: Path, copy: bool):
        self.root = out_dir / "artifacts"
        self.copy = copy

    def publish(self, run_id: str, artifacts: dict, page_dir: Path) -> list[dict]:
        out = []
        for name, path in artifacts.items():
            text = str(path)
            shown = _artifact_name(run_id, text)
            entry = {"name": str(name), "file": shown, "href": None, "note": "", "image": None}
            if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", text):
                entry["note"] = "remote: not linked"
            elif not self.copy:
                entry["note"] = "left out of this site"
            elif not Path(text).is_file():
                entry["note"] = "missing"
            else:
                target = self.root / _safe_name(run_id) / shown
                if not (target.exists() and target.stat().st_size == Path(text).stat().st_size):
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(text, target)
                entry["href"] = Path(os.path.relpath(target, page_dir)).as_posix()
            entry["image"] = entry["href"] if entry["href"] and shown.lower().endswith(".png") else None
            out.append(entry)
        return out


def _artifact_name(run_id: str, path: str) -> str:
    """The artifact's path inside its run folder (``<store>/artifacts/<id>/model.pt`` →
    ``model.pt``), or its file name."""
    parts = re.split(r"[/\\]+", path)
    if run_id in parts:
        tail = parts[len(parts) - 1 - parts[::-1].index(run_id) + 1:]
        if tail and ".." not in tail:
            return "/".join(tail)
    return parts[-1] or "artifact"


def _setting_pages(task: str, task_file: str, setting: str, runs, out_dir: Path, env, plots: bool,
                   generated: str, site_title: str, artifacts: _Artifacts, roots: list[str],
                   shown: str | None = None) -> dict:
    """Render the runs pages of one setting; return the context of its section on the task page."""
    info_task = task_info(runs)
    info, stats = summarize_configs(runs)
    names = metric_order(runs)
    primary = mode(runs["primary_metric"])
    gib = mode([g for g, p in zip(runs["greater_is_better"], runs["primary_metric"]) if p == primary], True)
    greater_is_better = bool(gib)
    shown_setting = scrub_label(setting if shown is None else shown, roots)
    setting_id = "setting-" + _slug(setting, shown=shown_setting)
    headline = [_column(n, info_task) for n in headline_order(names, info_task, primary)]
    every = [_column(n, info_task) for n in names]
    colours = method_colors(info["method_label"])

    rows = []
    for config_id in info.index:
        cells = [_metric_cell(stats, config_id, c) for c in headline]
        primary_mean = cells[0]["mean"] if primary is not None and cells and headline[0]["name"] == primary \
            else math.nan
        label = scrub_label(info.at[config_id, "method_label"], roots)
        rows.append({
            "config_id": config_id,
            "page": f"runs/{_safe_name(config_id)}.html",
            "method": info.at[config_id, "method"],
            "method_label": label,
            "colour": colours[str(info.at[config_id, "method_label"])],
            "n_runs": int(info.at[config_id, "n_runs"]),
            "n_done": int(info.at[config_id, "n_done"]),
            "n_failed": int(info.at[config_id, "n_failed"]),
            "cells": cells,
            "all_cells": [_metric_cell(stats, config_id, c) for c in every],
            "verdict": _verdict(runs[runs["config_id"] == config_id]),
            "_key": _sort_key_best_first(primary_mean, greater_is_better),
        })
    rows.sort(key=lambda r: (r["_key"], r["method_label"]))
    for rank, row in enumerate(rows, 1):
        row["rank"] = rank

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
            check = as_dict(getattr(r, "verification", {}))
            run_list.append({
                "id": r.id, "anchor": "run-" + _safe_name(r.id), "seed": r.seed, "status": r.status,
                "metrics": [_metric_line(n, metrics[n]) for n in names if n in metrics] +
                           [_metric_line(n, v) for n, v in metrics.items() if n not in names],
                "metric_cells": [format_number(to_float(metrics.get(c["name"])) * c["scale"]) for c in headline],
                "first_broken": [{**t, "rows": [{**row, "shares": [format_number(to_float(v) * 100, 3)
                                                                    for v in row["shares"]]}
                                                for row in t["rows"]]}
                                 for t in first_broken_shares(metrics)],
                "task_params": scrub_value(r.task_params, roots),
                "method_params": scrub_value(r.method_params, roots),
                "provenance": scrub_value(r.provenance, roots),
                "artifacts": artifacts.publish(r.id, as_dict(r.artifacts), runs_dir),
                "error": None if is_missing(r.error) else scrub_text(r.error, roots),
                "started_at": r.started_at, "finished_at": r.finished_at, "duration_s": r.duration_s,
                "task_version": r.task_version, "method_version": r.method_version,
                "suites": r.suites, "check": _check_context(check),
            })
        first = config_runs.iloc[0]
        html = template.render(
            title=row["method_label"], task=task, task_page=f"../{task_file}.html",
            setting=shown_setting, setting_anchor=setting_id, row=row, runs=run_list, columns=headline,
            primary=primary, greater_is_better=greater_is_better,
            task_params=scrub_value(first["task_params"], roots),
            method_params=scrub_value(first["method_params"], roots),
            task_version=first["task_version"], method_version=first["method_version"],
            generated=generated, version=_robench_version(), root="../", site_title=site_title,
        )
        (out_dir / row["page"]).write_text(html, encoding="utf-8")

    images = []
    if plots and int((runs["status"] == "done").sum()):
        from .site_plots import setting_plots

        plot_dir = out_dir / "plots" / task_file
        drawn = setting_plots(runs.assign(task_label=shown_setting), info_task,
                              plot_dir / _slug(setting, shown=shown_setting),
                              task=task, sweep=bool(info_task.get("sweep_params")))
        for plot in drawn:
            paths = plot["paths"]
            if "png" in paths:
                images.append({
                    "name": plot["name"],
                    "png": paths["png"].relative_to(out_dir).as_posix(),
                    "svg": paths["svg"].relative_to(out_dir).as_posix() if "svg" in paths else None,
                    "alt": plot["caption"], "size": _svg_size(paths.get("svg")),
                })

    statuses = Counter(runs["status"])
    return {
        "label": shown_setting, "anchor": setting_id, "rows": rows, "columns": headline, "all_columns": every,
        "primary": primary, "primary_column": headline[0] if headline and headline[0]["name"] == primary else None,
        "greater_is_better": greater_is_better,
        "n_configs": len(rows), "n_runs": len(runs), "n_done": statuses.get("done", 0),
        "n_failed": statuses.get("failed", 0), "images": images,
    }


def _metric_line(name: str, value: Any) -> dict:
    """One metric of a run page: readable label, value in display units, the stored value."""
    m = metric(name)
    shown = format_number(to_float(value) * m.scale, 6)
    return {"name": name, "label": m.label, "shown": shown + (f" {m.unit}" if m.unit and shown != "—" else ""),
            "raw": value}


def _check_context(check: dict) -> dict | None:
    if not check:
        return None
    diffs = [{"metric": n, "label": metric(n).header, "claimed": d.get("claimed"), "rescored": d.get("rescored")}
             for n, d in sorted((check.get("differences") or {}).items())]
    return {"status": check.get("status", "imported"), "checked_at": check.get("checked_at"),
            "source": check.get("source"), "checked": check.get("checked") or [], "differences": diffs,
            "note": check.get("note")}


def _svg_size(path: Path | None) -> tuple[int, int]:
    """(width, height) in CSS px of a matplotlib SVG (its pt size), (540, 350) if unknown."""
    if path is None:
        return 540, 350
    head = path.read_text(encoding="utf-8", errors="replace")[:2000]
    w = re.search(r'width="([\d.]+)pt"', head)
    h = re.search(r'height="([\d.]+)pt"', head)
    if not (w and h):
        return 540, 350
    return round(float(w.group(1)) * 4 / 3), round(float(h.group(1)) * 4 / 3)


def mini_chart(rows: list[dict], primary: dict | None, greater_is_better: bool):
    """An inline SVG of the first configurations' primary mean ± std (a dot per row), the
    leader's dot filled; escaped text; no script, no external reference."""
    import markupsafe

    pts = [r for r in rows[:MINI_ROWS] if primary is not None and math.isfinite(r["cells"][0]["mean"])]
    if len(pts) < 2:
        return markupsafe.Markup("")
    scale = primary["scale"]
    lo = min((r["cells"][0]["mean"] - (r["cells"][0]["std"] if math.isfinite(r["cells"][0]["std"]) else 0))
             for r in pts) * scale
    hi = max((r["cells"][0]["mean"] + (r["cells"][0]["std"] if math.isfinite(r["cells"][0]["std"]) else 0))
             for r in pts) * scale
    if hi - lo < 1e-12:
        lo, hi = lo - 1, hi + 1
    pad = (hi - lo) * 0.08
    lo, hi = lo - pad, hi + pad
    width, left, right, row_h = 330, 118, 52, 18
    height = row_h * len(pts) + 6

    def x(v: float) -> float:
        return left + (v - lo) / (hi - lo) * (width - left - right)

    e = markupsafe.escape
    parts = [f'<svg class="mini" viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="{e(primary["label"])} of the first {len(pts)} configurations">']
    for i, r in enumerate(pts):
        y = 4 + row_h * i + row_h / 2
        mean, std = r["cells"][0]["mean"] * scale, r["cells"][0]["std"] * scale
        label = r["method_label"] if len(r["method_label"]) <= 17 else r["method_label"][:16] + "…"
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{e(label)}</text>')
        parts.append(f'<line class="axis" x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}"/>')
        if math.isfinite(std):
            parts.append(f'<line class="err" x1="{x(mean - std):.1f}" y1="{y:.1f}" x2="{x(mean + std):.1f}" '
                         f'y2="{y:.1f}" stroke="{r["colour"]}"/>')
        parts.append(f'<circle cx="{x(mean):.1f}" cy="{y:.1f}" r="{5 if i == 0 else 4}" '
                     f'fill="{r["colour"] if i == 0 else "#fff"}" stroke="{r["colour"]}"/>')
        parts.append(f'<text class="v" x="{width - right + 6}" y="{y + 4:.1f}">{e(r["cells"][0]["mean_text"])}</text>')
    parts.append("</svg>")
    return markupsafe.Markup("".join(parts))


def _leaders(section: dict) -> dict:
    """The index's view of one setting: leader and runner-up (with a finite primary mean)."""
    ranked = [r for r in section["rows"] if r["cells"] and section["primary_column"] is not None
              and math.isfinite(r["cells"][0]["mean"])]
    return {"label": section["label"], "anchor": section["anchor"], "primary": section["primary_column"],
            "greater_is_better": section["greater_is_better"], "leader": ranked[0] if ranked else None,
            "runner_up": ranked[1] if len(ranked) > 1 else None, "n_configs": section["n_configs"],
            "n_runs": section["n_runs"], "n_failed": section["n_failed"],
            "chart": mini_chart(ranked, section["primary_column"], section["greater_is_better"])}


def write_leaderboard(df, out_dir, *, title: str = "robench leaderboard", plots: bool = True,
                      artifacts: bool = True, private: Iterable[str | Path] = ()) -> Path:
    """Write the static leaderboard site for results table ``df`` into ``out_dir``.

    ``df`` is ``robench.results()``: one row per run (an optional ``verification`` column
    marks imported runs and ``robench verify``'s verdict). Returns the path of
    ``index.html``. ``plots=False`` skips the plots (faster; the tables are unchanged);
    ``artifacts=False`` lists the runs' artifacts without copying them. ``private``: folders
    (the stores') that never appear on a page; the home folder never does either. Files of
    earlier builds in ``out_dir`` are overwritten, never deleted.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    env = _environment()
    runs = normalize(df)
    generated = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()
    version = _robench_version()
    roots = private_roots(private)
    copier = _Artifacts(out_dir, artifacts)

    cards = []
    for task in sorted(runs["task"].unique()):
        task_runs = runs[runs["task"] == task]
        task_file = _safe_name(task)
        shown, shared = distinct_labels(sorted(task_runs["task_label"].unique()))
        settings = [
            _setting_pages(task, task_file, setting, task_runs[task_runs["task_label"] == setting],
                           out_dir, env, plots, generated, title, copier, roots, shown=shown[setting])
            for setting in sorted(task_runs["task_label"].unique())
        ]
        html = env.get_template("task.html").render(
            title=f"{task} — {title}", site_title=title, task=task, settings=settings,
            shared=[scrub_label(p, roots) for p in shared],
            generated=generated, version=version, root="",
        )
        (out_dir / f"{task_file}.html").write_text(html, encoding="utf-8")

        statuses = Counter(task_runs["status"])
        finished = [str(v) for v in task_runs["finished_at"] if not is_missing(v)]
        leaders = [_leaders(s) for s in settings]
        cards.append({
            "task": task, "page": f"{task_file}.html",
            "n_settings": len(settings),
            "n_configs": int(task_runs["config_id"].nunique()),
            "n_runs": len(task_runs), "n_done": statuses.get("done", 0),
            "n_failed": statuses.get("failed", 0),
            "primary": sorted({str(s["primary"]) for s in settings if s["primary"] is not None}),
            "suites": sorted({s for lst in task_runs["suites"] for s in lst}),
            "last_finished": max(finished) if finished else None,
            "settings": leaders,
            "filter": " ".join([task] + [s["label"] for s in settings]
                               + [r["method_label"] for s in settings for r in s["rows"]]).lower(),
        })

    index = out_dir / "index.html"
    index.write_text(env.get_template("index.html").render(
        title=title, site_title=title, cards=cards, generated=generated, version=version, root="",
        n_runs=len(runs),
    ), encoding="utf-8")
    return index
