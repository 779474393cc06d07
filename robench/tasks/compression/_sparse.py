"""The sparse inference path timed by the compression task's latency metric (CPU).

Kernel. A pruned layer's output is a set of weighted sums of input rows, computed by
``torch.nn.functional.embedding_bag`` in sum mode with the nonzero weights as per-sample
weights (one "bag" per output row; FBGEMM's vectorised kernel on x86 CPUs):

* Linear: one bag per output feature, over the rows of xᵀ (in_features × batch) its
  nonzero weights read: y[o] = Σ_k W[o, k] · xᵀ[k];
* Conv2d: one bag per (output channel, output position), over input pixels, each pixel
  being the row of its N batch values: y[o, h, w] = Σ W[o, c, i, j] · x[c, h·s + i·d,
  w·s + j·d] for the nonzero W[o, c, i, j] only. No im2col matrix is built; the indices
  (nonzeros × output positions) are computed once per input size and kept.

Both measured far faster than torch's CSR matmul (MKL) behind an im2col (``F.unfold`` alone
cost more than oneDNN's whole dense convolution of LeNet-5's conv2).

Layout. Activations stay batch-innermost: a sparse layer returns an ordinary (N, C, H, W)
or (N, F) tensor whose memory is ordered (C, H, W, N) or (F, N), which is the table the
next sparse layer reads without a copy. Any other module computes the same function on
such a tensor (torch copies where a kernel needs another layout), but torch's MaxPool2d
would first copy it to NCHW and then run its NCHW kernel, so MaxPool2d layers are swapped
for :class:`LayoutMaxPool2d`: torch's own kernel on NCHW and channels-last inputs (exactly
as in the dense model), the maximum of strided slices on other layouts.

Choice (:func:`sparse_inference_model`). Every layer with at least ``min_sparsity`` zero
weights is a candidate; with an example batch, each candidate is timed dense and sparse on
the input it really receives and the faster is kept; then the whole model is timed against
the dense one and kept only when at least ``SPARSE_MIN_GAIN`` times faster, so the automatic
choice never makes the model slower than not choosing (up to timing noise). The timer,
:func:`paired_latency_ms`, is the one the task's latency metric uses (``metrics`` re-exports
it); this module imports nothing else of the task, so the method contract's default
``inference_model`` and the counting helpers can both build on it.
"""

from __future__ import annotations

import copy
import math
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.utils import _pair

SPARSE_MIN_SPARSITY = 0.5  # below this a sparse kernel is never tried
SPARSE_MIN_GAIN = 1.05  # the sparse model is kept only when dense_ms / sparse_ms reaches this
MAX_BAG_ENTRIES = 1 << 22  # a sparse convolution's kept indices (nonzeros × positions) per block
SPARSE_KINDS = (nn.Conv2d, nn.Linear)  # the layers with a sparse kernel: the task's prunable layers


def _bag_sum(indices, table, offsets, weights):
    """Row b of the result = Σ weights[e] · table[indices[e]] over offsets[b] ≤ e < offsets[b+1]."""
    return F.embedding_bag(indices, table, offsets, mode="sum", per_sample_weights=weights,
                           include_last_offset=True)


class _Sparse(nn.Module):
    """A layer's nonzero weights grouped by output (``rows`` sorted): output o's are
    ``values[starts[o]:starts[o + 1]]``; and its bias."""

    def __init__(self, rows: torch.Tensor, values: torch.Tensor, outputs: int, bias: torch.Tensor | None):
        super().__init__()
        counts = torch.bincount(rows, minlength=outputs)
        self.register_buffer("counts", counts, persistent=False)
        self.register_buffer("starts", torch.cat([counts.new_zeros(1), counts.cumsum(0)]), persistent=False)
        self.register_buffer("values", values.detach().clone(), persistent=False)
        self.register_buffer("bias", None if bias is None else bias.detach().clone(), persistent=False)
        self.nnz = int(values.numel())


