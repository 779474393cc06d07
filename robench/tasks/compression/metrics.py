"""Counting and timing helpers of the ``compression`` task (pure functions of a model).

Counts and storage work on any device; the latency helpers (:func:`paired_latency_ms`,
and the sparse inference path :func:`sparse_inference_model` with its CSR modules, both
defined in ``_sparse.py`` and re-exported here) are meant for CPU modules and inputs: the
task reports CPU latency.

Counts
  * parameters: every ``model.parameters()`` entry, biases included;
    ``compression_ratio = all parameters / nonzero parameters``.
  * prunable weights: the ``weight`` of every Conv2d and Linear;
    ``sparsity = zero prunable weights / prunable weights``.
  * multiply-accumulates (MACs) per input sample, of the prunable layers only (biases,
    activations and pooling are not counted). A weight entry is used once for every output
    position of its layer, so

        Conv2d:  MACs = nnz(W) · H_out · W_out      (W: out × in/groups × kh × kw)
        Linear:  MACs = nnz(W) · P                  (P = 1 for (N, in) inputs; else the
                                                     product of the extra leading dims)

    with nnz(W) = W.numel() for the dense count. Zero-padded border positions count as
    MACs (the usual convention). ``flops_ratio = Σ dense MACs / Σ nonzero MACs``.

Storage (``compression_ratio_bits``)
  ``compression_ratio_bits = 32 · (all parameters) / (bits needed to store the model)``.
  Biases and any parameter that is not a Conv2d/Linear weight are stored as float32.
  A weight tensor (n entries, flattened row-major; k nonzeros; K distinct nonzero values)
  is stored with the cheapest of these encodings (:func:`weight_storage`), unless the
  method declares its own (``CompressionMethod.storage_bits``, e.g. Network Sketching's
  m bits per weight + 32·m bits per filter):

  * value codes: either float32 (32 bits per value) or a codebook — ⌈log2 V⌉ bits per
    value plus 32·V bits for the table of the V distinct values (V ≤ 2^16);
  * ``dense``: every entry's value code (V = distinct values of the whole tensor);
  * ``bitmask``: n bits of occupancy + a value code for each nonzero;
  * ``relative-index`` (Deep Compression, Han et al. 2016): each nonzero is an entry of
    p index bits (the gap to the previous stored entry, 1…2^p) + its value code; a gap
    d > 2^p needs ⌈d / 2^p⌉ entries (filler entries store the value 0, so the codebook
    gets one more value); p ∈ 1…16 is chosen per tensor to minimise the total.

  INQ at b bits is then ⌈log2(2^(b−1)+1)⌉ = b bits per dense weight (plus a 17-entry
  table), DNS-pruned float weights cost (32 + p) bits per stored entry, and DNS+INQ
  (b − 1 + p) bits per entry.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from robench.tasks.compression._sparse import (  # noqa: F401
    SPARSE_MIN_SPARSITY,
    CSRConv2d,
    CSRLinear,
    paired_latency_ms,
    sparse_inference_model,
)
from robench.tasks.compression.methods.base import prunable_layers


@dataclass
class LayerStats:
    """One Conv2d/Linear layer; MAC counts are per input sample."""
    name: str
    kind: str  # "Conv2d" or "Linear"
    weight_shape: list[int]
    weights: int
    nonzero_weights: int
    biases: int
    nonzero_biases: int
    output_positions: int  # H_out·W_out for Conv2d, 1 for a (N, in) Linear
    macs_dense: int
    macs_nonzero: int

    @property
    def params(self) -> int:
        return self.weights + self.biases

    @property
    def nonzero_params(self) -> int:
        return self.nonzero_weights + self.nonzero_biases

    @property
    def sparsity(self) -> float:
        return 1.0 - self.nonzero_weights / self.weights if self.weights else 0.0

    def as_dict(self) -> dict:
        return {**asdict(self), "params": self.params, "nonzero_params": self.nonzero_params,
                "sparsity": self.sparsity}


@torch.no_grad()
def layer_stats(model: nn.Module, input_shape: tuple[int, ...]) -> list[LayerStats]:
    """Per-layer counts of ``model``; ``input_shape`` is one sample's shape, e.g. (1, 28, 28)."""
    layers = prunable_layers(model)
    positions: dict[str, int] = {}

    def recorder(name, module):
        def hook(_module, _inputs, output):
            channels = module.out_channels if isinstance(module, nn.Conv2d) else module.out_features
            positions[name] = output[0].numel() // channels  # sample 0 of a batch of one
        return hook

    handles = [module.register_forward_hook(recorder(name, module)) for name, module in layers]
    was_training = model.training
    try:
        model.eval()
        param = next(model.parameters())
        model(torch.zeros((1, *input_shape), dtype=param.dtype, device=param.device))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)

    stats = []
    for name, module in layers:
        weight, bias = module.weight, module.bias
        nnz = int(torch.count_nonzero(weight))
        pos = positions.get(name, 0)  # a layer the forward never reached does no work
        stats.append(LayerStats(
            name=name, kind=type(module).__name__, weight_shape=list(weight.shape),
            weights=weight.numel(), nonzero_weights=nnz,
            biases=0 if bias is None else bias.numel(),
            nonzero_biases=0 if bias is None else int(torch.count_nonzero(bias)),
            output_positions=pos, macs_dense=weight.numel() * pos, macs_nonzero=nnz * pos))
    return stats


