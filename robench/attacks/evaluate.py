"""Run a list of attacks on a classifier and keep every per-sample result.

:func:`evaluate_robustness` returns a :class:`RobustnessReport`: per-sample arrays from
which every robustness metric in robench is computed (and recomputed, after
``RobustnessReport.from_npz``), so a figure never needs a re-evaluation.

Conventions used everywhere in robench
--------------------------------------
- **Minimal norms** (``deepfool_l2``, ``cw_l2``, ...): ‖x_adv − x‖ in the attack's norm,
  float64 (N,). A clean-misclassified point has norm **0** (no perturbation needed).
  A point where the attack did not reach a misclassification has norm **+inf** (never
  NaN): "not broken at any budget", which makes ``norm <= ε`` correct for every ε.
- **Fixed-ε success** (``fgsm_linf``, ``pgd_linf``, ...): bool (N, K), foolbox's verdict
  that the ε-clipped perturbed input is misclassified (True for clean errors as well).
- **Robust accuracy** at ε under threat model p ∈ {l∞, l2} is the worst case over every
  attack of norm p, point by point: a point counts as robust only if it is classified
  correctly, no fixed-ε attack that ran at that ε succeeded on it, and every minimal-norm
  attack of norm p needed more than ε. The ε grid of a threat is the union of the grids
  of its fixed-ε attacks; an attack contributes only at the ε it ran at (no closure over
  smaller ε, so a non-monotone curve still exposes a weak or masked attack).
- **Which attack first broke a point**: per threat, an int16 (N, K) record over the
  threat's ε grid: the index (into ``configs``) of the first attack, in the order the
  attacks were given, that broke the point at ε_k; :data:`ROBUST` (−1) where none did,
  :data:`CLEAN_ERROR` (−2) for a point misclassified without any perturbation. Robust
  accuracy is the fraction of −1 in a column; the record is stored with the report (npz),
  and a sanity flag checks it against every single attack's own result.
- **Success of an AutoAttack kind** (robench's APGD, torchattacks' FAB-T and Square) is
  decided here, not by the attack: the model misclassifies the returned input, and that
  input lies in the ε-ball and the box (up to float rounding: 1e-5 relative + 1e-6
  absolute on the norm).
- **ρ2** = mean over the test points of ‖r(x)‖₂ / ‖x‖₂ with r from L2 DeepFool, where a
  misclassified point counts as 0 (DeepFool paper / DeepDefense convention). Points where
  DeepFool failed (inf) are left out of the mean and counted in
  ``deepfool_l2_failure_rate``; the sanity check flags them.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from robench import seeding
from robench.attacks.configs import ATTACKS_VERSION, AttackConfig, format_epsilon, resolve_attacks
from robench.errors import UserError

NPZ_FORMAT = "robench-robustness-report/1"
THREATS = ("linf", "l2")
ROBUST, CLEAN_ERROR = -1, -2  # codes of the first-broken record besides attack indices
UNIT_BOX_LIBRARIES = ("robench", "torchattacks")  # the AutoAttack kinds: inputs mapped onto [0, 1]


# -- the report -----------------------------------------------------------------------------

@dataclass
class RobustnessReport:
    """Per-sample results of :func:`evaluate_robustness`; every metric derives from them.

    labels: int64 (N,). clean_correct: bool (N,), prediction of the foolbox-wrapped model
    (the one the attacks see). clean_correct_unwrapped: bool (N,), the plain ``model(x)``.
    input_l2: float64 (N,), ‖x‖₂ per sample (denominator of ρ2).
    minimal_norms: name → float64 (N,), 0 for clean errors, +inf where the attack failed.
    success: name → bool (N, K), fixed-ε attack succeeded at ``epsilons[name][k]``.
    epsilons: name → float64 (K,). configs: the attacks in the order they ran.
    meta: bounds, batch size, seed, versions, timing (JSON-able).
    first_broken: threat → int16 (N, K) record over :meth:`threat_epsilons` (module doc);
    derived from the attacks' results when not given (the evaluator and ``from_npz`` give it).
    """

    labels: np.ndarray
    clean_correct: np.ndarray
    clean_correct_unwrapped: np.ndarray
    input_l2: np.ndarray
    minimal_norms: dict[str, np.ndarray]
    success: dict[str, np.ndarray]
    epsilons: dict[str, np.ndarray]
    configs: tuple[AttackConfig, ...]
    meta: dict[str, Any] = field(default_factory=dict)
    first_broken: dict[str, np.ndarray] | None = None

    def __post_init__(self):
        record = dict(self.first_broken or {})
        for threat in THREATS:
            if threat not in record:
                record[threat] = self.derive_first_broken(threat)
        self.first_broken = record

    # -- derived quantities ------------------------------------------------------------
    @property
    def n(self) -> int:
        return int(self.labels.shape[0])

    def config(self, name: str) -> AttackConfig:
        for cfg in self.configs:
            if cfg.name == name:
                return cfg
        raise KeyError(name)

    def threat_epsilons(self, threat: str) -> np.ndarray:
        """Sorted union of the ε grids of the fixed-ε attacks of norm ``threat``."""
        grids = [self.epsilons[c.name] for c in self.configs if not c.minimal and c.norm == threat]
        return np.unique(np.concatenate(grids)) if grids else np.zeros(0)

    def broken_mask(self, name: str, grid: np.ndarray | None = None) -> np.ndarray:
        """bool (N, K): attack ``name`` alone broke the point at ε_k of ``grid`` (default: the
        threat grid of its norm). A minimal attack breaks a point at every ε ≥ its norm; a
        fixed-ε attack only at the ε it ran at (False elsewhere)."""
        cfg = self.config(name)
        grid = self.threat_epsilons(cfg.norm) if grid is None else np.asarray(grid, dtype=np.float64)
        if cfg.minimal:
            return self.minimal_norms[name][:, None] <= grid[None, :]
        out = np.zeros((self.n, len(grid)), dtype=bool)
        eps = self.epsilons[name]
        cols = np.searchsorted(grid, eps)
        found = cols < len(grid)
        found[found] = grid[cols[found]] == eps[found]
        out[:, cols[found]] = self.success[name][:, found]
        return out

    def derive_first_broken(self, threat: str) -> np.ndarray:
        """The first-broken record of ``threat`` (module doc), from the attacks' results."""
        grid = self.threat_epsilons(threat)
        record = np.full((self.n, len(grid)), ROBUST, dtype=np.int16)
        record[~self.clean_correct] = CLEAN_ERROR
        for index, cfg in enumerate(self.configs):
            if cfg.norm == threat:
                record[self.broken_mask(cfg.name, grid) & (record == ROBUST)] = index
        return record

    def robust_mask(self, threat: str) -> tuple[np.ndarray, np.ndarray]:
        """(ε grid (K,), robust bool (N, K)): worst case over all attacks of that norm, per
        point, as the first-broken record says."""
        return self.threat_epsilons(threat), self.first_broken[threat] == ROBUST

    def robust_accuracy(self, threat: str) -> dict[float, float]:
        """ε → fraction of all N points robust at ε under ``threat`` (``linf`` or ``l2``)."""
        grid, robust = self.robust_mask(threat)
        return {float(e): float(robust[:, k].mean()) for k, e in enumerate(grid)}

    def rho2(self, name: str | None = None) -> float:
        """Mean ‖r‖₂/‖x‖₂ of L2 DeepFool, misclassified points as 0, failures left out (NaN if none left)."""
        norms = self.minimal_norms[name or self._deepfool_l2_name()]
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(self.clean_correct, norms / self.input_l2, 0.0)
        keep = np.isfinite(ratio)
        return float(ratio[keep].mean()) if keep.any() else math.nan

    def _deepfool_l2_name(self) -> str:
        for cfg in self.configs:
            if cfg.kind == "deepfool" and cfg.norm == "l2":
                return cfg.name
        raise KeyError("no L2 DeepFool attack in this report: rho2 needs one")

    def as_metrics(self) -> dict[str, float]:
        """Flat name → float. Names (ε written with ``%g``):

        ``clean_accuracy_attacked`` (the accuracy on these N attacked points, not on a whole
        split: a task reports that as ``clean_accuracy``); ``rho2`` (if an L2 DeepFool ran); per
        minimal attack ``<name>_median``
        (median norm over clean-correct points, inf if more than half failed) and
        ``<name>_failure_rate`` (fraction of clean-correct points not broken);
        per threat and ε ``robust_accuracy_<linf|l2>@<ε>`` (worst case over attacks);
        per fixed-ε attack and ε ``accuracy_under_<name>@<ε>``; per threat, ε and attack
        of that norm contributing at that ε ``broken_first_by_<name>@<ε>``, the fraction of
        all N points that attack was the first (in the given order) to break: over the
        attacks, these add up to clean accuracy − robust accuracy.
        """
        metrics: dict[str, float] = {"clean_accuracy_attacked": float(self.clean_correct.mean())}
        try:
            metrics["rho2"] = self.rho2()
        except KeyError:
            pass
        correct = self.clean_correct
        for cfg in self.configs:
            if not cfg.minimal:
                continue
            norms = self.minimal_norms[cfg.name][correct]
            metrics[f"{cfg.name}_median"] = float(np.median(norms)) if norms.size else math.nan
            metrics[f"{cfg.name}_failure_rate"] = float(np.isinf(norms).mean()) if norms.size else 0.0
        for threat in THREATS:
            for eps, acc in self.robust_accuracy(threat).items():
                metrics[f"robust_accuracy_{threat}@{format_epsilon(eps)}"] = acc
        for cfg in self.configs:
            if cfg.minimal:
                continue
            broken = self.success[cfg.name]
            for k, eps in enumerate(self.epsilons[cfg.name]):
                metrics[f"accuracy_under_{cfg.name}@{format_epsilon(eps)}"] = float((correct & ~broken[:, k]).mean())
        for threat in THREATS:
            grid, record = self.threat_epsilons(threat), self.first_broken[threat]
            for index, cfg in enumerate(self.configs):
                if cfg.norm != threat:
                    continue
                for k, eps in enumerate(grid):
                    if cfg.minimal or eps in self.epsilons[cfg.name]:
                        metrics[f"broken_first_by_{cfg.name}@{format_epsilon(eps)}"] = float((record[:, k] == index).mean())
        return metrics

    def sanity(self, **kwargs):
        """Shortcut for :func:`robench.attacks.sanity.run_sanity_checks`."""
        from robench.attacks.sanity import run_sanity_checks
        return run_sanity_checks(self, **kwargs)

    # -- storage -------------------------------------------------------------------------
    def save_npz(self, path: str | Path) -> Path:
        """Write everything to one ``.npz`` (no pickles). Layout:

        ``labels``, ``clean_correct``, ``clean_correct_unwrapped``, ``input_l2`` (N,);
        ``norm__<name>`` (N,) per minimal attack; ``success__<name>`` (N, K) and
        ``epsilons__<name>`` (K,) per fixed-ε attack; ``first_broken__<threat>`` (N, K)
        int16 per threat (module doc); ``configs_json`` (list of ``AttackConfig.to_dict()``)
        and ``meta_json`` as 0-d unicode arrays.
        """
        path = Path(path)
        arrays: dict[str, np.ndarray] = {
            "labels": self.labels, "clean_correct": self.clean_correct,
            "clean_correct_unwrapped": self.clean_correct_unwrapped, "input_l2": self.input_l2,
            "configs_json": np.array(json.dumps([c.to_dict() for c in self.configs])),
            "meta_json": np.array(json.dumps({"format": NPZ_FORMAT, **self.meta})),
        }
        for name, norms in self.minimal_norms.items():
            arrays[f"norm__{name}"] = norms
        for name, success in self.success.items():
            arrays[f"success__{name}"] = success
            arrays[f"epsilons__{name}"] = self.epsilons[name]
        for threat, record in self.first_broken.items():
            arrays[f"first_broken__{threat}"] = record
        with open(path, "wb") as fh:  # a file handle keeps numpy from appending ".npz"
            np.savez_compressed(fh, **arrays)
        return path

    @classmethod
    def from_npz(cls, path: str | Path) -> "RobustnessReport":
        """Load a report written by :meth:`save_npz`; ``as_metrics()`` reproduces the original exactly."""
        try:
            data = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise UserError(f"robustness report {path}: cannot read ({exc}); expected an .npz written by save_npz") from None
        with data:
            try:
                meta = json.loads(str(data["meta_json"]))
                configs = tuple(AttackConfig.from_dict(d) for d in json.loads(str(data["configs_json"])))
                if meta.pop("format", None) != NPZ_FORMAT:
                    raise KeyError("format")
                minimal = {c.name: data[f"norm__{c.name}"] for c in configs if c.minimal}
                success = {c.name: data[f"success__{c.name}"] for c in configs if not c.minimal}
                epsilons = {c.name: data[f"epsilons__{c.name}"] for c in configs if not c.minimal}
                # reports written before the record existed get it derived
                record = {t: data[f"first_broken__{t}"] for t in THREATS if f"first_broken__{t}" in data.files}
                return cls(labels=data["labels"], clean_correct=data["clean_correct"],
                           clean_correct_unwrapped=data["clean_correct_unwrapped"], input_l2=data["input_l2"],
                           minimal_norms=minimal, success=success, epsilons=epsilons,
                           configs=configs, meta=meta, first_broken=record)
            except KeyError as exc:
                raise UserError(f"robustness report {path}: missing entry {exc}; expected the layout of {NPZ_FORMAT}") from None


