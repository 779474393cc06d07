"""The leaderboard: a static HTML site built from the results table (``robench.api.merged_results()``).

Reads only the table it is given; never imports tasks, torch or the store. Layout of
``out_dir``::

    index.html                    per task and setting: the leader and the runner-up, a small plot
    <task>.html                   per setting: plots, the headline table, every metric one click
                                  away, then the claims that are not ranked ("Unranked claims")
    runs/<config_id>.html         every ranked run (seed) of one configuration, failed ones included
    runs/<run id>-<sha12>.html    one imported claim (a run id and the bundle it came from): its
                                  verdict, its metrics re-scored by the maintainer and those only claimed
    plots/<task>/*.png|svg        the plots of each setting (:mod:`robench.report.site_plots`)
    artifacts/<run>/...           the runs' artifacts of allowed types, copied (none with ``artifacts=False``)

Trust: a row is a run id with its origin (``local`` or ``bundle:<sha256>``) and its own
verdict; only local runs and verified claims are ranked (one row per run id), and a badge
never borrows another claim's verdict. Nothing a bundle holds is published as it is: file
names are made safe and distinct, artifacts are copied only when of an allowed type and
inside the store's artifact folder, and linked as downloads.

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

from .labels import first_broken_shares, metric, nan_reason, undefined_reason
from .paths import last_component, private_roots, scrub_label, scrub_text, scrub_value
from .ranking import _greater, model_boards, rank_rows, reference_methods, setting_metrics, sort_key_best_first
from .style import method_colors
from .table import (LOCAL, as_dict, format_number, claim_status, column, counted_rows, distinct_labels, is_missing,
                    metric_values, mode, normalize, origins, summarize, task_info, to_float)

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
            "title": f"{name}: {described[0]}" if described else name, "nan_reason": nan_reason(name, info)}


def _metric_cell(stats, config_id: str, column: dict, members: list[dict] = (), why: str | None = None) -> dict:
    """A configuration's mean ± std of one metric; ``claimed`` when a value it averages is a
    bundle's claim that the maintainer did not re-score (``members``: the rows it counts).
    ``why``: the metric means nothing for this configuration (a dense model's speed-up): "—"
    with that reason; a missing mean says why too (``why_missing``)."""
    name = column["name"]
    try:
        mean = float(stats.at[config_id, (name, "mean")])
        std = float(stats.at[config_id, (name, "std")])
        count = int(stats.at[config_id, (name, "count")])
    except (KeyError, TypeError, ValueError):
        mean, std, count = math.nan, math.nan, 0
    if why:
        mean, std, count = math.nan, math.nan, 0
    scale = column["scale"]
    claimed = any(r["status"] == "done" and name in as_dict(r["metrics"])
                  and _metric_kind(_trust(r["origin"], r["verification"]), name) != "rescored"
                  for r in members if r["origin"] != LOCAL)
    inline = False  # a missing value's reason is shown under it; a meaningless one's on hover (one per row)
    if math.isnan(mean) and not why and any(name in as_dict(r["metrics"]) for r in members):
        why, inline = column.get("nan_reason") or "not defined for this run", True
    return {"mean": mean, "std": std, "n": count, "claimed": claimed and not why,
            "mean_attr": "" if math.isnan(mean) else repr(mean),
            "std_attr": "" if math.isnan(std) else repr(std),
            "mean_text": format_number(mean * scale),
            "std_text": "" if math.isnan(std) else format_number(std * scale, 2),
            "why": why or "", "why_inline": inline}


def _why_undefined(column: dict, means: dict, method: Any, info: dict) -> str | None:
    """Why a configuration has no value of a metric worth showing (``labels.undefined_reason``)."""
    return undefined_reason(column["name"], means, str(method or ""))


def _trust(origin: str, verification: Any) -> dict:
    """What a row's own verdict says of its metrics: ``local`` (computed here), else the
    claim's ``status`` and the metric names ``rescored`` (re-computed by the maintainer and
    agreeing) and ``differs`` (re-computed and differing); every other metric of a claim is
    claimed only."""
    check = as_dict(verification)
    status = claim_status(origin, check)
    if status == LOCAL:
        return {"local": True, "status": LOCAL, "rescored": set(), "differs": set()}
    differences = as_dict(check.get("differences"))
    rescored = check.get("rescored")
    if not isinstance(rescored, (list, tuple)):  # verdicts of before the split: "checked"
        checked = check.get("checked") if status in ("verified", "unverified") else None
        rescored = [c for c in checked if c not in differences] if isinstance(checked, (list, tuple)) else []
    return {"local": False, "status": status, "rescored": {str(m) for m in rescored},
            "differs": {str(m) for m in differences}}


def _metric_kind(trust: dict, name: str) -> str:
    """``local``, ``rescored``, ``differs`` or ``claimed``: where a row's value of ``name`` comes from."""
    if trust["local"]:
        return "local"
    if name in trust["differs"]:
        return "differs"
    return "rescored" if name in trust["rescored"] else "claimed"


_STATUS_TEXT = {"imported": "imported, not verified", "verified": "verified", "unverified": "unverified",
                "skipped": "not verifiable"}