def parameter_counts(tensors) -> tuple[int, int]:
    """``(total, nonzero)`` entries over an iterable of tensors (e.g. ``model.parameters()``
    or a state dict's values)."""
    total = nonzero = 0
    for tensor in tensors:
        total += tensor.numel()
        nonzero += int(torch.count_nonzero(tensor))
    return total, nonzero


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else float("inf")


def compression_ratio(model: nn.Module) -> float:
    """All parameters (biases included) / nonzero parameters; 1.0 for a dense model."""
    with torch.no_grad():
        return _ratio(*parameter_counts(model.parameters()))


def weight_sparsity(stats: list[LayerStats]) -> float:
    """Fraction of zero entries over all prunable weights, in [0, 1]."""
    weights = sum(s.weights for s in stats)
    return 1.0 - sum(s.nonzero_weights for s in stats) / weights if weights else 0.0


def flops_ratio(stats: list[LayerStats]) -> float:
    """Σ dense MACs / Σ MACs with nonzero weights (see the module docstring); ≥ 1."""
    return _ratio(sum(s.macs_dense for s in stats), sum(s.macs_nonzero for s in stats))


# -- storage -------------------------------------------------------------------------
FLOAT_BITS = 32
MAX_CODEBOOK = 1 << 16


def _value_code(n_values: int, distinct: int) -> tuple[int, str]:
    """Cheapest bits to store ``n_values`` values drawn from ``distinct`` distinct ones."""
    float_bits = FLOAT_BITS * n_values
    if distinct > MAX_CODEBOOK or n_values == 0:
        return float_bits, "float32"
    width = max(1, math.ceil(math.log2(distinct))) if distinct > 1 else 1
    codebook = width * n_values + FLOAT_BITS * distinct
    return (codebook, f"codebook{width}") if codebook < float_bits else (float_bits, "float32")


@torch.no_grad()
def relative_index_entries(nonzero: torch.Tensor, small: int = 1 << 16) -> dict[int, int]:
    """``{p: Σ_i ceil(gap_i / 2^p)}`` for p = 1..16, the gaps being those between the sorted
    flat indices ``nonzero`` of the kept weights (the first from -1): the entries of a
    relative-index encoding with p-bit jumps. One pass over the layer: gaps below ``small``
    are counted into a histogram and the sums taken over it; the rare larger ones directly."""
    if nonzero.numel() == 0:
        return {p: 0 for p in range(1, 17)}
    gaps = torch.diff(nonzero, prepend=torch.tensor([-1], device=nonzero.device))
    is_small = gaps < small
    counts = torch.bincount(gaps[is_small], minlength=small).double()
    values = torch.arange(small, device=gaps.device, dtype=torch.float64)
    large = gaps[~is_small]
    return {p: int(round(float((counts * torch.ceil(values / (1 << p))).sum())))
            + int(((large + ((1 << p) - 1)) >> p).sum()) for p in range(1, 17)}


@torch.no_grad()
def distinct_count(values: torch.Tensor, cap: int) -> int:
    """The number of distinct entries of the 1-D ``values`` when it is at most ``cap``, else
    ``cap + 1`` (all a codebook decision needs). A large float layer is settled from a probe
    of ``4 * cap`` evenly spaced entries: more than ``cap`` distinct there means more in all;
    otherwise every entry is looked up among the probe's values (a binary search, not a sort
    of the whole layer) and, when all are found, their count is exact."""
    n = values.numel()
    if n <= 4 * cap:
        return int(torch.unique(values).numel())
    probe = torch.arange(4 * cap, device=values.device) * (n - 1) // (4 * cap - 1)  # exact in int64
    seen = torch.unique(values[probe])
    if seen.numel() > cap:
        return cap + 1
    found = seen[torch.bucketize(values, seen).clamp_(max=seen.numel() - 1)]
    if torch.equal(found, values):
        return int(seen.numel())
    return min(int(torch.unique(values).numel()), cap + 1)


