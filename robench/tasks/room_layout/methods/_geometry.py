"""Classic geometric room layout (Hedau, Hoiem & Forsyth, ICCV 2009, without its learned
parts): line segments -> three vanishing points -> box hypotheses from rays of the
vanishing points -> the hypothesis best supported by the image's edges.

Conventions: points and lines are homogeneous 3-vectors in 0-based pixel coordinates
(x, y, 1); a vanishing point may be at infinity (third coordinate 0).

1. **Segments**: Canny edges of the grey image (thresholds at quantiles of the gradient
   magnitude) and scikit-image's probabilistic Hough transform.
2. **Vanishing points**: the vertical one is the least-squares intersection of the
   near-vertical segments (at infinity when they are parallel); the others come from
   RANSAC over pairs of the remaining segments, a segment voting for a point when it
   points at it within a few degrees (length-weighted).  The third, if not found, follows
   from orthogonality with an assumed principal point at the image centre.
3. **Hypotheses**: the back wall is a quadrilateral bounded by two rays of the vertical
   point and two rays of the horizontal one; the depth vanishing point ``v3`` (the other
   horizontal one) lies inside it and every pixel outside it belongs to the side surface
   whose sector (seen from ``v3``) it falls in: top -> ceiling, bottom -> floor, left /
   right -> walls.  Rays are sampled evenly in angle over the image, plus one ray just
   outside it on each side (an edge out of view), as in Hedau et al.
4. **Score**: every boundary of a hypothesis inside the image (the quadrilateral's edges
   and the four rays from ``v3`` through its corners, outward) is sampled every pixel;
   a sample earns ``exp(-d^2 / 2)`` with d the distance to the nearest Canny edge of
   the same orientation (within 22.5 degrees), minus ``penalty`` (so unsupported
   boundaries cost).  The score decomposes over the rays, which makes the exhaustive
   search over all ray quadruples a few array operations.

Hedau et al. also learn surface-label classifiers and a structured ranker of hypotheses,
and re-estimate clutter; none of that is here (``geometric`` trains on nothing).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from robench.tasks.room_layout.room_types import CEILING, FLOOR, FRONTAL, LEFT, RIGHT

N_ORIENTATION_BINS = 8


# ------------------------------------------------------------------ segments

def detect_segments(image: np.ndarray, sigma: float = 1.0, upsample: int = 2, seed: int = 0):
    """Line segments and edges of an (H, W, 3) uint8 image.

    The grey image is upsampled ``upsample`` times (bilinear) first: at 64 px the Hough
    transform's discrete accumulator finds few segments, at 128 px many more.
    Returns (segments (N, 4) x0, y0, x1, y1 in the original pixel frame, edges (H, W)
    bool, orientation (H, W) radians of the edge direction in [0, pi))."""
    from skimage.color import rgb2gray
    from skimage.feature import canny
    from skimage.transform import probabilistic_hough_line, rescale

    grey = rgb2gray(np.asarray(image))
    h, w = grey.shape
    edges = canny(grey, sigma=sigma, low_threshold=0.75, high_threshold=0.9, use_quantiles=True)
    smooth = ndimage.gaussian_filter(grey, sigma)
    gy, gx = ndimage.sobel(smooth, axis=0), ndimage.sobel(smooth, axis=1)
    orientation = np.mod(np.arctan2(gy, gx) + np.pi / 2, np.pi)  # edge runs across the gradient
    big = rescale(grey, upsample, order=1) if upsample > 1 else grey
    big_edges = canny(big, sigma=sigma * upsample, low_threshold=0.75, high_threshold=0.9,
                      use_quantiles=True)
    min_length = max(8, min(big.shape) // 10)
    lines = probabilistic_hough_line(big_edges, threshold=8, line_length=min_length,
                                     line_gap=2, rng=seed)
    segs = np.array([[p[0], p[1], q[0], q[1]] for p, q in lines], dtype=np.float64).reshape(-1, 4)
    scale = 1.0 / upsample
    segs = (segs + 0.5) * scale - 0.5  # pixel centres of the upsampled grid
    return segs, edges, orientation


def _homogeneous_lines(segs: np.ndarray) -> np.ndarray:
    p = np.column_stack([segs[:, 0], segs[:, 1], np.ones(len(segs))])
    q = np.column_stack([segs[:, 2], segs[:, 3], np.ones(len(segs))])
    lines = np.cross(p, q)
    return lines / np.maximum(np.linalg.norm(lines[:, :2], axis=1, keepdims=True), 1e-12)


def _consistency(points: np.ndarray, dirs: np.ndarray, vp: np.ndarray,
                 max_angle_deg: float) -> np.ndarray:
    """Bool (N,): the line element at ``points`` (N, 2) with directions ``dirs`` (N, 2)
    points at ``vp`` (homogeneous) within ``max_angle_deg``."""
    if abs(vp[2]) < 1e-9:
        to_vp = np.broadcast_to(vp[:2], points.shape)
    else:
        to_vp = vp[:2] / vp[2] - points
    cos = np.abs((dirs * to_vp).sum(axis=1)) / np.maximum(
        np.linalg.norm(dirs, axis=1) * np.linalg.norm(to_vp, axis=1), 1e-12)
    return cos > np.cos(np.deg2rad(max_angle_deg))


def _least_squares_vp(lines: np.ndarray, weights: np.ndarray) -> np.ndarray:
    m = (lines * weights[:, None]).T @ lines
    _, vecs = np.linalg.eigh(m)
    vp = vecs[:, 0]
    return vp / np.linalg.norm(vp)


@dataclass
class VanishingPoints:
    """Homogeneous unit 3-vectors: vertical, and the horizontal ones found (0-2)."""
    vertical: np.ndarray
    horizontal: list[np.ndarray]


def edgelets(edges: np.ndarray, orientation: np.ndarray):
    """Every edge pixel as a line element: (points (N, 2) x, y; directions (N, 2))."""
    ys, xs = np.nonzero(edges)
    theta = orientation[ys, xs]
    return (np.column_stack([xs, ys]).astype(np.float64),
            np.column_stack([np.cos(theta), np.sin(theta)]))


def estimate_vanishing_points(segs: np.ndarray, edges: np.ndarray, orientation: np.ndarray,
                              max_angle_deg: float = 4.0, vertical_deg: float = 20.0,
                              min_share: float = 0.08) -> VanishingPoints:
    """Vanishing points from Hough segments (which propose them) and edge pixels (which
    vote for them: a pixel supports a point its edge direction aims at within
    ``max_angle_deg``).

    Vertical: least-squares intersection of the near-vertical segments, refined on the
    supporting edge pixels (at infinity when they are parallel).  Horizontal: the
    intersections of all pairs of non-vertical segments are candidates; the one with
    most supporting pixels is taken, its supporters removed, and a second one chosen the
    same way; a point needs ``min_share`` of the non-vertical edge pixels.  Deterministic."""
    pts, dirs = edgelets(edges, orientation)
    default_vertical = np.array([0.0, 1.0, 0.0])
    if len(segs) == 0 or len(pts) == 0:
        return VanishingPoints(default_vertical, [])
    d = segs[:, 2:] - segs[:, :2]
    length = np.linalg.norm(d, axis=1)
    lines = _homogeneous_lines(segs)
    from_vertical = np.degrees(np.arctan2(np.abs(d[:, 0]), np.abs(d[:, 1])))
    vertical = from_vertical < vertical_deg
    vv = default_vertical
    if vertical.sum() >= 2:
        vv = _least_squares_vp(lines[vertical], length[vertical])
    pix_vertical = np.degrees(np.arctan2(np.abs(dirs[:, 0]), np.abs(dirs[:, 1]))) < vertical_deg
    sup = pix_vertical & _consistency(pts, dirs, vv, max_angle_deg)
    if sup.sum() >= 10:
        pix_lines = np.cross(np.column_stack([pts, np.ones(len(pts))])[sup],
                             np.column_stack([pts + dirs, np.ones(len(pts))])[sup])
        vv = _least_squares_vp(pix_lines, np.ones(len(pix_lines)))
    if vv[1] < 0 or (vv[1] == 0 and vv[2] < 0):
        vv = -vv  # the sign is irrelevant; fix one for determinism
    rest_seg = np.flatnonzero(~vertical)
    rest_pix = ~pix_vertical
    n_rest = max(int(rest_pix.sum()), 1)
    cands = []
    for a in range(len(rest_seg)):
        for b in range(a + 1, len(rest_seg)):
            vp = np.cross(lines[rest_seg[a]], lines[rest_seg[b]])
            n = np.linalg.norm(vp)
            if n > 1e-12:
                cands.append(vp / n)
    found = []
    for _ in range(2):
        if not cands:
            break
        support = np.array([(rest_pix & _consistency(pts, dirs, vp, max_angle_deg)).sum()
                            for vp in cands])
        best = int(np.argmax(support))
        if support[best] < min_share * n_rest:
            break
        vp = cands[best]
        found.append(vp)
        rest_pix = rest_pix & ~_consistency(pts, dirs, vp, max_angle_deg)
        cands = [c for k, c in enumerate(cands) if k != best]
    return VanishingPoints(vv, found)


def _finite(vp: np.ndarray) -> np.ndarray | None:
    return None if abs(vp[2]) < 1e-9 * max(1.0, np.abs(vp[:2]).max()) else vp[:2] / vp[2]


def in_image(vp: np.ndarray, shape: tuple[int, int]) -> bool:
    """Whether a (homogeneous) point lies inside the image rectangle."""
    p = _finite(vp)
    return p is not None and 0 <= p[0] <= shape[1] - 1 and 0 <= p[1] <= shape[0] - 1


def orthogonal_vp(v_vert: np.ndarray, v3: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The third vanishing point of an orthogonal triple, with the principal point at the
    image centre; at infinity along the horizon when the focal length is undefined."""
    h, w = shape
    c = np.array([(w - 1) / 2.0, (h - 1) / 2.0])
    p3 = _finite(v3)
    pv = _finite(v_vert)
    vert_dir = (pv - p3) if pv is not None else v_vert[:2]
    horizon = np.array([-vert_dir[1], vert_dir[0]])
    horizon = horizon / max(np.linalg.norm(horizon), 1e-12)
    if pv is not None:
        f2 = -float((p3 - c) @ (pv - c))
        if f2 > 0:
            # v2 on the horizon through v3 with (v2 - c).(v3 - c) = -f^2
            denom = float(horizon @ (p3 - c))
            if abs(denom) > 1e-9:
                t = (-f2 - float((p3 - c) @ (p3 - c))) / denom
                p2 = p3 + t * horizon
                return np.array([p2[0], p2[1], 1.0])
    return np.array([horizon[0], horizon[1], 0.0])