def _claim_badge(status: str, note: Any = None) -> dict:
    """The badge of one claim's own verdict: css class, text, and why (its title)."""
    why = {"imported": "imported from a bundle; robench verify has not re-scored it: its numbers are claims",
           "verified": "the maintainer re-scored it from its artifacts under the task's protocol: the same metrics",
           "unverified": "the maintainer re-scored it from its artifacts: some metrics differ from the claim",
           "skipped": "robench verify could not re-score it" + (f": {note}" if note else "")}
    return {"status": status, "text": _STATUS_TEXT.get(status, status), "title": why.get(status, status)}


def _verdict(rows: list[dict]) -> dict | None:
    """A configuration's badge from the verdicts of the rows it counts, and of those only
    (never another claim's of the same run id): None when every one was computed here;
    "claimed, not verified" when one is a claim not re-scored to the same metrics (possible
    with ``include_unverified``); "verified" when every imported one was."""
    imported = [r for r in rows if r["origin"] != LOCAL]
    if not imported:
        return None
    local = len(rows) - len(imported)
    here = f"; {local} computed here" if local else ""
    claims = [r for r in imported if claim_status(r["origin"], r["verification"]) != "verified"]
    if claims:
        return {"status": "claimed", "text": "claimed, not verified",
                "title": f"{len(claims)} of {len(rows)} run(s) counted here are claims from bundles that robench "
                         f"verify did not confirm (not re-scored, different, or not re-scorable){here}"}
    return {"status": "verified", "text": "verified",
            "title": f"{len(imported)} imported run(s) re-scored by the maintainer from their artifacts: "
                     f"the same metrics{here}"}


ALLOWED_ARTIFACTS = (".png", ".jpg", ".jpeg", ".csv", ".json", ".npz", ".pt")
_IMAGES = (".png", ".jpg", ".jpeg")


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
        return True
    except ValueError:
        return False


def _store_folders(private: Iterable[str | Path]) -> list[Path]:
    """The stores' folders given in ``private`` (a store file stands for its folder)."""
    out = []
    for p in private:
        if not p:
            continue
        p = Path(p).expanduser().resolve()
        out.append(p.parent if p.suffix in (".sqlite", ".db") or p.is_file() else p)
    return out


class _Artifacts:
    """Publishes run artifacts under the site (``artifacts/<run>/<file>``), once each: only
    files of an allowed type (:data:`ALLOWED_ARTIFACTS`) that resolve, symlinks followed,
    inside the store's own artifact folder (the row's ``artifact_root``; without one, a
    ``<store>/artifacts/<run id>/`` folder of a store in ``private``). Anything else is
    listed by name only: not copied, not linked."""

    def __init__(self, out_dir: Path, copy: bool, private: Iterable[str | Path] = ()):
        self.root = out_dir / "artifacts"
        self.copy = copy
        self.stores = _store_folders(private)
        self.placed: dict[Path, Path] = {}  # site file → the store file it is a copy of (this build)

    def _allowed_root(self, run_id: str, artifact_root: Any, path: Path) -> Path | None:
        """The folder ``path`` (resolved) lies in and may be published from, or None."""
        if isinstance(artifact_root, str) and artifact_root.strip():
            root = Path(artifact_root).expanduser().resolve()
            return root if _inside(path, root) else None
        for store in self.stores:
            folder = (store / "artifacts" / str(run_id)).resolve()
            if _inside(path, folder):
                return folder
        return None

    def publish(self, run_id: str, folder: str, artifacts: dict, artifact_root: Any, page_dir: Path) -> list[dict]:
        out = []
        for name, path in artifacts.items():
            text = str(path)
            shown = _artifact_name(run_id, text)
            entry = {"name": str(name), "file": shown, "href": None, "note": "", "image": None}
            out.append(entry)
            if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", text):
                entry["note"] = "not published (remote)"
                continue
            given = Path(text).expanduser()
            if not given.is_absolute():  # relative to the store's artifact folder, or to nothing
                given = Path(artifact_root) / given if isinstance(artifact_root, str) and artifact_root else None
            try:
                resolved = given.resolve() if given is not None else None  # symlinks followed
            except (OSError, ValueError):  # a NUL byte, a symlink loop: nothing to publish
                resolved = None
            if resolved is None or self._allowed_root(run_id, artifact_root, resolved) is None:
                entry["note"] = "not published (outside the store)"
                continue
            if not (shown.lower().endswith(ALLOWED_ARTIFACTS) and resolved.name.lower().endswith(ALLOWED_ARTIFACTS)):
                entry["note"] = "not published (type not allowed)"
                continue
            if not self.copy:
                entry["note"] = "left out of this site"
                continue
            if not resolved.is_file():
                entry["note"] = "missing"
                continue
            target = self.root / folder / shown
            if self.placed.get(target, resolved) != resolved:  # another file of the same name: keep both
                target = target.with_name(f"{_hash8(str(resolved))}-{target.name}")
            if not _inside(target.resolve(), self.root.resolve()):  # (shown is sanitised: never happens)
                entry["note"] = "not published (outside the store)"
                continue
            if target not in self.placed:
                source = resolved.stat()
                if not (target.is_file() and target.stat().st_size == source.st_size
                        and target.stat().st_mtime_ns == source.st_mtime_ns):  # (an earlier build's copy)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(resolved, target)
                self.placed[target] = resolved
            entry["href"] = Path(os.path.relpath(target, page_dir)).as_posix()
            entry["image"] = entry["href"] if shown.lower().endswith(_IMAGES) else None
        return out