@torch.no_grad()
def weight_storage(weight: torch.Tensor) -> dict:
    """Bits needed to store ``weight`` with the cheapest encoding of the module docstring.

    Returns ``{"bits": int, "encoding": str, "value_code": str, "index_bits": int | None}``.
    """
    flat = weight.detach().flatten()
    n = flat.numel()
    nonzero = torch.nonzero(flat).flatten()
    k = nonzero.numel()
    values = flat[nonzero]
    distinct_nonzero = distinct_count(values, MAX_CODEBOOK) if k else 0
    distinct_all = distinct_nonzero + (1 if k < n else 0)
    bits, code = _value_code(n, max(distinct_all, 1))
    best = {"bits": bits, "encoding": "dense", "value_code": code, "index_bits": None}
    if k < n:
        bits, code = _value_code(k, max(distinct_nonzero, 1))
        if n + bits < best["bits"]:
            best = {"bits": n + bits, "encoding": "bitmask", "value_code": code, "index_bits": None}
        entries_at = relative_index_entries(nonzero)
        for p in range(1, 17):
            entries = entries_at[p]
            fillers = entries - k
            bits, code = _value_code(entries, max(distinct_nonzero + (1 if fillers else 0), 1))
            total = entries * p + bits
            if total < best["bits"]:
                best = {"bits": total, "encoding": "relative-index", "value_code": code, "index_bits": p}
    return best


def model_storage(model: nn.Module, method=None) -> tuple[int, list[dict]]:
    """``(total bits, per-layer records)`` of ``model``: every Conv2d/Linear weight by
    ``method.storage_bits(name, module)`` when it returns a number, else
    :func:`weight_storage`; every other parameter as float32."""
    layers = prunable_layers(model)
    weight_ids = {id(module.weight) for _, module in layers}
    total = FLOAT_BITS * sum(p.numel() for p in model.parameters() if id(p) not in weight_ids)
    records = []
    for name, module in layers:
        declared = method.storage_bits(name, module) if method is not None else None
        record = ({"bits": int(declared), "encoding": "method", "value_code": None, "index_bits": None}
                  if declared is not None else weight_storage(module.weight))
        record = {"name": name, "weights": module.weight.numel(), **record,
                  "bits_per_weight": record["bits"] / module.weight.numel()}
        records.append(record)
        total += record["bits"]
    return total, records


def storage_metrics(model: nn.Module, method=None) -> tuple[dict[str, float], list[dict]]:
    """The storage accounting of ``model`` as the tasks report it (``method``'s own encoding
    where it declares one; None: the generic encoding): ``compression_ratio``,
    ``compression_ratio_bits``, ``bits_per_weight``, and the per-layer records."""
    bits, records = model_storage(model, method)
    return storage_ratios(model, bits, records), records


def storage_ratios(model: nn.Module, bits: float, records: list[dict]) -> dict[str, float]:
    """``compression_ratio``, ``compression_ratio_bits`` and ``bits_per_weight`` of ``model``
    from its storage accounting (``bits, records = model_storage(model, method)``)."""
    return {"compression_ratio": compression_ratio(model),
            "compression_ratio_bits": FLOAT_BITS * sum(t.numel() for t in model.parameters()) / bits,
            "bits_per_weight": sum(r["bits"] for r in records) / sum(r["weights"] for r in records)}


def target_sparsity(method) -> float | None:
    """The ``sparsity`` parameter of a method that has one (the fraction of zero weights
    it is asked for), else None."""
    value = method.get_params().get("sparsity") if hasattr(method, "get_params") else None
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


__all__ = [
    "CSRConv2d",
    "CSRLinear",
    "LayerStats",
    "compression_ratio",
    "flops_ratio",
    "layer_stats",
    "model_storage",
    "paired_latency_ms",
    "parameter_counts",
    "sparse_inference_model",
    "storage_metrics",
    "storage_ratios",
    "target_sparsity",
    "weight_sparsity",
    "weight_storage",
]
