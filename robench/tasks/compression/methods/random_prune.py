"""``random``: prune a random fraction of each layer's weights, then fine-tune with the
masks fixed (the floor any pruning criterion must beat)."""

from __future__ import annotations

from robench.registry import register_method
from robench.tasks.compression.methods.base import MaskedPruning, check_fraction, prunable_layers


@register_method("compression", "random")
class RandomPruning(MaskedPruning):
    """Prune exactly ``round(sparsity · n)`` weights chosen uniformly at random in each layer.

    sparsity: fraction of each Conv2d/Linear weight tensor set to zero, in [0, 1).
    The choice depends on the run's seed only (stream ``"method"``, drawn on the CPU).
    """
    label_params = ("sparsity",)  # always shown in leaderboard labels
    version = "1"

    def __init__(self, sparsity: float = 0.9):
        self.sparsity = check_fraction("sparsity", sparsity, self._name())

    def compute_masks(self, model, seed):
        import torch

        from robench import seeding

        gen = seeding.stream(seed, "method")
        masks = {}
        for name, layer in prunable_layers(model):
            n = layer.weight.numel()
            mask = torch.ones(n, dtype=torch.bool, device="cpu")
            mask[torch.randperm(n, generator=gen, device="cpu")[:round(self.sparsity * n)]] = False
            masks[name] = mask.view_as(layer.weight).to(layer.weight.device)
        return masks
