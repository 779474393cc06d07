"""DNS driven to a target sparsity: the step hooks behind the ``dns`` method of
``sparsity_robustness`` (imported when a pruner is built, so declaring the method needs
no torch)."""

from __future__ import annotations

import torch

from robench.tasks.compression.methods.base import check_fraction, prunable_layers
from robench.tasks.compression.methods.dns import DynamicNetworkSurgery
from robench.tasks.compression.methods.magnitude import smallest_magnitude_mask


class TargetDNS(DynamicNetworkSurgery):
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