def _safe_component(part: str) -> str:
    part = re.sub(r"[^A-Za-z0-9._+-]+", "_", part).lstrip(".")
    return part[:100] or "artifact"


def _artifact_name(run_id: str, path: str) -> str:
    """The artifact's path inside its run folder (``<store>/artifacts/<id>/model.pt`` →
    ``model.pt``), or its file name; each component file-safe (no "..", no hidden file)."""
    parts = [p for p in re.split(r"[/\\]+", path) if p]
    tail = parts[-1:] or ["artifact"]
    if run_id in parts:
        after = parts[len(parts) - 1 - parts[::-1].index(run_id) + 1:]
        if after and ".." not in after and "." not in after:
            tail = after
    return "/".join(_safe_component(p) for p in tail)


class _Names:
    """Safe file names, unique case-insensitively (macOS and Windows file systems), one per key."""

    def __init__(self, reserved: Iterable[str] = ()):
        self._used = {r.lower() for r in reserved}
        self._given: dict[Any, str] = {}

    def __call__(self, key: Any, text: str | None = None) -> str:
        if key not in self._given:
            base = _safe_name(str(key) if text is None else text)
            name, i = base, 0
            while name.lower() in self._used:
                i += 1
                name = f"{base[:90]}-{_hash8(repr((key, i)))}"
            self._used.add(name.lower())
            self._given[key] = name
        return self._given[key]


def _bundle_sha(origin: str) -> str:
    """The bundle's SHA-256 of an origin ``bundle:<sha256>`` (hex digits only)."""
    return re.sub(r"[^0-9a-f]", "", origin.partition(":")[2].lower())


def _claim_text(run_id: str, origin: str) -> str:
    """The file name of an imported claim's page: ``<run id>-<first 12 of the bundle's sha256>``."""
    return f"{run_id}-{_bundle_sha(origin)[:12] or _hash8(origin)}"


def _kernels(value: Any) -> list[dict]:
    """A kernel set dict (cpu_capability, onednn_isa, cuda_capability) as labelled lines."""
    labels = {"cpu_capability": "CPU capability", "onednn_isa": "oneDNN ISA", "cuda_capability": "CUDA capability"}
    kernels = as_dict(value)
    return [{"key": k, "label": labels.get(k, str(k)), "value": _format_value(v)}
            for k, v in sorted(kernels.items(), key=lambda kv: (kv[0] not in labels, list(labels).index(kv[0])
                                                                 if kv[0] in labels else 0, kv[0]))]


class _Site:
    """What every page of one build shares."""

    def __init__(self, out_dir: Path, env, plots: bool, generated: str, title: str, artifacts: _Artifacts,
                 roots: list[str], pages: _Names, folders: _Names, include_unverified: bool):
        self.out_dir, self.env, self.plots, self.generated, self.title = out_dir, env, plots, generated, title
        self.artifacts, self.roots, self.pages, self.folders = artifacts, roots, pages, folders
        self.include_unverified = include_unverified
        self.version = _robench_version()

    def config_page(self, config_id: str) -> str:
        return self.pages(("config", config_id), config_id) + ".html"

    def claim_page(self, run_id: str, origin: str) -> str:
        return self.pages(("claim", run_id, origin), _claim_text(run_id, origin)) + ".html"


def _plot_names(plots: Any) -> list[dict]:
    """A task's declared plots with file-safe, distinct names; entries that are no plot are dropped."""
    out, seen = [], set()
    for plot in plots if isinstance(plots, (list, tuple)) else ():
        if not isinstance(plot, dict):
            continue
        plot = {k: v for k, v in plot.items() if isinstance(k, str)}
        for key in ("x", "y", "kind", "mark"):
            if key in plot and not isinstance(plot[key], str):
                plot.pop(key)
        if "metrics" in plot:
            plot["metrics"] = _metric_names(plot["metrics"])
        base = re.sub(r"[^A-Za-z0-9_-]+", "_", str(plot.get("name") or "plot")).strip("_-")[:60] or "plot"
        name, i = base, 1
        while name.lower() in seen:
            i += 1
            name = f"{base}-{i}"
        seen.add(name.lower())
        out.append({**plot, "name": name})
    return out


def _metric_names(value: Any) -> list[str]:
    """The metric names of a list that may come from a bundle: strings that name no path."""
    return [str(m) for m in value if isinstance(m, str) and not re.search(r"[/\\\x00-\x1f]", m)] \
        if isinstance(value, (list, tuple)) else []


