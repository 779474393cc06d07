"""``dns-target``: Dynamic Network Surgery driven to a target sparsity (the DNS of the
sparse-robustness study, whose sweep axis is the sparsity).

``dns`` prunes as far as its thresholds t = μ + c·σ take it; to compare methods at equal
sparsity, this variant sets each layer's c at ``prepare`` so that the first mask prunes
exactly the target fraction of the layer (the lower threshold a = 0.9·t sits midway
between the k-th and (k+1)-th smallest |W|, k = round(sparsity · n)). Prune-and-splice then
runs unchanged while masks are updated; splicing lets the sparsity drift (on the linear
model at 0.99 it ended at 0.976), so when the mask updates stop, each layer's mask is set
once to its largest-|W| weights at exactly the target (the dense W that DNS kept learning,
pruned weights included), and fine-tuning goes on with it fixed. Every layer of the
finalized model therefore has exactly round(sparsity · n) zero weights.
"""

from __future__ import annotations

from robench.registry import register_method
from robench.tasks.compression.methods.base import check_fraction, prunable_layers
from robench.tasks.compression.methods.dns import DynamicNetworkSurgery
from robench.tasks.compression.methods.magnitude import smallest_magnitude_mask


@register_method("compression", "dns-target")
class TargetDNS(DynamicNetworkSurgery):
    """DNS (prune and splice) with per-layer thresholds set from a target sparsity, ending at it exactly.

    sparsity: fraction of every Conv2d/Linear layer's weights set to zero, in [0, 1).
    gamma, power: mask-update probability (1 + gamma·step)^(−power), as in ``dns``.
    mask_update_fraction: masks are pruned and spliced during that first fraction of
    fine-tuning, in (0, 1]; then each layer's mask is set to its largest-|W| weights at
    exactly the target sparsity and kept fixed for the rest.
    """
    version = "1"
    label_params = ("sparsity",)  # always shown in leaderboard labels

    def __init__(self, sparsity: float = 0.9, gamma: float = 1e-4, power: float = 1.0,
                 mask_update_fraction: float = 0.5):
        super().__init__(c=0.0, gamma=gamma, power=power, mask_update_fraction=mask_update_fraction)
        del self.c  # set per layer at prepare; not a parameter of this method
        self.sparsity = check_fraction("sparsity", sparsity, self._name())

    def prepare(self, model, data, total_steps, seed):
        import torch

        cs = []
        with torch.no_grad():
            for _, layer in prunable_layers(model):
                magnitude = layer.weight.detach().abs().double().flatten()
                mean, std = magnitude.mean().item(), magnitude.std(unbiased=False).item()
                k = round(self.sparsity * magnitude.numel())
                # a must exceed the k-th smallest |w| and not the (k+1)-th: midway between them
                ordered = torch.sort(magnitude).values
                low = ordered[k - 1].item() if k > 0 else 0.0
                a = 0.5 * (low + ordered[k].item()) if k < magnitude.numel() else ordered[-1].item() * 1.01
                cs.append((a / 0.9 - mean) / std if std > 0 else 0.0)
        self.c = cs
        self.projected_ = False
        return super().prepare(model, data, total_steps, seed)

    def _project(self) -> None:
        import torch

        with torch.no_grad():
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