# -- evaluation -----------------------------------------------------------------------------

def evaluate_robustness(model, x, y, attacks: str | AttackConfig | Sequence[AttackConfig], *,
                        batch_size: int = 250, bounds: tuple[float, float] = (0.0, 1.0),
                        seed: int = 0, device=None, on_adversarial=None) -> RobustnessReport:
    """Attack ``model`` on (x, y) with every config in ``attacks`` and keep per-sample results.

    model: ``torch.nn.Module`` mapping a float batch (B, ...) to logits (B, classes).
    x: float (N, ...) in ``bounds``; y: int (N,) class labels. ``attacks``: a preset name
    (``"mnist-default"``, ``"autoattack-standard"``, ``"smoke"``, ...), one
    :class:`AttackConfig` or a sequence of them. Every attack runs on every point (so each
    one's own accuracy is known); the order of ``attacks`` is the order of the first-broken
    record. The model is evaluated in eval mode with its parameters' ``requires_grad``
    switched off (foolbox would otherwise leave ``.grad`` on them); both are restored
    afterwards. ``seed`` fixes the random starts (foolbox draws from the global generators,
    seeded with it for the evaluation and restored afterwards: :func:`robench.seeding.scoped`;
    each AutoAttack kind gets its own seed per batch and ε, derived from it), so the
    same call gives the same report and the caller's random state is left as it was. The
    attacks run on ``device`` (default: the model's); x and y may be on any device,
    per-sample results come back as NumPy arrays. ``on_adversarial(name, eps, x, x_adv,
    success)``, if given, sees every fixed-ε attack's adversarial batch (tensors on
    ``device``; success bool (B,)), for tests and inspection.
    Inputs are validated before any attack runs; bad ones raise :class:`UserError`.
    """
    import torch

    configs = resolve_attacks(attacks)
    lo, hi = _check_bounds(bounds)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise UserError(f"batch_size must be a positive integer, got {batch_size!r}")
    if not isinstance(model, torch.nn.Module):
        raise UserError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    device = torch.device(device) if device is not None else _model_device(model)
    x, y = _as_tensors(x, y, model)
    _check_inputs_in_bounds(x, lo, hi)

    started = time.perf_counter()
    timings: dict[str, float] = {}
    invalid: dict[str, int] = {}
    with frozen(model):
        num_classes = _check_logits(model, x, y, device)
        _check_autoattack_inputs(configs, model, x, num_classes)
        import foolbox as fb
        fmodel = fb.PyTorchModel(model, bounds=(lo, hi), device=device)  # device given: never moved
        attacks_fb = {c.name: c.build() for c in configs if c.library == "foolbox"}
        unit_model = _unit_box_model(model, lo, hi, tuple(x.shape[1:]), device) \
            if any(c.library in UNIT_BOX_LIBRARIES for c in configs) else None
        correct, correct_plain, input_l2 = [], [], []
        minimal = {c.name: [] for c in configs if c.minimal}
        success = {c.name: [] for c in configs if not c.minimal}
        # foolbox draws its random starts from torch's global generator (of the model's device):
        # seeded for the evaluation, and the caller's generator states restored afterwards
        with seeding.scoped(seed), torch.enable_grad():
            for start in range(0, len(x), batch_size):
                xb = x[start:start + batch_size].to(device)
                yb = y[start:start + batch_size].to(device)
                with torch.no_grad():
                    correct_plain.append((model(xb).argmax(1) == yb).cpu().numpy())
                    ok = fmodel(xb).argmax(1) == yb
                correct.append(ok.cpu().numpy())
                input_l2.append(xb.flatten(1).double().norm(dim=1).cpu().numpy())
                for cfg in configs:
                    t0 = time.perf_counter()
                    if cfg.minimal:
                        minimal[cfg.name].append(_run_minimal(attacks_fb[cfg.name], cfg, fmodel, xb, yb, ok))
                    elif cfg.library == "foolbox":
                        _, clipped, hit = attacks_fb[cfg.name](fmodel, xb, yb, epsilons=list(cfg.epsilons))
                        if on_adversarial is not None:
                            for k, eps in enumerate(cfg.epsilons):
                                on_adversarial(cfg.name, eps, xb, clipped[k], hit[k])
                        success[cfg.name].append(hit.T.cpu().numpy())  # (K, B) -> (B, K)
                    else:
                        hits, bad = _run_unit_box(cfg, unit_model, xb, yb, ok, num_classes,
                                                  lambda k: seeding.stream_seed(seed, f"{cfg.name}/{start}/{k}"),
                                                  on_adversarial)
                        success[cfg.name].append(hits)
                        invalid[cfg.name] = invalid.get(cfg.name, 0) + bad
                    timings[cfg.name] = timings.get(cfg.name, 0.0) + time.perf_counter() - t0

    import foolbox
    meta = {"bounds": [lo, hi], "batch_size": batch_size, "seed": seed, "num_classes": num_classes,
            "input_shape": list(x.shape[1:]), "attacks_version": ATTACKS_VERSION,
            "foolbox_version": foolbox.__version__, "torch_version": torch.__version__,
            "device": str(device), "seconds_total": time.perf_counter() - started,
            "seconds_per_attack": timings}
    if unit_model is not None:
        meta.update(invalid_adversarials=invalid)
    if any(c.library == "torchattacks" for c in configs):
        import torchattacks
        meta.update(torchattacks_version=torchattacks.__version__)
    return RobustnessReport(
        labels=y.numpy().astype(np.int64),
        clean_correct=np.concatenate(correct).astype(bool),
        clean_correct_unwrapped=np.concatenate(correct_plain).astype(bool),
        input_l2=np.concatenate(input_l2).astype(np.float64),
        minimal_norms={k: np.concatenate(v).astype(np.float64) for k, v in minimal.items()},
        success={k: np.concatenate(v).astype(bool) for k, v in success.items()},
        epsilons={c.name: np.asarray(c.epsilons, dtype=np.float64) for c in configs if not c.minimal},
        configs=configs, meta=meta)


