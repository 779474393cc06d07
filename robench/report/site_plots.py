"""Which plots a setting's section of the leaderboard gets, and drawing them.

Declared by the task (``task_info["plots"]``, dicts with ``name`` and, by ``kind``):

* ``scatter`` (the default): ``x``, ``y`` metric names, optional ``logx``, and ``front``
  (draw the Pareto front: more x, better y); a task with a sweep axis (``sweep_params``)
  gets each method's configurations joined in x order;
* ``levels``: ``y`` a metric prefix (``psnr``, ``accuracy``): ``<y>@<level>`` against the
  level, one line per configuration; ``mark`` names the task parameter of the level to mark
  (the training level); optional ``label`` and ``x_label`` name the curve and its axis;
* ``dots``: ``metrics``, a list of metrics of one unit, a dot per configuration and metric.

Derived by the report from the metric names, for any task: robust accuracy against ε per
configuration (``robust_accuracy_<norm>@<ε>``, one panel per norm; for a task without a
sweep axis), the headline robust accuracies against a sweep's x, and ``psnr@<level>``
curves when no ``levels`` plot is declared. A plot with a constant axis is never drawn.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable

from .labels import level_curve, metric, norm_symbol, robust_curves
from .table import as_dict, mode, to_float


def _names(runs) -> list[str]:
    seen: dict[str, None] = {}
    for m in runs["metrics"]:
        for name in as_dict(m):
            seen.setdefault(str(name), None)
    return list(seen)


def marked_level(runs, param: str | None, names: list[tuple[float, str]]) -> float:
    """The level to mark: the task parameter ``param`` when the runs set it, else the level
    whose PSNR ``psnr_offtrain_mean`` leaves out (the mean of the others equals it)."""
    if param:
        value = mode(as_dict(p).get(param) for p in runs["task_params"])
        if value is not None and math.isfinite(to_float(value)):
            return float(value)
    for m in runs["metrics"]:
        m = as_dict(m)
        off = to_float(m.get("psnr_offtrain_mean"))
        values = [(x, to_float(m.get(n))) for x, n in names]
        if not math.isfinite(off) or len(values) < 2:
            continue
        for x, _ in values:
            others = [v for lx, v in values if lx != x]
            if others and abs(sum(others) / len(others) - off) < 1e-9 * max(1.0, abs(off)):
                return x
        break
    return math.nan


def setting_plots(runs, info: dict, out_base: Path, *, task: str, formats: Iterable[str] = ("png", "svg"),
                  sweep: bool = False) -> list[dict[str, Any]]:
    """Draw the plots of one setting's ``runs`` (rows of one task_label) next to
    ``out_base`` (a path prefix); returns, per plot drawn, ``name``, ``caption`` and ``paths``
    (format → path)."""
    from . import plots as P

    from .ranking import reference_methods

    names = _names(runs[runs["status"] == "done"])
    gib = bool(info.get("greater_is_better", True))
    refs = tuple(reference_methods(task, info))  # reference lines, not contenders
    drawn: list[dict[str, Any]] = []

    def add(name: str, caption: str, paths: list[Path]) -> None:
        if paths:
            drawn.append({"name": name, "caption": caption, "paths": {p.suffix[1:]: p for p in paths}})

    def base(name: str) -> Path:
        return out_base.with_name(f"{out_base.name}--{name}")

    declared = [dict(p) for p in info.get("plots") or ()]
    levels_declared = any(p.get("kind") == "levels" for p in declared)
    first_x = None
    for plot in declared:
        kind = plot.get("kind", "scatter")
        if kind == "scatter":
            x, y = plot.get("x"), plot.get("y")
            if x not in names or y not in names:
                continue
            first_x = first_x or x
            mx, my = metric(x), metric(y)
            front = bool(plot.get("front"))
            caption = (f"{my.header} against {mx.header}{' (log scale)' if plot.get('logx') else ''}"
                       + ("; dashed: the Pareto front" if front else "")
                       + ("; lines join a method's sweep" if sweep else ""))
            add(plot["name"], caption, P.scatter_tradeoff(
                runs, x, y, base(plot["name"]), title=f"{my.label} vs {mx.label}", logx=bool(plot.get("logx")),
                front=front, connect=sweep, x_label=mx.header, y_label=my.header, x_scale=mx.scale,
                y_scale=my.scale, greater_is_better=gib if y == info.get("primary_metric") else True,
                references=refs, formats=formats))
        elif kind == "levels":
            curve = level_curve(names, plot.get("y", "psnr"))
            if len(curve) < 2:
                continue
            add(plot["name"], *_levels(P, runs, curve, plot, base(plot["name"]), formats, refs))
        elif kind == "dots":
            metrics = [m for m in plot.get("metrics") or () if m in names]
            if not metrics:
                continue
            m0 = metric(metrics[0])
            what = " and ".join(dict.fromkeys(metric(m).label.split(",")[0] for m in metrics))
            add(plot["name"], f"{', '.join(metric(m).label for m in metrics)} per configuration "
                              f"(mean ± std over seeds; {m0.unit or 'value'})",
                P.dot_plot(runs, metrics, base(plot["name"]), title=f"{what} per configuration",
                           labels={m: metric(m).label for m in metrics}, scale=m0.scale, unit=m0.unit,
                           formats=formats))

    curves = robust_curves(names)
    curves = {norm: pts for norm, pts in curves.items() if len(pts) >= 2}
    if curves and not sweep:
        panels = [(f"{norm_symbol(norm)} attacks", pts) for norm, pts in sorted(curves.items())]
        add("robust_accuracy_vs_eps", "robust accuracy (%) against the attack budget ε, per configuration "
                                      "(mean ± std over seeds), one panel per threat model",
            P.line_curves(runs, panels, base("robust_accuracy_vs_eps"), title="robust accuracy vs ε",
                          x_label="ε (attack budget)", y_label="robust accuracy (%)", y_scale=100.0,
                          references=refs, formats=formats))
    if sweep and first_x:
        pairs = {(p.get("x"), p.get("y")) for p in declared}
        headline = [m for m in info.get("headline_metrics") or ()
                    if m in names and m.startswith("robust_accuracy") and (first_x, m) not in pairs]
        mx = metric(first_x)
        for y in headline:
            my = metric(y)
            add(f"{y}_vs_{first_x}".replace("@", "_at_"),
                f"{my.header} against {mx.header}; lines join a method's sweep",
                P.scatter_tradeoff(runs, first_x, y, base(f"{y}_vs_{first_x}".replace("@", "_at_")),
                                   title=f"{my.label} vs {mx.label}", connect=True, x_label=mx.header,
                                   y_label=my.header, x_scale=mx.scale, y_scale=my.scale, references=refs,
                                   formats=formats))
    if not levels_declared:
        curve = level_curve(names, "psnr")
        if len(curve) >= 2:
            add("psnr_vs_level", *_levels(P, runs, curve, {"y": "psnr", "mark": "train_level"},
                                          base("psnr_vs_level"), formats, refs))
    return drawn


def _levels(P, runs, curve, plot: dict, out_base: Path, formats, references=()) -> tuple[str, list[Path]]:
    what = metric(curve[0][1])
    unit = f" ({what.unit})" if what.unit else ""
    mark = marked_level(runs, plot.get("mark"), curve)
    # a task may name its curve and axis (corruption_robustness: accuracy against the severity)
    label = plot.get("label") or ("PSNR" if plot.get("y", "psnr") == "psnr" else str(plot.get("y")).upper())
    x_label = plot.get("x_label") or "degradation level"
    caption = (f"{label}{unit} against the {x_label}, per configuration (mean ± std over seeds)"
               + ("; dotted: the training level" if math.isfinite(mark) else ""))
    return caption, P.line_curves(runs, [("", curve)], out_base, title=f"{label} vs {x_label}",
                                  x_label=x_label, y_label=f"{label}{unit}", y_scale=what.scale, mark_x=mark,
                                  mark_text="training level", references=references, formats=formats)
_marked_level = marked_level  # (the name tests/test_publish.py imports)
