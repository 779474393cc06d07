"""``robench verify``: re-score stored runs from their artifacts under their task's protocol
and record whether they reproduce the metrics they claim.

What RobustBench does by hand for submitted models: each run's task re-evaluates the
exported model or predictions (``Task.rescore``: re-attack, re-evaluate, re-score; no
retraining) and every re-scored metric is compared with the stored one. A run is
``verified`` when each agrees within :data:`REL_TOL` (relative) or :data:`ABS_TOL`, else
``unverified`` with the differences; the verdict is stored (``Store.save_verification``)
and shown on the leaderboard. A task that cannot re-score leaves its runs as they were.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from robench.errors import UserError

REL_TOL = 1e-6
ABS_TOL = 1e-9


@dataclass
class Verdict:
    """One run's re-score: ``status`` verified | unverified | skipped; ``checked``: the
    metrics compared; ``differences``: metric → {claimed, rescored}; ``note``: why skipped."""
    run_id: str
    task: str
    status: str
    checked: list[str] = field(default_factory=list)
    differences: dict[str, dict[str, Any]] = field(default_factory=dict)
    note: str = ""


def same(claimed: Any, rescored: Any) -> bool:
    """Whether a claimed metric value and its re-score agree (NaN equals NaN)."""
    try:
        a, b = float(claimed), float(rescored)
    except (TypeError, ValueError):
        return False
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=ABS_TOL)


def compare(claimed: dict, rescored: dict) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """(metrics compared, differences) of a run's claimed metrics and its re-score."""
    checked = sorted(rescored)
    differences = {name: {"claimed": claimed.get(name), "rescored": float(rescored[name])}
                   for name in checked if not same(claimed.get(name), rescored[name])}
    return checked, differences


def rescore_run(row: dict, artifact_dir: Path, cache_dir: Path, device: str = "cpu") -> dict[str, float]:
    """The metrics ``row``'s task recomputes from the artifacts in ``artifact_dir``
    (NotImplementedError when the task cannot)."""
    import torch

    from robench import registry
    from robench.seeding import seed_everything
    from robench.tasks.base import RunContext

    registry.load_builtins()
    task = registry.tasks.get(row["task"])(**row["task_params"])
    ctx = RunContext(artifact_dir=artifact_dir, cache_dir=cache_dir, device=device)
    seed_everything(int(row["seed"]))
    with torch.device(device):
        return {k: float(v) for k, v in task.rescore(artifact_dir, int(row["seed"]), ctx).items()}


def verify_store(store_path, run_ids: Iterable[str] | None = None, *, device: str = "cpu",
                 on_verdict: Callable[[Verdict], None] | None = None) -> list[Verdict]:
    """Re-score the done runs ``run_ids`` (unique prefixes are enough; default: every
    imported run) of the store at ``store_path``, record each verdict, return them."""
    from robench.bundle import select_ids
    from robench.store import Store

    with Store(store_path, create=False) as db:
        if getattr(db, "read_only", False):
            raise UserError(f"results store {db.path}: read-only; `robench verify` records its verdicts there "
                            "(check the file's and its folder's permissions)")
        if run_ids:
            ids = select_ids(db, None, run_ids)
        else:
            ids = sorted(db.verification())
            if not ids:
                raise UserError(f"results store {db.path}: no imported runs to verify "
                                "(`robench import BUNDLE` first, or name the runs)")
        rows = db.export_rows(ids)
        verdicts = []
        for row in rows:
            verdict = _verify_one(row, db.artifact_root / row["id"], db.cache_dir, device)
            if verdict.status in ("verified", "unverified"):
                db.save_verification(row["id"], verdict.status, {"checked": verdict.checked,
                                                                  "differences": verdict.differences})
            verdicts.append(verdict)
            if on_verdict is not None:
                on_verdict(verdict)
    return verdicts


def _verify_one(row: dict, artifact_dir: Path, cache_dir: Path, device: str) -> Verdict:
    from robench import registry

    if row["status"] != "done":
        return Verdict(row["id"], row["task"], "skipped", note="a failed run: nothing to re-score")
    registry.load_builtins()
    if row["task"] not in registry.tasks:
        return Verdict(row["id"], row["task"], "skipped", note=f"task {row['task']!r} is not installed here")
    try:
        rescored = rescore_run(row, artifact_dir, cache_dir, device)
    except NotImplementedError as exc:
        return Verdict(row["id"], row["task"], "skipped", note=str(exc) or "its task cannot re-score runs")
    except UserError as exc:  # an artifact that does not load or fit: the claim is not reproduced
        return Verdict(row["id"], row["task"], "unverified", differences={"artifacts": {
            "claimed": "loadable artifacts", "rescored": str(exc)}})
    if not rescored:
        return Verdict(row["id"], row["task"], "skipped", note="its task re-scored no metric")
    checked, differences = compare(row["metrics"], rescored)
    return Verdict(row["id"], row["task"], "unverified" if differences else "verified", checked, differences)
