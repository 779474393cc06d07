"""The results table (``robench.results()``): normalisation, run selection, summaries,
the mean ± std text and the one ordering of labels that the leaderboard, the plots and
every paper figure use.

Reads only the table; never imports a task. What the report knows of a task comes with
its runs: the ``task_info`` column (the task's ``report_info()``: primary metric, sweep
axes, headline metrics, plots), an empty dict for runs stored before it was recorded. An
optional ``verification`` column (a dict: ``robench verify``'s verdict on an imported run)
is carried along.
Importing this module is cheap: pandas is imported inside the functions.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

STATS = ("mean", "std", "count")


# ---------------------------------------------------------------------------- cells

def as_dict(value: Any) -> dict:
    """A dict-valued cell (metrics, params, provenance...), tolerating None/NaN/JSON text."""
    if isinstance(value, dict):
        return value
    if isinstance(value, str) and value.strip().startswith("{"):
        try:
            loaded = json.loads(value)
            return loaded if isinstance(loaded, dict) else {}
        except ValueError:
            return {}
    return {}


def is_missing(value: Any) -> bool:
    """None or a float NaN."""
    if value is None:
        return True
    try:
        return bool(isinstance(value, float) and math.isnan(value))
    except TypeError:
        return False


def to_float(value: Any) -> float:
    """``float(value)``, NaN for what is not a number (None, text)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def column(df, name: str, default: Any = None) -> list:
    """Column ``name`` as a list, or ``default`` repeated when the table lacks it."""
    if name in df.columns:
        return list(df[name])
    return [default] * len(df)


def mode(values: Iterable[Any], default: Any = None) -> Any:
    """The most frequent non-missing value (the first seen among ties), else ``default``."""
    counts = Counter(v for v in values if not is_missing(v))
    return counts.most_common(1)[0][0] if counts else default


def task_info(runs) -> dict:
    """The ``task_info`` of ``runs`` (one task's rows all carry the same); {} when none is stored."""
    return next((info for info in map(as_dict, column(runs, "task_info")) if info), {})


def metric_values(runs, names: Iterable[str]):
    """One float column per metric name (NaN where a run lacks it), indexed like ``runs``."""
    import pandas as pd

    names = list(names)
    return pd.DataFrame([{n: to_float(as_dict(m).get(n)) for n in names} for m in column(runs, "metrics")],
                        index=runs.index, columns=names, dtype=float)


# ---------------------------------------------------------------------------- normalisation

def normalize(df):
    """A copy of the results table with every column the report reads present and typed.

    Without a ``config_id`` every run is its own configuration; each sweep parameter of the
    run's ``task_info`` moves from the setting label into the method label (:func:`fold_sweeps`).
    Normalising a normalised table changes nothing.
    """
    import pandas as pd

    out = pd.DataFrame(index=range(len(df)))
    ids = [str(v) for v in column(df, "id", None)]
    if "id" not in df.columns:
        ids = [f"run-{i}" for i in range(len(df))]
    out["id"] = ids
    out["task"] = [("(unknown task)" if is_missing(v) else str(v)) for v in column(df, "task")]
    out["method"] = [("" if is_missing(v) else str(v)) for v in column(df, "method")]
    labels = column(df, "method_label")
    out["method_label"] = [str(lab) if not is_missing(lab) else m for lab, m in zip(labels, out["method"])]
    out["task_label"] = [("(default setting)" if is_missing(v) or v == "" else str(v))
                         for v in column(df, "task_label")]
    for name in ("task_params", "method_params", "provenance", "artifacts", "task_info", "verification",
                 "components"):
        out[name] = [as_dict(v) for v in column(df, name)]
    fold_sweeps(out)
    config = column(df, "config_id")
    # Without a config id every run is its own configuration (never merge what we cannot tell apart).
    out["config_id"] = [str(c) if not is_missing(c) else f"{t}|{lab}|{i}"
                        for c, t, lab, i in zip(config, out["task"], out["method_label"], out["id"])]
    out["status"] = [("unknown" if is_missing(v) else str(v)) for v in column(df, "status")]
    out["seed"] = column(df, "seed")
    out["primary_metric"] = column(df, "primary_metric")
    out["greater_is_better"] = column(df, "greater_is_better")
    metrics = []
    for m, pm_name, pv in zip(column(df, "metrics"), out["primary_metric"], column(df, "primary_value")):
        m = dict(as_dict(m))
        if not is_missing(pm_name) and pm_name not in m and not is_missing(pv):
            m[pm_name] = pv
        metrics.append(m)
    out["metrics"] = metrics
    for name in ("error", "started_at", "finished_at", "duration_s", "task_version", "method_version"):
        out[name] = column(df, name)
    out["suites"] = [list(v) if isinstance(v, (list, tuple)) else ([] if is_missing(v) else [str(v)])
                     for v in column(df, "suites")]
    return out


