"""Network Sketching (Guo, Yao, Wang & Chen, CVPR 2017, arXiv 1706.02021) and the
binary-weight baselines it is compared with.

Every output filter w ∈ R^n of a Conv2d/Linear weight (n = in·kh·kw, or in_features) is
approximated by m binary bases B_j ∈ {−1, +1}^n with scales a_j:

    w ≈ ŵ = Σ_{j=1..m} a_j · B_j.

* **Direct sketching** (the paper's Algorithm 1): r = w; for j = 1..m: B_j = sign(r),
  a_j = ⟨B_j, r⟩ / n = mean|r|, r ← r − a_j·B_j. Each step minimizes ‖r − a·B‖² over
  (a, B), so the error never increases with m.
* **Refined sketching** (Algorithm 2): the same greedy B_j = sign(r), but after adding
  each basis *all* a_1..a_j are re-fit by least squares, a = argmin ‖w − B a‖ with
  B = [B_1 … B_j] (n × j), and r = w − B a (orthogonal to every B_j). For m ≤ 2 the
  bases equal the direct ones, so the error is at most direct's; for larger m the bases
  differ and refined is lower in practice (robench checks it on Gaussian and LeNet-5
  weights).

sign(0) is +1 here. Sketching runs in float64 on the CPU, one batch over the filters of
a layer; bases are returned as int8 ±1 (out, m, n), coefficients as (out, m).

Methods:

* ``sketch`` (:class:`NetworkSketching`): sketch every layer once in ``prepare``. With
  ``finetune=True`` the a_j are fine-tuned by projected gradient descent: after every
  optimizer step each filter is projected back onto span{B_j} (least-squares refit of
  the a_j with the bases fixed, then W = B a); biases train normally.
* ``bwn`` (:class:`BinaryWeightNetwork`): the BWN baseline, sign(w) scaled by mean|w|
  per filter (direct sketching with m = 1).
* ``sign`` (:class:`SignBinarization`): sign(w), unscaled (a = 1).

Storage (``storage_bits``): m bits per weight entry plus a 32-bit float a_j per basis
and filter (``sign`` stores no scale). Latency (``inference_model``, timed on the CPU):
every sketched layer runs as the associative binary layer of
:mod:`robench.tasks.compression.methods._associative`. Extra metrics: ``sketch_error``, the
relative squared error Σ‖W − Ŵ‖²/Σ‖W‖² over all layers at ``prepare`` (before any
fine-tuning), and ``additions_saved``, the fraction of the binary convolutions'
additions per image that the associative order saves (layers weighted by their output
positions).
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

from robench.errors import UserError
from robench.registry import register_method
from robench.tasks.compression.methods.base import CompressionMethod, prunable_layers
from robench.tasks.contract import check_param

if TYPE_CHECKING:
    import torch
    from torch import nn

VARIANTS = ("direct", "refined")


class Sketch(NamedTuple):
    """bases: int8 (out, m, n) of ±1; coefficients: float64 (out, m);
    reconstruction: Σ_j a_j B_j (computed in float64) in the weight's shape and dtype."""
    bases: torch.Tensor
    coefficients: torch.Tensor
    reconstruction: torch.Tensor


def sign_pm1(x: torch.Tensor) -> torch.Tensor:
    """int8 ±1 with sign(0) = +1."""
    import torch

    return torch.where(x >= 0, 1, -1).to(torch.int8)


def reconstruct(bases: torch.Tensor, coefficients: torch.Tensor) -> torch.Tensor:
    """Σ_j a_j B_j per filter: bases (out, m, n), coefficients (out, m) → (out, n)."""
    import torch

    return torch.einsum("om,omn->on", coefficients, bases.to(coefficients.dtype))


