"""Between the two descriptions of a layout: (room type, keypoints) <-> segmentation.

:func:`render_segmentation` plays the role of the LSUN toolkit's ``getSegmentation.m``
(type + keypoints -> surface label map) and :func:`fit_keypoints` the reverse (label map
-> keypoints of a given type, by fitting a line to every boundary between two surfaces).

Rendering uses the fact that every visible surface of a box seen from inside it is a
*convex* region of the image (a convex face, projected and clipped by the image
rectangle), bounded by its layout edges and the image border.  A surface is therefore the
intersection of the half-planes of its layout edges, and a pixel is labelled with the
surface whose most violated half-plane constraint is violated least::

    score_S(p) = min over edges e of S of  side(S, e) * signed_distance(p, line(e))
    label(p)   = argmax_S score_S(p)

For a valid layout exactly one surface has a positive score at every pixel off the edges,
so this reproduces the region polygons; for any other keypoints (the mean keypoints of
a type, a network's estimate) it still returns a full partition into the type's
surfaces.  The same half-plane constraints, with softmin/softmax instead of min/argmax,
give the differentiable renderer of the physics-inspired refinement (:mod:`.methods._pio`).

All coordinates are 0-based (x, y) pixel centres, as in
:class:`~robench.tasks.room_layout.formats.LayoutSample`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from robench.tasks.room_layout.formats import canonicalize_walls
from robench.tasks.room_layout.room_types import (
    CEILING, FLOOR, FRONTAL, LEFT, RIGHT, ROOM_TYPES, room_type, room_type_from_surfaces,
)

# Which way surface S lies from its edge with surface T, in image coordinates (x right,
# y down); used to orient an edge when the surface has no keypoint off that edge.
_UP, _DOWN, _LEFTWARD, _RIGHTWARD = (0.0, -1.0), (0.0, 1.0), (-1.0, 0.0), (1.0, 0.0)


def _semantic_direction(s: int, t: int) -> tuple[float, float]:
    if s == CEILING or t == FLOOR:
        return _UP
    if s == FLOOR or t == CEILING:
        return _DOWN
    if s == LEFT or (s == FRONTAL and t == RIGHT):
        return _LEFTWARD
    if s == RIGHT or (s == FRONTAL and t == LEFT):
        return _RIGHTWARD
    raise ValueError(f"surfaces {s} and {t} share no layout edge")  # pragma: no cover


@dataclass(frozen=True)
class Constraint:
    """Half-plane of surface ``surface``: side * cross(kp[j] - kp[i], p - kp[i]) >= 0."""
    surface: int
    i: int
    j: int
    side: float


def surface_constraints(type_id: int, keypoints: np.ndarray) -> list[Constraint]:
    """The half-plane constraints of every visible surface of a layout.

    Each line (i, j) of the type (the toolkit's ``lines``) bounds the two surfaces its
    keypoints share.  A surface's side of a line is the side of its other keypoints (their
    mean) or, when it has none off the line (or they lie on it), the semantic side
    (ceiling above, floor below, left wall left, ...)."""
    rtype = room_type(type_id)
    kp = np.asarray(keypoints, dtype=np.float64).reshape(-1, 2)
    if len(kp) != rtype.n_keypoints:
        raise ValueError(f"room type {type_id} has {rtype.n_keypoints} keypoints, got {len(kp)}")
    out = []
    for i, j in rtype.lines:
        shared = rtype.keypoints[i].surfaces & rtype.keypoints[j].surfaces
        a, b = kp[i], kp[j]
        d = b - a
        length = float(np.hypot(*d))
        for s in sorted(shared):
            others = [k for k, p in enumerate(rtype.keypoints)
                      if s in p.surfaces and k not in (i, j)]
            side = 0.0
            if others and length > 1e-9:
                ref = kp[others].mean(axis=0) - a
                cross = (d[0] * ref[1] - d[1] * ref[0]) / length
                if abs(cross) > 0.5:
                    side = float(np.sign(cross))
            if side == 0.0:
                (t,) = shared - {s}
                u = _semantic_direction(s, t)
                cross = d[0] * u[1] - d[1] * u[0]
                side = float(np.sign(cross)) or 1.0
            out.append(Constraint(s, i, j, side))
    return out


def surface_scores(type_id: int, keypoints: np.ndarray, shape: tuple[int, int],
                   constraints: Sequence[Constraint] | None = None):
    """(surfaces, scores): scores[k] (H, W) = min over the constraints of surface
    surfaces[k] of the signed distance (pixels, positive inside) of each pixel centre."""
    h, w = int(shape[0]), int(shape[1])
    kp = np.asarray(keypoints, dtype=np.float64).reshape(-1, 2)
    cons = surface_constraints(type_id, kp) if constraints is None else constraints
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    surfaces = sorted({c.surface for c in cons})
    scores = np.full((len(surfaces), h, w), np.inf)
    for c in cons:
        a, d = kp[c.i], kp[c.j] - kp[c.i]
        length = max(float(np.hypot(*d)), 1e-9)
        dist = c.side * (d[0] * (ys - a[1]) - d[1] * (xs - a[0])) / length
        k = surfaces.index(c.surface)
        scores[k] = np.minimum(scores[k], dist)
    return surfaces, scores


def render_segmentation(type_id: int, keypoints: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(H, W) uint8 surface labels (1..5) of the layout of ``type_id`` with ``keypoints``
    ((K, 2) 0-based (x, y)): every pixel gets one of the type's visible surfaces."""
    surfaces, scores = surface_scores(type_id, keypoints, shape)
    return np.asarray(surfaces, dtype=np.uint8)[np.argmax(scores, axis=0)]


