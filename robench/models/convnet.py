"""The small CIFAR-10 ConvNet of Caffe's ``cifar10_quick`` example, as used by DeepDefense."""

from __future__ import annotations

from robench.registry import register_model


@register_model("cifar-convnet", description="CIFAR-10 ConvNet (Caffe cifar10_quick style): conv32-conv32-conv64-"
                                             "fc64-fc10 on 3x32x32 (145,578 parameters)")
def cifar_convnet(num_classes: int = 10, in_channels: int = 3):
    """conv5x5(32)-maxpool-relu, conv5x5(32)-relu-avgpool, conv5x5(64)-relu-avgpool, fc64-relu, fc → logits.

    Pools are 3x3 with stride 2 and ``ceil_mode=True`` as in Caffe, so 32 → 16 → 8 → 4 and the
    first fully connected layer sees 64·4·4 = 1024 features: the same shapes (and parameter
    count) as Caffe's cifar10_quick and DeepDefense's MatConvNet ConvNet, whose conv4 (64
    filters of 4x4 on the 4x4 map) is this fc layer. Expects 32x32 input.
    """
    from torch import nn
    return nn.Sequential(
        nn.Conv2d(in_channels, 32, 5, padding=2), nn.MaxPool2d(3, 2, ceil_mode=True), nn.ReLU(),
        nn.Conv2d(32, 32, 5, padding=2), nn.ReLU(), nn.AvgPool2d(3, 2, ceil_mode=True),
        nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.AvgPool2d(3, 2, ceil_mode=True),
        nn.Flatten(),
        nn.Linear(64 * 4 * 4, 64), nn.ReLU(),
        nn.Linear(64, num_classes),
    )
