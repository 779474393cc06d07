"""Plots of the results table (seaborn, Agg backend).

Heavy imports (matplotlib, seaborn, pandas) happen inside the functions so that
``import robench.report`` stays cheap.
"""

from __future__ import annotations

import math
from pathlib import Path

from .table import metric_values, normalize, ordered, summarize

_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "<", ">", "p", "h", "*", "d", "H", "8"]


def _literal(text: str) -> str:
    """Text that matplotlib shows as written (an unescaped pair of "$" would start mathtext)."""
    return str(text).replace("$", r"\$")


def _seed_text(counts) -> str:
    lo, hi = int(min(counts)), int(max(counts))
    return f"{lo} seed{'s' if lo != 1 else ''}" if lo == hi else f"{lo}–{hi} seeds"


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


def scatter_tradeoff(df, x_metric: str, y_metric: str, out_base, *, title: str,
                     logx: bool = False) -> list[Path]:
    """Scatter plot of ``y_metric`` against ``x_metric`` for the runs of one setting.

    One point per configuration at the mean over its done seeds, with std error bars
    (none for a single seed); colour and marker by method. Writes ``out_base.png`` and
    ``out_base.svg`` and returns their paths, or returns ``[]`` (writing nothing) when no
    done run has both metrics. ``df`` must hold a single setting (task_label): runs of
    different settings are not comparable. ``logx`` falls back to a linear axis when an
    x value is not positive.
    """
    points = tradeoff_points(df, x_metric, y_metric)
    if points.empty:
        return []
    settings = sorted({str(v) for v in df["task_label"]}) if "task_label" in df.columns else []
    if len(settings) > 1:
        raise ValueError(f"scatter_tradeoff: runs of {len(settings)} settings given ({settings}); "
                         "expected one task_label, since different settings are not comparable")
    setting = settings[0] if settings else "(default setting)"

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    # User text (labels, method names) is shown literally: escape "$" so it is never mathtext.
    points = points.assign(method=points["method"].astype(str).map(_literal))
    methods = ordered(points["method"])
    palette = dict(zip(methods, sns.color_palette("colorblind" if len(methods) <= 10 else "husl",
                                                  n_colors=len(methods))))
    markers = {m: _MARKERS[i % len(_MARKERS)] for i, m in enumerate(methods)}
    logx = bool(logx) and bool((points["x_mean"] > 0).all())
    seeds = _seed_text(points["n"])

    out_base = Path(out_base)
    out_base.parent.mkdir(parents=True, exist_ok=True)
    paths = [out_base.with_name(out_base.name + ".png"), out_base.with_name(out_base.name + ".svg")]
    # A fixed hash salt keeps SVG ids reproducible; text stays text in the SVG.
    rc = {"svg.hashsalt": "robench", "svg.fonttype": "none"}
    with plt.rc_context(rc), sns.axes_style("whitegrid"):
        fig, ax = plt.subplots(figsize=(7.5, 4.6), layout="constrained")
        try:
            for method in methods:
                sel = points[points["method"] == method]
                ax.errorbar(sel["x_mean"], sel["y_mean"], xerr=sel["x_std"].fillna(0.0),
                            yerr=sel["y_std"].fillna(0.0), fmt="none", ecolor=palette[method],
                            elinewidth=1, capsize=2.5, alpha=0.7, zorder=2)
            sns.scatterplot(data=points, x="x_mean", y="y_mean", hue="method", style="method",
                            hue_order=methods, style_order=methods, palette=palette, markers=markers,
                            s=64, edgecolor="white", linewidth=0.6, ax=ax, zorder=3)
            if logx:
                ax.set_xscale("log")
                # Plain tick labels at 1-2-5 steps: ratios like 2, 5, 20 read better than 10^k.
                ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
                ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
                ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_xlabel(_literal(f"{x_metric} (mean over {seeds}{', log scale' if logx else ''})"))
            ax.set_ylabel(_literal(f"{y_metric} (mean ± std over {seeds})"))
            ax.set_title(_literal(f"{title}\n{setting} · {len(points)} configuration{'s' if len(points) != 1 else ''}, {seeds} each"),
                         fontsize=11)
            ax.legend(title="method", loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False,
                      ncols=math.ceil(len(methods) / 12))
            fig.savefig(paths[0], dpi=150, metadata={"Software": None})
            fig.savefig(paths[1], metadata={"Date": None})
        finally:
            plt.close(fig)
    return paths
