"""Plots of the results table (seaborn, Agg backend), sized to read on a phone.

Every plot is one configuration per point or line at the mean over its done seeds, with
std error bars, one colour per method (:mod:`robench.report.style`); it is written as PNG
and SVG (and PDF for paper figures, :func:`save_figure`). A plot whose x or y values are
all equal is not drawn (a constant axis says nothing). Heavy imports (matplotlib, seaborn,
pandas) happen inside the functions so that ``import robench.report`` stays cheap.
"""

from __future__ import annotations

import math
import textwrap
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable

from .style import base_method, method_colors, method_markers
from .table import metric_values, normalize, ordered, summarize

# 4.8 inches wide at 9-10 pt: an SVG shown 360 px wide (a phone) keeps its text at ~9-10 px.
WIDTH_IN = 4.8
RC = {"svg.hashsalt": "robench", "svg.fonttype": "none", "font.size": 9.5, "axes.titlesize": 8.5,
      "axes.labelsize": 9.5, "legend.fontsize": 8.5, "xtick.labelsize": 8.5, "ytick.labelsize": 8.5,
      "figure.titlesize": 10.5, "pdf.fonttype": 42}
WEB = ("png", "svg")
PAPER = ("png", "svg", "pdf")


def _literal(text: str) -> str:
    """Text that matplotlib shows as written (an unescaped pair of "$" would start mathtext)."""
    return str(text).replace("$", r"\$")


def _wrap(text: str, width: int = 62) -> str:
    return "\n".join(textwrap.wrap(str(text), width, break_long_words=True, break_on_hyphens=False)) or str(text)


def _short(label: str, width: int = 34) -> str:
    label = str(label)
    return label if len(label) <= width else label[:width - 1] + "…"


def _seed_text(counts) -> str:
    lo, hi = int(min(counts)), int(max(counts))
    return f"{lo} seed{'s' if lo != 1 else ''}" if lo == hi else f"{lo}–{hi} seeds"


def constant(values: Iterable[float]) -> bool:
    """Whether the finite ``values`` take at most one value (to 9 significant digits)."""
    finite = {float(f"{v:.9g}") for v in values if v is not None and math.isfinite(v)}
    return len(finite) <= 1


def save_figure(fig, out_base, formats: Iterable[str] = WEB) -> list[Path]:
    """Write ``fig`` as ``out_base.<format>`` for each format (png at 150 dpi; svg and pdf
    with their text as text and no timestamp), close it, and return the paths."""
    import matplotlib.pyplot as plt

    out_base = Path(out_base)
    out_base.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    try:
        with plt.rc_context({"svg.hashsalt": "robench", "svg.fonttype": "none", "pdf.fonttype": 42}):
            for fmt in formats:
                path = out_base.with_name(f"{out_base.name}.{fmt}")
                meta = {"Software": None} if fmt == "png" else {"Date": None} if fmt == "svg" else \
                    {"CreationDate": None, "ModDate": None}
                fig.savefig(path, dpi=150, metadata=meta)
                paths.append(path)
    finally:
        plt.close(fig)
    return paths