def clean_task_info(info: Any) -> dict:
    """A ``task_info`` dict as the report may use it, whatever a bundle's ``task_info.json``
    held: keys of the wrong type dropped (the defaults apply), plot names file-safe and
    distinct, metric names that hold a path separator left out."""
    info = as_dict(info)
    out: dict[str, Any] = {}
    if isinstance(info.get("primary_metric"), str):
        out["primary_metric"] = info["primary_metric"]
    if isinstance(info.get("greater_is_better"), bool):
        out["greater_is_better"] = info["greater_is_better"]
    for key in ("headline_metrics", "sweep_params", "label_params"):
        if key in info:
            out[key] = _metric_names(info[key])
    described = info.get("metrics_info")
    if isinstance(described, dict):
        out["metrics_info"] = {str(k): [str(v[0]), *v[1:]] for k, v in described.items()
                               if isinstance(v, (list, tuple)) and v and isinstance(v[0], str)}
    if "plots" in info:
        out["plots"] = _plot_names(info["plots"])
    if "reference_methods" in info:
        out["reference_methods"] = _metric_names(info["reference_methods"])
    bounds = info.get("reference_bounds")
    if isinstance(bounds, dict):
        out["reference_bounds"] = {str(k): v for k, v in bounds.items() if v in ("upper", "lower", "")}
    trade = info.get("tradeoff")
    if isinstance(trade, dict) and all(isinstance(trade.get(k), str) for k in ("x", "y")) \
            and isinstance(trade.get("within", 0.01), (int, float)) and not isinstance(trade.get("within"), bool):
        out["tradeoff"] = {"x": trade["x"], "y": trade["y"], "within": float(trade.get("within", 0.01))}
    variants = info.get("variants")
    if isinstance(variants, dict):
        out["variants"] = {str(k): {"primary": str(v["primary"]) if isinstance(v.get("primary"), str) else None,
                                    "headline": _metric_names(v.get("headline"))}
                           for k, v in variants.items() if isinstance(v, dict)}
    reasons = info.get("nan_reasons")
    if isinstance(reasons, dict):
        out["nan_reasons"] = {str(k): v for k, v in reasons.items() if isinstance(v, str)}
    return out


def _run_context(r: dict, names: list[str], headline: list[dict], site: _Site, page_dir: Path) -> dict:
    """One run (one row: a run id and its origin) as its sections show it."""
    metrics = as_dict(r["metrics"])
    trust = _trust(r["origin"], r["verification"])
    ordered_names = [n for n in names if n in metrics] + [n for n in metrics if n not in names]
    info = r.get("task_info") if isinstance(r.get("task_info"), dict) else {}
    lines = [{**_metric_line(n, metrics[n], info, metrics, str(r.get("method") or "")), "kind": _metric_kind(trust, n)}
             for n in ordered_names]
    groups = {kind: [m for m in lines if m["kind"] == kind] for kind in ("rescored", "differs", "claimed")}
    provenance = scrub_value(as_dict(r["provenance"]), site.roots)
    local = trust["local"]
    folder = site.folders((r["id"], r["origin"]), r["id"] if local else _claim_text(r["id"], r["origin"]))
    return {
        "id": r["id"], "anchor": "run-" + _safe_name(r["id"]), "seed": r["seed"], "status": r["status"],
        "origin": r["origin"], "local": local,
        "page": None if local else site.claim_page(r["id"], r["origin"]),
        "metrics": lines, "groups": groups,
        "metric_cells": [{"text": "—" if undefined_reason(c["name"], metrics, str(r.get("method") or ""))
                          else format_number(to_float(metrics.get(c["name"])) * c["scale"]),
                          "claimed": not local and c["name"] in metrics
                          and _metric_kind(trust, c["name"]) != "rescored"} for c in headline],
        "first_broken": [{**t, "rows": [{**row, "shares": [format_number(to_float(v) * 100, 3) for v in row["shares"]]}
                                        for row in t["rows"]]}
                         for t in first_broken_shares(metrics)],
        "task_params": _effective_params(scrub_value(r["task_params"], site.roots), metrics, info),
        "method_params": scrub_value(r["method_params"], site.roots),
        "provenance": {k: v for k, v in provenance.items() if k != "kernels"},
        "kernels": _kernels(provenance.get("kernels")),
        "artifacts": site.artifacts.publish(r["id"], folder, as_dict(r["artifacts"]), r.get("artifact_root"),
                                            page_dir),
        "error": None if is_missing(r["error"]) else scrub_text(r["error"], site.roots),
        "started_at": r["started_at"], "finished_at": r["finished_at"], "duration_s": r["duration_s"],
        "task_version": r["task_version"], "method_version": r["method_version"],
        "suites": r["suites"], "check": None if local else _check_context(r, trust, site),
    }


def _effective_params(params: dict, metrics: dict, info: dict) -> dict:
    """A run's task parameters as a reader needs them: a parameter a level plot marks (the
    training level) left at None shows "default" and the level the plot marks."""
    out = dict(params)
    from .labels import level_curve
    from .site_plots import marked_level

    for plot in info.get("plots") or ():
        mark = plot.get("mark") if isinstance(plot, dict) else None
        if isinstance(mark, str) and mark in out and out[mark] is None:
            import pandas as pd

            curve = level_curve(list(metrics), str(plot.get("y", "psnr")))
            level = marked_level(pd.DataFrame({"task_params": [params], "metrics": [metrics]}), None, curve)
            out[mark] = f"default (level {format_number(level)})" if math.isfinite(level) else "default"
    return out