def _run_unit_box(cfg: AttackConfig, unit_model, xb, yb, clean_ok, num_classes: int, seed_of,
                  on_adversarial) -> tuple[np.ndarray, int]:
    """(B, K) success of an AutoAttack kind at each ε of ``cfg`` and the number of
    adversarial inputs it returned outside the ε-ball or the box (not counted as broken).

    Runs on ``unit_model`` (bounds mapped to [0, 1], 4-D input): robench's APGD on the
    clean-correct points, torchattacks' attacks inside ``torch.random.fork_rng`` (the
    library reseeds the global generator). Success is decided here: clean errors count as
    broken (foolbox's convention); a correctly classified point is broken when the model
    misclassifies the returned input and that input lies in the ball and box.
    """
    import torch

    from robench.attacks.apgd import apgd

    wrap = unit_model
    u = wrap.to_unit(xb)
    # the accelerator's generator too when the batch lives there (draws made there under its default device)
    fork = {"devices": []} if xb.device.type == "cpu" else \
        {"devices": [xb.device.index or 0], "device_type": xb.device.type}
    hits, invalid = [], 0
    for k, eps in enumerate(cfg.epsilons):
        if cfg.library == "robench":
            u_adv, _ = apgd(wrap, u, yb, eps=eps / wrap.scale, seed=seed_of(k), attack=clean_ok,
                            **cfg.apgd_arguments(num_classes))
        else:
            attack = cfg.build_torchattacks(wrap, eps / wrap.scale, num_classes, seed_of(k))
            attack.set_device(xb.device)
            with torch.random.fork_rng(**fork):
                u_adv = attack(u, yb)
        x_adv = wrap.from_unit(u_adv).detach()
        with torch.no_grad():
            wrong = wrap.model(x_adv).argmax(1) != yb
        delta = (x_adv - xb).flatten(1).double()
        size = delta.abs().amax(1) if cfg.norm == "linf" else delta.norm(dim=1)
        flat = x_adv.flatten(1)
        inside = (size <= eps * (1 + 1e-5) + 1e-6) & (flat >= wrap.lo).all(1) & (flat <= wrap.hi).all(1)
        hit = ~clean_ok | (wrong & inside)
        invalid += int((clean_ok & wrong & ~inside).sum())
        if on_adversarial is not None:
            on_adversarial(cfg.name, eps, xb, x_adv, hit)
        hits.append(hit.cpu().numpy())
    return np.stack(hits, axis=1), invalid


