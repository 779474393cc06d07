"""The MNIST MLP of the DeepDefense paper (784-500-150-10)."""

from __future__ import annotations

from robench.registry import register_model


@register_model("mlp-500-150", description="MLP 784-500-150-10 (469,160 parameters), DeepDefense's MNIST MLP")
def mlp_500_150(num_classes: int = 10, in_features: int = 784):
    from torch import nn
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(in_features, 500), nn.ReLU(),
        nn.Linear(500, 150), nn.ReLU(),
        nn.Linear(150, num_classes),
    )
