"""Paper-ready tables: mean ± std per configuration (``robench results --aggregate``) as
text, CSV, JSON, Markdown or LaTeX, and the per-configuration differences of two stores
(``robench compare``).

The tidy form (:func:`aggregate`) has one row per (task, setting, configuration, metric):
``task, setting, method, configuration, config_id, role, rank, metric, mean, std, n`` over
done seeds, in the leaderboard's order (:func:`robench.report.ranking.rank_rows`): the
reference configurations first (``role`` "reference", no rank), then the contenders best
first — by the task's trade-off where it declares one (compression), else by the primary
metric; ties share a rank. The text forms show, per task and setting, the primary and
headline metrics with readable labels and units, references marked.
"""

from __future__ import annotations

import math
from typing import Any

import json

from .labels import metric, undefined_reason
from .leaderboard import metric_order
from .ranking import (_greater, model_boards, rank_rows, reference_methods, setting_metrics, sort_key_best_first,
                      tradeoff)
from .table import as_dict, metric_values, mode, normalize, pm, summarize, task_info

FORMATS = ("table", "csv", "json", "markdown", "latex")


def aggregate(frame, *, every_metric: bool = True):
    """Mean, std and n of each metric per configuration, over done seeds (tidy, see the
    module docstring). ``every_metric=False``: the primary and headline metrics only."""
    import pandas as pd

    runs = normalize(frame)
    runs = runs[runs["status"] == "done"]
    columns = ["task", "setting", "method", "configuration", "config_id", "role", "rank", "metric", "mean", "std", "n"]
    out = []
    for (task, setting), group in runs.groupby(["task", "task_label"], sort=True):
        names = metric_order(group)
        stored = mode(group["primary_metric"])
        info = task_info(group)
        params = as_dict(mode(json.dumps(as_dict(p), sort_keys=True, default=str) for p in group["task_params"]) or "{}")
        # a setting's parameters may promote variants (y_channel: PSNR-Y leads and ranks)
        primary, headline = setting_metrics(task, info, params, names, stored)
        gib = _greater(info, primary, group, stored)
        names = headline if not every_metric else ([primary] + [n for n in names if n != primary]
                                                   if primary in names else names)
        trade = tradeoff(task, info) or {}  # a trade-off ranks on its own x and y
        ranked_names = list(dict.fromkeys(names + [m for m in (trade.get("x"), trade.get("y"))
                                                   if m in metric_order(group)]))
        values = metric_values(group, ranked_names).assign(config_id=group["config_id"].to_numpy(),
                                                           configuration=group["method_label"].to_numpy(),
                                                           method=group["method"].to_numpy())
        stats = summarize(values, ["config_id", "configuration", "method"], ranked_names, sort=False, size=None)
        refs = set(reference_methods(task, info))
        rows = []
        for row in stats.to_dict("records"):
            means = {n: row[f"{n}_mean"] for n in ranked_names}
            rows.append({**row, "means": means, "stds": {n: row[f"{n}_std"] for n in ranked_names},
                         "primary_n": int(row.get(f"{primary}_count", 0) or 0), "method_label": row["configuration"],
                         "reference": row["method"] in refs,
                         "_key": sort_key_best_first(means.get(primary, math.nan), gib)})
        rank_rows(rows, task, info, gib, primary)
        for row in rows:
            for name in names:
                if undefined_reason(name, row["means"], str(row["method"])):  # a dense model's speed-up: noise
                    row[f"{name}_mean"] = row[f"{name}_std"] = math.nan
                    row[f"{name}_count"] = 0
                out.append({"task": task, "setting": setting, "method": row["method"],
                            "configuration": row["configuration"], "config_id": row["config_id"],
                            "role": "reference" if row["reference"] else "contender", "rank": row["rank"],
                            "metric": name, "mean": row[f"{name}_mean"], "std": row[f"{name}_std"],
                            "n": int(row[f"{name}_count"])})
    return pd.DataFrame(out, columns=columns).astype({"rank": "Int64"})


