"""What a ranking means: which configurations are references (dense, vanilla, oracle) and
not contenders, which metric leads a setting (a requested variant such as PSNR-Y), ties
within the seeds' spread, the accuracy–storage trade-off of compression, the model
leaderboard's protocols, and a user's own models.

Reads only ``task_info`` (the task's ``report_info()``, stored with its runs) and the rows;
where a task does not declare ``reference_methods``, ``tradeoff`` or ``variants`` yet, the
fallbacks below say what the tasks mean (never imports a task).
"""

from __future__ import annotations

import json
import math
from typing import Any, Iterable

from .labels import metric
from .table import as_dict, format_number, to_float

# task → its reference configurations (methods): reference lines, never contenders
REFERENCE_FALLBACK = {"compression": ["dense"], "sparsity_robustness": ["dense"], "robust_training": ["vanilla"],
                      "restoration_spectrum": ["oracle"]}
# a reference's expected side of the contenders: an upper bound should score best, a lower bound worst
REFERENCE_BOUNDS = {"dense": "upper", "oracle": "upper", "vanilla": "lower"}
TRADEOFF_FALLBACK = {"compression": {"x": "compression_ratio_bits", "y": "accuracy", "within": 0.01}}
# a setting's parameter that requests variants of the metrics: param → (primary, headline first)
VARIANTS_FALLBACK = {"restoration_spectrum": {"y_channel": {"primary": "psnr_y_mean",
                                                            "headline": ["psnr_y_mean", "ssim_y_mean"]}}}
MODEL_PARAM = "model"


def reference_methods(task: str, info: dict) -> list[str]:
    """The task's reference methods (``task_info["reference_methods"]``, else the fallback)."""
    declared = info.get("reference_methods")
    if isinstance(declared, (list, tuple)):
        return [str(m) for m in declared]
    return list(REFERENCE_FALLBACK.get(task, []))


def reference_bound(method: str, info: dict) -> str | None:
    """"upper" or "lower": the side of the contenders a reference is expected on, or None."""
    declared = as_dict(info.get("reference_bounds"))  # "" declares a reference that bounds nothing
    bound = declared[method] if method in declared else REFERENCE_BOUNDS.get(method)
    return bound if bound in ("upper", "lower") else None


def tradeoff(task: str, info: dict) -> dict | None:
    """The trade-off a task ranks on: {"x", "y", "within"} (highest x among the contenders
    whose y is within ``within`` of the reference's), or None (rank on the primary metric)."""
    declared = info.get("tradeoff")
    if isinstance(declared, dict) and isinstance(declared.get("x"), str) and isinstance(declared.get("y"), str):
        within = to_float(declared.get("within", 0.01))
        return {"x": declared["x"], "y": declared["y"], "within": within if math.isfinite(within) else 0.01}
    return dict(TRADEOFF_FALLBACK[task]) if task in TRADEOFF_FALLBACK else None


def promoted(task: str, info: dict, task_params: dict) -> tuple[str | None, list[str]]:
    """(primary, headline metrics first) that a setting's parameters request (``y_channel:
    true`` → PSNR-Y), or (None, []) when none does."""
    declared = info.get("variants")
    variants = declared if isinstance(declared, dict) else VARIANTS_FALLBACK.get(task, {})
    for param, want in variants.items():
        if task_params.get(param) is True and isinstance(want, dict):
            head = [str(m) for m in want.get("headline") or () if isinstance(m, str)]
            primary = want.get("primary") if isinstance(want.get("primary"), str) else (head[0] if head else None)
            return primary, head
    return None, []


def setting_metrics(task: str, info: dict, task_params: dict, names: list[str], primary: str | None,
                    ) -> tuple[str | None, list[str]]:
    """(the metric a setting ranks by, its headline columns in order): the stored primary
    and ``info["headline_metrics"]``, unless the setting's parameters promote variants
    (which then lead, and the stored primary follows them)."""
    want, head = promoted(task, info, task_params)
    if want is not None and want in names:
        primary_out = want
    else:
        primary_out, head = primary, []
    declared = [m for m in info.get("headline_metrics") or ()]
    if not declared and not head:
        return primary_out, [primary_out] + [n for n in names if n != primary_out] if primary_out in names \
            else list(names)
    order = [primary_out] + head + ([primary] if primary != primary_out else []) + declared
    return primary_out, [m for m in dict.fromkeys(order) if m is not None and m in names]


# ---------------------------------------------------------------------------- ties

def tied(a: tuple[float, float, int], b: tuple[float, float, int]) -> bool:
    """Whether two (mean, std, seeds) cannot be told apart: a side with one seed only (no
    spread to judge by), or means within the larger of the two stds."""
    (ma, sa, na), (mb, sb, nb) = a, b
    if not (math.isfinite(ma) and math.isfinite(mb)):
        return False
    if na < 2 or nb < 2:
        return True
    spread = max(sa if math.isfinite(sa) else 0.0, sb if math.isfinite(sb) else 0.0)
    return abs(ma - mb) <= spread


