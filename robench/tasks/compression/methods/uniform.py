"""``uniform``: symmetric per-layer k-bit fake quantization, retrained with a
straight-through estimator (the usual uniform baseline INQ's power-of-two grid is
compared with).

For a layer's float weight W and k bits, with q_max = 2^(k−1) − 1,

    scale = max|W| / q_max,    Q(W) = clamp(round(W / scale), −q_max, q_max) · scale

(``torch.round``: half to even, so Q(−W) = −Q(W)); an all-zero W quantizes to zeros. A
layer holds at most 2^k − 1 distinct values, symmetric around 0.

Retraining (straight-through estimator, the trick of ``dns``): ``before_forward`` stores
the float W aside and writes Q(W) into the parameter, so the forward and backward passes
see the quantized weights; ``after_backward`` writes the float W back, so
``optimizer.step()`` applies the gradient computed at Q(W) (and the weight decay) to the
float shadow. The scale is recomputed from the float shadow at every step. ``finalize``
leaves Q(W) in the model. Biases stay float.

``storage_bits`` returns None: the task's generic encoding counts the ≤ 2^k − 1 distinct
values (≤ k bits per weight) exactly. ``extra_metrics`` reports, for ``bits == 8`` and a
model with Linear layers, PyTorch's own int8 dynamic quantization of those layers
(``torch.ao.quantization.quantize_dynamic``, a CPU backend, so measured on a CPU copy of
the model): its latency next to the float model's on 64 test images, and its accuracy.
"""

from __future__ import annotations

import copy
import warnings
from typing import TYPE_CHECKING, Any, ClassVar

from robench.registry import register_method
from robench.tasks.compression.methods.base import CompressionMethod, prunable_layers
from robench.tasks.contract import check_param

if TYPE_CHECKING:
    import torch
    from torch import nn


def uniform_scale(weight: torch.Tensor, bits: int) -> float:
    """max|W| / (2^(bits−1) − 1); 0.0 for an all-zero weight."""
    peak = float(weight.detach().abs().max()) if weight.numel() else 0.0
    return peak / (2 ** (bits - 1) - 1)


def quantize_uniform(weight: torch.Tensor, bits: int) -> torch.Tensor:
    """Symmetric k-bit fake quantization of ``weight`` (a new tensor, same dtype)."""
    import torch

    if not isinstance(bits, int) or isinstance(bits, bool) or bits < 2:
        raise ValueError(f"bits={bits!r}; expected an integer >= 2")
    w = weight.detach()
    scale = uniform_scale(w, bits)
    if scale == 0.0:
        return torch.zeros_like(w)
    q_max = 2 ** (bits - 1) - 1
    return torch.clamp(torch.round(w / scale), -q_max, q_max) * scale


@register_method("compression", "uniform")
class UniformQuantization(CompressionMethod):
    """Symmetric per-layer k-bit fake quantization retrained with a straight-through estimator.

    bits: k in 2..16 (2^k − 1 levels per layer, scale = max|W| / (2^(k−1) − 1)).
    See the module docstring for the exact algorithm and the int8 metrics.
    """
    version = "1"
    label_params: ClassVar[tuple[str, ...]] = ("bits",)

    def __init__(self, bits: int = 8):
        self.bits = check_param(self._owner(), "bits", bits, int, low=2, high=16)

    # -- hooks -------------------------------------------------------------------------
    def prepare(self, model, data, total_steps, seed):
        self._layers = dict(prunable_layers(model))
        self._float: dict[str, torch.Tensor] = {}
        return self

    def before_forward(self, model, step):
        import torch

        with torch.no_grad():
            for name, layer in self._layers.items():
                self._float[name] = layer.weight.detach().clone()
                layer.weight.copy_(quantize_uniform(layer.weight, self.bits))

    def after_backward(self, model, step):
        import torch

        with torch.no_grad():
            for name, weight in self._float.items():
                self._layers[name].weight.copy_(weight)  # the step updates the float shadow
        self._float.clear()

    def finalize(self, model):
        import torch

        with torch.no_grad():
            for name, weight in self._float.items():  # a forward without backward: restore first
                self._layers[name].weight.copy_(weight)
            self._float = {}
            for layer in self._layers.values():
                layer.weight.copy_(quantize_uniform(layer.weight, self.bits))
        return model

    def extra_metrics(self, model: nn.Module, data: Any) -> dict[str, float]:
        from torch import nn

        if self.bits != 8 or data is None or not any(isinstance(m, nn.Linear) for m in model.modules()):
            return {}
        return int8_dynamic_metrics(model, data)


def int8_dynamic_metrics(model: nn.Module, data: Any, batch: int = 64, repeats: int = 30) -> dict[str, float]:
    """CPU latency (ms, median of ``repeats``, interleaved) of ``model`` and of its int8
    dynamic quantization (Linear layers only) on the first ``batch`` test images, and the
    latter's accuracy on the test split; both on a CPU copy of ``model`` (int8 dynamic
    quantization is a CPU backend). Empty when this torch has no ``torch.ao.quantization``."""
    import torch
    from torch import nn

    from robench.tasks.compression.metrics import paired_latency_ms
    from robench.training import accuracy

    with warnings.catch_warnings(), torch.device("cpu"):  # deprecated in favour of torchao; CPU kernels
        warnings.simplefilter("ignore")
        try:
            from torch.ao.quantization import quantize_dynamic
        except ImportError:
            return {}
        if torch.backends.quantized.engine == "none":  # built without a quantized CPU backend
            return {}
        float_model = copy.deepcopy(model).cpu().eval()
        qmodel = quantize_dynamic(copy.deepcopy(float_model), {nn.Linear}, dtype=torch.qint8)
        x = data.test.take(range(min(batch, len(data.test))))[0]
        latency_float, latency_int8 = paired_latency_ms([float_model, qmodel], x, repeats=repeats)
        acc = accuracy(qmodel, data.test)
    return {"latency_int8_dynamic_ms": latency_int8, "latency_float_ms": latency_float,
            "accuracy_int8_dynamic": acc}
