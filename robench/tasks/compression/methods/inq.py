"""Incremental Network Quantization (Zhou, Yao, Guo, Xu & Chen, ICLR 2017, arXiv 1702.03044)
and its one-shot ablation.

**Quantizer.** For bit-width b ≥ 2 and s = max|W| of a layer,

    n1 = floor(log2(4s/3)),    n2 = n1 + 1 − 2^(b−1)/2,
    P  = {±2^n2, …, ±2^n1, 0}                   (2^(b−1) + 1 values; one bit encodes 0)

and a weight w becomes β·sign(w) where |w| ∈ [(α+β)/2, 3β/2) for α < β adjacent in the
sorted non-negative part of P (α = 0 below 2^n2), and 0 when |w| < 2^n2 / 2. A boundary
(α+β)/2 itself rounds up. The comparisons are exact (no logarithm of a weight is taken).
One deviation from the paper's literal formula: a weight that retraining pushed to
|w| ≥ 3·2^n1/2 (above every interval) becomes ±2^n1, its nearest allowed value, instead
of 0. n1 and n2 are computed once per layer from the trained weights at ``prepare``
(before any retraining) and kept, so every phase rounds onto the same set. A layer whose
weights are all zero at ``prepare`` has no scale: it stays all zero (no log of 0).

**Incremental quantization.** ``portions`` are accumulated fractions p_0 < … < p_{K−1} = 1.
The fine-tuning budget (``total_steps`` optimizer steps) is split into K − 1 equal
retraining phases, phase k starting at step ⌊k·total_steps/(K−1)⌋:

* at ``prepare``, round(p_0·n) weights of each layer (n = its weights) are quantized and
  frozen; the rest are retrained in phase 0;
* at the first step of phase k (``before_forward``), more weights are quantized and frozen
  so that round(p_k·n) are; the rest are retrained;
* at ``finalize``, the last portion (p_{K−1} = 1: every weight) is quantized, with no
  retraining after it, as in the paper.

``lr_restarts`` returns the phase start steps, so the task's cosine schedule restarts for
every phase (the paper retrains each phase with the same learning-rate policy). When the
budget has fewer steps than phases (or none), a step freezes every phase that started at
or before it and ``finalize`` quantizes whatever is left, so nothing is skipped.

Which weights join the frozen group is decided per layer, among the not-yet-frozen ones,
at the moment of freezing: ``partition="magnitude"`` takes the largest current |w| first
(the paper's pruning-inspired default; ties by position), ``"random"`` follows one random
order per layer drawn at ``prepare`` from the run's ``seeding.stream(seed, "method")`` (on the
CPU, whatever the model's device).

A frozen weight's gradient is zeroed after every backward and its quantized value is
written back after every optimizer step, so neither momentum nor weight decay can move it.
Biases stay float and keep training.

``keep_zeros=True``: weights exactly 0 at ``prepare`` (pruned before, e.g. by DNS in a
pipeline) are frozen at 0 from the start; the portions then apply to the surviving
weights only (n above counts the nonzero weights), and s = max|W| is the same maximum.
With ``keep_zeros=False`` a zero is an ordinary weight (the smallest, so the last to be
frozen under the magnitude partition) and retraining may move it.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar

from robench.errors import UserError
from robench.registry import register_method
from robench.tasks.compression.methods.base import CompressionMethod, prunable_layers
from robench.tasks.contract import check_param

if TYPE_CHECKING:
    import torch
    from torch import nn

MAX_BITS = 8  # beyond this, 2^n2 underflows float32 for ordinary weight scales


# -- the power-of-two quantizer (pure functions) ---------------------------------------
def _check_bits(bits: int) -> int:
    if not isinstance(bits, int) or isinstance(bits, bool) or bits < 2:
        raise ValueError(f"bits={bits!r}; expected an integer >= 2")
    return bits


def _floor_log2(x: float) -> int:
    """floor(log2(x)) for x > 0, exact (``math.frexp``: x = m·2^e with m in [0.5, 1))."""
    mantissa, exponent = math.frexp(x)
    return exponent - 1


def inq_exponents(weight: torch.Tensor, bits: int) -> tuple[int, int] | None:
    """``(n1, n2)`` of a layer: n1 = floor(log2(4s/3)) with s = max|weight|,
    n2 = n1 + 1 − 2^(bits−1)/2. ``None`` for an all-zero weight (no scale: it quantizes to 0)."""
    bits = _check_bits(bits)
    s = float(weight.detach().abs().max()) if weight.numel() else 0.0
    if s == 0.0:
        return None
    if not math.isfinite(s):
        raise ValueError(f"max|W| = {s}; expected a finite weight")
    n1 = _floor_log2(4.0 * s / 3.0)  # in double: exact at the boundaries s = 0.75·2^k
    return n1, n1 + 1 - 2 ** (bits - 2)


def allowed_values(n1: int, n2: int, dtype: torch.dtype | None = None) -> torch.Tensor:
    """The sorted set {−2^n1, …, −2^n2, 0, 2^n2, …, 2^n1} (2·(n1 − n2 + 1) + 1 values;
    ``dtype`` float32 unless given)."""
    import torch

    dtype = torch.float32 if dtype is None else dtype
    if n2 > n1:
        raise ValueError(f"n2={n2} > n1={n1}; expected n2 <= n1")
    magnitudes = [math.ldexp(1.0, k) for k in range(n2, n1 + 1)]
    return torch.tensor([-m for m in reversed(magnitudes)] + [0.0] + magnitudes, dtype=dtype)


def quantize_pow2(weight: torch.Tensor, bits: int, n1: int | None = None, n2: int | None = None) -> torch.Tensor:
    """Round every entry of ``weight`` to the nearest value of the INQ set (a new tensor).

    n1, n2 default to :func:`inq_exponents` of ``weight`` itself; give n1 alone and n2 is
    n1 + 1 − 2^(bits−1)/2. |w| < 2^n2/2 → 0; |w| in [(α+β)/2, 3β/2) → β·sign(w) for
    adjacent α < β of {0, 2^n2, …, 2^n1}; |w| ≥ 3·2^n1/2 → 2^n1·sign(w) (saturation).
    An all-zero weight stays zero.
    """
    import torch

    bits = _check_bits(bits)
    w = weight.detach()
    if n1 is None:
        exps = inq_exponents(w, bits)
        if exps is None:
            return torch.zeros_like(w)
        n1, n2 = exps
    elif n2 is None:
        n2 = n1 + 1 - 2 ** (bits - 2)
    if n2 > n1:
        raise ValueError(f"n2={n2} > n1={n1}; expected n2 <= n1")
    # thresholds[i] is the smallest |w| that rounds to magnitudes[i]:
    #   2^n2 / 2 for the first (α = 0), then (2^(k−1) + 2^k)/2 = 0.75·2^k
    thresholds = [math.ldexp(1.0, n2 - 1)] + [0.75 * math.ldexp(1.0, k) for k in range(n2 + 1, n1 + 1)]
    levels = [0.0] + [math.ldexp(1.0, k) for k in range(n2, n1 + 1)]
    magnitude = w.abs()
    index = torch.bucketize(magnitude, torch.tensor(thresholds, dtype=magnitude.dtype, device=w.device),
                            right=True)
    return torch.tensor(levels, dtype=w.dtype, device=w.device)[index] * torch.sign(w)


def _portion_count(portion: float, n: int) -> int:
    """How many of ``n`` weights an accumulated ``portion`` covers (round half up; 1 → n)."""
    return n if portion >= 1.0 else min(n, int(math.floor(portion * n + 0.5)))


# -- the methods -----------------------------------------------------------------------
PARTITIONS = ("magnitude", "random")


def _bits_param(owner: str, bits: int) -> int:
    return check_param(owner, "bits", bits, int, low=2, high=MAX_BITS)


def _portions_param(owner: str, portions: list[float]) -> list[float]:
    """Accumulated fractions: each in (0, 1], strictly increasing, the last 1."""
    portions = check_param(owner, "portions", portions, float, low=0.0, low_open=True, high=1.0, each=True)
    if (not isinstance(portions, (list, tuple)) or any(b <= a for a, b in zip(portions, portions[1:]))
            or portions[-1] != 1.0):
        raise UserError(f"{owner}: portions={portions!r}; expected accumulated fractions strictly increasing "
                        f"in (0, 1] and ending at 1, e.g. [0.5, 0.75, 0.875, 1.0]")
    return portions


@register_method("compression", "inq")
class IncrementalNetworkQuantization(CompressionMethod):
    """INQ: weights become powers of two or zero by quantize-freeze-retrain phases.

    bits: bit-width b in 2..8 (one bit encodes zero, so 2^(b−1)+1 values per layer).
    portions: accumulated fractions of each layer's weights that are quantized after each
    phase, strictly increasing in (0, 1] and ending at 1 (the paper: 50%, 75%, 87.5%, 100%).
    partition: ``"magnitude"`` (largest |w| frozen first, the paper's default) or
    ``"random"`` (a seeded random order). keep_zeros: weights that are exactly 0 at
    ``prepare`` stay 0 and the portions count the surviving weights (INQ after pruning).
    See the module docstring for the exact algorithm.

    ``storage_bits`` returns None: the task's generic encoding counts the distinct values
    (at most 2^(b−1)+1, i.e. ≤ b bits per weight) and the zeros exactly.
    """
    version = "1"
    label_params: ClassVar[tuple[str, ...]] = ("bits",)

    def __init__(self, bits: int = 5, portions: list[float] = [0.5, 0.75, 0.875, 1.0],  # noqa: B006
                 partition: str = "magnitude", keep_zeros: bool = True):
        owner = self._owner()
        self.bits = _bits_param(owner, bits)
        self.portions = _portions_param(owner, portions)
        self.partition = check_param(owner, "partition", partition, str, choices=PARTITIONS)
        self.keep_zeros = check_param(owner, "keep_zeros", keep_zeros, bool)

    # -- parameters --------------------------------------------------------------------
    @property
    def n_phases(self) -> int:
        """Retraining phases: one after each portion but the last."""
        return len(self.portions) - 1

    def phase_starts(self, total_steps: int) -> list[int]:
        """Start step of each retraining phase: ⌊k·total_steps/(K−1)⌋ for k = 0..K−2."""
        phases = self.n_phases
        return [k * max(int(total_steps), 0) // phases for k in range(phases)]

    def lr_restarts(self, total_steps: int) -> list[int]:
        return sorted({s for s in self.phase_starts(total_steps)[1:] if 0 < s < total_steps})

    # -- hooks -------------------------------------------------------------------------
    def prepare(self, model, data, total_steps, seed):
        import torch

        from robench import seeding

        layers = prunable_layers(model)
        self._layers = dict(layers)
        self.exponents_: dict[str, tuple[int, int] | None] = {}
        self.frozen_: dict[str, torch.Tensor] = {}     # True = quantized and frozen
        self.values_: dict[str, torch.Tensor] = {}     # the frozen values (0 elsewhere)
        self.candidates_: dict[str, torch.Tensor] = {}  # the weights the portions count
        self.order_: dict[str, torch.Tensor] = {}      # random partition: flat indices in order
        gen = seeding.stream(seed, "method")
        for name, layer in layers:
            w = layer.weight.detach()
            self.exponents_[name] = inq_exponents(w, self.bits)
            frozen = torch.zeros_like(w, dtype=torch.bool)
            if self.exponents_[name] is None:  # all zero: nothing to scale, stays zero
                frozen[...] = True
            elif self.keep_zeros:
                frozen = w == 0
            self.frozen_[name] = frozen
            self.candidates_[name] = ~frozen
            self.values_[name] = torch.zeros_like(w)
            if self.partition == "random":
                self.order_[name] = torch.randperm(w.numel(), generator=gen, device="cpu").to(w.device)
        self.total_steps_ = int(total_steps)
        self.starts_ = self.phase_starts(self.total_steps_)
        self.portion_index_ = -1  # index into portions of the last portion frozen
        self._freeze_to(0)
        return self

    def _freeze_to(self, k: int) -> None:
        """Quantize and freeze each layer's weights up to the accumulated ``portions[k]``."""
        import torch

        portion = float(self.portions[k])
        with torch.no_grad():
            for name, layer in self._layers.items():
                weight, frozen, candidates = layer.weight, self.frozen_[name], self.candidates_[name]
                eligible = (candidates & ~frozen).flatten()
                already = int(candidates.sum()) - int(eligible.sum())
                need = _portion_count(portion, int(candidates.sum())) - already
                if need > 0:
                    flat = weight.detach().flatten()
                    if self.partition == "magnitude":
                        idx = eligible.nonzero().squeeze(1)
                        order = torch.sort(flat[idx].abs(), descending=True, stable=True).indices
                        chosen = idx[order[:need]]
                    else:
                        perm = self.order_[name]
                        chosen = perm[eligible[perm]][:need]
                    exps = self.exponents_[name]
                    quantized = quantize_pow2(flat[chosen], self.bits, *exps)
                    frozen.view(-1)[chosen] = True
                    self.values_[name].view(-1)[chosen] = quantized
                weight.copy_(torch.where(frozen, self.values_[name], weight))
        self.portion_index_ = k

    def before_forward(self, model, step):
        # catch up on every phase that starts at or before this step (short budgets)
        while self.portion_index_ + 1 < self.n_phases and step >= self.starts_[self.portion_index_ + 1]:
            self._freeze_to(self.portion_index_ + 1)

    def after_backward(self, model, step):
        import torch

        with torch.no_grad():
            for name, layer in self._layers.items():
                if layer.weight.grad is not None:
                    layer.weight.grad.masked_fill_(self.frozen_[name], 0.0)

    def after_step(self, model, step):
        import torch

        with torch.no_grad():
            for name, layer in self._layers.items():  # momentum / weight decay must not move them
                layer.weight.copy_(torch.where(self.frozen_[name], self.values_[name], layer.weight))

    def finalize(self, model):
        self._freeze_to(len(self.portions) - 1)  # the last portion: every weight, no retraining
        return model

    def quantized_fraction(self) -> float:
        """Fraction of all prunable weights frozen so far (for reports and tests)."""
        total = sum(f.numel() for f in self.frozen_.values())
        return sum(int(f.sum()) for f in self.frozen_.values()) / total if total else 1.0

    def extra_metrics(self, model: nn.Module, data: Any) -> dict[str, float]:
        return {"bits": float(self.bits)}


@register_method("compression", "inq-oneshot")
class OneShotPowerOfTwo(IncrementalNetworkQuantization):
    """INQ ablation: the same power-of-two quantizer, no incremental retraining.

    Every weight is quantized and frozen at ``prepare`` (portions fixed to [1.0]); the
    same fine-tuning budget follows, which can then only move the biases. Comparing it
    with ``inq`` at equal bits isolates the effect of quantize-freeze-retrain.
    bits: bit-width in 2..8; zeros of the trained model stay zero (keep_zeros).
    """
    version = "1"
    # fixed, not parameters (class attributes, so that vars(method) == get_params())
    portions: ClassVar[tuple[float, ...]] = (1.0,)
    partition: ClassVar[str] = "magnitude"
    keep_zeros: ClassVar[bool] = True

    def __init__(self, bits: int = 5):
        self.bits = _bits_param(self._owner(), bits)
