"""Geometry of a synthetic room: the box, the pinhole camera, ray casting, and the check
that a view is a clean instance of one LSUN room type (:func:`analyze_view`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from robench.tasks.room_layout.room_types import (
    CEILING, FLOOR, FRONTAL, LEFT, RIGHT, ROOM_TYPES, room_type_from_surfaces,
)

MIN_SURFACE_FRACTION = 0.02  # smaller visible surfaces make ambiguous slivers: resample

# Faces of the room box [lo, hi]: index 2*axis + side (side 1 is the plane at hi).
FLOOR_FACE, CEILING_FACE = 2, 3
WALL_CYCLE = (0, 5, 1, 4)  # walls in order around the room seen from above


def _face_of(axis: int, side: int) -> int:
    return 2 * axis + side


# The 8 room corners as side bits (sx, sy, sz) and the 12 edges as (face, face, free axis).
_CORNER_BITS = np.array([[sx, sy, sz] for sx in (0, 1) for sy in (0, 1) for sz in (0, 1)])
_CORNER_FACES = [frozenset({_face_of(0, b[0]), _face_of(1, b[1]), _face_of(2, b[2])})
                 for b in _CORNER_BITS]
_EDGES = [(i, si, j, sj, 3 - i - j) for i, j in ((0, 1), (0, 2), (1, 2))
          for si in (0, 1) for sj in (0, 1)]


@dataclass(frozen=True)
class Camera:
    """Pinhole camera: position (3,), orthonormal forward/right/down (3,) in world
    coordinates, focal length and principal point in pixels (0-based pixel centres)."""
    position: np.ndarray
    forward: np.ndarray
    right: np.ndarray
    down: np.ndarray
    focal: float
    cx: float
    cy: float

    @classmethod
    def from_angles(cls, position, yaw, pitch, roll, hfov, image_size) -> Camera:
        """yaw (turning towards +x), pitch (up), roll and horizontal fov in radians."""
        h, w = image_size
        fwd = np.array([np.sin(yaw) * np.cos(pitch), np.sin(pitch), np.cos(yaw) * np.cos(pitch)])
        right0 = np.cross([0.0, 1.0, 0.0], fwd)
        right0 /= np.linalg.norm(right0)
        up0 = np.cross(fwd, right0)
        right = np.cos(roll) * right0 + np.sin(roll) * up0
        up = -np.sin(roll) * right0 + np.cos(roll) * up0
        focal = (w / 2.0) / np.tan(hfov / 2.0)
        return cls(np.asarray(position, float), fwd, right, -up, float(focal),
                   (w - 1) / 2.0, (h - 1) / 2.0)

    def rays(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """(N, 3) world directions (not unit length, forward component 1) of pixels."""
        return (self.forward[None, :] + ((xs - self.cx) / self.focal)[:, None] * self.right
                + ((ys - self.cy) / self.focal)[:, None] * self.down)

    def depth(self, points: np.ndarray) -> np.ndarray:
        return (np.asarray(points) - self.position) @ self.forward

    def project(self, points: np.ndarray) -> np.ndarray:
        """(N, 2) pixel (x, y) of world points in front of the camera."""
        rel = np.atleast_2d(points) - self.position
        z = rel @ self.forward
        return np.stack([self.cx + self.focal * (rel @ self.right) / z,
                         self.cy + self.focal * (rel @ self.down) / z], axis=1)


def raycast_room(origin: np.ndarray, dirs: np.ndarray, lo: np.ndarray, hi: np.ndarray):
    """Face index (N,) and ray parameter t (N,) where rays from ``origin`` (inside the
    box) leave the box [lo, hi]: the nearest of the three planes each ray heads for."""
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (np.where(dirs > 0, hi, lo) - origin) / dirs
    t[~np.isfinite(t) | (t < 0)] = np.inf
    axis = np.argmin(t, axis=1)
    rows = np.arange(len(dirs))
    return 2 * axis + (dirs[rows, axis] > 0), t[rows, axis]


def _clip_segment_to_rect(p, q, xmax, ymax):
    """Liang-Barsky: the part of segment p->q inside [0, xmax] x [0, ymax], or None."""
    t0, t1 = 0.0, 1.0
    d = q - p
    for pk, qk in ((-d[0], p[0]), (d[0], xmax - p[0]), (-d[1], p[1]), (d[1], ymax - p[1])):
        if pk == 0:
            if qk < 0:
                return None
            continue
        r = qk / pk
        if pk < 0:
            t0 = max(t0, r)
        else:
            t1 = min(t1, r)
        if t0 > t1:
            return None
    return p + t0 * d, p + t1 * d


def room_corners(lo, hi) -> np.ndarray:
    return np.where(_CORNER_BITS == 1, hi, lo).astype(float)


def _visible_edges(cam: Camera, lo, hi, image_size, near=1e-3):
    """{frozenset(face, face): (p, q)} — room edges whose projection crosses the image,
    clipped to the pixel-centre rectangle [0, W-1] x [0, H-1]."""
    h, w = image_size
    out = {}
    for i, si, j, sj, k in _EDGES:
        a = np.zeros(3)
        a[i], a[j] = (hi if si else lo)[i], (hi if sj else lo)[j]
        b = a.copy()
        a[k], b[k] = lo[k], hi[k]
        da, db = cam.depth(a), cam.depth(b)
        if da < near and db < near:
            continue
        if da < near:
            a = a + (near - da) / (db - da) * (b - a)
        elif db < near:
            b = b + (near - db) / (da - db) * (a - b)
        pa, pb = cam.project(np.stack([a, b]))
        clipped = _clip_segment_to_rect(pa, pb, w - 1.0, h - 1.0)
        if clipped is not None and np.hypot(*(clipped[1] - clipped[0])) > 0.5:
            out[frozenset({_face_of(i, si), _face_of(j, sj)})] = clipped
    return out


def _on_border(p, image_size, tol=1e-6) -> bool:
    h, w = image_size
    return min(abs(p[0]), abs(p[0] - (w - 1)), abs(p[1]), abs(p[1] - (h - 1))) < tol


@dataclass
class _View:
    room_type: int
    face_label: dict[int, int]
    keypoints: np.ndarray


def analyze_view(cam: Camera, lo, hi, image_size) -> _View | None:
    """The LSUN type, face -> label map and keypoints of a view, or None if the view is
    not a clean instance of one of the 11 types (see module docstring)."""
    h, w = image_size
    margin = max(2.0, 0.02 * min(h, w))
    # surface areas on a coarse grid of pixel centres
    s = min(1.0, 40.0 / max(h, w))
    hc, wc = max(8, int(round(h * s))), max(8, int(round(w * s)))
    ys, xs = np.meshgrid((np.arange(hc) + 0.5) * h / hc - 0.5,
                         (np.arange(wc) + 0.5) * w / wc - 0.5, indexing="ij")
    face, _ = raycast_room(cam.position, cam.rays(xs.ravel(), ys.ravel()), lo, hi)
    frac = np.bincount(face, minlength=6) / face.size
    if np.any((frac > 0) & (frac < MIN_SURFACE_FRACTION)):
        return None
    visible = {int(f) for f in np.flatnonzero(frac)}
    walls = [f for f in WALL_CYCLE if f in visible]
    if not 1 <= len(walls) <= 3:
        return None
    # walls in image order: the middle one of three touches both others in the cycle
    xcol = xs.ravel()
    centre = {f: float(xcol[face == f].mean()) for f in walls}
    ordered = sorted(walls, key=centre.get)
    if len(ordered) == 3:
        ring = list(WALL_CYCLE)
        mid = ordered[1]
        neighbours = {ring[(ring.index(mid) - 1) % 4], ring[(ring.index(mid) + 1) % 4]}
        if set(ordered) - {mid} != neighbours:
            return None
    if len(ordered) == 2 and abs(WALL_CYCLE.index(ordered[0]) - WALL_CYCLE.index(ordered[1])) == 2:
        return None  # two opposite walls without the one between them
    names = {1: [FRONTAL], 2: [LEFT, RIGHT], 3: [LEFT, FRONTAL, RIGHT]}[len(ordered)]
    face_label = dict(zip(ordered, names))
    if FLOOR_FACE in visible:
        face_label[FLOOR_FACE] = FLOOR
    if CEILING_FACE in visible:
        face_label[CEILING_FACE] = CEILING
    type_id = room_type_from_surfaces(face_label.values())
    if type_id < 0:
        return None
    rtype = ROOM_TYPES[type_id]

    edges = _visible_edges(cam, lo, hi, image_size)
    if not all(f <= set(face_label) for f in edges):
        return None
    edge_by_labels = {frozenset(face_label[f] for f in faces): seg for faces, seg in edges.items()}
    if set(edge_by_labels) != set(rtype.edges):
        return None
    if min(np.hypot(*(q - p)) for p, q in edge_by_labels.values()) < margin:
        return None
    corners = {}
    xyz = room_corners(lo, hi)
    depth = cam.depth(xyz)
    for c in range(8):
        if depth[c] <= 1e-3:
            continue
        p = cam.project(xyz[c])[0]
        if 0 <= p[0] <= w - 1 and 0 <= p[1] <= h - 1:
            if not _CORNER_FACES[c] <= set(face_label):
                return None
            if min(p[0], p[1], w - 1 - p[0], h - 1 - p[1]) < margin:
                return None
            corners[frozenset(face_label[f] for f in _CORNER_FACES[c])] = p
    if set(corners) != set(rtype.corners):
        return None

    keypoints = []
    for kp in rtype.keypoints:
        if kp.is_corner:
            keypoints.append(corners[kp.surfaces])
            continue
        p, q = edge_by_labels[kp.surfaces]
        if kp.end is None:  # the end away from the type's inner corner on this edge
            corner = next(v for k, v in corners.items() if kp.surfaces <= k)
            end = p if np.hypot(*(p - corner)) > np.hypot(*(q - corner)) else q
        else:
            axis = 0 if kp.end in ("left", "right") else 1
            first, second = (p, q) if p[axis] <= q[axis] else (q, p)
            end = first if kp.end in ("left", "top") else second
        if not _on_border(end, image_size):
            return None
        keypoints.append(end)
    return _View(type_id, face_label, np.array(keypoints, dtype=np.float64))