# ------------------------------------------------------------------ box hypotheses

def ray_lines(vp: np.ndarray, shape: tuple[int, int], n: int, axis: str) -> np.ndarray:
    """(n + 2, 3) homogeneous lines through ``vp`` sweeping the image evenly in angle
    (``axis`` "x": lines ordered left to right; "y": top to bottom), plus one just
    outside the image at each end."""
    h, w = shape
    corners = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], dtype=np.float64)
    p = _finite(vp)
    if p is None:  # parallel lines: sweep the offset across the image
        d = vp[:2] / np.linalg.norm(vp[:2])
        normal = np.array([-d[1], d[0]])
        offs = corners @ normal
        lo, hi = offs.min(), offs.max()
        pad = (hi - lo) / (n + 1)
        values = np.linspace(lo - pad, hi + pad, n + 2)
        lines = np.column_stack([np.full(n + 2, normal[0]), np.full(n + 2, normal[1]), -values])
        points = values[:, None] * normal[None, :]
    else:
        rel = corners - p
        inside = (0 <= p[0] <= w - 1) and (0 <= p[1] <= h - 1)
        if inside:  # a vanishing point inside the image: half-lines all around
            angles = np.linspace(0, np.pi, n + 2, endpoint=False)
        else:
            ang = np.arctan2(rel[:, 1], rel[:, 0])
            ref = ang[0]
            ang = ref + np.angle(np.exp(1j * (ang - ref)))  # unwrap around the first corner
            lo, hi = ang.min(), ang.max()
            pad = (hi - lo) / (n + 1)
            angles = np.linspace(lo - pad, hi + pad, n + 2)
        dirs = np.column_stack([np.cos(angles), np.sin(angles)])
        lines = np.column_stack([-dirs[:, 1], dirs[:, 0], dirs[:, 1] * p[0] - dirs[:, 0] * p[1]])
        points = p[None, :] + 50.0 * dirs
    # order the lines along the image axis by where they cross its middle
    key_axis = 0 if axis == "x" else 1
    mid = np.array([(w - 1) / 2.0, (h - 1) / 2.0])
    pos = []
    for line, pt in zip(lines, points):
        if key_axis == 0:  # x where the line crosses y = mid_y
            pos.append((-line[2] - line[1] * mid[1]) / line[0] if abs(line[0]) > 1e-12 else np.inf)
        else:
            pos.append((-line[2] - line[0] * mid[0]) / line[1] if abs(line[1]) > 1e-12 else np.inf)
    order = np.argsort(pos)
    return lines[order]