def _cells(tidy) -> list[tuple[str, str, list[str], list[list[str]]]]:
    """Per (task, setting): (task, setting, header, rows) with "mean ± std" cells in display units."""
    blocks = []
    for (task, setting), group in tidy.groupby(["task", "setting"], sort=True):
        names = list(dict.fromkeys(group["metric"]))
        shown = [metric(n) for n in names]
        header = ["configuration", "seeds"] + [m.header for m in shown]
        rows = []
        for config, sub in group.groupby("config_id", sort=False):
            by_metric = {r["metric"]: r for r in sub.to_dict("records")}
            first = sub.iloc[0]
            reference = first.get("role") == "reference"
            cells = [f"{first['configuration']}{' (reference)' if reference else ''}", str(int(sub["n"].max()))]
            for m in shown:
                r = by_metric.get(m.name)
                cells.append(pm(r["mean"], r["std"], m.scale, _digits(r["mean"] * m.scale)) if r else "—")
            rows.append(cells)
        blocks.append((task, setting, header, rows))
    return blocks


def _digits(value: Any) -> int:
    """Decimals for a value shown with ~4 significant digits."""
    try:
        v = abs(float(value))
    except (TypeError, ValueError):
        return 2
    if not math.isfinite(v) or v == 0:
        return 2
    return max(0, min(6, 3 - int(math.floor(math.log10(v)))))


def _latex_escape(text: str) -> str:
    table = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
             "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
             "±": r"$\pm$", "×": r"$\times$", "ε": r"$\varepsilon$", "ρ": r"$\rho$", "∞": r"$\infty$",
             "Δ": r"$\Delta$", "→": r"$\to$", "‖": r"$\|$", "—": "--", "…": r"\dots{}"}
    return "".join(table.get(c, c) for c in str(text))


def render(tidy, fmt: str) -> str:
    """The aggregated table as ``fmt`` text: csv and json in the tidy form; markdown, latex
    and table (plain text) one table per task and setting."""
    if fmt == "csv":
        return tidy.to_csv(index=False)
    if fmt == "json":
        import json
        records = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
                   for r in tidy.to_dict("records")]
        return json.dumps(records, indent=1) + "\n"
    lines: list[str] = []
    for task, setting, header, rows in _cells(tidy):
        if fmt == "markdown":
            lines += [f"### {task} — {setting}", "", "| " + " | ".join(header) + " |",
                      "|" + "|".join(" --- " if i < 1 else " ---: " for i in range(len(header))) + "|"]
            lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
            lines.append("")
        elif fmt == "latex":
            spec = "l" + "r" * (len(header) - 1)
            lines += [r"\begin{table}[t]", r"\centering",
                      r"\caption{" + _latex_escape(f"{task}, {setting}: mean ± std over seeds") + "}",
                      r"\begin{tabular}{" + spec + "}", r"\toprule",
                      " & ".join(_latex_escape(h) for h in header) + r" \\", r"\midrule"]
            lines += [" & ".join(_latex_escape(c) for c in row) + r" \\" for row in rows]
            lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
        else:
            widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
            lines += [f"{task} — {setting}", "  ".join(h.ljust(w) for h, w in zip(header, widths)),
                      "  ".join("-" * w for w in widths)]
            lines += ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
                      for row in rows]
            lines.append("")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- compare

def compare(frame_a, frame_b):
    """Per configuration (``config_id``) in either store: the primary and headline metrics'
    mean, std and seeds in A and in B, and B − A. Columns: task, setting, configuration,
    config_id, metric, mean_a, std_a, n_a, mean_b, std_b, n_b, diff, noise (2·√(std_a² +
    std_b²), NaN when a std is missing), where ("both", "only A", "only B")."""
    import pandas as pd

    a = aggregate(frame_a, every_metric=False).assign(side="a")
    b = aggregate(frame_b, every_metric=False).assign(side="b")
    keys = ["task", "setting", "configuration", "config_id", "metric"]
    merged = pd.merge(a.drop(columns=["side", "method"]), b.drop(columns=["side", "method"]), on=keys,
                      how="outer", suffixes=("_a", "_b"), sort=False)
    merged["diff"] = merged["mean_b"] - merged["mean_a"]
    merged["noise"] = 2 * (merged["std_a"] ** 2 + merged["std_b"] ** 2) ** 0.5
    merged["where"] = ["both" if math.isfinite(x) and math.isfinite(y) else "only A" if math.isfinite(x)
                       else "only B" for x, y in zip(merged["mean_a"], merged["mean_b"])]
    return merged[keys + ["mean_a", "std_a", "n_a", "mean_b", "std_b", "n_b", "diff", "noise", "where"]]


