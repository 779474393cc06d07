"""``robench verify``: re-score imported claims from their artifacts under their task's
protocol, on the maintainer's own data, and record what that proves.

What RobustBench does by hand for submitted models: each claim's task is rebuilt from its
re-validated parameters — with every folder parameter (``dataset_root``, ``root``, ...)
taken from the maintainer (``--data-root NAME=PATH``), never from the bundle — and
re-evaluates the exported model or predictions (``Task.rescore``: re-attack, re-evaluate,
re-score; no retraining of the run). Each metric the task recomputes is **re-scored**: it
must agree with the claim within the task's ``rescore_tolerance`` (what another CPU kernel
set can change) or :data:`REL_TOL`; every other metric of the claim (wall-clock latency,
timings) is **claimed**. The verdict, per (run id, origin):

- ``verified``: every re-scored metric agrees, and the primary metric is among them;
- ``unverified``: a re-scored metric differs, or the artifacts do not load or fit;
- ``skipped``: nothing could be re-scored here (a task that cannot, the maintainer's data
  not given, a plug-in not loaded), or the primary metric is claimed only.

It is stored (``Store.save_verification``) with the verifier's kernel set, and the site
ranks verified claims only (unless ``--include-unverified``).
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
    """One claim's re-score: ``status`` verified | unverified | skipped; ``rescored``: the
    metrics recomputed and found equal; ``claimed``: the claim's metrics nobody re-scored;
    ``differences``: metric → {claimed, rescored, tolerance}; ``note``: why (skipped, or
    artifacts that did not load)."""
    run_id: str
    task: str
    status: str
    origin: str = ""
    rescored: list[str] = field(default_factory=list)
    claimed: list[str] = field(default_factory=list)
    differences: dict[str, dict[str, Any]] = field(default_factory=dict)
    note: str = ""

    def details(self) -> dict[str, Any]:
        return {"rescored": self.rescored, "claimed": self.claimed, "differences": self.differences,
                "note": self.note}


def same(claimed: Any, rescored: Any, tolerance: float = 0.0) -> bool:
    """Whether a claimed metric value and its re-score agree: within ``tolerance``
    (absolute), or :data:`REL_TOL` relative (NaN equals NaN)."""
    try:
        a, b = float(claimed), float(rescored)
    except (TypeError, ValueError):
        return False
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= tolerance or math.isclose(a, b, rel_tol=REL_TOL, abs_tol=ABS_TOL)


def compare(claimed: dict, rescored: dict, tolerance: Callable[[str], float] = lambda name: 0.0
            ) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """(metrics re-scored equal, differences) of a claim's metrics and its re-score."""
    agreeing, differences = [], {}
    for name in sorted(rescored):
        tol = float(tolerance(name))
        if same(claimed.get(name), rescored[name], tol):
            agreeing.append(name)
        else:
            differences[name] = {"claimed": claimed.get(name), "rescored": float(rescored[name]), "tolerance": tol}
    return agreeing, differences


def parse_data_roots(items: Iterable[str]) -> dict[str, str]:
    """``NAME=PATH`` items (``--data-root``) → {NAME: PATH}; each PATH must be a folder."""
    out = {}
    for item in items:
        name, sep, path = str(item).partition("=")
        if not sep or not name.strip() or not path.strip():
            raise UserError(f"--data-root {item}: expected NAME=PATH (a dataset or parameter name, e.g. "
                            "cifar10=/data/cifar10)")
        if not Path(path).expanduser().is_dir():
            raise UserError(f"--data-root {item}: no such folder {path} (expected your copy of {name}'s files)")
        out[name.strip()] = str(Path(path).expanduser().resolve())
    return out


def task_for(row: dict, data_roots: dict[str, str]):
    """The task of an imported claim, built here: its parameters re-validated, its folder
    parameters replaced by the maintainer's (``data_roots``: keyed by the parameter's name,
    or the dataset's name for ``dataset_root``/``root``). Returns (task, None), or (None,
    why) when the claim needs data the maintainer did not give."""
    from robench import registry
    from robench.spec import path_params

    task_cls = registry.tasks.get(row["task"])
    params = dict(row["task_params"])
    for name in path_params(task_cls):
        if params.get(name) is None:
            continue
        dataset = params.get("dataset")
        keys = [name] + ([str(dataset)] if dataset is not None and name in ("dataset_root", "root") else [])
        mine = next((data_roots[k] for k in keys if k in data_roots), None)
        if mine is None:
            return None, (f"it reads {name} from the contributor's machine; give yours: --data-root "
                          f"{keys[-1]}=PATH")
        params[name] = mine
    return task_cls(**params), None


