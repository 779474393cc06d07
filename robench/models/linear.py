"""A linear softmax classifier (multinomial logistic regression): the contrast model of the
sparse-robustness study (arXiv 1810.09619), whose robustness behaves unlike a nonlinear net's."""

from __future__ import annotations

from robench.registry import register_model


@register_model("linear", description="linear softmax classifier 784→10 (7,850 parameters; outputs logits)")
def linear(num_classes: int = 10, in_features: int = 784):
    """``Flatten → Linear(in_features, num_classes)``: logits; the softmax lives in the loss."""
    from torch import nn
    return nn.Sequential(nn.Flatten(), nn.Linear(in_features, num_classes))