def _check_context(r: dict, trust: dict, site: _Site) -> dict:
    """A claim's origin and verdict as its page tells it."""
    check = as_dict(r["verification"])
    status = trust["status"]
    sha = _bundle_sha(r["origin"]) or str(check.get("bundle_sha256") or "")
    diffs = []
    for name, d in sorted(as_dict(check.get("differences")).items()):
        d = as_dict(d)
        shown = {k: _metric_line(name, d.get(k))["shown"] if isinstance(d.get(k), (int, float))
                 else _format_value(d.get(k)) for k in ("claimed", "rescored")}
        diffs.append({"metric": name, "label": metric(name).label, "claimed": d.get("claimed"),
                      "rescored": d.get("rescored"), "tolerance": d.get("tolerance"),
                      "claimed_shown": shown["claimed"], "rescored_shown": shown["rescored"]})
    claimed_listed = check.get("claimed")
    note = check.get("note")
    return {"status": status, "badge": _claim_badge(status, note),
            "source": None if is_missing(check.get("source")) else last_component(str(check.get("source"))),
            "sha256": sha, "sha12": sha[:12], "imported_at": check.get("imported_at"),
            "checked_at": check.get("checked_at"),
            "rescored": sorted(trust["rescored"]), "differences": diffs,
            "claimed_listed": [str(m) for m in claimed_listed] if isinstance(claimed_listed, (list, tuple)) else [],
            "note": None if is_missing(note) or not note else scrub_text(note, site.roots),
            "verifier_kernels": _kernels(check.get("kernels")),
            "same_kernels": bool(check.get("kernels")) and as_dict(check.get("kernels"))
            == as_dict(as_dict(r["provenance"]).get("kernels"))}


def _why_unranked(r: dict, counted_by_id: dict, include_unverified: bool) -> str:
    """Why a claim is not ranked: its own verdict first, then the run that is ranked instead."""
    status = claim_status(r["origin"], r["verification"])
    other = counted_by_id.get(r["id"])
    duplicate = None if other is None else (
        "the same run id is ranked from the run computed here" if other["origin"] == LOCAL
        else "the same run id is ranked from another bundle's claim")
    if status == "verified" or include_unverified:
        return duplicate or "not ranked"
    check = as_dict(r["verification"])
    differ = ", ".join(sorted(str(m) for m in as_dict(check.get("differences"))))
    note = check.get("note")
    own = {"imported": "not re-scored yet (robench verify)",
           "unverified": "re-scored from its artifacts, it differs" + (f" in {differ}" if differ else ""),
           "skipped": "robench verify could not re-score it" + (f": {note}" if note else "")}.get(
        status, "not verified")
    return f"{own}; {duplicate}" if duplicate else own