def fold_sweeps(out) -> None:
    """Move the value of each sweep parameter (``task_info["sweep_params"]``, e.g.
    ``sparsity=0.9``) from the setting label into the method label, in place, so a sweep is
    one table with a row per value."""
    from robench.spec import short_value

    for i, (params, info) in enumerate(zip(out["task_params"], out["task_info"])):
        for key in info.get("sweep_params") or ():
            if key not in params:
                continue
            component = f"{key}={short_value(params[key])}"
            parts = str(out.at[i, "task_label"]).split(", ")
            if component in parts:  # (absent once folded: normalize may run twice)
                parts.remove(component)
                out.at[i, "task_label"] = ", ".join(parts) or "(default setting)"
                out.at[i, "method_label"] = f"{out.at[i, 'method_label']} @ {component}"


def label_parts(label: str) -> list[str]:
    """``k=v, k=v`` split at its top-level commas (not those inside a JSON list or dict)."""
    parts, depth, quoted, start = [], 0, False, 0
    for i, ch in enumerate(label):
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch in "[{(":
            depth += 1
        elif not quoted and ch in "]})":
            depth -= 1
        elif not quoted and depth == 0 and label.startswith(", ", i):
            parts.append(label[start:i])
            start = i + 2
    parts.append(label[start:])
    return [p for p in parts if p]


def distinct_labels(labels, width: int = 60) -> tuple[dict[str, str], list[str]]:
    """Shorter headings for the settings of one task: ``({label: shown}, shared)`` where the
    components every label has alike are left out of ``shown`` and listed once in ``shared``,
    and a component longer than ``width`` characters is cut with "…" (the run pages keep the
    full parameters). One setting keeps its label whole, but cut alike."""
    labels = list(dict.fromkeys(str(x) for x in labels))
    parts = {lab: label_parts(lab) for lab in labels}
    shared = [p for p in parts[labels[0]] if all(p in parts[lab] for lab in labels)] if len(labels) > 1 else []

    def cut(part: str) -> str:
        if len(part) <= width:
            return part
        key, _, value = part.partition("=")
        try:
            value = json.loads(value)
        except ValueError:
            value = None
        if isinstance(value, dict):  # what names it first: {"recipe": ..., the rest}
            first = [k for k in ("recipe", "name", "kind", "method") if k in value]
            value = {**{k: value[k] for k in first}, **value}
            part = f"{key}=" + json.dumps(value, separators=(", ", ":"))
        return part[:width - 1].rstrip(", ") + "…"

    shown = {lab: ", ".join(cut(p) for p in parts[lab] if p not in shared) or "(the shared setting)"
             for lab in labels}
    if len(set(shown.values())) < len(shown):  # cutting made two alike: keep those whole
        counts = Counter(shown.values())
        shown = {lab: (", ".join(p for p in parts[lab] if p not in shared) if counts[s] > 1 else s)
                 for lab, s in shown.items()}
    return shown, shared


# ---------------------------------------------------------------------------- selection

@dataclass
class Selection:
    """What :func:`select_runs` chose.

    ``runs``: the done runs, one task setting per group, with a column named after the
    grouping key; ``notes``: one line per group whose other settings were left out;
    ``failed``: runs of the task (and methods) that are not done, the suite's when tagged;
    ``tagged``: True when the runs are the suite's, False when no run carries the suite's
    tag (every stored run of the task was used), None when no suite was given or no run
    of the task is in the table.
    """
    runs: Any
    notes: list[str] = field(default_factory=list)
    failed: int = 0
    tagged: bool | None = None


def suite_and_full(suite: str) -> set[str]:
    """A paper suite's name and its paper-scale twin's (``suites/papers-full/<paper>.yaml``
    names itself ``<paper>-full``): a paper's figures read both."""
    return {suite, f"{suite}-full"}