class CSRLinear(_Sparse):
    """Inference-only Linear with a sparse weight: y = x Wᵀ + b, computed as (W xᵀ)ᵀ."""

    def __init__(self, linear: nn.Linear):
        weight = linear.weight.detach()
        rows, columns = weight.nonzero().unbind(1)
        super().__init__(rows, weight[rows, columns], linear.out_features, linear.bias)
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.register_buffer("columns", columns, persistent=False)

    def forward(self, x):
        leading = x.shape[:-1]
        table = x.reshape(-1, self.in_features).t().contiguous()  # no copy when x is batch-innermost
        y = _bag_sum(self.columns, table, self.starts, self.values)  # (out, M)
        if self.bias is not None:
            y += self.bias[:, None]
        return y.t().reshape(*leading, self.out_features)


def _same_padding(kernel: int, dilation: int) -> tuple[int, int]:
    total = dilation * (kernel - 1)
    return total // 2, total - total // 2


class CSRConv2d(_Sparse):
    """Inference-only Conv2d with a sparse weight, one bag per output channel and position
    over the input pixels its nonzero weights read (see the module docstring); any stride,
    dilation, groups and zero padding."""

    def __init__(self, conv: nn.Conv2d):
        if conv.padding_mode != "zeros":
            raise ValueError("CSRConv2d needs padding_mode='zeros'")
        weight = conv.weight.detach()
        out_channels, in_per_group, kh, kw = weight.shape
        rows, c_in_group, i, j = weight.nonzero().unbind(1)
        super().__init__(rows, weight[rows, c_in_group, i, j], out_channels, conv.bias)
        self.in_channels, self.out_channels, self.kernel_size = conv.in_channels, out_channels, (kh, kw)
        self.stride, self.dilation = conv.stride, conv.dilation
        channel = rows // (out_channels // conv.groups) * in_per_group + c_in_group
        for name, tensor in (("channel", channel), ("row_tap", i * conv.dilation[0]),
                             ("column_tap", j * conv.dilation[1])):
            self.register_buffer(name, tensor, persistent=False)
        if isinstance(conv.padding, str):  # "valid" or "same" (stride 1), padded as torch pads
            self.pad = ((0, 0, 0, 0) if conv.padding == "valid"
                        else (*_same_padding(kw, conv.dilation[1]), *_same_padding(kh, conv.dilation[0])))
        else:
            self.pad = (conv.padding[1], conv.padding[1], conv.padding[0], conv.padding[0])
        self._bags: dict = {}

    def _bag_block(self, height: int, width: int, h_out: int, w_out: int):
        """``(output rows per block, indices, offsets, weights)`` of the bags of the first
        block of output rows on a (padded) height × width input; block b's indices are
        those plus b's first row · stride · width. Kept per input size."""
        device = self.counts.device
        key = (height, width, device)
        if key not in self._bags:
            rows = max(1, min(h_out, MAX_BAG_ENTRIES // max(1, self.nnz * w_out)))
            sh, sw = self.stride
            grid = torch.arange(rows, device=device)[:, None] * sh * width + torch.arange(w_out, device=device) * sw
            positions = grid.flatten()  # first input pixel of each output position of the block
            count = len(positions)
            pixel = (self.channel * height + self.row_tap) * width + self.column_tap  # per nonzero
            starts = self.starts
            # bags ordered (channel, position), each holding its channel's nonzeros in order
            bag_start = starts[:-1, None] * count + torch.arange(count, device=device) * self.counts[:, None]
            owner = torch.repeat_interleave(self.counts)  # the channel of each nonzero
            rank = torch.arange(self.nnz, device=device) - starts[owner]  # its place in the channel
            where = (bag_start[owner] + rank[:, None]).flatten()
            indices = torch.empty(self.nnz * count, dtype=torch.long, device=device)
            weights = torch.empty(self.nnz * count, dtype=self.values.dtype, device=device)
            indices[where] = (pixel[:, None] + positions).flatten()
            weights[where] = self.values[:, None].expand(-1, count).flatten()
            offsets = torch.cat([bag_start.flatten(), bag_start.new_full((1,), self.nnz * count)])
            self._bags[key] = (rows, indices, offsets, weights)
        return self._bags[key]

    def forward(self, x):
        n = x.shape[0]
        image = x.permute(1, 2, 3, 0)  # (C, H, W, N): a view when x is batch-innermost
        if any(self.pad):
            left, right, top, bottom = self.pad
            image = F.pad(image, (0, 0, left, right, top, bottom))
        image = image.contiguous()
        _, height, width, _ = image.shape
        (kh, kw), (sh, sw), (dh, dw) = self.kernel_size, self.stride, self.dilation
        h_out = (height - dh * (kh - 1) - 1) // sh + 1
        w_out = (width - dw * (kw - 1) - 1) // sw + 1
        table = image.view(-1, n)  # one row per input pixel
        rows, indices, offsets, weights = self._bag_block(height, width, h_out, w_out)
        if rows == h_out:
            y = _bag_sum(indices, table, offsets, weights).view(self.out_channels, h_out, w_out, n)
        else:  # blocks of output rows; the last one ends at the last row (it may overlap)
            y = table.new_empty(self.out_channels, h_out, w_out, n)
            for first in sorted({*range(0, h_out - rows, rows), h_out - rows}):
                block = _bag_sum(indices + first * sh * width, table, offsets, weights)
                y[:, first:first + rows] = block.view(self.out_channels, rows, w_out, n)
        if self.bias is not None:
            y += self.bias[:, None, None, None]
        return y.permute(3, 0, 1, 2)


class LayoutMaxPool2d(nn.Module):
    """A MaxPool2d (dilation 1, no indices) that keeps a batch-innermost layout: torch's
    kernel on NCHW and channels-last inputs, the maximum of strided slices otherwise."""

    def __init__(self, pool: nn.MaxPool2d):
        super().__init__()
        self.pool = pool
        self.kernel_size = _pair(pool.kernel_size)
        self.stride = _pair(pool.stride if pool.stride is not None else pool.kernel_size)
        self.padding = _pair(pool.padding)

    def _sizes(self, size: int, axis: int) -> tuple[int, int]:
        """(outputs, padding after) along one spatial axis, as torch's max_pool2d sizes it."""
        k, s, p = self.kernel_size[axis], self.stride[axis], self.padding[axis]
        if self.pool.ceil_mode:
            out = math.ceil((size + 2 * p - k) / s) + 1
            out -= (out - 1) * s >= size + p
        else:
            out = (size + 2 * p - k) // s + 1
        return out, max(0, (out - 1) * s + k - size - p)

    def forward(self, x):
        if x.dim() != 4 or x.is_contiguous() or x.is_contiguous(memory_format=torch.channels_last):
            return self.pool(x)
        (h_out, bottom), (w_out, right) = self._sizes(x.shape[2], 0), self._sizes(x.shape[3], 1)
        top, left = self.padding
        if top or left or bottom or right:
            image = F.pad(x.permute(1, 2, 3, 0), (0, 0, left, right, top, bottom), value=-math.inf)
            x = image.permute(3, 0, 1, 2)
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        parts = [x[:, :, i:i + (h_out - 1) * sh + 1:sh, j:j + (w_out - 1) * sw + 1:sw]
                 for i in range(kh) for j in range(kw)]
        out = torch.maximum(parts[0], parts[-1])  # allocated in the inputs' layout
        for part in parts[1:-1]:
            torch.maximum(out, part, out=out)
        return out


def _layout_pool(module: nn.Module) -> bool:
    """True for a MaxPool2d that :class:`LayoutMaxPool2d` computes exactly."""
    return (type(module) is nn.MaxPool2d and _pair(module.dilation) == (1, 1)
            and not module.return_indices)


def _sparse_version(module: nn.Module) -> nn.Module | None:
    if isinstance(module, nn.Linear):
        return CSRLinear(module)
    if isinstance(module, nn.Conv2d) and module.padding_mode == "zeros":
        return CSRConv2d(module)
    return None


def _replace(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)


def _sparsity(module: nn.Module) -> float:
    return 1.0 - int(torch.count_nonzero(module.weight)) / module.weight.numel()


def _layer_inputs(model: nn.Module, names: list[str], example: torch.Tensor) -> dict[str, torch.Tensor]:
    """The first input each named module receives in ``model(example)``."""
    inputs: dict[str, torch.Tensor] = {}

    def recorder(name):
        def hook(_module, args, _output):  # returns None: the output is left alone
            inputs.setdefault(name, args[0].detach())
        return hook

    handles = [model.get_submodule(name).register_forward_hook(recorder(name)) for name in names]
    try:
        model(example)
    finally:
        for handle in handles:
            handle.remove()
    return inputs


@torch.inference_mode()
def sparse_inference_model(model: nn.Module, example: torch.Tensor | None = None,
                           min_sparsity: float = SPARSE_MIN_SPARSITY, repeats: int = 7,
                           timer=None) -> nn.Module:
    """A copy of ``model`` for timing in which pruned layers run on sparse kernels where
    that makes the model faster (see the module docstring).

    Without ``example`` every candidate (a Conv2d/Linear with at least ``min_sparsity`` zero
    weights) is converted. With ``example`` (the batch that will be timed) each candidate is
    timed dense and sparse on its real input (median of ``repeats``; a sparse kernel 3×
    slower after one call is not timed further) and the faster is kept; then the whole
    model is timed against the dense copy and returned only when at least
    ``SPARSE_MIN_GAIN`` times faster, else the dense copy is returned. ``timer(models, x,
    repeats, warmup=...)`` gives each model's milliseconds (default:
    :func:`paired_latency_ms`).

    The copy's ``sparse_layers_`` maps each candidate's name to {"sparsity", "sparse"
    (on a sparse kernel in the returned model), and with an example "dense_ms",
    "sparse_ms", "faster" (the layer's own measurement)}; ``sparse_model_`` is {"sparse",
    and with an example "dense_ms", "sparse_ms" of the whole-model check}. Outputs equal
    the model's up to float rounding.
    """
    timer = paired_latency_ms if timer is None else timer
    dense = copy.deepcopy(model).eval()
    choices: dict[str, dict] = {}
    versions: dict[str, nn.Module] = {}
    for name, module in dense.named_modules():
        if not isinstance(module, SPARSE_KINDS):
            continue
        sparsity = _sparsity(module)
        sparse = _sparse_version(module) if sparsity >= min_sparsity else None
        if sparse is not None:
            versions[name] = sparse
            choices[name] = {"sparsity": sparsity, "sparse": False}
    if example is not None and versions:
        inputs = _layer_inputs(dense, list(versions), example)
        for name in list(versions):
            if name not in inputs:  # the forward never reached it: nothing to gain
                del versions[name]
                continue
            pair = [dense.get_submodule(name), versions[name]]
            dense_ms, sparse_ms = timer(pair, inputs[name], 1, warmup=1)
            if sparse_ms < 3 * dense_ms:
                dense_ms, sparse_ms = timer(pair, inputs[name], repeats, warmup=1)
            choices[name].update(dense_ms=dense_ms, sparse_ms=sparse_ms, faster=sparse_ms < dense_ms)
            if not sparse_ms < dense_ms:
                del versions[name]
    summary = {"sparse": bool(versions)}
    fast = dense
    if versions:
        fast = copy.deepcopy(dense)
        for name, sparse in versions.items():
            _replace(fast, name, sparse)
        for name, module in list(fast.named_modules()):
            if _layout_pool(module):
                _replace(fast, name, LayoutMaxPool2d(module))
        if example is not None:
            dense_ms, sparse_ms = timer([dense, fast], example, repeats, warmup=1)
            summary = {"sparse": dense_ms >= SPARSE_MIN_GAIN * sparse_ms, "dense_ms": dense_ms, "sparse_ms": sparse_ms}
    if not summary["sparse"]:
        fast = dense
    for name in versions:
        choices[name]["sparse"] = summary["sparse"]
    fast.sparse_layers_, fast.sparse_model_ = choices, summary
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