def _unit_box_model(model, lo: float, hi: float, shape: tuple[int, ...], device):
    """The model as the AutoAttack kinds see it: inputs u in [0, 1] with 4-D batches
    (N, C, H, W); x = lo + (hi − lo)·u in the model's own ``shape``. An identity map (no
    extra operation in the forward pass) for image inputs in [0, 1]."""
    import torch
    from torch import nn

    class UnitBox(nn.Module):
        def __init__(self):
            super().__init__()
            self.model, self.lo, self.hi, self.scale, self.shape = model, lo, hi, hi - lo, shape
            self.unit_shape = shape if len(shape) == 3 else (1, 1, math.prod(shape))
            self.identity = (lo, hi) == (0.0, 1.0) and len(shape) == 3
            # torchattacks finds its device from the first parameter (the model may have none)
            self.anchor = nn.Parameter(torch.zeros(0, device=device), requires_grad=False)

        def to_unit(self, x):
            return x if self.identity else ((x - self.lo) / self.scale).reshape(len(x), *self.unit_shape)

        def from_unit(self, u):
            return u if self.identity else (self.lo + self.scale * u).reshape(len(u), *self.shape)

        def forward(self, u):
            return self.model(self.from_unit(u))

    return UnitBox().eval()


def _check_autoattack_inputs(configs, model, x, num_classes: int) -> None:
    """What the AutoAttack kinds need, checked before any attack runs (one line each)."""
    import torch

    for cfg in configs:
        if cfg.library not in UNIT_BOX_LIBRARIES:
            continue
        if cfg.library == "torchattacks" and _model_dtype(model) != torch.float32:
            raise UserError(f"attack {cfg.name!r} (torchattacks) needs a float32 model, got {_model_dtype(model)}")
        if cfg.kind == "apgd_t" and num_classes < 4:
            raise UserError(f"attack {cfg.name!r}: the targeted DLR loss needs at least 4 classes, "
                            f"the model has {num_classes}")
        if cfg.kind == "square" and x.ndim != 4:
            raise UserError(f"attack {cfg.name!r}: Square needs image inputs (N, C, H, W), "
                            f"got shape {tuple(x.shape)}")