def _least_squares(bases: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """a = argmin ‖w − Bᵀa‖ per filter; bases (out, j, n) float64, w (out, n) → (out, j).
    ``gelsd`` (SVD) gives the minimum-norm solution when bases coincide (a zero residual
    makes sign(r) = +1 everywhere, which may repeat a basis)."""
    import torch

    return torch.linalg.lstsq(bases.transpose(1, 2), w.unsqueeze(2), driver="gelsd").solution.squeeze(2)


def fit_coefficients(weight: torch.Tensor, bases: torch.Tensor) -> torch.Tensor:
    """Least-squares scales of fixed bases: (out, m) = argmin_a ‖w − Σ_j a_j B_j‖ per
    filter, for a weight (out, …) and bases (out, m, n); float64 on the CPU."""
    import torch

    w = weight.detach().reshape(weight.shape[0], -1).to("cpu", torch.float64)
    return _least_squares(bases.to("cpu", torch.float64), w)


def sketch_weight(weight: torch.Tensor, m: int, variant: str = "refined") -> Sketch:
    """Sketch a Conv2d (out, in, kh, kw) or Linear (out, in) weight with ``m`` binary
    bases per output filter, ``variant`` ``"direct"`` or ``"refined"`` (see the module
    docstring)."""
    import torch

    if variant not in VARIANTS:
        raise ValueError(f"variant={variant!r}; expected one of {VARIANTS}")
    if m < 1:
        raise ValueError(f"m={m!r}; expected m >= 1")
    w = weight.detach().reshape(weight.shape[0], -1).to("cpu", torch.float64)
    out, n = w.shape
    bases = torch.empty(out, m, n, dtype=torch.float64, device="cpu")
    coefficients = torch.zeros(out, m, dtype=torch.float64, device="cpu")
    residual = w.clone()
    for j in range(m):
        basis = torch.where(residual >= 0, 1.0, -1.0).to(torch.float64)
        bases[:, j] = basis
        if variant == "direct":
            coefficients[:, j] = residual.abs().mean(1)
            residual -= coefficients[:, j:j + 1] * basis
        else:
            coefficients[:, :j + 1] = _least_squares(bases[:, :j + 1], w)
            residual = w - reconstruct(bases[:, :j + 1], coefficients[:, :j + 1])
    approx = reconstruct(bases, coefficients)
    return Sketch(bases.to(torch.int8), coefficients, approx.reshape(weight.shape).to(weight.device, weight.dtype))


def binarize_sign(weight: torch.Tensor) -> Sketch:
    """sign(W) (sign(0) = +1) as a one-basis sketch with a = 1."""
    import torch

    bases = sign_pm1(weight.detach().reshape(weight.shape[0], 1, -1).cpu())
    coefficients = torch.ones(weight.shape[0], 1, dtype=torch.float64, device="cpu")
    return Sketch(bases, coefficients, bases.reshape(weight.shape).to(weight.device, weight.dtype))


def squared_errors(weight: torch.Tensor, approx: torch.Tensor) -> tuple[float, float]:
    """(‖W − Ŵ‖²_F, ‖W‖²_F) in float64."""
    w, a = weight.detach().double(), approx.detach().double()
    return float(((w - a) ** 2).sum()), float((w ** 2).sum())


def sketch_error(weight: torch.Tensor, approx: torch.Tensor) -> float:
    """Relative squared error ‖W − Ŵ‖²_F / ‖W‖²_F (0 for an all-zero W reproduced exactly)."""
    err, norm = squared_errors(weight, approx)
    return err / norm if norm > 0 else (0.0 if err == 0 else float("inf"))


def output_positions(model: nn.Module, input_shape: tuple[int, ...]) -> dict[str, int]:
    """Layer name → output positions per image of every Conv2d (H_out·W_out) and Linear
    (1 for a flat input), from one forward pass of a zero image of ``input_shape``."""
    import torch

    positions: dict[str, int] = {}
    handles = []
    for name, layer in prunable_layers(model):
        def hook(module, inputs, output, name=name):
            positions[name] = output.numel() // module.weight.shape[0]  # batch of one
        handles.append(layer.register_forward_hook(hook))
    try:
        param = next(model.parameters(), None)
        dtype = param.dtype if param is not None else torch.float32
        device = param.device if param is not None else "cpu"
        with torch.no_grad():
            was_training = model.training
            model.eval()
            model(torch.zeros(1, *input_shape, dtype=dtype, device=device))
            model.train(was_training)
    finally:
        for handle in handles:
            handle.remove()
    return positions


@register_method("compression", "sketch")
class NetworkSketching(CompressionMethod):
    """Network Sketching: W ≈ Σ_j a_j B_j per output filter, binary B_j, float a_j.

    m: binary bases per filter (≥ 1). variant: ``"refined"`` (least-squares refit of all
    a_j after each new basis) or ``"direct"`` (greedy a_j = mean|residual|).
    finetune: False compresses without retraining (the paper's setting: the task skips
    fine-tuning); True fine-tunes the a_j (bases fixed) and the biases with the task's
    budget, by projecting each filter back onto span{B_j} after every optimizer step
    (so the first step also turns direct's greedy a_j into the least-squares ones).
    State after ``prepare``: ``bases_`` (int8 (out, m, n) per layer name),
    ``coefficients_`` (float64 (out, m), kept current during fine-tuning),
    ``layer_errors_`` and ``squared_errors_`` (at ``prepare``).
    """
    label_params: ClassVar[tuple[str, ...]] = ("m", "variant")
    version = "1"
    scaled: ClassVar[bool] = True  # the encoding stores a 32-bit a_j per basis and filter

    def __init__(self, m: int = 3, variant: str = "refined", finetune: bool = False):
        owner = self._owner()
        self.m = check_param(owner, "m", m, int, low=1)
        if variant not in VARIANTS:  # by hand: the message reads "'direct' or 'refined'"
            raise UserError(f"{owner}: variant={variant!r}; expected 'direct' or 'refined'")
        self.variant = variant
        self.finetune = check_param(owner, "finetune", finetune, bool)

    # -- the sketch of one layer (overridden by the baselines) ---------------------------
    def sketch_layer(self, weight: torch.Tensor) -> Sketch:
        return sketch_weight(weight, self.m, self.variant)

    # -- hooks -------------------------------------------------------------------------
    def wants_finetuning(self) -> bool:
        return bool(self.finetune)

    def prepare(self, model, data, total_steps, seed):
        import torch

        layers = prunable_layers(model)
        self._layers = dict(layers)
        self.bases_: dict[str, torch.Tensor] = {}
        self.coefficients_: dict[str, torch.Tensor] = {}
        self.squared_errors_: dict[str, tuple[float, float]] = {}  # (‖W − Ŵ‖², ‖W‖²) at prepare
        self.layer_errors_: dict[str, float] = {}  # ‖W − Ŵ‖² / ‖W‖² at prepare
        self._projectors: dict[str, torch.Tensor] = {}
        self._plans: dict[str, Any] = {}
        with torch.no_grad():
            for name, layer in layers:
                sketch = self.sketch_layer(layer.weight)
                self.bases_[name] = sketch.bases
                self.coefficients_[name] = sketch.coefficients
                self.squared_errors_[name] = squared_errors(layer.weight, sketch.reconstruction)
                err, norm = self.squared_errors_[name]
                self.layer_errors_[name] = err / norm if norm > 0 else 0.0
                layer.weight.copy_(sketch.reconstruction)
                if self.finetune:
                    # a = P w with P = pinv(Bᵀ) (out, m, n): the least-squares refit of fixed bases
                    self._projectors[name] = torch.linalg.pinv(sketch.bases.double().transpose(1, 2))
        return self

    def _project(self) -> None:
        """W ← B·argmin_a ‖W − B a‖ for every layer (the coefficients' projected step)."""
        import torch

        with torch.no_grad():
            for name, projector in self._projectors.items():
                weight = self._layers[name].weight
                w = weight.reshape(weight.shape[0], -1).to("cpu", torch.float64)
                a = torch.einsum("omn,on->om", projector, w)
                self.coefficients_[name] = a
                weight.copy_(reconstruct(self.bases_[name], a).reshape(weight.shape).to(weight.device, weight.dtype))

    def after_step(self, model, step):
        self._project()

    def finalize(self, model):
        import torch

        if self.finetune:
            self._project()
        else:
            with torch.no_grad():
                for name, bases in self.bases_.items():
                    weight = self._layers[name].weight
                    weight.copy_(reconstruct(bases, self.coefficients_[name]).reshape(weight.shape))
        return model

    # -- optional hooks ------------------------------------------------------------------
    def storage_bits(self, name: str, module: nn.Module) -> int | None:
        """m bits per weight entry + 32·m bits per filter for the a_j (none for ``sign``)."""
        from torch import nn

        if not isinstance(module, (nn.Conv2d, nn.Linear)):
            return None
        out = module.weight.shape[0]
        n = module.weight[0].numel()
        return self.m * out * n + (32 * self.m * out if self.scaled else 0)

    def _plan(self, name: str):
        from robench.tasks.compression.methods._associative import associative_plan

        if name not in self._plans:
            self._plans[name] = associative_plan(self.bases_[name])
        return self._plans[name]

    def inference_model(self, model: nn.Module, example: torch.Tensor) -> nn.Module:
        """A copy of ``model`` whose sketched layers are associative binary layers with the
        a_j refit (least squares) to the model's current weights. A layer whose weight is
        no longer Σ a_j B_j (changed after ``finalize``), or a grouped / non-zero-padded
        convolution, keeps its float module. The associative layers are CPU modules (the
        task times this on the CPU)."""
        import torch
        from torch import nn

        from robench.tasks.compression.methods._associative import (AssociativeBinaryConv2d,
                                                                    AssociativeBinaryLinear)

        with torch.no_grad():
            fast = copy.deepcopy(model).eval()
            for name, bases in self.bases_.items():
                module = fast.get_submodule(name)
                coefficients = fit_coefficients(module.weight, bases)
                approx = reconstruct(bases, coefficients)
                if sketch_error(module.weight.detach().cpu().reshape(approx.shape), approx) > 1e-8:
                    continue
                a = coefficients.to(module.weight.dtype)
                try:
                    if isinstance(module, nn.Conv2d):
                        fast_module = AssociativeBinaryConv2d.from_sketch(module, bases, a, self._plan(name))
                    else:
                        fast_module = AssociativeBinaryLinear.from_sketch(module, bases, a, self._plan(name))
                except ValueError:
                    continue
                parent, _, attr = name.rpartition(".")
                setattr(fast.get_submodule(parent) if parent else fast, attr, fast_module)
        return fast

    def extra_metrics(self, model: nn.Module, data: Any) -> dict[str, float]:
        errors = list(self.squared_errors_.values())
        norm = sum(n for _, n in errors)
        positions = output_positions(model, data.input_shape) if data is not None else {}
        plain = associative = 0
        for name in self.bases_:
            plan, count = self._plan(name), positions.get(name, 1)
            plain += count * plan.plain_additions
            associative += count * plan.associative_additions
        return {
            "sketch_error": sum(e for e, _ in errors) / norm if norm > 0 else 0.0,
            "additions_saved": 1.0 - associative / plain if plain > 0 else 0.0,
        }


@register_method("compression", "bwn")
class BinaryWeightNetwork(NetworkSketching):
    """Binary-weight-network baseline: w ≈ mean|w| · sign(w) per output filter (direct
    sketching with m = 1; no parameters, no fine-tuning)."""
    label_params: ClassVar[tuple[str, ...]] = ()
    version = "1"
    m: ClassVar[int] = 1
    variant: ClassVar[str] = "direct"
    finetune: ClassVar[bool] = False

    def __init__(self):
        pass


@register_method("compression", "sign")
class SignBinarization(NetworkSketching):
    """Unscaled binarization baseline: W → sign(W) (sign(0) = +1; no parameters, no
    fine-tuning, no stored scale)."""
    label_params: ClassVar[tuple[str, ...]] = ()
    version = "1"
    scaled: ClassVar[bool] = False
    m: ClassVar[int] = 1
    variant: ClassVar[str] = "sign"
    finetune: ClassVar[bool] = False

    def __init__(self):
        pass

    def sketch_layer(self, weight):
        return binarize_sign(weight)


__all__ = ["Sketch", "sign_pm1", "reconstruct", "fit_coefficients", "sketch_weight", "binarize_sign",
           "squared_errors", "sketch_error", "output_positions", "NetworkSketching", "BinaryWeightNetwork",
           "SignBinarization"]
