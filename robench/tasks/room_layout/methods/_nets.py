"""The small fully convolutional network of ``fcn`` and ``st-pio``, and its training loop.

:class:`LayoutNet` is a U-Net-shaped encoder-decoder (four stride-2 levels, so a 64x64
input reaches a 4x4 bottleneck whose receptive field covers the whole image) with three
heads:

* ``seg``  (N, C, H, W) logits of the surface classes (C = 5 layout surfaces, or 6 when
  pre-training with a clutter class);
* ``edge`` (N, 1, H, W) logits of "this pixel is on a layout edge";
* ``type`` (N, 11) logits of the LSUN room type (from the pooled bottleneck).

:func:`train_network` is how both methods train (same optimizer, schedule, augmentation
and loss weights, on robench's one loop :func:`robench.training.train_loop`), so the only
differences between ``fcn`` and ``st-pio``'s network are its initialization and the extra
pre-training stage.  Images go in as (N, H, W, 3) uint8 numpy arrays; class targets as
(N, H, W) int64 in 0..C-1, on the CPU.  Batches move to the network's device; the batch
order and the augmentation are drawn on the CPU (the same on every device).
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


def to_input(images: np.ndarray, device=None) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float32 on ``device`` (default: the CPU),
    roughly zero-mean unit-range."""
    x = torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2).float()
    return x / 127.5 - 1.0


@dataclass
class Targets:
    """Training targets: seg (N, H, W) int64 classes; edge (N, H, W) float 0/1 or None;
    type (N,) int64 LSUN types or None."""
    seg: torch.Tensor
    edge: torch.Tensor | None = None
    type: torch.Tensor | None = None

    def take(self, idx: torch.Tensor, device=None) -> Targets:
        """The targets of samples ``idx``, on ``device``."""
        pick = lambda t: None if t is None else t[idx].to(device)  # noqa: E731
        return Targets(pick(self.seg), pick(self.edge), pick(self.type))


def _augment(x: torch.Tensor, t: Targets, gen: torch.Generator):
    """Random horizontal flip (left and right walls swap; room types are mirror
    symmetric) and photometric jitter (channel permutation, gain, offset, grey).  The
    random values are drawn from ``gen`` on its device (the CPU) and applied on ``x``'s."""
    n, dev, at = x.shape[0], x.device, dict(generator=gen, device=gen.device)
    flip = torch.rand(n, **at) < 0.5
    seg = t.seg.clone()
    edge = None if t.edge is None else t.edge.clone()
    if flip.any():
        flip = flip.to(dev)
        x = x.clone()
        x[flip] = x[flip].flip(-1)
        s = seg[flip].flip(-1)
        left, right = LEFT - 1, RIGHT - 1
        s = torch.where(s == left, right, torch.where(s == right, left, s))
        seg[flip] = s
        if edge is not None:
            edge[flip] = edge[flip].flip(-1)
    perm = torch.stack([torch.randperm(3, **at) for _ in range(n)]).to(dev)
    x = torch.gather(x, 1, perm[:, :, None, None].expand_as(x))
    grey = (torch.rand(n, **at) < 0.2).to(dev)
    x = torch.where(grey[:, None, None, None], x.mean(dim=1, keepdim=True).expand_as(x), x)
    gain = (1.0 + 0.25 * (2 * torch.rand(n, 1, 1, 1, **at) - 1)).to(dev)
    offset = (0.2 * (2 * torch.rand(n, 1, 1, 1, **at) - 1)).to(dev)
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
    ``epochs`` passes of minibatches of ``batch_size`` in an order drawn from ``seed``
    (stream "batches", which the augmentation of :func:`_augment` draws from too;
    batches of one sample are skipped: BatchNorm needs two).  Trains ``net`` in place on
    its device; returns the mean loss of each epoch."""
    from robench import seeding
    from robench.training import epoch_batches, train_loop

    gen = seeding.stream(seed, "batches")
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=1e-4)
    device = _device_of(net)
    n = len(images)
    total = max(1, epochs * math.ceil(n / batch_size))
    history: list[float] = []

    def loss(idx: torch.Tensor) -> torch.Tensor:
        x, t = _augment(to_input(images[idx.numpy()], device), targets.take(idx, device), gen)
        return layout_loss(net(x), t, edge_weight, type_weight)

    def on_epoch(epoch: int, losses: list) -> None:
        history.append(float(np.mean([float(v) for v in losses])) if losses else float("nan"))
        if say is not None:
            say(f"epoch {epoch + 1}/{epochs}: loss {history[-1]:.3f}")

    train_loop(net, opt, epoch_batches(n, batch_size, epochs, gen, min_size=2), loss,
               lr_schedule=lambda step: 0.5 * lr * (1 + math.cos(math.pi * step / total)),
               on_epoch=on_epoch)
    return history


@torch.no_grad()
def predict_maps(net: LayoutNet, images: np.ndarray, batch_size: int = 64):
    """Network outputs for (N, H, W, 3) uint8 images: surface probabilities (N, C, H, W),
    edge probabilities (N, H, W) and room-type probabilities (N, 11), float32 numpy
    (computed on the network's device)."""
    net.eval()
    device = _device_of(net)
    probs, edges, types = [], [], []
    for start in range(0, len(images), batch_size):
        out = net(to_input(images[start:start + batch_size], device))
        probs.append(torch.softmax(out["seg"], dim=1).cpu().numpy())
        edges.append(torch.sigmoid(out["edge"][:, 0]).cpu().numpy())
        types.append(torch.softmax(out["type"], dim=1).cpu().numpy())
    return np.concatenate(probs), np.concatenate(edges), np.concatenate(types)


def _device_of(net: nn.Module) -> torch.device:
    return next(net.parameters()).device