def _run_minimal(attack, cfg: AttackConfig, fmodel, xb, yb, clean_ok) -> np.ndarray:
    """Per-sample norm of the minimal adversarial perturbation: 0 for clean errors, inf on failure."""
    import torch

    x_adv, _, hit = attack(fmodel, xb, yb, epsilons=None)
    delta = (x_adv - xb).flatten(1).double()
    norms = delta.norm(dim=1) if cfg.norm == "l2" else delta.abs().amax(dim=1)
    norms = torch.where(hit, norms, torch.full_like(norms, math.inf))
    norms = torch.where(clean_ok, norms, torch.zeros_like(norms))
    return norms.cpu().numpy()


# -- model handling -------------------------------------------------------------------------

@contextlib.contextmanager
def frozen(model) -> Iterator[None]:
    """Eval mode and ``requires_grad=False`` on every parameter; both restored on exit.

    foolbox (via eagerpy) calls ``loss.backward()``, which would accumulate ``.grad`` on
    trainable parameters and compute weight gradients nobody uses.
    """
    modes = [(m, m.training) for m in model.modules()]
    flags = [(p, p.requires_grad) for p in model.parameters()]
    model.eval()
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        for m, mode in modes:
            m.training = mode


def _model_device(model):
    import torch
    for tensor in list(model.parameters()) + list(model.buffers()):
        return tensor.device
    return torch.device("cpu")