def shared_ranks(stats: list[tuple[float, float, int]]) -> tuple[list[int], list[bool]]:
    """Ranks of rows already sorted best first: a row tied with the one above shares its
    rank; and whether each row is tied with a neighbour."""
    ranks, ties = [], [False] * len(stats)
    for i, s in enumerate(stats):
        if i and tied(stats[i - 1], s):
            ranks.append(ranks[-1])
            ties[i] = ties[i - 1] = True
        else:
            ranks.append(i + 1)
    return ranks, ties


# ---------------------------------------------------------------------------- trade-off

def pareto(points: list[tuple[float, float]]) -> list[bool]:
    """Which (x, y) no other point beats on both (more x, more y; one strictly)."""
    out = []
    for i, (x, y) in enumerate(points):
        if not (math.isfinite(x) and math.isfinite(y)):
            out.append(False)
            continue
        out.append(not any(j != i and math.isfinite(a) and math.isfinite(b) and a >= x and b >= y
                           and (a > x or b > y) for j, (a, b) in enumerate(points)))
    return out


# ---------------------------------------------------------------------------- models

def is_yours(components: Any, model: Any = None) -> bool:
    """A run of the user's own model: its ``components`` give the model a plug-in source
    hash (``model:<name>`` → ``...src:<hash>``: a plug-in file or a ``benchmark()`` module)."""
    comps = as_dict(components)
    for key, value in comps.items():
        if str(key).startswith("model:") and (model is None or str(key) == f"model:{model}") and "src:" in str(value):
            return True
    return False


def protocol_key(task_params: dict, method_label: str) -> str:
    """A run's protocol: its setting without the model (every other task parameter) and its
    configuration (method and parameters)."""
    params = {k: v for k, v in as_dict(task_params).items() if k != MODEL_PARAM}
    return json.dumps([params, str(method_label)], sort_keys=True, default=str)


def without_model(label: str) -> str:
    """A setting label without its ``model=...`` component."""
    from .table import label_parts

    parts = [p for p in label_parts(str(label)) if not p.startswith(f"{MODEL_PARAM}=")]
    return ", ".join(parts)


def models_of(values: Iterable[Any]) -> list[str]:
    return [str(as_dict(p).get(MODEL_PARAM)) for p in values]


def model_boards(runs, task: str, info: dict) -> list[dict]:
    """The model leaderboards of one task's counted rows (normalised, rankable ones only):
    per protocol that two or more models ran, ``{"key", "setting", "configuration",
    "params", "primary", "greater_is_better", "headline", "rows"}``; ``rows`` best first,
    each ``{"model", "config_id", "yours", "mean", "std", "n", "rank", "tie"}`` over the
    model's done seeds (a model within the spread of the one above shares its rank)."""
    import pandas as pd

    from .table import mean_std, metric_values, mode

    done = runs[runs["status"] == "done"]
    if done.empty or not any(MODEL_PARAM in as_dict(p) for p in done["task_params"]):
        return []
    done = done[done["task_params"].map(lambda p: MODEL_PARAM in as_dict(p))]
    keys = [protocol_key(p, m) for p, m in zip(done["task_params"], done["method_label"])]
    boards = []
    for key, members in done.groupby(pd.Series(keys, index=done.index), sort=True):
        models = models_of(members["task_params"])
        if len(set(models)) < 2:
            continue
        params = as_dict(members["task_params"].iloc[0])
        stored = mode(members["primary_metric"])
        names = list(dict.fromkeys(n for m in members["metrics"] for n in as_dict(m)))
        primary, headline = setting_metrics(task, info, params, names, stored)
        gib = _greater(info, primary, members, stored)
        values = metric_values(members, [primary] if primary else [])
        rows = []
        for model in dict.fromkeys(models):
            mine = members[[m == model for m in models]]
            mean, std = mean_std(values.loc[mine.index, primary]) if primary else (math.nan, math.nan)
            n = int(sum(math.isfinite(v) for v in values.loc[mine.index, primary])) if primary else 0
            rows.append({"model": model, "config_id": str(mine["config_id"].iloc[0]),
                         "config_ids": list(dict.fromkeys(mine["config_id"])),
                         "yours": any(is_yours(c, model) for c in mine["components"]),
                         "mean": mean, "std": std, "n": n})
        rows.sort(key=lambda r: (not math.isfinite(r["mean"]), -r["mean"] if gib else r["mean"], r["model"]))
        ranks, ties = shared_ranks([(r["mean"], r["std"], r["n"]) for r in rows])
        for r, rank, tie in zip(rows, ranks, ties):
            r["rank"], r["tie"] = rank, tie
        boards.append({"key": key, "setting": without_model(members["task_label"].iloc[0]),
                       "configuration": str(members["method_label"].iloc[0]), "params": params,
                       "primary": primary, "greater_is_better": gib, "headline": headline, "rows": rows,
                       "runs": members})
    boards.sort(key=lambda b: (-len(b["rows"]), b["setting"], b["configuration"]))
    return boards


def _greater(info: dict, primary: str | None, members, stored: str | None) -> bool:
    """Whether more of ``primary`` is better: the task's ``metrics_info``, else the runs'."""
    from .table import mode

    described = as_dict(info.get("metrics_info")).get(primary)
    if primary != stored and isinstance(described, (list, tuple)) and len(described) > 1:
        return bool(described[1])
    return bool(mode([g for g, p in zip(members["greater_is_better"], members["primary_metric"]) if p == stored],
                     True))


