"""``magnitude``: one-shot magnitude pruning to a target sparsity, then fine-tuning with
the masks fixed (Han et al. 2015 without the iterations; the one-shot reference DNS is
compared with)."""

from __future__ import annotations

import torch

from robench.errors import UserError
from robench.registry import register_method
from robench.tasks.compression.methods.base import MaskedPruning, check_fraction, prunable_layers


def smallest_magnitude_mask(magnitudes: torch.Tensor, n_pruned: int) -> torch.Tensor:
    """Bool mask (True = kept) over a 1-D tensor that prunes exactly ``n_pruned`` entries:
    the smallest magnitudes, ties broken by position (earlier entries are pruned first)."""
    order = torch.sort(magnitudes, stable=True).indices
    mask = torch.ones(magnitudes.numel(), dtype=torch.bool)
    mask[order[:n_pruned]] = False
    return mask


@register_method("compression", "magnitude")
class MagnitudePruning(MaskedPruning):
    """Zero the smallest-|w| weights once, then fine-tune with the masks fixed.

    sparsity: fraction of prunable weights set to zero, in [0, 1).
    scope: ``"layer"`` prunes ``round(sparsity · n_l)`` weights in every layer;
    ``"global"`` ranks all Conv2d/Linear weights together and prunes exactly
    ``round(sparsity · N)`` of them (ties broken deterministically by layer order, then
    position), so layers end up with different sparsities.
    """
    label_params = ("sparsity",)  # always shown in leaderboard labels
    version = "1"

    def __init__(self, sparsity: float = 0.9, scope: str = "layer"):
        self.sparsity = sparsity
        self.scope = scope

    def compute_masks(self, model, seed):
        sparsity = check_fraction("sparsity", self.sparsity, "magnitude")
        layers = prunable_layers(model)
        with torch.no_grad():
            magnitudes = [layer.weight.detach().abs().flatten() for _, layer in layers]
        if self.scope == "layer":
            flat = [smallest_magnitude_mask(m, round(sparsity * m.numel())) for m in magnitudes]
        elif self.scope == "global":
            everything = torch.cat(magnitudes)
            flat = smallest_magnitude_mask(everything, round(sparsity * everything.numel()))
            flat = flat.split([m.numel() for m in magnitudes])
        else:
            raise UserError(f"method 'magnitude': scope={self.scope!r}; expected 'layer' or 'global'")
        return {name: mask.view_as(layer.weight) for (name, layer), mask in zip(layers, flat)}