def _model_dtype(model):
    import torch
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.float32


def _check_bounds(bounds) -> tuple[float, float]:
    try:
        lo, hi = (float(b) for b in bounds)
    except (TypeError, ValueError):
        raise UserError(f"bounds must be a pair (low, high) of numbers, got {bounds!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise UserError(f"bounds must be finite with low < high, got {bounds!r}")
    return lo, hi


def _as_tensors(x, y, model):
    import torch

    x = torch.as_tensor(x, device="cpu")  # checked and batched on the CPU, whatever the default device
    y = torch.as_tensor(y, device="cpu")
    if not x.is_floating_point():
        raise UserError(f"inputs x must be floating point (N, ...) in the declared bounds, got dtype {x.dtype}")
    if x.ndim < 2 or len(x) == 0:
        raise UserError(f"inputs x must have shape (N, ...) with N >= 1, got {tuple(x.shape)}")
    if y.ndim != 1 or y.is_floating_point() or y.dtype == torch.bool:
        raise UserError(f"labels y must be integer class indices of shape (N,), got dtype {y.dtype} shape {tuple(y.shape)}")
    if len(y) != len(x):
        raise UserError(f"inputs and labels differ in length: x has {len(x)} samples, y has {len(y)}")
    return x.detach().to("cpu", _model_dtype(model)).contiguous(), y.detach().to("cpu", torch.int64)


def _check_inputs_in_bounds(x, lo: float, hi: float) -> None:
    import torch
    if not torch.isfinite(x).all():
        raise UserError("inputs x contain NaN or inf; expected finite values in the declared bounds")
    xmin, xmax = float(x.min()), float(x.max())
    if xmin < lo or xmax > hi:
        raise UserError(f"inputs x lie in [{xmin:g}, {xmax:g}], outside the declared bounds ({lo:g}, {hi:g}); "
                        f"rescale x or pass bounds=")


def _check_logits(model, x, y, device) -> int:
    """Probe the model on a few inputs: it must return finite (N, classes) logits, classes ≥ 2."""
    import torch

    probe = x[:8].to(device)
    try:
        with torch.no_grad():
            out = model(probe)
    except Exception as exc:  # the model rejects the input shape, dtype, device, ...
        raise UserError(f"model failed on inputs of shape {tuple(probe.shape)}: "
                        f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
    if not isinstance(out, torch.Tensor):
        raise UserError(f"model output must be a tensor of logits (N, classes), got {type(out).__name__}")
    if out.ndim != 2 or out.shape[0] != len(probe) or out.shape[1] < 2:
        raise UserError(f"model output must be logits of shape (N, classes) with classes >= 2, "
                        f"got shape {tuple(out.shape)} for {len(probe)} inputs")
    if not out.is_floating_point() or not torch.isfinite(out).all():
        raise UserError(f"model output must be finite floating-point logits, got dtype {out.dtype}"
                        f"{'' if not out.is_floating_point() else ' with NaN/inf'}")
    if out.shape[1] > 2 and bool(((out >= 0) & (out <= 1)).all()) and \
            bool(torch.allclose(out.sum(1), torch.ones(len(out), dtype=out.dtype, device=out.device), atol=1e-4)):
        raise UserError("model output looks like probabilities (rows in [0, 1] summing to 1); "
                        "attacks need logits: drop the final softmax")
    classes = int(out.shape[1])
    ymin, ymax = int(y.min()), int(y.max())
    if ymin < 0 or ymax >= classes:
        raise UserError(f"labels y lie in [{ymin}, {ymax}] but the model has {classes} classes")
    return classes


# -- sparsity ---------------------------------------------------------------------------------

def activation_sparsity(model, x, *, batch_size: int = 250) -> dict[str, float]:
    """Fraction of exactly-zero outputs of every ``nn.ReLU`` module on inputs x.

    Returns ``{"overall": f, "<module name>": f, ...}``: ``overall`` pools all ReLU outputs
    (zeros / total elements), the others are per module (``named_modules`` names). Only
    ``nn.ReLU`` modules are seen (a functional ``F.relu`` is invisible to hooks); a model
    without any gives ``{"overall": nan}``. Runs in eval mode, no grad; mode restored.
    """
    import torch

    relus = [(name, m) for name, m in model.named_modules() if isinstance(m, torch.nn.ReLU)]
    counts = {name: [0, 0] for name, _ in relus}

    def hook_for(name):
        def hook(_module, _inputs, output):
            counts[name][0] += int((output == 0).sum())
            counts[name][1] += output.numel()
        return hook

    handles = [m.register_forward_hook(hook_for(name)) for name, m in relus]
    device = _model_device(model)
    try:
        with frozen(model), torch.no_grad():
            x = x if isinstance(x, torch.Tensor) else torch.as_tensor(x, device="cpu")  # batches move below
            for start in range(0, len(x), batch_size):
                model(x[start:start + batch_size].to(device, _model_dtype(model)))
    finally:
        for h in handles:
            h.remove()
    zeros = sum(c[0] for c in counts.values())
    total = sum(c[1] for c in counts.values())
    out = {"overall": zeros / total if total else math.nan}
    out.update({name: z / t if t else math.nan for name, (z, t) in counts.items()})
    return out


def weight_sparsity(model) -> float:
    """Fraction of exactly-zero weights over all Conv and Linear layers (biases not counted)."""
    from torch import nn

    zeros = total = 0
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.modules.conv._ConvNd)):
            w = m.weight.detach()
            zeros += int((w == 0).sum())
            total += w.numel()
    if total == 0:
        raise UserError("weight_sparsity: the model has no Conv or Linear layer")
    return zeros / total