@contextmanager
def _axes(height: float = 3.5, rows: int = 1):
    """A figure WIDTH_IN wide; one axes, or a column of ``rows`` axes (an array)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    with plt.rc_context(RC), sns.axes_style("whitegrid"):
        fig, ax = plt.subplots(rows, 1, figsize=(WIDTH_IN, height), layout="constrained", squeeze=False)
        ax = ax[0, 0] if rows == 1 else ax[:, 0]
        try:
            yield fig, ax
        except BaseException:
            plt.close(fig)
            raise


def _legend_columns(labels) -> int:
    longest = max((len(str(x)) for x in labels), default=0)
    return 3 if longest <= 14 else 2 if longest <= 24 else 1


def legend_height(labels, extra: int = 0) -> float:
    """Inches the legend below the axes takes for ``labels`` (+ ``extra`` entries)."""
    n = len(list(labels)) + extra
    return 0.2 * math.ceil(n / _legend_columns(labels)) + 0.15 if n else 0.0


def _legend(fig, ax, handles=None, labels=None, title: str | None = None) -> None:
    """The legend below the axes, in as many columns as fit, so the axes keep the width."""
    if handles is None:
        handles, labels = ax.get_legend_handles_labels()
    if not handles:
        return
    if ax.get_legend() is not None:
        ax.get_legend().remove()
    ncols = _legend_columns(labels)
    fig.legend(handles, [_literal(_short(x, 44)) for x in labels], loc="outside lower center",
               ncols=min(ncols, len(labels)), frameon=False, title=title, handletextpad=0.4, columnspacing=1.2)


def _titles(fig, ax, title: str, subtitle: str, width: int = 68) -> None:
    """The plot's title (what against what) above a smaller line: the setting and seeds,
    wrapped at ``width`` characters (the axes' width), at most three lines."""
    fig.suptitle(_literal(_wrap(title, 56)), x=0.01, ha="left", fontweight="bold")
    lines = textwrap.wrap(str(subtitle), width, break_long_words=True, break_on_hyphens=False)
    if len(lines) > 3:
        lines = lines[:2] + [textwrap.shorten(" ".join(lines[2:]), width, placeholder=" …")]
    ax.set_title(_literal("\n".join(lines)), loc="left", color="0.3", fontsize=7.5)


def log_ticks(axis) -> None:
    """Plain tick labels at 1-2-5 steps: ratios like 2, 5, 20 read better than 10^k."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


# ---------------------------------------------------------------------------- trade-off scatter

def tradeoff_points(df, x_metric: str, y_metric: str):
    """Mean and std over done seeds of two metrics, one row per configuration.

    Returns a DataFrame with columns config_id, method, method_label, x_mean, x_std,
    y_mean, y_std, n (seeds with both metrics finite); configurations without such a
    seed are left out.
    """
    import pandas as pd

    runs = normalize(df)
    runs = runs[runs["status"] == "done"]
    values = metric_values(runs, [x_metric, y_metric]).set_axis(["x", "y"], axis=1)
    both = values["x"].map(math.isfinite) & values["y"].map(math.isfinite)
    columns = ["config_id", "method", "method_label", "x_mean", "x_std", "y_mean", "y_std", "n"]
    if not both.any():
        return pd.DataFrame(columns=columns)
    runs, values = runs[both], values[both]
    first = runs.drop_duplicates("config_id").set_index("config_id")
    out = summarize(values.assign(config_id=runs["config_id"]), "config_id", ["x", "y"])
    out["method"] = [first.at[c, "method"] or first.at[c, "method_label"] for c in out["config_id"]]
    out["method_label"] = [first.at[c, "method_label"] for c in out["config_id"]]
    return out[columns]


def pareto_front(points, greater_x: bool = True, greater_y: bool = True):
    """The rows of ``points`` (x_mean, y_mean) that no other row beats on both axes, by x."""
    rows = points.sort_values("x_mean", ascending=not greater_x)
    keep, best = [], -math.inf
    for index, y in zip(rows.index, rows["y_mean"]):
        value = y if greater_y else -y
        if value > best:
            keep.append(index)
            best = value
    return points.loc[keep].sort_values("x_mean")


def _setting_of(df) -> str:
    settings = sorted({str(v) for v in df["task_label"]}) if "task_label" in df.columns else []
    if len(settings) > 1:
        raise ValueError(f"plots of one setting: runs of {len(settings)} settings given ({settings}); "
                         "expected one task_label, since different settings are not comparable")
    return settings[0] if settings else "(default setting)"


def scatter_tradeoff(df, x_metric: str, y_metric: str, out_base, *, title: str, logx: bool = False,
                     front: bool = False, connect: bool = False, x_label: str | None = None,
                     y_label: str | None = None, x_scale: float = 1.0, y_scale: float = 1.0,
                     greater_is_better: bool = True, references: Iterable[str] = (),
                     formats: Iterable[str] = WEB) -> list[Path]:
    """Scatter plot of ``y_metric`` against ``x_metric`` for the runs of one setting.

    Configurations of the ``references`` methods (dense, ...) are a dashed horizontal line at
    their y, labelled as references, never points among the contenders nor on the front.

    One point per configuration at the mean over its done seeds, with std error bars
    (none for a single seed); colour by method, marker by configuration. ``front``: the
    Pareto front (more x and better y) as a step line; ``connect``: the configurations of
    each method joined in x order (a sweep). Writes ``out_base.png`` and ``.svg`` (and the
    other ``formats``) and returns their paths, or returns ``[]`` (writing nothing) when no
    done run has both metrics or when all x or all y values are equal. ``df`` must hold a
    single setting (task_label): runs of different settings are not comparable. ``logx``
    falls back to a linear axis when an x value is not positive.
    """
    points = tradeoff_points(df, x_metric, y_metric)
    if points.empty:
        return []
    setting = _setting_of(df)
    if constant(points["x_mean"]) or constant(points["y_mean"]):
        return []
    refs = set(references)
    is_ref = points["method_label"].map(lambda v: base_method(v) in refs)
    reference_points, points = points[is_ref], points[~is_ref]
    if points.empty:
        return []
    labels = ordered(points["method_label"].astype(str))
    colours, markers = method_colors(labels), method_markers(labels)
    logx = bool(logx) and bool((points["x_mean"] > 0).all())
    seeds = _seed_text(points["n"])

    entries = {base_method(v) for v in labels} if connect else labels
    with _axes(3.2 + legend_height(entries, int(front) + len(reference_points))) as (fig, ax):
        for r in reference_points.itertuples():
            ax.axhline(r.y_mean * y_scale, color="0.45", ls=(0, (5, 3)), lw=1.1, zorder=1,
                       label=_literal(f"{r.method_label} (reference)"))
        if connect:
            for method in ordered({base_method(v) for v in labels}):
                sel = points[points["method_label"].map(base_method) == method].sort_values("x_mean")
                if len(sel) > 1:
                    ax.plot(sel["x_mean"] * x_scale, sel["y_mean"] * y_scale, "-", lw=1.2, alpha=0.6,
                            color=colours[str(sel["method_label"].iloc[0])], zorder=1)
        if front and len(points) > 1:
            best = pareto_front(points, True, greater_is_better)
            ax.step(best["x_mean"] * x_scale, best["y_mean"] * y_scale, where="post", color="0.35", lw=1,
                    ls="--", zorder=1, label="Pareto front")
        named: set[str] = set()
        for i, label in enumerate(labels):
            sel = points[points["method_label"].astype(str) == label]
            # a sweep: one marker and one legend entry per method (x says which configuration)
            name = base_method(label) if connect else label
            ax.errorbar(sel["x_mean"] * x_scale, sel["y_mean"] * y_scale, xerr=sel["x_std"].fillna(0.0) * x_scale,
                        yerr=sel["y_std"].fillna(0.0) * y_scale, fmt="o" if connect else markers[label],
                        color=colours[label], ms=6.5, mec="white", mew=0.6, elinewidth=1, capsize=2.5, zorder=3,
                        clip_on=False, label=None if name in named else _literal(name))
            named.add(name)
        if logx:
            ax.set_xscale("log")
            log_ticks(ax.xaxis)
        ax.margins(x=0.08, y=0.1)
        ax.set_xlabel(_literal(_wrap(f"{x_label or x_metric}{', log scale' if logx else ''}", 70)))
        ax.set_ylabel(_literal(_wrap(y_label or y_metric, 40)))
        _titles(fig, ax, title, f"{len(points)} configuration{'s' if len(points) != 1 else ''}, {seeds} each · "
                                f"{setting}")
        _legend(fig, ax)
    return save_figure(fig, out_base, formats)


# ---------------------------------------------------------------------------- curves

def curve_points(df, names: list[tuple[float, str]], by: str = "method_label"):
    """One row per (``by`` value, x) with the mean/std/n over done seeds of the metric at
    each x: ``names`` is [(x, metric name), ...]."""
    import pandas as pd

    runs = normalize(df)
    runs = runs[runs["status"] == "done"]
    frames = []
    values = metric_values(runs, [n for _, n in names])
    for x, name in names:
        frames.append(pd.DataFrame({"group": runs[by].astype(str).to_numpy(), "x": x,
                                    "y": values[name].to_numpy()}))
    if not frames:
        return pd.DataFrame(columns=["group", "x", "y_mean", "y_std", "y_count"])
    long = pd.concat(frames, ignore_index=True)
    long = long[long["y"].map(math.isfinite)]
    if long.empty:
        return pd.DataFrame(columns=["group", "x", "y_mean", "y_std", "y_count"])
    return summarize(long, ["group", "x"], ["y"], sort=True, size=None)


def line_curves(df, panels: list[tuple[str, list[tuple[float, str]]]], out_base, *, title: str, x_label: str,
                y_label: str, y_scale: float = 1.0, mark_x: float | None = None, mark_text: str = "",
                logx: bool = False, references: Iterable[str] = (), formats: Iterable[str] = WEB) -> list[Path]:
    """A metric against a numeric axis (ε, degradation level, sparsity), one line per
    configuration with std error bars, one panel per entry of ``panels`` ((panel title,
    [(x, metric name), ...])). ``mark_x``: a vertical line (the training level). The
    configurations of the ``references`` methods are dashed grey lines labelled as
    references. Returns ``[]`` when no panel has two x values with data."""
    setting = _setting_of(df)
    data = [(name, curve_points(df, names)) for name, names in panels]
    data = [(name, pts) for name, pts in data if not pts.empty and not constant(pts["x"])]
    if not data:
        return []
    labels = ordered({g for _, pts in data for g in pts["group"]})
    colours, markers = method_colors(labels), method_markers(labels)
    seeds = _seed_text([c for _, pts in data for c in pts["y_count"]])
    import matplotlib.pyplot as plt

    with _axes(3.2 + 2.6 * (len(data) - 1) + legend_height(labels), rows=len(data)) as (fig, axes):
        axes = list(axes) if len(data) > 1 else [axes]
        for ax, (name, pts) in zip(axes, data):
            for label in labels:
                sel = pts[pts["group"] == label].sort_values("x")
                if sel.empty:
                    continue
                ref = base_method(label) in set(references)
                ax.errorbar(sel["x"], sel["y_mean"] * y_scale, yerr=sel["y_std"].fillna(0.0) * y_scale,
                            fmt=markers[label] + ("--" if ref else "-"), color="0.45" if ref else colours[label],
                            ms=5, lw=1.3, elinewidth=1, capsize=2.5, clip_on=False, mec="white", mew=0.5,
                            label=_literal(f"{label} (reference)" if ref else label))
            if mark_x is not None and math.isfinite(mark_x):
                ax.axvline(mark_x, color="0.35", ls=":", lw=1.2)
                ax.annotate(mark_text, (mark_x, 1.0), xycoords=("data", "axes fraction"), xytext=(3, -11),
                            textcoords="offset points", fontsize=8, color="0.25")
            if logx and (pts["x"] > 0).all():
                ax.set_xscale("log")
                log_ticks(ax.xaxis)
            ax.margins(x=0.06, y=0.1)
            if pts["x"].nunique() <= 8 and not logx:
                ax.set_xticks(sorted(pts["x"].unique()))
            ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:.3g}"))
            ax.set_ylabel(_literal(_wrap(y_label, 40)))
            ax.set_xlabel(_literal(x_label))
            if name:
                ax.set_title(_literal(name), loc="right", fontsize=9)
        _titles(fig, axes[0], title, f"{seeds} · {setting}")
        handles, names = axes[0].get_legend_handles_labels()
        for ax in axes[1:]:
            for h, n in zip(*ax.get_legend_handles_labels()):
                if n not in names:
                    handles.append(h)
                    names.append(n)
        _legend(fig, axes[0], handles, names)
    return save_figure(fig, out_base, formats)


# ---------------------------------------------------------------------------- per configuration

def dot_plot(df, metric_names: list[str], out_base, *, title: str, labels: dict[str, str] | None = None,
             scale: float = 1.0, unit: str = "", formats: Iterable[str] = WEB) -> list[Path]:
    """Several metrics of one unit (pixel and corner error, test and test-hard) per
    configuration: a dot with a std bar per (configuration, metric), configurations on the
    y axis in the table's order, one marker per metric and the method's colour."""
    import pandas as pd

    setting = _setting_of(df)
    runs = normalize(df)
    runs = runs[runs["status"] == "done"]
    if runs.empty:
        return []
    values = metric_values(runs, metric_names).assign(config=runs["method_label"].astype(str).to_numpy())
    stats = summarize(values, "config", metric_names, sort=False)
    present = [m for m in metric_names if stats[f"{m}_count"].sum() > 0]
    if not present or len(stats) < 1:
        return []
    if all(constant(stats[f"{m}_mean"]) for m in present) and len(stats) > 1:
        return []
    configs = list(stats["config"])
    colours = method_colors(configs)
    shapes = ["o", "s", "^", "D", "v", "P"]
    offsets = {m: (i - (len(present) - 1) / 2) * 0.16 for i, m in enumerate(present)}
    with _axes(1.4 + 0.42 * len(configs) + legend_height(present)) as (fig, ax):
        for i, m in enumerate(present):
            y = pd.Series(range(len(configs)), dtype=float) + offsets[m]
            for j, config in enumerate(configs):
                mean, std = stats.at[j, f"{m}_mean"], stats.at[j, f"{m}_std"]
                if not math.isfinite(mean):
                    continue
                ax.errorbar(mean * scale, y[j], xerr=(0.0 if not math.isfinite(std) else std * scale),
                            fmt=shapes[i % len(shapes)], color=colours[config], ms=6,
                            mfc=colours[config] if i % 2 == 0 else "white", elinewidth=1, capsize=2, clip_on=False)
            ax.plot([], [], shapes[i % len(shapes)], color="0.3", mfc="0.3" if i % 2 == 0 else "white",
                    label=_literal((labels or {}).get(m, m)))
        ax.set_yticks(range(len(configs)), [_literal(_short(c, 26)) for c in configs])
        ax.invert_yaxis()
        ax.margins(x=0.08, y=0.08)
        ax.set_xlabel(_literal(unit))
        _titles(fig, ax, title, setting, width=44)
        _legend(fig, ax)
    return save_figure(fig, out_base, formats)