# ------------------------------------------------------------------ segmentation -> layout

def boundary_mask(segmentation: np.ndarray, width: int = 1) -> np.ndarray:
    """(H, W) bool: pixels with a 4-neighbour of another label, dilated ``width - 1``
    times (the layout-edge target of the networks)."""
    seg = np.asarray(segmentation)
    edge = np.zeros(seg.shape, dtype=bool)
    dy = seg[1:, :] != seg[:-1, :]
    dx = seg[:, 1:] != seg[:, :-1]
    edge[1:, :] |= dy
    edge[:-1, :] |= dy
    edge[:, 1:] |= dx
    edge[:, :-1] |= dx
    if width > 1:
        edge = ndimage.binary_dilation(edge, iterations=width - 1)
    return edge


def clean_segmentation(segmentation: np.ndarray, min_fraction: float = 0.01) -> np.ndarray:
    """Surfaces covering less than ``min_fraction`` of the image are merged into their
    neighbours (nearest other label); walls are then renamed by image order
    (:func:`~robench.tasks.room_layout.formats.canonicalize_walls`)."""
    seg = np.asarray(segmentation).astype(np.uint8)
    labels, counts = np.unique(seg, return_counts=True)
    small = labels[(counts < min_fraction * seg.size) | (labels == 0)]
    if len(small) and len(small) < len(labels):
        drop = np.isin(seg, small)
        _, (iy, ix) = ndimage.distance_transform_edt(drop, return_indices=True)
        seg = seg[iy, ix]
    return canonicalize_walls(seg)


def type_from_segmentation(segmentation: np.ndarray, min_fraction: float = 0.01) -> int:
    """LSUN type of a predicted label map after :func:`clean_segmentation`; -1 if its
    surfaces fit no type (e.g. floor and ceiling without a wall)."""
    seg = clean_segmentation(segmentation, min_fraction)
    return room_type_from_surfaces(np.unique(seg))


