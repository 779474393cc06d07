"""The CIFAR architectures of the robustness and compression literature, as ``nn.Module``
classes (the registered factories are in :mod:`robench.models.cifar_nets`).

Module names follow the public PyTorch code each paper's checkpoints come from, so those
state dicts load with :func:`robench.models.weights.load_weights`:

* :class:`CifarResNet` — akamaster/pytorch_resnet_cifar10 (``conv1``, ``bn1``, ``layer1-3``, ``linear``);
* :class:`WideResNet` — RobustBench's ``WideResNet`` (``conv1``, ``block1-3.layer.N``, ``bn1``, ``fc``);
* :class:`CifarVGG` — kuangliu/pytorch-cifar's ``VGG`` (``features.N``, ``classifier``);
* :class:`NIN` — DeepDefense's PyTorch NIN (``conv1``, ``cccp1``, ..., ``cccp6``).

Every network ends in a global average pool (or an adaptive one where the original had a
fixed 8x8 or 1x1 pool: the same result at 32x32), so 28x28 MNIST-sized input runs too.
This module imports torch: the factories import it when they build a model.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn


# -- ResNet-20/56 (He et al. 2016, CIFAR-10 section 4.2) ---------------------------------------------
class CifarBasicBlock(nn.Module):
    """Two 3x3 conv-BN layers; option A shortcut when the shape changes: the input
    subsampled by 2 and zero-padded to the new width (no parameters)."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.pad = (planes - in_planes) // 2 if (stride != 1 or in_planes != planes) else None
        self.stride = stride

    def shortcut(self, x):
        if self.pad is None:
            return x
        return F.pad(x[:, :, ::self.stride, ::self.stride], (0, 0, 0, 0, self.pad, self.pad))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """ResNet-(6n+2) for 32x32 images: 3x3 conv (16) then three stages of ``n`` basic
    blocks (16, 32, 64 channels; stride 2 at stages 2 and 3), global average pool, linear.
    Input (N, 3, H, W), standardized; output (N, num_classes) logits."""

    def __init__(self, depth: int, num_classes: int = 10, in_channels: int = 3):
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"CifarResNet: depth {depth}; expected 6n+2 (20, 32, 44, 56, 110)")
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(in_channels, 16, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        planes = 16
        for stage, (width, stride) in enumerate(((16, 1), (32, 2), (64, 2)), start=1):
            blocks = []
            for i in range(n):
                blocks.append(CifarBasicBlock(planes, width, stride if i == 0 else 1))
                planes = width
            setattr(self, f"layer{stage}", nn.Sequential(*blocks))
        self.linear = nn.Linear(64, num_classes)
        for m in self.modules():  # as akamaster's _weights_init
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        return self.linear(torch.flatten(F.adaptive_avg_pool2d(out, 1), 1))


# -- WideResNet-28-10 (Zagoruyko & Komodakis 2016; RobustBench's reference) ---------------------------
class WideBasicBlock(nn.Module):
    """Pre-activation block: BN-ReLU-conv3x3-BN-ReLU-conv3x3, a 1x1 conv shortcut where the
    width or stride changes (RobustBench's ``BasicBlock``, same names)."""

    def __init__(self, in_planes: int, out_planes: int, stride: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.relu1 = nn.ReLU()
        self.conv1 = nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_planes)
        self.relu2 = nn.ReLU()
        self.conv2 = nn.Conv2d(out_planes, out_planes, 3, stride=1, padding=1, bias=False)
        self.equal_in_out = in_planes == out_planes
        self.convShortcut = None if self.equal_in_out else \
            nn.Conv2d(in_planes, out_planes, 1, stride=stride, padding=0, bias=False)

    def forward(self, x):
        activated = self.relu1(self.bn1(x))
        out = self.conv2(self.relu2(self.bn2(self.conv1(activated))))
        return out + (x if self.equal_in_out else self.convShortcut(activated))


class NetworkBlock(nn.Module):
    def __init__(self, n: int, in_planes: int, out_planes: int, stride: int):
        super().__init__()
        self.layer = nn.Sequential(*[WideBasicBlock(in_planes if i == 0 else out_planes, out_planes,
                                                    stride if i == 0 else 1) for i in range(n)])

    def forward(self, x):
        return self.layer(x)


class WideResNet(nn.Module):
    """WRN-depth-widen: 3x3 conv (16), three groups of (depth-4)/6 pre-activation blocks
    (16k, 32k, 64k channels; stride 2 at groups 2 and 3), BN-ReLU, global average pool, fc.
    Input (N, 3, H, W), standardized; output (N, num_classes) logits."""

    def __init__(self, depth: int = 28, widen_factor: int = 10, num_classes: int = 10, in_channels: int = 3):
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"WideResNet: depth {depth}; expected 6n+4 (16, 22, 28, 34, 40)")
        n = (depth - 4) // 6
        widths = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, stride=1, padding=1, bias=False)
        self.block1 = NetworkBlock(n, widths[0], widths[1], 1)
        self.block2 = NetworkBlock(n, widths[1], widths[2], 2)
        self.block3 = NetworkBlock(n, widths[2], widths[3], 2)
        self.bn1 = nn.BatchNorm2d(widths[3])
        self.relu = nn.ReLU()
        self.fc = nn.Linear(widths[3], num_classes)
        for m in self.modules():  # RobustBench's (TRADES') initialization
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / (m.kernel_size[0] * m.kernel_size[1] * m.out_channels)))
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, x):
        out = self.block3(self.block2(self.block1(self.conv1(x))))
        out = self.relu(self.bn1(out))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(out, 1), 1))  # = avg_pool2d(out, 8) at 32x32


