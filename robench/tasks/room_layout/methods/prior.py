"""``prior``: no image evidence at all, the floor every method must beat."""

from __future__ import annotations

from typing import TYPE_CHECKING

from robench.registry import register_method
from robench.tasks.room_layout.methods.base import FitSetup, LayoutMethod, LayoutPrediction, type_priors

if TYPE_CHECKING:
    import numpy as np


@register_method("room_layout", "prior")
class Prior(LayoutMethod):
    """The training split's most frequent room type with its mean keypoints, and their
    rendered segmentation, for every image."""
    version = "1"

    def __init__(self):
        pass

    def fit(self, train, setup: FitSetup) -> Prior:
        from robench.tasks.room_layout.render import render_segmentation

        priors = type_priors(train)
        self.type_ = priors.most_frequent
        self.keypoints_ = priors.keypoints(self.type_)
        self.segmentation_ = render_segmentation(self.type_, self.keypoints_, priors.shape)
        return self

    def predict(self, images: np.ndarray) -> LayoutPrediction:
        import numpy as np

        n = len(images)
        return LayoutPrediction(np.repeat(self.segmentation_[None], n, axis=0),
                                np.full(n, self.type_, dtype=np.int64),
                                [self.keypoints_.copy() for _ in range(n)])