def _boundary_points(seg: np.ndarray, a: int, b: int) -> np.ndarray:
    """(N, 2) (x, y) midpoints between 4-adjacent pixels labelled a and b."""
    pts = []
    v = ((seg[1:, :] == a) & (seg[:-1, :] == b)) | ((seg[1:, :] == b) & (seg[:-1, :] == a))
    yy, xx = np.nonzero(v)
    pts.append(np.stack([xx, yy + 0.5], axis=1))
    hz = ((seg[:, 1:] == a) & (seg[:, :-1] == b)) | ((seg[:, 1:] == b) & (seg[:, :-1] == a))
    yy, xx = np.nonzero(hz)
    pts.append(np.stack([xx + 0.5, yy], axis=1))
    return np.concatenate(pts).astype(np.float64)


def fit_line(points: np.ndarray, iterations: int = 3):
    """Robust total-least-squares line (centre (2,), unit direction (2,)) through (N, 2)
    points: re-weighted with Tukey's biweight on the residuals (scale 2 px)."""
    pts = np.asarray(points, dtype=np.float64)
    wts = np.ones(len(pts))
    centre, direction = pts.mean(axis=0), np.array([1.0, 0.0])
    for _ in range(iterations + 1):
        centre = (wts[:, None] * pts).sum(axis=0) / wts.sum()
        q = (pts - centre) * np.sqrt(wts)[:, None]
        _, _, vt = np.linalg.svd(q, full_matrices=False)
        direction = vt[0]
        normal = np.array([-direction[1], direction[0]])
        resid = (pts - centre) @ normal
        scale = max(2.0, 1.4826 * float(np.median(np.abs(resid))) * 2.0)
        u = resid / (4.685 * scale)
        wts = np.where(np.abs(u) < 1, (1 - u * u) ** 2, 0.0) + 1e-6
    return centre, direction


def _intersect_lines(lines) -> np.ndarray | None:
    """Least-squares point nearest to the lines [(centre, direction), ...] (>= 2 lines)."""
    a = np.zeros((2, 2))
    rhs = np.zeros(2)
    for c, d in lines:
        n = np.array([-d[1], d[0]])
        a += np.outer(n, n)
        rhs += n * (n @ c)
    if np.linalg.cond(a) > 1e6:
        return None
    return np.linalg.solve(a, rhs)


def _clip_line_to_image(centre, direction, shape):
    """The two points where an infinite line crosses the pixel-centre rectangle
    [0, W-1] x [0, H-1], ordered along ``direction``, or None if it misses it."""
    h, w = shape
    lo, hi = -np.inf, np.inf
    for k, top in ((0, w - 1.0), (1, h - 1.0)):
        if abs(direction[k]) < 1e-12:
            if not 0.0 <= centre[k] <= top:
                return None
            continue
        t0, t1 = (0.0 - centre[k]) / direction[k], (top - centre[k]) / direction[k]
        lo, hi = max(lo, min(t0, t1)), min(hi, max(t0, t1))
    if lo > hi:
        return None
    return centre + lo * direction, centre + hi * direction