def _setting_pages(task: str, task_file: str, setting: str, rows_all, site: _Site, shown: str | None = None) -> dict:
    """Render the pages of one setting (its configurations' and its claims'); return the
    context of its section on the task page."""
    roots = site.roots
    counted = rows_all[rows_all["counted"]]
    imported = rows_all[rows_all["origin"] != LOCAL]
    info_task = task_info(rows_all)
    basis = counted if len(counted) else rows_all
    names = metric_order(basis)
    stored_primary = mode(rows_all["primary_metric"])
    setting_params = as_dict(mode(json.dumps(as_dict(p), sort_keys=True, default=str)
                                  for p in basis["task_params"]) or "{}")
    # a setting's parameters may promote variants (y_channel: PSNR-Y leads and ranks)
    primary, headline_names = setting_metrics(task, info_task, setting_params, names, stored_primary)
    greater_is_better = _greater(info_task, primary, rows_all, stored_primary)
    if primary in names:
        names = [primary] + [n for n in names if n != primary]
    shown_setting = scrub_label(setting if shown is None else shown, roots)
    setting_id = "setting-" + _slug(setting, shown=shown_setting)
    headline = [_column(n, info_task) for n in headline_names]
    every = [_column(n, info_task) for n in names]
    references = set(reference_methods(task, info_task))
    colours = method_colors(list(dict.fromkeys(rows_all["method_label"])))
    runs_dir = site.out_dir / "runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    counted_records = counted.to_dict("records")
    counted_by_id = {r["id"]: r for r in counted_records}

    rows = []
    if len(counted):
        info, stats = summarize_configs(counted)
        for config_id in info.index:
            members = [r for r in counted_records if r["config_id"] == config_id]
            method = info.at[config_id, "method"]
            means = {c["name"]: to_float(stats.at[config_id, (c["name"], "mean")]) if (c["name"], "mean") in stats
                     else math.nan for c in every}
            cells = [_metric_cell(stats, config_id, c, members, _why_undefined(c, means, method, info_task))
                     for c in headline]
            primary_mean = cells[0]["mean"] if primary is not None and cells and headline[0]["name"] == primary \
                else math.nan
            rows.append({
                "config_id": config_id,
                "page": "runs/" + site.config_page(config_id),
                "method": info.at[config_id, "method"],
                "method_label": scrub_label(info.at[config_id, "method_label"], roots),
                "colour": colours[str(info.at[config_id, "method_label"])],
                "n_runs": int(info.at[config_id, "n_runs"]),
                "n_done": int(info.at[config_id, "n_done"]),
                "n_failed": int(info.at[config_id, "n_failed"]),
                "cells": cells,
                "all_cells": [_metric_cell(stats, config_id, c, members, _why_undefined(c, means, method, info_task))
                              for c in every],
                "verdict": _verdict(members),
                "reference": method in references,
                "means": means,
                "stds": {c["name"]: to_float(stats.at[config_id, (c["name"], "std")])
                         if (c["name"], "std") in stats else math.nan for c in every},
                "primary_n": cells[0]["n"] if cells else 0,
                "_key": sort_key_best_first(primary_mean, greater_is_better),
            })
    order = rank_rows(rows, task, info_task, greater_is_better, primary)
    on_board = {row["config_id"]: row for row in rows}

    def seed_order(records: list[dict]) -> list[dict]:
        return sorted(records, key=lambda r: (is_missing(r["seed"]), to_float(r["seed"])
                                              if not is_missing(r["seed"]) else 0))

    unranked = []
    for r in seed_order(imported[~imported["counted"]].to_dict("records")):
        check = as_dict(r["verification"])
        status = claim_status(r["origin"], check)
        value = to_float(as_dict(r["metrics"]).get(primary)) if primary is not None else math.nan
        scale = metric(str(primary)).scale if primary is not None else 1.0
        unranked.append({
            "id": r["id"], "seed": r["seed"], "status": r["status"],
            "method_label": scrub_label(r["method_label"], roots), "colour": colours[str(r["method_label"])],
            "page": "runs/" + site.claim_page(r["id"], r["origin"]),
            "config_page": on_board[r["config_id"]]["page"] if r["config_id"] in on_board else None,
            "badge": _claim_badge(status, check.get("note")),
            "why": scrub_text(_why_unranked(r, counted_by_id, site.include_unverified), roots),
            "source": None if is_missing(check.get("source")) else last_component(str(check.get("source"))),
            "sha12": _bundle_sha(r["origin"])[:12],
            "primary_text": format_number(value * scale),
            "primary_kind": _metric_kind(_trust(r["origin"], check), str(primary)),
            "config_id": r["config_id"],
        })
    unranked.sort(key=lambda c: (c["method_label"], is_missing(c["seed"]), to_float(c["seed"])))

    common = dict(task=task, task_page=f"../{task_file}.html", setting=shown_setting, setting_anchor=setting_id,
                  columns=headline, primary=primary, greater_is_better=greater_is_better,
                  generated=site.generated, version=site.version, root="../", site_title=site.title)
    template = site.env.get_template("runs.html")
    for row in rows:
        records = seed_order([r for r in counted_records if r["config_id"] == row["config_id"]])
        run_list = [_run_context(r, names, headline, site, runs_dir) for r in records]
        first = records[0]
        html = template.render(
            title=row["method_label"], row=row, runs=run_list,
            other_claims=[c for c in unranked if c["config_id"] == row["config_id"]],
            task_params=scrub_value(first["task_params"], roots),
            method_params=scrub_value(first["method_params"], roots),
            task_version=first["task_version"], method_version=first["method_version"], **common)
        (site.out_dir / row["page"]).write_text(html, encoding="utf-8")

    claim_template = site.env.get_template("claim.html")
    for r in imported.to_dict("records"):
        run = _run_context(r, names, headline, site, runs_dir)
        board_row = on_board.get(r["config_id"]) if r["counted"] else None
        html = claim_template.render(
            title=f"{scrub_label(r['method_label'], roots)} — claim {_claim_text(r['id'], r['origin'])}",
            run=run, method_label=scrub_label(r["method_label"], roots), colour=colours[str(r["method_label"])],
            method=r["method"], config_id=r["config_id"],
            config_page=f"../{on_board[r['config_id']]['page']}" if r["config_id"] in on_board else None,
            ranked=board_row is not None,
            why=None if r["counted"] else scrub_text(_why_unranked(r, counted_by_id, site.include_unverified),
                                                     roots),
            include_unverified=site.include_unverified, **common)
        (runs_dir / run["page"]).write_text(html, encoding="utf-8")

    images, plot_note = [], None
    if site.plots and len(counted) and int((counted["status"] == "done").sum()):
        from .site_plots import setting_plots

        plot_dir = site.out_dir / "plots" / task_file
        try:
            drawn = setting_plots(counted.assign(task_label=shown_setting), info_task,
                                  plot_dir / _slug(setting, shown=shown_setting),
                                  task=task, sweep=bool(info_task.get("sweep_params")))
        except Exception as exc:  # one setting's plots never stop the site: say so on the page
            drawn = []
            plot_note = scrub_text(f"The plots of this setting could not be drawn "
                                   f"({type(exc).__name__}: {str(exc)[:200]}).", roots)
        for plot in drawn:
            paths = plot["paths"]
            if "png" in paths:
                images.append({
                    "name": plot["name"],
                    "png": paths["png"].relative_to(site.out_dir).as_posix(),
                    "svg": paths["svg"].relative_to(site.out_dir).as_posix() if "svg" in paths else None,
                    "alt": plot["caption"], "size": _svg_size(paths.get("svg")),
                })

    statuses = Counter(counted["status"])
    return {
        "label": shown_setting, "anchor": setting_id, "rows": rows, "columns": headline, "all_columns": every,
        "order": order, "task": task,
        "primary": primary, "primary_column": headline[0] if headline and headline[0]["name"] == primary else None,
        "greater_is_better": greater_is_better,
        "n_configs": len(rows), "n_runs": len(counted), "n_done": statuses.get("done", 0),
        "n_failed": statuses.get("failed", 0), "images": images, "plot_note": plot_note,
        "unranked": unranked, "include_unverified": site.include_unverified,
        "n_claims_ranked": sum(1 for r in counted_records if r["origin"] != LOCAL),
    }


