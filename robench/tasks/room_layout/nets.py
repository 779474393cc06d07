"""The small fully convolutional network of ``fcn`` and ``st-pio``, and its training loop.

:class:`LayoutNet` is a U-Net-shaped encoder-decoder (four stride-2 levels, so a 64x64
input reaches a 4x4 bottleneck whose receptive field covers the whole image) with three
heads:

* ``seg``  (N, C, H, W) logits of the surface classes (C = 5 layout surfaces, or 6 when
  pre-training with a clutter class);
* ``edge`` (N, 1, H, W) logits of "this pixel is on a layout edge";
* ``type`` (N, 11) logits of the LSUN room type (from the pooled bottleneck).

:func:`train_network` is the one training loop both methods use (same optimizer,
schedule, augmentation and loss weights), so the only differences between ``fcn`` and
``st-pio``'s network are its initialization and the extra pre-training stage.
Images go in as (N, H, W, 3) uint8; class targets as (N, H, W) int64 in 0..C-1.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from robench.tasks.room_layout.room_types import LEFT, N_ROOM_TYPES, RIGHT

N_SURFACES = 5  # classes 0..4 = surface labels 1..5
CLUTTER_CLASS = 5  # the extra class of semantic pre-training


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class LayoutNet(nn.Module):
    """Encoder-decoder with skip connections.  A stride-2 stem halves the resolution; four
    levels of ``width``, 2x, 4x, 8x channels follow (three 2x2 poolings), and the decoder
    comes back to half resolution, where the heads run; their maps are upsampled
    bilinearly to the input size.  Input (N, 3, H, W) float, H and W divisible by 16."""

    def __init__(self, n_classes: int = N_SURFACES, width: int = 16, n_types: int = N_ROOM_TYPES):
        super().__init__()
        w = width
        chans = [w, 2 * w, 4 * w, 8 * w]
        self.n_classes = n_classes
        self.width = width
        self.stem = nn.Sequential(nn.Conv2d(3, w, 4, stride=2, padding=1, bias=False),
                                  nn.BatchNorm2d(w), nn.ReLU(inplace=True))
        self.enc = nn.ModuleList([_block(w, chans[0])] +
                                 [_block(chans[i - 1], chans[i]) for i in range(1, 4)])
        self.dec = nn.ModuleList([_block(chans[i + 1] + chans[i], chans[i]) for i in range(3)])
        self.seg_head = nn.Conv2d(w, n_classes, 1)
        self.edge_head = nn.Conv2d(w, 1, 1)
        self.type_head = nn.Linear(chans[3], n_types)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        size = x.shape[-2:]
        x = self.stem(x)
        skips = []
        for i, block in enumerate(self.enc):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        bottleneck = x
        for i in reversed(range(3)):
            x = F.interpolate(x, size=skips[i].shape[-2:], mode="bilinear", align_corners=False)
            x = self.dec[i](torch.cat([x, skips[i]], dim=1))
        up = dict(size=size, mode="bilinear", align_corners=False)
        return {"seg": F.interpolate(self.seg_head(x), **up),
                "edge": F.interpolate(self.edge_head(x), **up),
                "type": self.type_head(bottleneck.mean(dim=(2, 3)))}


def to_input(images: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float32, roughly zero-mean unit-range."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()
    return x / 127.5 - 1.0


@dataclass
class Targets:
    """Training targets: seg (N, H, W) int64 classes; edge (N, H, W) float 0/1 or None;
    type (N,) int64 LSUN types or None."""
    seg: torch.Tensor
    edge: torch.Tensor | None = None
    type: torch.Tensor | None = None


def _augment(x: torch.Tensor, t: Targets, gen: torch.Generator):
    """Random horizontal flip (left and right walls swap; room types are mirror
    symmetric) and photometric jitter (channel permutation, gain, offset, grey)."""
    n = x.shape[0]
    flip = torch.rand(n, generator=gen) < 0.5
    seg = t.seg.clone()
    edge = None if t.edge is None else t.edge.clone()
    if flip.any():
        x = x.clone()
        x[flip] = x[flip].flip(-1)
        s = seg[flip].flip(-1)
        left, right = LEFT - 1, RIGHT - 1
        s = torch.where(s == left, right, torch.where(s == right, left, s))
        seg[flip] = s
        if edge is not None:
            edge[flip] = edge[flip].flip(-1)
    perm = torch.stack([torch.randperm(3, generator=gen) for _ in range(n)])
    x = torch.gather(x, 1, perm[:, :, None, None].expand_as(x))
    grey = torch.rand(n, generator=gen) < 0.2
    x = torch.where(grey[:, None, None, None], x.mean(dim=1, keepdim=True).expand_as(x), x)
    gain = 1.0 + 0.25 * (2 * torch.rand(n, 1, 1, 1, generator=gen) - 1)
    offset = 0.2 * (2 * torch.rand(n, 1, 1, 1, generator=gen) - 1)
    return x * gain + offset, Targets(seg, edge, t.type)


def layout_loss(out: dict[str, torch.Tensor], t: Targets, edge_weight: float = 0.5,
                type_weight: float = 0.2) -> torch.Tensor:
    """Cross-entropy of the surfaces + weighted BCE of the edges (positives up-weighted
    by the negative/positive ratio) + cross-entropy of the room type; a term is skipped
    when its target is None or its weight is 0."""
    loss = F.cross_entropy(out["seg"], t.seg)
    if t.edge is not None and edge_weight > 0:
        pos = t.edge.mean().clamp(1e-3, 0.5)
        loss = loss + edge_weight * F.binary_cross_entropy_with_logits(
            out["edge"][:, 0], t.edge, pos_weight=(1 - pos) / pos)
    if t.type is not None and type_weight > 0:
        loss = loss + type_weight * F.cross_entropy(out["type"], t.type)
    return loss


def train_network(net: LayoutNet, images: np.ndarray, targets: Targets, *, epochs: int,
                  batch_size: int, lr: float, seed: int,
                  say: Callable[[str], None] | None = None,
                  edge_weight: float = 0.5, type_weight: float = 0.2) -> list[float]:
    """Adam (weight decay 1e-4), learning rate cosine-decayed from ``lr`` to 0 over
    ``epochs`` passes of minibatches of ``batch_size`` in a seeded order; augmentation as
    in :func:`_augment`.  Trains ``net`` in place; returns the mean loss of each epoch."""
    gen = torch.Generator().manual_seed(int(seed))
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=1e-4)
    n = len(images)
    steps_per_epoch = math.ceil(n / batch_size)
    total = max(1, epochs * steps_per_epoch)
    step = 0
    history = []
    net.train()
    for epoch in range(epochs):
        order = torch.randperm(n, generator=gen)
        losses = []
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            if len(idx) < 2:  # BatchNorm needs two samples
                continue
            for group in opt.param_groups:
                group["lr"] = 0.5 * lr * (1 + math.cos(math.pi * step / total))
            x = to_input(images[idx.numpy()])
            t = Targets(targets.seg[idx], None if targets.edge is None else targets.edge[idx],
                        None if targets.type is None else targets.type[idx])
            x, t = _augment(x, t, gen)
            loss = layout_loss(net(x), t, edge_weight, type_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            step += 1
        history.append(float(np.mean(losses)) if losses else float("nan"))
        if say is not None:
            say(f"epoch {epoch + 1}/{epochs}: loss {history[-1]:.3f}")
    net.eval()
    return history


@torch.no_grad()
def predict_maps(net: LayoutNet, images: np.ndarray, batch_size: int = 64):
    """Network outputs for (N, H, W, 3) uint8 images: surface probabilities (N, C, H, W),
    edge probabilities (N, H, W) and room-type probabilities (N, 11), float32 numpy."""
    net.eval()
    probs, edges, types = [], [], []
    for start in range(0, len(images), batch_size):
        out = net(to_input(images[start:start + batch_size]))
        probs.append(torch.softmax(out["seg"], dim=1).numpy())
        edges.append(torch.sigmoid(out["edge"][:, 0]).numpy())
        types.append(torch.softmax(out["type"], dim=1).numpy())
    return np.concatenate(probs), np.concatenate(edges), np.concatenate(types)