def fit_keypoints(segmentation: np.ndarray, type_id: int, fallback: np.ndarray | None = None,
                  min_points: int = 3) -> np.ndarray:
    """Keypoints ((K, 2) 0-based (x, y), LSUN order) of type ``type_id`` fitted to a label
    map whose surfaces follow the LSUN convention (run :func:`clean_segmentation` on raw
    predictions first).

    Each layout edge of the type is a robust line through the boundary between its two
    surfaces; an inner corner is the least-squares intersection of its edges; a border
    point is where its edge leaves the image (the end away from the edge's inner corner,
    or the named end).  When a corner has three edges, the intersection of all three and
    of each pair are candidates and the one closest to all three surfaces wins (one badly
    fitted boundary must not drag it away).  Keypoints whose edges are missing from the map (fewer than
    ``min_points`` boundary points) are taken from ``fallback`` ((K, 2), e.g. the type's
    mean keypoints); without a fallback the image centre is used."""
    seg = np.asarray(segmentation)
    h, w = seg.shape
    rtype = ROOM_TYPES[type_id]
    default = (np.asarray(fallback, dtype=np.float64).reshape(-1, 2) if fallback is not None
               else np.tile([(w - 1) / 2.0, (h - 1) / 2.0], (rtype.n_keypoints, 1)))
    lines = {}
    for edge in rtype.edges:
        a, b = sorted(edge)
        pts = _boundary_points(seg, a, b)
        if len(pts) >= min_points:
            lines[edge] = fit_line(pts)
    out = default.copy()
    corners = {}
    distance = {}  # surface -> distance (pixels) of every pixel to that surface
    for k, kp in enumerate(rtype.keypoints):
        if not kp.is_corner:
            continue
        found = [lines[e] for e in rtype.edges if e <= kp.surfaces and e in lines]
        candidates = []
        if len(found) >= 2:
            # all lines at once, and every pair: one badly fitted line must not drag the
            # corner away from where its three surfaces actually meet
            candidates.append(_intersect_lines(found))
            if len(found) > 2:
                candidates += [_intersect_lines([a, b]) for n, a in enumerate(found)
                               for b in found[n + 1:]]
        elif len(found) == 1:  # slide the fallback onto the one known edge
            c, d = found[0]
            candidates.append(c + ((default[k] - c) @ d) * d)
        candidates = [np.clip(p, [0.0, 0.0], [w - 1.0, h - 1.0]) for p in candidates
                      if p is not None and np.all(np.isfinite(p))]
        if len(candidates) > 1:
            for surface in kp.surfaces:
                if surface not in distance:
                    distance[surface] = ndimage.distance_transform_edt(seg != surface)
            junction = sum(distance[surface] for surface in kp.surfaces)

            first = candidates[0]  # the intersection of all lines wins ties
            candidates = [min(candidates, key=lambda p: (
                junction[int(round(p[1])), int(round(p[0]))], p is not first))]
        if candidates:
            out[k] = candidates[0]
        corners[kp.surfaces] = out[k]
    for k, kp in enumerate(rtype.keypoints):
        if kp.is_corner or kp.surfaces not in lines:
            continue
        c, d = lines[kp.surfaces]
        ends = _clip_line_to_image(c, d, (h, w))
        if ends is None:
            continue
        p, q = ends
        if kp.end is None:  # the end on the side of the boundary (away from the corner)
            corner = next(v for s, v in corners.items() if kp.surfaces <= s)
            out[k] = p if (p - q) @ (c - corner) > 0 else q
        else:
            axis = 0 if kp.end in ("left", "right") else 1
            first, second = (p, q) if p[axis] <= q[axis] else (q, p)
            out[k] = first if kp.end in ("left", "top") else second
    return out


def snap_to_border(point: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The nearest point of the border of the pixel-centre rectangle (border keypoints)."""
    h, w = shape
    x, y = float(np.clip(point[0], 0, w - 1)), float(np.clip(point[1], 0, h - 1))
    dist = [x, w - 1 - x, y, h - 1 - y]
    side = int(np.argmin(dist))
    return np.array([(0.0, w - 1.0, x, x)[side], (y, y, 0.0, h - 1.0)[side]])


def layout_from_segmentation(segmentation: np.ndarray, type_hint: int | None = None,
                             fallbacks: dict[int, np.ndarray] | None = None,
                             min_fraction: float = 0.01):
    """(type, keypoints) of a predicted label map: the type of its (cleaned) surfaces, or
    ``type_hint`` when they fit none; keypoints by :func:`fit_keypoints` with
    ``fallbacks[type]`` for edges the map lacks."""
    seg = clean_segmentation(segmentation, min_fraction)
    type_id = room_type_from_surfaces(np.unique(seg))
    if type_id < 0:
        type_id = int(type_hint) if type_hint is not None and type_hint >= 0 else 0
    fb = None if fallbacks is None else fallbacks.get(type_id)
    return type_id, fit_keypoints(seg, type_id, fb)