# ---------------------------------------------------------------------------- a setting's order

def rank_rows(rows: list[dict], task: str, info: dict, greater_is_better: bool, primary: str | None) -> dict:
    """Order a setting's rows in place and rank them; return what the page says of the order.

    References (``reference_methods``) come first, styled and unranked (``rank`` None). The
    contenders rank on the primary metric, or on the task's trade-off (the highest x among
    those whose y is within ``within`` of the best reference's y, then the others by the
    primary metric); a contender within the seeds' spread of the one above shares its rank
    (``tie``). Every row gets ``front`` (on the Pareto front of the trade-off's x and y)."""
    refs = [r for r in rows if r["reference"]]
    contenders = [r for r in rows if not r["reference"]]
    trade = tradeoff(task, info)
    order: dict[str, Any] = {"mode": "primary", "references": [r["method_label"] for r in refs], "flag": None,
                             "none_within": False}
    if trade and not any(math.isfinite(r["means"].get(trade["x"], math.nan))
                         and math.isfinite(r["means"].get(trade["y"], math.nan)) for r in rows):
        trade = None
    ref_y = max((r["means"].get(trade["y"], math.nan) for r in refs
                 if math.isfinite(r["means"].get(trade["y"], math.nan))), default=math.nan) if trade else math.nan

    def stat(r, name):
        return (r["means"].get(name, math.nan), r["stds"].get(name, math.nan), r["primary_n"])

    for r in rows:
        r["front"] = False
        r["within"] = None
    if trade:
        front = pareto([(r["means"].get(trade["x"], math.nan), r["means"].get(trade["y"], math.nan)) for r in rows])
        for r, on in zip(rows, front):
            r["front"] = on
    if trade and math.isfinite(ref_y):
        x, y, within = trade["x"], trade["y"], trade["within"]
        for r in contenders:
            r["within"] = math.isfinite(r["means"].get(y, math.nan)) and r["means"][y] >= ref_y - within - 1e-12
        inside = sorted((r for r in contenders if r["within"]),
                        key=lambda r: (sort_key_best_first(r["means"].get(x, math.nan), True), r["method_label"]))
        outside = sorted((r for r in contenders if not r["within"]), key=lambda r: (r["_key"], r["method_label"]))
        ranks_in, ties_in = shared_ranks([stat(r, x) for r in inside])
        ranks_out, ties_out = shared_ranks([stat(r, primary) for r in outside])
        ranks = ranks_in + [len(inside) + k for k in ranks_out]
        ties = ties_in + ties_out
        contenders = inside + outside
        mx, my = metric(x), metric(y)
        ref_names = ", ".join(dict.fromkeys(r["method_label"] for r in refs))
        order.update(mode="tradeoff", x=x, y=y, within=within, x_label=mx.label, y_label=my.label,
                     text=f"highest {mx.label} among the configurations within "
                          + (f"{format_number(within * my.scale)} point{'s' if within * my.scale != 1 else ''}"
                             if my.unit == "%" else format_number(within * my.scale))
                          + f" of {ref_names}'s {my.label}",
                     n_within=len(inside))
    else:
        contenders.sort(key=lambda r: (r["_key"], r["method_label"]))
        ranks, ties = shared_ranks([stat(r, primary) for r in contenders])
    for r, rank, tie in zip(contenders, ranks, ties):
        r["rank"], r["tie"] = rank, tie
    for r in refs:
        r["rank"], r["tie"] = None, False
    refs.sort(key=lambda r: (r["_key"], r["method_label"]))
    rows[:] = refs + contenders
    for position, r in enumerate(rows, 1):
        r["position"] = position
    # a reference on the wrong side of the contenders: an upper bound beaten, a lower bound beating
    if order["mode"] == "primary" and primary is not None:
        for ref in refs:
            bound = reference_bound(str(ref["method"]), info)
            if bound is None:
                continue
            mine = stat(ref, primary)
            better = lambda a, b: (a > b) if greater_is_better else (a < b)  # noqa: E731
            wrong = [c for c in contenders if math.isfinite(c["means"].get(primary, math.nan))
                     and math.isfinite(mine[0]) and not tied(mine, stat(c, primary))
                     and (better(c["means"][primary], mine[0]) if bound == "upper"
                          else better(mine[0], c["means"][primary]))]
            if wrong:
                names = ", ".join(c["method_label"] for c in wrong[:3]) + (" …" if len(wrong) > 3 else "")
                order["flag"] = (f"The reference {ref['method_label']}, {'an upper' if bound == 'upper' else 'a lower'}"
                                 f" bound, scores {'below' if bound == 'upper' else 'above'} {names} on "
                                 f"{metric(primary).label}: check its runs before reading this ranking.")
                break
    return order


def sort_key_best_first(mean: float, greater_is_better: bool) -> tuple:
    if math.isnan(mean):
        return (1, 0.0)
    return (0, -mean if greater_is_better else mean)