def select_runs(frame, task: str, *, suite: str | None = None, methods: Iterable[str] | None = None,
                where: Callable[[dict], bool] | None = None, group: str | None = None,
                group_default: Any = None, setting_without: Iterable[str] | None = None,
                prefer: Callable[[str, dict], Any] | None = None) -> Selection:
    """The done runs of ``task`` that a paper's figures read.

    1. Rows of ``task`` (of ``methods`` when given) whose task params pass ``where``.
    2. Those tagged with ``suite`` or its paper-scale twin ``<suite>-full`` when any is, else
       all of them (``tagged`` says which).
    3. ``failed`` counts the ones not done; the done ones go on.
    4. Per value of ``task_params[group]`` (``group_default`` when absent; one group when
       ``group`` is None) one task setting is kept: setting = the ``task_label``, or with
       ``setting_without`` the task params but those keys (JSON); the one with the most runs,
       or with ``prefer`` the one of largest ``prefer(setting, its first run's params)``.
    """
    import pandas as pd

    if frame is None or frame.empty or "task" not in frame:
        return Selection(pd.DataFrame())
    keep = frame["task"] == task
    if methods is not None:
        keep &= frame["method"].isin(list(methods))
    if where is not None:
        keep &= frame["task_params"].map(lambda p: bool(where(as_dict(p))))
    runs = frame[keep]
    tagged = None
    if suite is not None and "suites" in runs and not runs.empty:
        names = suite_and_full(suite)
        in_suite = runs["suites"].map(lambda s: bool(names & set(s or [])))
        tagged = bool(in_suite.any())
        if tagged:
            runs = runs[in_suite]
    failed = int((runs["status"] != "done").sum())
    runs = runs[runs["status"] == "done"].copy()
    if runs.empty:
        return Selection(runs, [], failed, tagged)
    key = group or "_group"
    runs[key] = runs["task_params"].map(lambda p: as_dict(p).get(group, group_default)) if group else ""
    if setting_without is None:
        runs["_setting"] = runs["task_label"]
    else:
        drop = set(setting_without)
        runs["_setting"] = runs["task_params"].map(
            lambda p: json.dumps({k: v for k, v in as_dict(p).items() if k not in drop}, sort_keys=True))
    notes, kept = [], []
    for value, members in runs.groupby(key):
        counts = members["_setting"].value_counts()
        if prefer is None:
            chosen = counts.index[0]
        else:  # each setting's params: those of its first run
            first = dict(zip(members["_setting"][::-1], members["task_params"][::-1]))
            chosen = max(counts.index, key=lambda s: prefer(s, as_dict(first[s])))
        if len(counts) > 1:
            using = (f"'{chosen}' ({counts[chosen]} runs)" if setting_without is None
                     else f"the one with {counts[chosen]} runs ({chosen})")
            notes.append((f"{value}: " if group else "") + f"{len(counts)} task settings in the store; using {using}")
        kept.append(members[members["_setting"] == chosen])
    selected = pd.concat(kept).drop(columns=["_setting"] if group else ["_setting", key])
    return Selection(selected, notes, failed, tagged)


# ---------------------------------------------------------------------------- summaries

def summarize(table, by, values: Iterable[str] | None = None, *, sort: bool = False, dropna: bool = False,
              size: str | None = "n", flat: bool = True):
    """Mean, std (ddof 1, so NaN for one value) and count of the non-NaN values of each
    column in ``values`` (default: every column not in ``by``), per group of ``by``.

    ``flat``: one row per group with the ``by`` columns, then ``<value>_mean``,
    ``<value>_std``, ``<value>_count`` for each value, then ``size`` (rows in the group; left
    out when None). Otherwise: indexed by the groups, a (value, stat) column MultiIndex.
    """
    by = [by] if isinstance(by, str) else list(by)
    values = [c for c in table.columns if c not in by] if values is None else list(values)
    grouped = table.groupby(by, sort=sort, dropna=dropna)
    stats = grouped[values].agg(list(STATS))
    if not flat:
        return stats
    stats.columns = [f"{name}_{stat}" for name, stat in stats.columns]
    stats = stats.reset_index()
    if size:
        stats[size] = grouped.size().to_numpy()
    return stats