def _metric_line(name: str, value: Any, info: dict | None = None, metrics: dict | None = None,
                 method: str = "") -> dict:
    """One metric of a run page: readable label, value in display units, the stored value;
    a missing value says why, and so does one that means nothing for the run (``metrics``:
    the run's, ``method``: its method; a dense model's speed-up)."""
    m = metric(name)
    shown = format_number(to_float(value) * m.scale, 6)
    why = undefined_reason(name, metrics, method) if metrics is not None else None
    if why:
        shown = f"— ({why})"
    elif shown == "—" and info is not None:
        shown = f"— ({nan_reason(name, info)})"
    return {"name": name, "label": m.label, "unit": m.unit,
            "shown": shown + (f" {m.unit}" if m.unit and not shown.startswith("—") else ""), "raw": value}


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


def mini_chart(rows: list[dict], primary: dict | None, greater_is_better: bool, references: list[dict] = ()):
    """An inline SVG of the first configurations' primary mean ± std (a dot per row), the
    leader's dot filled (hollow when it ties the next), ``references`` as dashed vertical
    lines; escaped text; no script, no external reference."""
    import markupsafe

    pts = [r for r in rows[:MINI_ROWS] if primary is not None and math.isfinite(r["cells"][0]["mean"])]
    refs = [r for r in references if primary is not None and r["cells"] and math.isfinite(r["cells"][0]["mean"])]
    if len(pts) < 2:
        return markupsafe.Markup("")
    scale = primary["scale"]
    lo = min([(r["cells"][0]["mean"] - (r["cells"][0]["std"] if math.isfinite(r["cells"][0]["std"]) else 0))
              for r in pts] + [r["cells"][0]["mean"] for r in refs]) * scale
    hi = max([(r["cells"][0]["mean"] + (r["cells"][0]["std"] if math.isfinite(r["cells"][0]["std"]) else 0))
              for r in pts] + [r["cells"][0]["mean"] for r in refs]) * scale
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
    for r in refs:
        rx = x(r["cells"][0]["mean"] * scale)  # (a reference: where the contenders stand against it)
        parts.append(f'<line class="ref" x1="{rx:.1f}" y1="0" x2="{rx:.1f}" y2="{height}" stroke="#3c3c3c" '
                     f'stroke-dasharray="3 3"><title>reference {e(r["method_label"])}: '
                     f'{e(r["cells"][0]["mean_text"])}</title></line>')
    lead_tied = len(pts) > 1 and pts[1].get("rank") is not None and pts[1].get("rank") == pts[0].get("rank")
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
                     f'fill="{r["colour"] if i == 0 and not lead_tied else "#fff"}" stroke="{r["colour"]}"/>')
        parts.append(f'<text class="v" x="{width - right + 6}" y="{y + 4:.1f}">{e(r["cells"][0]["mean_text"])}</text>')
    parts.append("</svg>")
    return markupsafe.Markup("".join(parts))


def _leaders(section: dict) -> dict:
    """The index's view of one setting: its first two contenders (references are no
    contenders), named "leader" and "runner-up" only when the first is not tied with the
    second (within the seeds' spread, or one seed only): "tie" otherwise."""
    order = section["order"]
    ranked = [r for r in section["rows"] if not r["reference"] and r["cells"]
              and section["primary_column"] is not None and math.isfinite(r["cells"][0]["mean"])]
    if order["mode"] == "tradeoff" and ranked and not ranked[0]["within"]:
        order = {**order, "mode": "primary", "none_within": True}  # nobody within: by the primary metric
    leader = ranked[0] if ranked else None
    runner = ranked[1] if len(ranked) > 1 else None
    tie = runner is not None and runner["rank"] == leader["rank"]
    return {"label": section["label"], "anchor": section["anchor"], "primary": section["primary_column"],
            "greater_is_better": section["greater_is_better"], "leader": leader,
            "runner_up": runner, "tie": tie, "order": order, "n_configs": section["n_configs"],
            "n_runs": section["n_runs"], "n_failed": section["n_failed"], "n_unranked": len(section["unranked"]),
            "x_column": next((c for c in section["all_columns"] if c["name"] == order.get("x")), None),
            "references": [r for r in section["rows"] if r["reference"]],
            "chart": mini_chart([r for r in section["rows"] if not r["reference"] and r["cells"]
                                 and section["primary_column"] is not None and math.isfinite(r["cells"][0]["mean"])],
                                section["primary_column"], section["greater_is_better"],
                                references=[r for r in section["rows"] if r["reference"]])}


def _model_sections(task: str, task_file: str, counted, site: _Site) -> list[dict]:
    """The model leaderboards of one task (see :func:`robench.report.ranking.model_boards`),
    as the task page and the index show them: per protocol, every model that ran it ranked
    by the setting's primary metric, with the headline columns."""
    info = task_info(counted)
    boards = model_boards(counted, task, info)
    sections = []
    for b in boards:
        runs = b["runs"]
        names = list(dict.fromkeys(n for m in runs["metrics"] for n in as_dict(m)))
        headline = [_column(n, info) for n in b["headline"][:6] if n in names]
        _, stats = summarize_configs(runs)
        rows = []
        for r in b["rows"]:
            cid = r["config_id"]
            members = runs[runs["config_id"] == cid].to_dict("records")
            method = str(members[0]["method"]) if members else ""
            means = {c["name"]: to_float(stats.at[cid, (c["name"], "mean")]) if (c["name"], "mean") in stats
                     else math.nan for c in headline}
            cells = [_metric_cell(stats, cid, c, members, _why_undefined(c, means, method, info)) for c in headline]
            rows.append({**{k: v for k, v in r.items()}, "model": scrub_label(r["model"], site.roots),
                         "page": "runs/" + site.config_page(cid), "cells": cells,
                         "verdict": _verdict(members)})
        setting = scrub_label(b["setting"], site.roots) or "(default setting)"
        configuration = scrub_label(b["configuration"], site.roots)
        sections.append({
            "anchor": "models-" + _slug(b["key"], shown=f"{configuration} {setting}"),
            "setting": setting, "configuration": configuration, "rows": rows, "columns": headline,
            "primary_column": headline[0] if headline and headline[0]["name"] == b["primary"] else None,
            "greater_is_better": b["greater_is_better"], "n_models": len(rows),
            "tie": len(rows) > 1 and rows[0]["rank"] == rows[1]["rank"],
            "n_yours": sum(1 for r in rows if r["yours"]),
        })
    return sections


