"""Dynamic Network Surgery (Guo, Yao & Chen, NIPS 2016, arXiv 1608.04493) and its
no-splicing ablation.

Each prunable layer keeps a mask T next to its dense weights W. Thresholds come from
the |W| of the trained layer: t = max(μ + c·σ, 0) with μ, σ the mean and standard
deviation of |W|, a = 0.9·t, b = 1.1·t (computed once, at ``prepare``, as the reference
Caffe code does on its first iteration). A mask update is the hysteresis

    |W| < a → T = 0,    |W| ≥ b → T = 1,    a ≤ |W| < b → T unchanged,

done at ``prepare`` and then at step s with probability (1 + γ·s)^(−power) while
s < ``mask_update_fraction`` · total_steps (one draw per layer and step from the run's
``seeding.stream(seed, "method")``). The forward pass uses W⊙T, but the
gradient (taken with respect to W⊙T) is applied to *all* of W, so a pruned weight keeps
learning and is spliced back once its magnitude reaches b.

Implementation with the task's plain training loop: ``before_forward`` stores the dense
W aside and writes W⊙T into the parameter; ``after_backward`` writes the dense W back,
so ``optimizer.step()`` applies the gradient computed at W⊙T (and the weight decay) to
the dense weights. ``finalize`` leaves W⊙T in the model.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, ClassVar, Sequence

from robench.errors import UserError
from robench.registry import register_method
from robench.tasks.compression.methods.base import (CompressionMethod, apply_masks, mask_gradients,
                                                    prunable_layers)
from robench.tasks.contract import check_param

if TYPE_CHECKING:
    import torch


def hysteresis_mask(magnitude: torch.Tensor, mask: torch.Tensor, a: float, b: float) -> torch.Tensor:
    """DNS mask update: False where magnitude < a, True where magnitude ≥ b, else ``mask``."""
    return (mask & (magnitude >= a)) | (magnitude >= b)


def dns_thresholds(weight: torch.Tensor, c: float) -> tuple[float, float]:
    """``(a, b) = (0.9·t, 1.1·t)`` with ``t = max(mean|W| + c·std|W|, 0)`` (population std)."""
    magnitude = weight.detach().abs().double()
    t = max(magnitude.mean().item() + c * magnitude.std(unbiased=False).item(), 0.0)
    return 0.9 * t, 1.1 * t


@register_method("compression", "dns")
class DynamicNetworkSurgery(CompressionMethod):
    """Dynamic Network Surgery: prune and splice with hysteresis masks during fine-tuning.

    c: threshold factor, one float for every layer or a list with one per Conv2d/Linear
    layer in module order (the reference sets it per layer; larger c prunes more). The
    default 3.0 works for any model (LeNet-5 on mnist-5k: ≈44× at −0.2% accuracy with the
    task's default budget; one float of 3.5–4 can prune LeNet-5's 500-weight conv1 away).
    For LeNet-5 (conv1, conv2, fc1, fc2), ``[1, 3, 5.5, 2.5]`` reaches ≈108× as in the paper.
    gamma, power: mask updates happen with probability (1 + gamma·step)^(−power)
    (reference: 1e-4 and 1). mask_update_fraction: masks are updated only during the
    first ``ceil(fraction · total_steps)`` steps, in (0, 1]; the rest fine-tunes with
    the masks fixed (the reference's ``iter_stop``).
    """
    version = "1"
    splice: ClassVar[bool] = True  # pruned weights keep receiving the gradient

    def __init__(self, c: float | Sequence[float] = 3.0, gamma: float = 1e-4,
                 power: float = 1.0, mask_update_fraction: float = 1.0):
        owner = self._owner()
        self.c = check_param(owner, "c", c, float, each=True)
        self.gamma = check_param(owner, "gamma", gamma, float, low=0.0)
        self.power = check_param(owner, "power", power, float, low=0.0)
        self.mask_update_fraction = check_param(owner, "mask_update_fraction", mask_update_fraction, float,
                                                low=0.0, low_open=True, high=1.0)

    # -- parameters --------------------------------------------------------------------
    def _layer_cs(self, n_layers: int) -> list[float]:
        """One c per prunable layer (its count is known only once the model is)."""
        c = self.c
        if not isinstance(c, (list, tuple)):
            return [float(c)] * n_layers
        if len(c) != n_layers:
            raise UserError(f"{self._owner()}: c has {len(c)} values but the model has {n_layers} "
                            f"prunable (Conv2d/Linear) layers; give c as one float or a list of {n_layers}")
        return [float(v) for v in c]

    # -- hooks -------------------------------------------------------------------------
    def prepare(self, model, data, total_steps, seed):
        import torch

        from robench import seeding

        layers = prunable_layers(model)
        cs = self._layer_cs(len(layers))
        self.thresholds_ = {name: dns_thresholds(layer.weight, c) for (name, layer), c in zip(layers, cs)}
        self.masks_ = {name: torch.ones_like(layer.weight, dtype=torch.bool) for name, layer in layers}
        self.stop_step_ = math.ceil(self.mask_update_fraction * total_steps)
        self.mask_updates_ = 0  # how many layer-mask updates happened (for reports and tests)
        self._layers = dict(layers)
        self._gen = seeding.stream(seed, "method")
        self._dense: dict[str, torch.Tensor] = {}
        for name in self.masks_:
            self._update_mask(name)
        if not self.splice:
            apply_masks(model, self.masks_)
        return self

    def _update_mask(self, name: str) -> None:
        import torch

        a, b = self.thresholds_[name]
        with torch.no_grad():
            updated = hysteresis_mask(self._layers[name].weight.abs(), self.masks_[name], a, b)
        # without splicing a pruned weight stays pruned (it is zero, but a may be 0 too)
        self.masks_[name] = updated if self.splice else updated & self.masks_[name]
        self.mask_updates_ += 1

    def before_forward(self, model, step):
        import torch

        with torch.no_grad():
            if step < self.stop_step_:
                probability = (1.0 + self.gamma * step) ** (-self.power)
                for name in self.masks_:
                    if torch.rand((), generator=self._gen, device="cpu").item() < probability:
                        self._update_mask(name)
            for name, mask in self.masks_.items():
                weight = self._layers[name].weight
                if self.splice:
                    self._dense[name] = weight.detach().clone()  # the forward sees W⊙T
                weight.mul_(mask)

    def after_backward(self, model, step):
        import torch

        if self.splice:
            with torch.no_grad():
                for name, dense in self._dense.items():
                    self._layers[name].weight.copy_(dense)  # the step updates all of W
            self._dense.clear()
        else:
            mask_gradients(model, self.masks_)

    def after_step(self, model, step):
        if not self.splice:
            apply_masks(model, self.masks_)  # momentum must not revive a pruned weight

    def finalize(self, model):
        apply_masks(model, self.masks_)
        self._dense = {}
        return model


@register_method("compression", "dns-nosplice")
class DynamicNetworkSurgeryNoSplice(DynamicNetworkSurgery):
    """DNS ablation: pruned weights are zeroed and get no gradient, so they never come back.

    Same parameters and mask schedule as ``dns``; a mask update can only prune.
    """
    version = "1"
    splice: ClassVar[bool] = False
