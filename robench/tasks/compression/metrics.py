"""Counting and timing helpers of the ``compression`` task (pure functions of a model).

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
"""

from __future__ import annotations

import copy
import statistics
import time
from dataclasses import asdict, dataclass

import torch
from torch import nn

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


# -- latency -------------------------------------------------------------------------
class CSRLinear(nn.Module):
    """Inference-only Linear whose weight is a CSR sparse tensor (y = x Wᵀ + b)."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.weight = linear.weight.detach().to_sparse_csr()
        self.bias = None if linear.bias is None else linear.bias.detach().clone()

    def forward(self, x):
        leading = x.shape[:-1]
        y = (self.weight @ x.reshape(-1, x.shape[-1]).t()).t()
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*leading, -1)


SPARSE_LINEAR_MIN_SPARSITY = 0.9  # below this a CSR matmul is not faster than a dense one on CPU


def sparse_inference_model(model: nn.Module, min_sparsity: float = SPARSE_LINEAR_MIN_SPARSITY) -> nn.Module:
    """A copy of ``model`` for timing, in which every Linear with at least ``min_sparsity``
    zero weights runs as a CSR sparse matmul; convolutions stay dense (PyTorch has no
    sparse CPU convolution). Outputs equal the model's up to float rounding."""
    import warnings

    fast = copy.deepcopy(model).eval()
    for name, module in list(fast.named_modules()):
        if isinstance(module, nn.Linear):
            zeros = 1.0 - int(torch.count_nonzero(module.weight)) / module.weight.numel()
            if zeros >= min_sparsity:
                parent = fast.get_submodule(name.rpartition(".")[0]) if "." in name else fast
                with warnings.catch_warnings():  # "sparse CSR support is in beta"
                    warnings.simplefilter("ignore")
                    setattr(parent, name.rpartition(".")[2], CSRLinear(module))
    return fast


@torch.inference_mode()
def paired_latency_ms(models: list[nn.Module], x: torch.Tensor, repeats: int, warmup: int = 3) -> list[float]:
    """Median wall-clock milliseconds of ``model(x)`` for each model, measured
    interleaved (model 0, model 1, …, repeated) so background load affects all alike."""
    for model in models:
        model.eval()
        for _ in range(warmup):
            model(x)
    times: list[list[float]] = [[] for _ in models]
    for _ in range(repeats):
        for model, bucket in zip(models, times):
            start = time.perf_counter()
            model(x)
            bucket.append((time.perf_counter() - start) * 1000.0)
    return [statistics.median(bucket) for bucket in times]


__all__ = ["LayerStats", "layer_stats", "parameter_counts", "compression_ratio", "weight_sparsity",
           "flops_ratio", "CSRLinear", "sparse_inference_model", "paired_latency_ms"]