def rescore_run(task, row: dict, artifact_dir: Path, cache_dir: Path, device: str = "cpu") -> dict[str, float]:
    """The metrics ``task`` recomputes for ``row`` from the artifacts in ``artifact_dir``,
    given the run's method built here from its (re-validated) name and parameters
    (NotImplementedError when the task cannot)."""
    import torch

    from robench import registry
    from robench.seeding import seed_everything
    from robench.tasks.base import RunContext

    method = registry.methods.get(row["method"], task=row["task"])(**row["method_params"])
    ctx = RunContext(artifact_dir=artifact_dir, cache_dir=cache_dir, device=device)
    seed_everything(int(row["seed"]))
    with torch.device(device):
        return {k: float(v) for k, v in task.rescore(artifact_dir, int(row["seed"]), ctx, method=method,
                                                         claimed=dict(row["metrics"])).items()}


def verify_store(store_path, run_ids: Iterable[str] | None = None, *, device: str = "cpu",
                 data_roots: dict[str, str] | None = None, plugins: tuple = (),
                 on_verdict: Callable[[Verdict], None] | None = None) -> list[Verdict]:
    """Re-score the imported claims of ``run_ids`` (unique prefixes; every claim of a run
    id; default: every imported claim) of the store at ``store_path``, record each
    verdict, return them. ``data_roots``: the maintainer's folders (see :func:`task_for`);
    ``plugins``: files registering the plug-ins the claims use."""
    from robench import provenance, registry
    from robench.store import Store

    registry.setup(plugins)
    with Store(store_path, create=False) as db:
        if db.read_only:
            raise UserError(f"results store {db.path}: read-only; `robench verify` records its verdicts there "
                            "(check the file's and its folder's permissions)")
        claims = db.imported()
        if not claims:
            raise UserError(f"results store {db.path}: no imported runs to verify (`robench import BUNDLE` first)")
        if run_ids:
            chosen = []
            for prefix in run_ids:
                ids = {c["id"] for c in claims if c["id"].startswith(prefix)}
                if len(ids) != 1:
                    what = "no imported run" if not ids else f"{len(ids)} imported runs"
                    raise UserError(f"robench verify: {what} in {db.path} with an id starting {prefix!r} "
                                    "(expected one; see `robench results`)")
                chosen += [c for c in claims if c["id"] in ids and c not in chosen]
            claims = chosen
        kernels = provenance.kernel_set(device)
        verdicts = []
        for row in claims:
            verdict = _verify_one(row, db.artifact_root, db.cache_dir, device, data_roots or {})
            db.save_verification(row["id"], row["origin"], verdict.status, {**verdict.details(), "kernels": kernels})
            verdicts.append(verdict)
            if on_verdict is not None:
                on_verdict(verdict)
    return verdicts


def _verify_one(row: dict, artifact_root: Path, cache_dir: Path, device: str, data_roots: dict) -> Verdict:
    from robench import registry
    from robench.store import claim_folder

    def verdict(status: str, **kw) -> Verdict:
        return Verdict(row["id"], row["task"], status, row["origin"], **kw)

    claimed_all = sorted(row["metrics"])
    if row["status"] != "done":
        return verdict("skipped", note="a failed run: nothing to re-score")
    if row["task"] not in registry.tasks:
        return verdict("skipped", claimed=claimed_all, note=f"task {row['task']!r} is not installed here")
    missing = [k.partition(":")[2] for k in row["components"]
               if k.startswith("model:") and k.partition(":")[2] not in registry.models]
    if missing:
        return verdict("skipped", claimed=claimed_all,
                       note=f"model {missing[0]!r} is not registered here (load its plug-in with --plugin)")
    artifact_dir = artifact_root / claim_folder(row["origin"], row["id"])
    if not artifact_dir.is_dir():  # imported by an earlier robench: under the run's id
        artifact_dir = artifact_root / row["id"]
    try:
        task, why = task_for(row, data_roots)
        if task is None:
            return verdict("skipped", claimed=claimed_all, note=why)
        rescored = rescore_run(task, row, artifact_dir, cache_dir, device)
    except NotImplementedError as exc:
        return verdict("skipped", claimed=claimed_all, note=str(exc) or "its task cannot re-score runs")
    except UserError as exc:  # an artifact that does not load or fit: the claim is not reproduced
        return verdict("unverified", claimed=claimed_all, note=_one_line(str(exc)))
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # a hostile artifact may break a task anywhere: this claim fails, alone
        return verdict("unverified", claimed=claimed_all,
                       note=_one_line(f"re-scoring raised {type(exc).__name__}: {exc}"))
    agreeing, differences = compare(row["metrics"], rescored, getattr(task, "rescore_tolerance", lambda m: 0.0))
    claimed = sorted(set(row["metrics"]) - set(rescored))
    if differences:
        return verdict("unverified", rescored=agreeing, claimed=claimed, differences=differences)
    primary = row["primary_metric"]
    if primary not in agreeing:
        return verdict("skipped", rescored=agreeing, claimed=claimed,
                       note=f"its primary metric {primary} cannot be re-scored here: claimed only")
    return verdict("verified", rescored=agreeing, claimed=claimed)


def _one_line(text: str) -> str:
    first = text.strip().splitlines()[0] if text.strip() else "?"
    return first[:300]
