"""The pruning methods of ``sparsity_robustness``: thin adapters over the ``compression``
methods that take the target sparsity from the task (a suite sweeps it as a task
parameter, so one (model, method, sparsity, seed) is one run).

The contract is :class:`~robench.tasks.sparsity_robustness.methods.base.SparsityMethod`.
"""

from __future__ import annotations

import torch

from robench.registry import register_method
from robench.tasks.compression.methods.base import check_fraction, prunable_layers
from robench.tasks.compression.methods.dns import DynamicNetworkSurgery
from robench.tasks.compression.methods.magnitude import MagnitudePruning, smallest_magnitude_mask
from robench.tasks.compression.methods.random_prune import RandomPruning
from robench.tasks.sparsity_robustness.methods.base import SparsityMethod


@register_method("sparsity_robustness", "magnitude")
class Magnitude(SparsityMethod):
    """One-shot magnitude pruning to the target sparsity, masks fixed while fine-tuning.

    scope: ``"layer"`` (every Conv2d/Linear layer pruned to the target, as in the paper's
    sweep) or ``"global"`` (one magnitude ranking over all layers).
    """
    version = "1"

    def __init__(self, scope: str = "layer"):
        self.scope = scope

    def pruner(self, sparsity):
        return MagnitudePruning(sparsity=sparsity, scope=self.scope)


@register_method("sparsity_robustness", "random")
class Random(SparsityMethod):
    """Random pruning of every layer to the target sparsity (the floor of any criterion)."""
    version = "1"

    def __init__(self):
        pass

    def pruner(self, sparsity):
        return RandomPruning(sparsity=sparsity)


class _TargetDNS(DynamicNetworkSurgery):
    """DNS driven to a target sparsity.

    Per-layer c is chosen at ``prepare`` so that the first mask prunes exactly the target
    fraction of each layer (the lower threshold a = 0.9·t sits at the ``sparsity`` quantile
    of |W|). Prune-and-splice then runs unchanged while masks are updated; splicing lets
    the sparsity drift (on the linear model at 0.99 it ended at 0.976), so when the mask
    updates stop, each layer's mask is set once to its largest-|W| weights at exactly the
    target (the dense W that DNS kept learning), and fine-tuning goes on with it fixed.
    """

    def __init__(self, sparsity: float, gamma: float, power: float, mask_update_fraction: float):
        super().__init__(c=0.0, gamma=gamma, power=power, mask_update_fraction=mask_update_fraction)
        self.sparsity = sparsity

    def prepare(self, model, data, total_steps, seed):
        sparsity = check_fraction("sparsity", self.sparsity, "dns")
        cs = []
        with torch.no_grad():
            for _, layer in prunable_layers(model):
                magnitude = layer.weight.detach().abs().double().flatten()
                mean, std = magnitude.mean().item(), magnitude.std(unbiased=False).item()
                k = round(sparsity * magnitude.numel())
                # a must exceed the k-th smallest |w| and not the (k+1)-th: midway between them
                ordered = torch.sort(magnitude).values
                low = ordered[k - 1].item() if k > 0 else 0.0
                a = 0.5 * (low + ordered[k].item()) if k < magnitude.numel() else ordered[-1].item() * 1.01
                cs.append((a / 0.9 - mean) / std if std > 0 else 0.0)
        self.c = cs
        self.projected_ = False
        return super().prepare(model, data, total_steps, seed)

    @torch.no_grad()
    def _project(self) -> None:
        for name, layer in self._layers.items():
            magnitude = layer.weight.abs().flatten()  # the dense W between steps
            keep = smallest_magnitude_mask(magnitude, round(self.sparsity * magnitude.numel()))
            self.masks_[name] = keep.view_as(layer.weight)
        self.projected_ = True

    def before_forward(self, model, step):
        if step >= self.stop_step_ and not self.projected_:
            self._project()
        super().before_forward(model, step)

    def finalize(self, model):
        if not self.projected_:  # mask updates never stopped (fraction 1, or no steps)
            if self._dense:
                self.after_backward(model, -1)
            self._project()
        return super().finalize(model)


@register_method("sparsity_robustness", "dns")
class DNS(SparsityMethod):
    """Dynamic Network Surgery (compression/dns) with thresholds set from the target sparsity.

    gamma, power: mask-update probability (1 + gamma·step)^(−power); mask_update_fraction:
    masks are updated (pruned and spliced) during that first fraction of fine-tuning; then
    each layer's mask is set to its largest-|W| weights at exactly the target sparsity and
    kept fixed for the rest (DNS alone drifts off the target by up to a few percent).
    """
    version = "1"

    def __init__(self, gamma: float = 1e-4, power: float = 1.0, mask_update_fraction: float = 0.5):
        self.gamma = gamma
        self.power = power
        self.mask_update_fraction = mask_update_fraction

    def pruner(self, sparsity):
        dns = _TargetDNS(sparsity, self.gamma, self.power, self.mask_update_fraction)
        dns.registered_name = "dns"
        return dns
