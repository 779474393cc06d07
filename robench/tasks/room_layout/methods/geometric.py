"""``geometric``: the classic vanishing-point box-fitting approach, no training.

Per image (:mod:`robench.tasks.room_layout.methods._geometry`): Canny edges and probabilistic
Hough segments; the vertical vanishing point and up to two horizontal ones; for each
choice of the depth vanishing point among the horizontal ones (the other, or the one
orthogonality gives, bounds the back wall's top and bottom), the exhaustive search over
back-wall quadrilaterals made of rays of the vanishing points, scored by the
orientation-consistent edge support of all the hypothesis' boundaries.  The best box is
rendered, its walls named by the LSUN convention, its type read from the visible
surfaces and its keypoints fitted to it.  An image with no usable vanishing point gets
the training split's most frequent layout (the only thing ``fit`` learns, so that
``geometric`` never does worse than having no answer).  The probabilistic Hough
transform samples edge pixels with the run's seed, so results vary a little by seed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from robench.registry import register_method
from robench.tasks.contract import check_param
from robench.tasks.room_layout.methods.base import FitSetup, LayoutMethod, LayoutPrediction, type_priors

if TYPE_CHECKING:
    import numpy as np


@register_method("room_layout", "geometric")
class Geometric(LayoutMethod):
    """Hedau-style layout without learning: line segments, three vanishing points, box
    hypotheses from their rays, scored against the edge map.

    n_rays: rays sampled per vanishing point across the image (plus one outside on each
    side); penalty: cost of a boundary pixel without edge support (support is in [0, 1]);
    sigma: Canny smoothing in pixels.  (Defaults chosen on 100 validation rooms of a
    separate seed: 20 rays and 0.2 beat 10-14 rays and 0.35-0.5; 26-32 rays no better.)"""
    version = "1"

    def __init__(self, n_rays: int = 20, penalty: float = 0.2, sigma: float = 1.0):
        owner = "method 'geometric'"
        self.n_rays = check_param(owner, "n_rays", n_rays, int, low=1)
        self.penalty = check_param(owner, "penalty", penalty, float, low=0.0)
        self.sigma = check_param(owner, "sigma", sigma, float, low=0.0, low_open=True)

    def fit(self, train, setup: FitSetup) -> Geometric:
        self.priors_ = type_priors(train)  # fallback only; no parameter is learned
        self.seed_ = setup.seed
        return self

    def layout(self, image: np.ndarray):
        """(segmentation, type, keypoints) of one (H, W, 3) image, or None."""
        import numpy as np

        from robench.tasks.room_layout.methods import _geometry as g
        from robench.tasks.room_layout.render import clean_segmentation, fit_keypoints
        from robench.tasks.room_layout.room_types import room_type_from_surfaces

        shape = image.shape[:2]
        segs, edges, orientation = g.detect_segments(image, self.sigma, seed=self.seed_)
        vps = g.estimate_vanishing_points(segs, edges, orientation)
        support = g.EdgeSupport(edges, orientation)
        best = None
        h, w = shape
        centre = np.array([(w - 1) / 2.0, (h - 1) / 2.0, 1.0])
        # depth vanishing point candidates: the horizontal ones found, and the image centre
        # (a camera facing a wall whose receding edges show no usable lines)
        for v3 in [v for v in vps.horizontal if g._finite(v) is not None] + [centre]:
            # the back wall's top/bottom vanishing point: the other one found, if it lies
            # outside the image (two orthogonal horizontal ones cannot both be in view),
            # and the one orthogonality gives
            options = [g.orthogonal_vp(vps.vertical, v3, shape)]
            options += [v for v in vps.horizontal if v is not v3 and not g.in_image(v, shape)]
            for v2 in options:
                box = g.best_box(support, vps.vertical, v2, v3, shape, self.n_rays, self.penalty)
                if box is not None and (best is None or box.score > best.score):
                    best = box
        self.last_box_ = best
        if best is None:
            return None
        seg = clean_segmentation(g.render_box(best.v3, best.corners, shape))
        type_id = room_type_from_surfaces(np.unique(seg))
        if type_id < 0:
            return None
        return seg, type_id, fit_keypoints(seg, type_id, self.priors_.keypoints(type_id))

    def predict(self, images: np.ndarray) -> LayoutPrediction:
        import numpy as np

        from robench.tasks.room_layout.render import render_segmentation

        fallback_type = self.priors_.most_frequent
        fallback_kp = self.priors_.keypoints(fallback_type)
        fallback_seg = render_segmentation(fallback_type, fallback_kp, images.shape[1:3])
        segs, types, kps = [], [], []
        for image in images:
            out = self.layout(image)
            if out is None:
                out = (fallback_seg, fallback_type, fallback_kp.copy())
            segs.append(out[0])
            types.append(out[1])
            kps.append(out[2])
        return LayoutPrediction(np.stack(segs).astype(np.uint8), np.array(types, dtype=np.int64), kps)