def comparison_rows(table) -> list[dict]:
    """The compare table in display units, one dict per row (for printing and the page)."""
    rows = []
    for r in table.to_dict("records"):
        m = metric(r["metric"])
        digits = _digits(max(abs(r["mean_a"]) if math.isfinite(r["mean_a"]) else 0,
                             abs(r["mean_b"]) if math.isfinite(r["mean_b"]) else 0) * m.scale)
        diff = r["diff"]
        noisy = math.isfinite(diff) and math.isfinite(r["noise"]) and abs(diff) <= r["noise"]
        rows.append({**r, "label": m.header, "a": pm(r["mean_a"], r["std_a"], m.scale, digits),
                     "b": pm(r["mean_b"], r["std_b"], m.scale, digits),
                     "delta": "—" if not math.isfinite(diff) else f"{diff * m.scale:+.{digits}f}",
                     "within_noise": noisy, "n_a": _int(r["n_a"]), "n_b": _int(r["n_b"])})
    return rows


def _int(value) -> int:
    try:
        return 0 if value is None or math.isnan(float(value)) else int(value)
    except (TypeError, ValueError):
        return 0


def write_comparison(table, out, *, name_a: str, name_b: str, title: str = "robench comparison"):
    """Render the compare table as a static page ``out`` (offline, escaped); returns its path."""
    import datetime as dt
    from pathlib import Path

    from .leaderboard import _environment, _robench_version

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = comparison_rows(table)
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["task"], r["setting"]), []).append(r)
    html = _environment().get_template("compare.html").render(
        title=title, site_title=title, root="", home=False, name_a=name_a, name_b=name_b,
        groups=[{"task": t, "setting": s, "rows": rs} for (t, s), rs in groups.items()],
        generated=dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
        version=_robench_version())
    out.write_text(html, encoding="utf-8")
    return out


# ---------------------------------------------------------------------------- models

def model_ranking(frame):
    """The model leaderboards of ``frame`` (its rankable rows: local runs and verified
    claims) in tidy form: one row per (task, setting without the model, configuration,
    model), best first: ``task, setting, configuration, rank, tie, model, yours, metric,
    mean, std, seeds`` (``metric`` the protocol's ranking metric; a tie shares its rank)."""
    import pandas as pd

    runs = normalize(frame)
    columns = ["task", "setting", "configuration", "rank", "tie", "model", "yours", "metric", "mean", "std", "seeds"]
    out = []
    for task, group in runs.groupby("task", sort=True):
        for board in model_boards(group, task, task_info(group)):
            for r in board["rows"]:
                out.append({"task": task, "setting": board["setting"] or "(default setting)",
                            "configuration": board["configuration"], "rank": r["rank"], "tie": r["tie"],
                            "model": r["model"], "yours": r["yours"], "metric": board["primary"],
                            "mean": r["mean"], "std": r["std"], "seeds": r["n"]})
    return pd.DataFrame(out, columns=columns)


def render_models(tidy, fmt: str) -> str:
    """The model ranking as ``fmt``: csv and json tidy; table: one text table per protocol."""
    if fmt == "csv":
        return tidy.to_csv(index=False)
    if fmt == "json":
        records = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
                   for r in tidy.to_dict("records")]
        return json.dumps(records, indent=1, default=str) + "\n"
    lines: list[str] = []
    for (task, setting, config), group in tidy.groupby(["task", "setting", "configuration"], sort=False):
        m = metric(group["metric"].iloc[0])
        header = ["rank", "model", "", m.header, "seeds"]
        rows = [[f"{r['rank']}{' (tie)' if r['tie'] else ''}", str(r["model"]), "yours" if r["yours"] else "",
                 pm(r["mean"], r["std"], m.scale, _digits(r["mean"] * m.scale)), str(r["seeds"])]
                for r in group.to_dict("records")]
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
        lines += [f"{task} — {config} — {setting}", "  ".join(h.ljust(w) for h, w in zip(header, widths)),
                  "  ".join("-" * w for w in widths)]
        lines += ["  ".join(c.rjust(w) if i in (3, 4) else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths)))
                  for row in rows]
        lines.append("")
    if not lines:
        lines = ["no protocol was run by two or more models", ""]
    return "\n".join(lines)
