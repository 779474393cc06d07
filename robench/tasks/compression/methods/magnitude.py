"""``magnitude``: one-shot magnitude pruning to a target sparsity, then fine-tuning with
the masks fixed (Han et al. 2015 without the iterations; the one-shot reference DNS is
compared with)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from robench.registry import register_method
from robench.tasks.compression.methods.base import MaskedPruning, check_fraction, prunable_layers
from robench.tasks.contract import check_param

if TYPE_CHECKING:
    import torch

SCOPES = ("layer", "global")


def smallest_magnitude_mask(magnitudes: torch.Tensor, n_pruned: int) -> torch.Tensor:
    """Bool mask (True = kept) over a 1-D tensor that prunes exactly ``n_pruned`` entries:
    the smallest magnitudes, ties broken by position (earlier entries are pruned first).
    The mask is on ``magnitudes``' device."""
    import torch

    order = torch.sort(magnitudes, stable=True).indices
    mask = torch.ones(magnitudes.numel(), dtype=torch.bool, device=magnitudes.device)
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
        self.sparsity = check_fraction("sparsity", sparsity, self._name())
        self.scope = check_param(self._owner(), "scope", scope, str, choices=SCOPES)

    def compute_masks(self, model, seed):
        import torch

        layers = prunable_layers(model)
        with torch.no_grad():
            magnitudes = [layer.weight.detach().abs().flatten() for _, layer in layers]
        if self.scope == "layer":
            flat = [smallest_magnitude_mask(m, round(self.sparsity * m.numel())) for m in magnitudes]
        else:  # "global"
            everything = torch.cat(magnitudes)
            flat = smallest_magnitude_mask(everything, round(self.sparsity * everything.numel()))
            flat = flat.split([m.numel() for m in magnitudes])
        return {name: mask.view_as(layer.weight) for (name, layer), mask in zip(layers, flat)}