def mean_std(values: Iterable[Any]) -> tuple[float, float]:
    """(mean, std with ddof 1) of the finite values; std NaN for one value, both NaN for none."""
    import numpy as np

    finite = np.asarray([v for v in map(to_float, values) if math.isfinite(v)], dtype=float)
    if not len(finite):
        return math.nan, math.nan
    return float(finite.mean()), float(finite.std(ddof=1)) if len(finite) > 1 else math.nan


def pm(mean: Any, std: Any = None, scale: float = 1.0, digits: int = 2, unit: str = "",
       missing: str = "—") -> str:
    """"mean ± std", both times ``scale`` with ``digits`` decimals, then ``unit``; the std is
    left out when missing or not finite; ``missing`` when the mean is missing or not finite."""
    mean, std = to_float(mean), to_float(std)
    if not math.isfinite(mean):
        return missing
    text = f"{mean * scale:.{digits}f}"
    if math.isfinite(std):
        text += f" ± {std * scale:.{digits}f}"
    return text + unit


# ---------------------------------------------------------------------------- order

def order_key(label: Any, order: Iterable[str] = ()) -> tuple:
    """Sort key of a label: labels whose base (the text before "(") is in ``order`` come
    first, in that order; then the rest; within a rank, natural order of the whole label
    ("m2" before "m10", "fcn" before "fcn(extra_epochs=3)")."""
    text = str(label)
    order = tuple(order)
    base = text.split("(")[0]
    rank = order.index(base) if base in order else len(order)
    # re.split with a group puts the digit runs at the odd positions
    return rank, tuple((0, int(p), "") if i % 2 else (1, 0, p) for i, p in enumerate(re.split(r"(\d+)", text)))


def ordered(values: Iterable[Any], order: Iterable[str] = ()) -> list:
    """The distinct ``values`` sorted by :func:`order_key`."""
    order = tuple(order)
    return sorted(dict.fromkeys(values), key=lambda v: order_key(v, order))


# ---------------------------------------------------------------------------- trust: which rows rank

LOCAL = "local"


def origins(df) -> list[str]:
    """Each row's origin: ``"local"`` (computed by robench on the store's machine) or
    ``"bundle:<sha256>"`` (a claim imported from a bundle). From the ``origin`` column; a
    table without one (written before origins were recorded) reads a row with a non-empty
    ``verification`` dict as imported, every other row as local."""
    given = column(df, "origin")
    checks = column(df, "verification")
    out = []
    for origin, check in zip(given, checks):
        if isinstance(origin, str) and origin.strip():
            out.append(origin.strip())
            continue
        check = as_dict(check)
        out.append(f"bundle:{check.get('bundle_sha256') or 'unknown'}" if check else LOCAL)
    return out


def claim_status(origin: str, verification: Any) -> str:
    """``"local"`` for a local row, else the claim's verdict: ``"imported"`` (never
    verified), ``"verified"``, ``"unverified"`` or ``"skipped"``."""
    if origin == LOCAL:
        return LOCAL
    status = str(as_dict(verification).get("status") or "imported")
    return status if status in ("imported", "verified", "unverified", "skipped") else "imported"


def is_rankable(origin: str, verification: Any) -> bool:
    """Whether a row may be ranked by default: computed here, or a claim ``robench verify``
    re-scored to the same metrics."""
    return claim_status(origin, verification) in (LOCAL, "verified")


def counted_rows(frame, include_unverified: bool = False) -> list[bool]:
    """Which rows of a normalised table (with an ``origin`` column) the rankings, tables and
    plots use: the rankable ones (every claim too with ``include_unverified``), and of one
    run id only one row: the local one first, else the first verified claim, else (with
    ``include_unverified``) the first claim. Every other row is an unranked claim."""
    statuses = [claim_status(o, v) for o, v in zip(column(frame, "origin", LOCAL), column(frame, "verification"))]
    preference = {LOCAL: 0, "verified": 1}
    best: dict[str, tuple[int, int]] = {}
    for i, (run_id, status) in enumerate(zip(column(frame, "id"), statuses)):
        rank = preference.get(status, 2)
        if rank == 2 and not include_unverified:
            continue
        if run_id not in best or (rank, i) < best[run_id]:
            best[run_id] = (rank, i)
    chosen = {i for _, i in best.values()}
    return [i in chosen for i in range(len(statuses))]


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