# -- VGG-16 for CIFAR (Simonyan & Zisserman 2015 with BN; kuangliu/pytorch-cifar) ----------------------
VGG16_CONFIG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


class CifarVGG(nn.Module):
    """VGG's 13 conv3x3-BN-ReLU layers with 5 max pools, global average pool, one linear
    layer 512 → num_classes. The pools use ``ceil_mode`` (32 → 16 → 8 → 4 → 2 → 1, as
    without it; 28 → 14 → 7 → 4 → 2 → 1, where floor would reach 0)."""

    def __init__(self, config=VGG16_CONFIG, num_classes: int = 10, in_channels: int = 3):
        super().__init__()
        layers, channels = [], in_channels
        for width in config:
            if width == "M":
                layers.append(nn.MaxPool2d(2, 2, ceil_mode=True))
            else:
                layers += [nn.Conv2d(channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU()]
                channels = width
        layers.append(nn.AdaptiveAvgPool2d(1))  # kuangliu's AvgPool2d(1, 1) at 1x1
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


# -- Network in Network (Lin et al. 2014, CIFAR-10 model; DeepDefense's NIN) ----------------------------
NIN_LAYERS = (("conv1", 192, 5), ("cccp1", 160, 1), ("cccp2", 96, 1), "max",
              ("conv2", 192, 5), ("cccp3", 192, 1), ("cccp4", 192, 1), "avg",
              ("conv3", 192, 3), ("cccp5", 192, 1), ("cccp6", None, 1))


class NIN(nn.Module):
    """Three mlpconv blocks: conv5x5(192)-1x1(160)-1x1(96), max pool 2/2, dropout 0.5;
    conv5x5(192)-1x1(192)-1x1(192), avg pool 2/2, dropout 0.5; conv3x3(192)-1x1(192)-1x1(classes),
    global average pool → logits (no ReLU after ``cccp6``); ReLU after every other conv.

    As DeepDefense's PyTorch NIN (ZiangYan/deepdefense.pytorch ``models/cifar10.py``: the
    same layer names, 2x2 pools, He-normal weights and zero biases; without BatchNorm the
    head ``cccp6`` starts at 0.1× that), whose weights come from MatConvNet's
    ``cnn_cifar_init_nin`` model. With ``batch_norm``, a BatchNorm2d follows every
    conv but ``cccp6`` (``<conv>_bn``), so the network trains from scratch at robench's baseline
    learning rate. Input (N, 3, H ≥ 4, W ≥ 4), standardized; 32 → 16 → 8 → 1."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3, batch_norm: bool = False):
        super().__init__()
        self.order, channels = [], in_channels
        for layer in NIN_LAYERS:
            if isinstance(layer, str):
                self.order.append(layer)
                continue
            name, width, k = layer
            width = width or num_classes
            conv = nn.Conv2d(channels, width, k, padding=k // 2)
            nn.init.kaiming_normal_(conv.weight)
            nn.init.zeros_(conv.bias)
            setattr(self, name, conv)
            self.order.append(name)
            if batch_norm and name != "cccp6":
                setattr(self, f"{name}_bn", nn.BatchNorm2d(width))
            channels = width
        if not batch_norm:
            # He-normal logits start large and, at robench's baseline lr (0.05), the ReLUs die
            # within the first steps (mnist-5k: loss ln 10 and 10 % accuracy after an epoch);
            # with the head at 0.1× (the scaling DeepDefense's code leaves commented out) it
            # learns (11.6 → 26.4 → 41.1 % over three epochs)
            with torch.no_grad():
                self.cccp6.weight.mul_(0.1)
        self.batch_norm = batch_norm
        self.dropout = nn.Dropout(0.5)

    def forward(self, x):
        for name in self.order:
            if name in ("max", "avg"):
                pool = F.max_pool2d if name == "max" else F.avg_pool2d
                x = self.dropout(pool(x, kernel_size=2, stride=2))
                continue
            x = getattr(self, name)(x)
            if name != "cccp6":
                x = F.relu(getattr(self, f"{name}_bn")(x) if self.batch_norm else x)
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)  # = avg_pool2d(x, 8) at 32x32