def write_leaderboard(df, out_dir, *, title: str = "robench leaderboard", plots: bool = True,
                      artifacts: bool = True, private: Iterable[str | Path] = (),
                      include_unverified: bool = False) -> Path:
    """Write the static leaderboard site for results table ``df`` into ``out_dir``.

    ``df`` is ``robench.api.merged_results()``: one row per (run id, origin); ``origin`` is
    ``"local"`` or ``"bundle:<sha256>"``, ``verification`` the claim's own verdict, and
    ``artifact_root`` the store's artifact folder (the only place artifacts are published
    from). Rankings, tables, plots and leaders use local runs and verified claims only, one
    row per run id (local first); every other claim has its own page and is listed under
    "Unranked claims" on its task page. ``include_unverified=True`` ranks every claim too,
    each badged "claimed, not verified". Returns the path of ``index.html``.
    ``plots=False`` skips the plots (faster; the tables are unchanged); ``artifacts=False``
    lists the runs' artifacts without copying them. ``private``: folders (the stores') that
    never appear on a page; the home folder never does either. Files of earlier builds in
    ``out_dir`` are overwritten, never deleted.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    env = _environment()
    if len(df):
        df = df.assign(task_info=[clean_task_info(v) for v in column(df, "task_info")])
    runs = normalize(df)
    runs["origin"] = origins(df)
    runs["artifact_root"] = [str(v) if isinstance(v, (str, Path)) and str(v) else None
                             for v in column(df, "artifact_root")]
    runs["counted"] = counted_rows(runs, include_unverified)
    generated = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()
    tasks = sorted(runs["task"].unique())
    task_files = _Names(_RESERVED_PAGES)
    pages = _Names()
    for config_id in sorted(runs.loc[runs["counted"], "config_id"].unique()):  # file names fixed in one order
        pages(("config", config_id), config_id)
    for run_id, origin in sorted(zip(runs["id"], runs["origin"])):
        if origin != LOCAL:
            pages(("claim", run_id, origin), _claim_text(run_id, origin))
    site = _Site(out_dir, env, plots, generated, title, _Artifacts(out_dir, artifacts, private),
                 private_roots(private), pages, _Names(), include_unverified)

    cards = []
    for task in tasks:
        task_runs = runs[runs["task"] == task]
        task_file = task_files(task)
        labels = sorted(task_runs["task_label"].unique())
        shown, shared = distinct_labels(labels)
        settings = [_setting_pages(task, task_file, setting, task_runs[task_runs["task_label"] == setting], site,
                                   shown=shown[setting]) for setting in labels]
        models = _model_sections(task, task_file, task_runs[task_runs["counted"]], site)
        html = env.get_template("task.html").render(
            title=f"{task} — {title}", site_title=title, task=task, settings=settings, models=models,
            shared=[scrub_label(p, site.roots) for p in shared], include_unverified=include_unverified,
            n_unranked=sum(len(s["unranked"]) for s in settings),
            generated=generated, version=site.version, root="",
        )
        (out_dir / f"{task_file}.html").write_text(html, encoding="utf-8")

        ranked = task_runs[task_runs["counted"]]
        statuses = Counter(ranked["status"])
        finished = [str(v) for v in ranked["finished_at"] if not is_missing(v)]
        leaders = [_leaders(s) for s in settings]
        cards.append({
            "task": task, "page": f"{task_file}.html", "anchor": "task-" + task_file,
            "n_settings": len(settings),
            "n_configs": int(ranked["config_id"].nunique()),
            "n_runs": len(ranked), "n_done": statuses.get("done", 0),
            "n_failed": statuses.get("failed", 0),
            "n_unranked": sum(len(s["unranked"]) for s in settings),
            "primary": sorted({str(s["primary"]) for s in settings if s["primary"] is not None}),
            "suites": sorted({s for lst in ranked["suites"] for s in lst}),
            "last_finished": max(finished) if finished else None,
            "settings": leaders, "models": models,
            "filter": " ".join([task] + [s["label"] for s in settings]
                               + [r["method_label"] for s in settings for r in s["rows"]]
                               + [r["model"] for b in models for r in b["rows"]]).lower(),
        })

    index = out_dir / "index.html"
    index.write_text(env.get_template("index.html").render(
        title=title, site_title=title, cards=cards, generated=generated, version=site.version, root="",
        n_runs=int(runs["counted"].sum()) if len(runs) else 0,
        n_unranked=sum(c["n_unranked"] for c in cards), include_unverified=include_unverified,
    ), encoding="utf-8")
    return index