def _intersect(l1: np.ndarray, l2: np.ndarray) -> np.ndarray:
    """Intersections of line arrays (..., 3) x (..., 3) -> (..., 2) (inf when parallel)."""
    p = np.cross(l1, l2)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = p[..., :2] / p[..., 2:3]
    out[~np.isfinite(out)] = 1e9
    return out


def render_box(v3: np.ndarray, corners: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(H, W) uint8 labels of a box hypothesis: ``corners`` (4, 2) of the back wall in the
    order top-left, top-right, bottom-right, bottom-left; ``v3`` (2,) the depth vanishing
    point inside it.  Back wall FRONTAL, sectors of v3: top CEILING, right RIGHT,
    bottom FLOOR, left LEFT (walls are renamed to the LSUN convention by the caller)."""
    h, w = shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    px, py = xs - v3[0], ys - v3[1]
    rel = corners - v3
    labels = np.zeros((h, w), dtype=np.uint8)
    sector_label = (CEILING, RIGHT, FLOOR, LEFT)
    inside = np.ones((h, w), dtype=bool)
    orient = np.sign(rel[0, 0] * rel[1, 1] - rel[0, 1] * rel[1, 0]) or 1.0
    for k in range(4):
        a, b = rel[k], rel[(k + 1) % 4]
        after_a = orient * (a[0] * py - a[1] * px) >= 0
        before_b = orient * (px * b[1] - py * b[0]) >= 0
        labels[after_a & before_b & (labels == 0)] = sector_label[k]
        # inside the quadrilateral: on the inner side of edge a -> b
        ea = corners[k]
        eb = corners[(k + 1) % 4]
        cross = (eb[0] - ea[0]) * (ys - ea[1]) - (eb[1] - ea[1]) * (xs - ea[0])
        inside &= orient * cross >= 0
    labels[inside] = FRONTAL
    labels[labels == 0] = FRONTAL  # numerical gaps on the rays through v3
    return labels


class EdgeSupport:
    """Orientation-aware edge evidence of one image: support(points, angle) in [0, 1]."""

    def __init__(self, edges: np.ndarray, orientation: np.ndarray):
        self.shape = edges.shape
        bins = np.floor(orientation / np.pi * N_ORIENTATION_BINS).astype(int) % N_ORIENTATION_BINS
        self.maps = []
        for b in range(N_ORIENTATION_BINS):
            near = edges & ((bins == b) | (bins == (b + 1) % N_ORIENTATION_BINS) |
                            (bins == (b - 1) % N_ORIENTATION_BINS))
            if near.any():
                dist = ndimage.distance_transform_edt(~near)
                self.maps.append(np.exp(-0.5 * dist ** 2))
            else:
                self.maps.append(np.zeros(self.shape))
        self.maps = np.stack(self.maps)

    def sample(self, pts: np.ndarray, angle: float) -> np.ndarray:
        """Support of points (N, 2) on a boundary of direction ``angle``; 0 outside."""
        h, w = self.shape
        b = int(np.floor(np.mod(angle, np.pi) / np.pi * N_ORIENTATION_BINS)) % N_ORIENTATION_BINS
        xi = np.round(pts[:, 0]).astype(int)
        yi = np.round(pts[:, 1]).astype(int)
        ok = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
        out = np.zeros(len(pts))
        out[ok] = self.maps[b, yi[ok], xi[ok]]
        return out


def segment_scores(support: EdgeSupport, p: np.ndarray, q: np.ndarray, penalty: float) -> np.ndarray:
    """(M,) sums over 1-px samples of the parts inside the image of segments p[m]-q[m]
    ((M, 2) each) of (support - penalty); 0 for a segment outside the image."""
    h, w = support.shape
    p = np.asarray(p, dtype=np.float64).reshape(-1, 2)
    q = np.asarray(q, dtype=np.float64).reshape(-1, 2)
    d = q - p
    length = np.hypot(d[:, 0], d[:, 1])
    ok = np.isfinite(length) & (length > 1e-9) & np.all(np.isfinite(p), axis=1)
    t0, t1 = np.zeros(len(p)), np.ones(len(p))
    with np.errstate(divide="ignore", invalid="ignore"):
        # Liang-Barsky clipping to the pixel-centre rectangle, all segments at once
        for pk, qk in ((-d[:, 0], p[:, 0]), (d[:, 0], w - 1 - p[:, 0]),
                       (-d[:, 1], p[:, 1]), (d[:, 1], h - 1 - p[:, 1])):
            parallel = np.abs(pk) < 1e-12
            ok &= ~(parallel & (qk < 0))
            r = np.where(parallel, 0.0, qk / np.where(parallel, 1.0, pk))
            t0 = np.where(~parallel & (pk < 0), np.maximum(t0, r), t0)
            t1 = np.where(~parallel & (pk > 0), np.minimum(t1, r), t1)
    ok &= t1 > t0
    out = np.zeros(len(p))
    idx = np.flatnonzero(ok)
    if not len(idx):
        return out
    span = (t1[idx] - t0[idx]) * length[idx]
    n = np.ceil(span).astype(int) + 1
    steps = int(n.max())
    frac = np.arange(steps)[None, :] / np.maximum(n - 1, 1)[:, None]  # (m, steps)
    valid = np.arange(steps)[None, :] < n[:, None]
    t = t0[idx, None] + frac * (t1[idx] - t0[idx])[:, None]
    xs = np.clip(np.round(p[idx, 0, None] + t * d[idx, 0, None]).astype(int), 0, w - 1)
    ys = np.clip(np.round(p[idx, 1, None] + t * d[idx, 1, None]).astype(int), 0, h - 1)
    angle = np.mod(np.arctan2(d[idx, 1], d[idx, 0]), np.pi)
    bins = np.floor(angle / np.pi * N_ORIENTATION_BINS).astype(int) % N_ORIENTATION_BINS
    values = support.maps[bins[:, None], ys, xs]
    out[idx] = np.where(valid, values - penalty, 0.0).sum(axis=1)
    return out


@dataclass
class BoxHypothesis:
    v3: np.ndarray  # (2,) depth vanishing point
    corners: np.ndarray  # (4, 2) back wall TL, TR, BR, BL
    score: float


def _far_points(origin: np.ndarray, through: np.ndarray, shape) -> np.ndarray:
    """Points on the rays origin -> through (..., 2), beyond ``through``, outside the image."""
    d = through - origin
    n = np.maximum(np.linalg.norm(d, axis=-1, keepdims=True), 1e-9)
    return through + d / n * 4.0 * (shape[0] + shape[1])


def best_box(support: EdgeSupport, v_vert: np.ndarray, v2: np.ndarray, v3: np.ndarray,
             shape: tuple[int, int], n_rays: int = 14, penalty: float = 0.35) -> BoxHypothesis | None:
    """The highest-scoring back-wall quadrilateral (exhaustive over ray quadruples whose
    quadrilateral contains ``v3``), or None when no quadruple is valid."""
    p3 = _finite(v3)
    if p3 is None:
        return None
    vlines = ray_lines(v_vert, shape, n_rays, "x")
    hlines = ray_lines(v2, shape, n_rays, "y")
    nv, nh = len(vlines), len(hlines)
    corners = _intersect(vlines[:, None, :], hlines[None, :, :])  # (nv, nh, 2)
    # rays crossing the horizontal line through v3 left of it bound the back wall's left
    pos_v = np.array([_crossing(line, p3, "x") for line in vlines])
    pos_h = np.array([_crossing(line, p3, "y") for line in hlines])
    left = np.flatnonzero(pos_v < p3[0])
    right = np.flatnonzero(pos_v > p3[0])
    top = np.flatnonzero(pos_h < p3[1])
    bottom = np.flatnonzero(pos_h > p3[1])
    if not (len(left) and len(right) and len(top) and len(bottom)):
        return None
    # outward rays from v3 through every corner: ray_score[i, k]
    finite = np.abs(corners).max(axis=-1) < 1e8
    far = np.where(finite[..., None], _far_points(p3, corners, shape), corners)
    ray_score = segment_scores(support, corners.reshape(-1, 2), far.reshape(-1, 2),
                               penalty).reshape(nv, nh) * finite
    # back-wall edges: along vertical ray i between horizontal rays k and l, and so on
    v_edge = np.zeros((nv, nh, nh))
    i_, k_, l_ = np.meshgrid(np.arange(nv), top, bottom, indexing="ij")
    v_edge[i_, k_, l_] = segment_scores(support, corners[i_, k_].reshape(-1, 2),
                                        corners[i_, l_].reshape(-1, 2), penalty).reshape(i_.shape)
    h_edge = np.zeros((nh, nv, nv))
    k_, i_, j_ = np.meshgrid(np.arange(nh), left, right, indexing="ij")
    h_edge[k_, i_, j_] = segment_scores(support, corners[i_, k_].reshape(-1, 2),
                                        corners[j_, k_].reshape(-1, 2), penalty).reshape(k_.shape)
    L, R, T, B = np.ix_(left, right, top, bottom)
    total = (ray_score[L, T] + ray_score[R, T] + ray_score[R, B] + ray_score[L, B] +
             v_edge[L, T, B] + v_edge[R, T, B] + h_edge[T, L, R] + h_edge[B, L, R])
    a, b, c, d = np.unravel_index(int(np.argmax(total)), total.shape)
    s, i, j, k, l = float(total[a, b, c, d]), left[a], right[b], top[c], bottom[d]
    quad = np.array([corners[i, k], corners[j, k], corners[j, l], corners[i, l]])
    return BoxHypothesis(p3, quad, float(s))


def _crossing(line: np.ndarray, p: np.ndarray, axis: str) -> float:
    """Where ``line`` crosses the horizontal (axis "x") or vertical ("y") line through p."""
    a, b, c = line
    if axis == "x":
        return (-c - b * p[1]) / a if abs(a) > 1e-12 else np.inf * np.sign(-c - b * p[1] or 1)
    return (-c - a * p[0]) / b if abs(b) > 1e-12 else np.inf * np.sign(-c - a * p[0] or 1)
