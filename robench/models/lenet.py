"""LeNet-300-100 and LeNet-5 as in the Caffe examples used by DNS, INQ and the pruning papers."""

from __future__ import annotations

from robench.registry import register_model


@register_model("lenet-300-100", description="MLP 784-300-100-10 (266,610 parameters)")
def lenet_300_100(num_classes: int = 10, in_features: int = 784):
    from torch import nn
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(in_features, 300), nn.ReLU(),
        nn.Linear(300, 100), nn.ReLU(),
        nn.Linear(100, num_classes),
    )


@register_model("lenet-5", description="Caffe LeNet-5: conv20-conv50-fc500-fc10 on 28x28 (431,080 parameters)")
def lenet5(num_classes: int = 10, in_channels: int = 1):
    from torch import nn
    return nn.Sequential(
        nn.Conv2d(in_channels, 20, 5), nn.MaxPool2d(2),
        nn.Conv2d(20, 50, 5), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(50 * 4 * 4, 500), nn.ReLU(),
        nn.Linear(500, num_classes),
    )
