"""Input normalization inside the model, so every task and attack feeds images in [0, 1].

:class:`NormalizedModel` wraps a network that expects standardized input: it repeats a
grey image to the network's three channels, subtracts the mean and divides by the standard
deviation per channel, and returns the network's logits. Its state dict is the network's
under ``net.`` plus the normalizer's two buffers ``normalize.mean`` and ``normalize.std`` (so
an exported model carries the statistics it was trained with).

This module imports torch: the model factories import it when they build a model.
"""

from __future__ import annotations

import torch
from torch import nn

# per-channel statistics of the training images, pixel values in [0, 1]
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # torchvision's ImageNet preprocessing
IMAGENET_STD = (0.229, 0.224, 0.225)
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)  # the 50,000 CIFAR-10 training images
CIFAR10_STD = (0.2470, 0.2435, 0.2616)  # per-pixel std (not the 0.2023/0.1994/0.2010 some repos copy)

NORMALIZER_KEYS = ("normalize.mean", "normalize.std")
NET_PREFIX = "net."


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel. ``x``: (N, C, H, W) with C = ``len(mean)``;
    ``mean``/``std`` are (1, C, 1, 1) float32 buffers (in the state dict, moved by ``.to()``)."""

    def __init__(self, mean, std):
        super().__init__()
        mean = torch.as_tensor(mean, dtype=torch.float32).reshape(1, -1, 1, 1)
        std = torch.as_tensor(std, dtype=torch.float32).reshape(1, -1, 1, 1)
        if mean.shape != std.shape or not bool((std > 0).all()):
            raise ValueError(f"Normalize: mean {mean.flatten().tolist()} and std {std.flatten().tolist()}: "
                             f"expected one mean and one positive std per channel")
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    def forward(self, x):
        return (x - self.mean) / self.std

    def extra_repr(self) -> str:
        return (f"mean={[round(v, 4) for v in self.mean.flatten().tolist()]}, "
                f"std={[round(v, 4) for v in self.std.flatten().tolist()]}")


class NormalizedModel(nn.Module):
    """``net`` behind a :class:`Normalize` of ``mean``/``std``. Input: (N, C, H, W) images in
    [0, 1] with C = ``len(mean)``, or C = 1 (a grey image, repeated to ``len(mean)`` channels
    first, so RGB checkpoints load and parameter counts stay the papers'). Output: ``net``'s
    (N, classes) logits."""

    def __init__(self, net: nn.Module, mean, std):
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.net = net

    @property
    def channels(self) -> int:
        """The channels the network takes (one mean per channel)."""
        return int(self.normalize.mean.shape[1])

    def forward(self, x):
        if x.shape[1] == 1 and self.channels != 1:
            x = x.expand(-1, self.channels, -1, -1)
        return self.net(self.normalize(x))


def check_in_channels(owner: str, in_channels: int, channels: int = 3) -> None:
    """``in_channels`` must be 1 (grey, repeated to ``channels`` inside the model) or
    ``channels``; anything else is a one-line UserError naming ``owner``."""
    from robench.errors import UserError

    if isinstance(in_channels, bool) or in_channels not in (1, channels):
        raise UserError(f"{owner}: in_channels={in_channels!r}; expected 1 (grey, repeated to {channels} channels "
                        f"inside the model) or {channels}")
