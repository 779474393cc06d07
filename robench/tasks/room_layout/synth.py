"""Procedurally rendered cuboid rooms with LSUN ground truth (robench's offline default).

A room is an axis-aligned box (x across, y up with the floor at 0, z ahead) seen from a
random camera inside it (room size, camera height, yaw, pitch, roll of at most 3 degrees,
horizontal field of view).  Every pixel's ray is cast to the room surface it leaves the
box through (:func:`raycast_room`), which gives the segmentation; the LSUN room type
follows from the visible surfaces, and the keypoints from the projected room corners and
the projected room edges clipped to the image, in the orders of :mod:`room_types`.

A view is kept only if it is a clean instance of its type: every visible surface covers
at least ``MIN_SURFACE_FRACTION`` of the image, the room edges and corners inside the image
are exactly the type's, and inner corners lie at least a small margin inside the image.
The target type of each image is drawn uniformly from the 11 types (a balanced set, not
LSUN's own distribution) and the camera from a prior that tends to produce it.

Clutter (furniture boxes standing on the floor; windows, pictures, doors, rugs and
ceiling lights as rectangles on the surfaces) is drawn over the room but does not change
the ground truth, which is always the empty room's layout; ``LayoutSample.clutter`` marks
the pixels it covers.  Surfaces get procedural textures (``texture_set="train"``: paint,
wallpaper stripes, planks, tiles, carpet in muted colours; ``"unseen"``: checkers, dots,
diagonal stripes, bricks, marble in saturated colours, for a domain-shift test set), a
point light with ambient term, contact shadows, a slight blur and sensor noise.

Each image is drawn from its own random streams keyed by (seed, index), so
``generate(n, seed)`` is deterministic, a prefix of a longer run equals a shorter run, and
two calls that differ only in ``clutter`` show the same rooms from the same cameras.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter

from robench.errors import UserError
from robench.tasks.room_layout.formats import LayoutSample, write_lsun
from robench.tasks.room_layout.room_types import (
    CEILING, FLOOR, FRONTAL, LEFT, RIGHT, ROOM_TYPES, room_type_from_surfaces,
)

MIN_SURFACE_FRACTION = 0.02  # smaller visible surfaces make ambiguous slivers: resample
MAX_TRIES = 400  # camera draws per image before giving up (never reached in practice)
CLUTTER_LEVELS = ("none", "normal", "heavy")
TEXTURE_SETS = ("train", "unseen")

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


# ------------------------------------------------------------------ geometry

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


def _room_corners(lo, hi) -> np.ndarray:
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
    xyz = _room_corners(lo, hi)
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


# ------------------------------------------------------------------ cameras

# Per target type: what the camera looks at ("wall": the z-hi wall, "corner": a vertical
# room edge), its distance to it (m), room-size overrides, and how the field of view and
# pitch are chosen from the angular extent of that wall or edge (tan_top / tan_bottom:
# tangents of the elevation of its top and bottom seen from the camera):
#   ("fov", lo, hi)     horizontal fov in degrees, uniform
#   ("cover", lo, hi)   vertical half-fov tangent = U(lo, hi) * max(tan_top, tan_bottom)
#   ("inside", lo, hi)  vertical half-fov tangent = U(lo, hi) * min(tan_top, tan_bottom)
# and pitch ("pitch", lo, hi) in degrees, or "hide_top"/"hide_bottom": tilt just enough to
# push the ceiling / floor edge out of view.  Only a prior: the type is always verified.
_PRIORS = {
    0: ("wall", (4.0, 8.0), {}, ("fov", 62, 90), ("pitch", -6, 6)),
    1: ("wall", (4.5, 8.5), {"depth": (5.0, 9.0)}, ("fov", 60, 85), "hide_top"),
    2: ("wall", (4.5, 8.5), {"depth": (5.0, 9.0)}, ("fov", 60, 85), "hide_bottom"),
    3: ("corner", (2.0, 5.0), {}, ("fov", 45, 75), ("pitch", 14, 35)),
    4: ("corner", (2.0, 5.0), {}, ("fov", 45, 75), ("pitch", -35, -14)),
    5: ("corner", (3.0, 6.5), {}, ("cover", 1.1, 1.5), ("pitch", -4, 4)),
    6: ("wall", (2.5, 5.0), {"width": (5.5, 8.0), "height": (2.4, 2.8)},
        ("cover", 1.1, 1.4), ("pitch", -3, 3)),
    7: ("wall", (6.0, 8.5), {"width": (2.0, 2.6), "height": (3.2, 3.8), "depth": (7.0, 9.5)},
        ("inside", 0.75, 0.95), ("pitch", -2, 2)),
    8: ("wall", (1.8, 3.5), {"width": (5.5, 8.0)}, ("fov", 35, 55), ("pitch", 16, 32)),
    9: ("wall", (1.8, 3.5), {"width": (5.5, 8.0)}, ("fov", 35, 55), ("pitch", -32, -16)),
    10: ("corner", (1.2, 2.5), {"height": (3.0, 3.6)}, ("inside", 0.6, 0.9), ("pitch", -4, 4)),
}


def _sample_camera(rng: np.random.Generator, target: int, image_size):
    family, dist_r, room_r, fov_rule, pitch_rule = _PRIORS[target]
    h_img, w_img = image_size
    width = rng.uniform(*room_r.get("width", (3.0, 7.0)))
    depth = rng.uniform(*room_r.get("depth", (3.5, 8.5)))
    height = rng.uniform(*room_r.get("height", (2.4, 3.4)))
    if target == 7:  # a corridor narrow enough to fill the image width but not its height
        width = min(width, rng.uniform(0.7, 0.85) * height * w_img / h_img)
    lo, hi = np.array([-width / 2, 0.0, 0.0]), np.array([width / 2, height, depth])
    cam_h = rng.uniform(1.0, min(1.8, height - 0.4)) if target not in (7, 10) \
        else rng.uniform(0.42, 0.58) * height
    dist = rng.uniform(*dist_r)
    pad = 0.3
    if family == "wall":
        x = rng.uniform(-1, 1) * max(0.0, width / 2 - pad) * 0.4
        z = float(np.clip(depth - dist, pad, depth - pad))
        yaw = np.deg2rad(rng.uniform(-12, 12) if target != 7 else rng.uniform(-2, 2))
        d = depth - z
    else:
        side = rng.choice([-1.0, 1.0])
        corner = np.array([side * width / 2, depth])
        ang = np.deg2rad(rng.uniform(25, 65))  # direction from the corner into the room
        pos2 = corner + dist * np.array([-side * np.sin(ang), -np.cos(ang)])
        x = float(np.clip(pos2[0], -width / 2 + pad, width / 2 - pad))
        z = float(np.clip(pos2[1], pad, depth - pad))
        to_corner = corner - np.array([x, z])
        yaw = np.arctan2(to_corner[0], to_corner[1]) + np.deg2rad(rng.uniform(-8, 8))
        d = float(np.hypot(*to_corner))
    tan_top, tan_bottom = (height - cam_h) / d, cam_h / d
    kind, a, b = fov_rule
    if kind == "fov":
        tan_h = np.tan(np.deg2rad(rng.uniform(a, b)) / 2)
    else:
        ref = max(tan_top, tan_bottom) if kind == "cover" else min(tan_top, tan_bottom)
        tan_h = rng.uniform(a, b) * ref * w_img / h_img
    vfov_half = np.arctan(tan_h * h_img / w_img)
    if pitch_rule == "hide_top":
        pitch = np.arctan(tan_top) - vfov_half - np.deg2rad(rng.uniform(2, 8))
    elif pitch_rule == "hide_bottom":
        pitch = -np.arctan(tan_bottom) + vfov_half + np.deg2rad(rng.uniform(2, 8))
    else:
        pitch = np.deg2rad(rng.uniform(pitch_rule[1], pitch_rule[2]))
    cam = Camera.from_angles([x, cam_h, z], yaw, pitch, np.deg2rad(rng.uniform(-3, 3)),
                             2 * np.arctan(tan_h), image_size)
    return cam, lo, hi


def sample_view(rng: np.random.Generator, image_size, target: int | None = None):
    """(camera, lo, hi, view) of a clean room view, aiming at ``target`` type (random if
    None); falls back to any valid type if the target keeps failing."""
    if target is None:
        target = int(rng.integers(len(ROOM_TYPES)))
    fallback = None
    for attempt in range(MAX_TRIES):
        aim = target if attempt < 60 else int(rng.integers(len(ROOM_TYPES)))
        cam, lo, hi = _sample_camera(rng, aim, image_size)
        view = analyze_view(cam, lo, hi, image_size)
        if view is None:
            continue
        if view.room_type == target:
            return cam, lo, hi, view
        if fallback is None:
            fallback = (cam, lo, hi, view)
        if attempt >= 60:
            return fallback
    raise RuntimeError(f"no valid room view found in {MAX_TRIES} tries at {image_size}")


# ------------------------------------------------------------------ appearance

_PALETTES = {
    "train": {
        "wall": [(0.86, 0.82, 0.72), (0.90, 0.90, 0.87), (0.78, 0.78, 0.76), (0.88, 0.84, 0.64),
                 (0.70, 0.76, 0.80), (0.72, 0.78, 0.66), (0.84, 0.72, 0.64)],
        "floor": [(0.55, 0.38, 0.22), (0.70, 0.55, 0.36), (0.45, 0.30, 0.18), (0.55, 0.55, 0.52),
                  (0.78, 0.74, 0.66), (0.40, 0.42, 0.48)],
        "ceiling": [(0.93, 0.93, 0.91), (0.90, 0.88, 0.84), (0.86, 0.87, 0.88)],
        "furniture": [(0.45, 0.30, 0.18), (0.62, 0.46, 0.30), (0.30, 0.30, 0.32),
                      (0.80, 0.78, 0.74), (0.35, 0.40, 0.52), (0.55, 0.25, 0.20)],
        "wall_kinds": ("paint", "paint", "stripes", "paint_noise"),
        "floor_kinds": ("planks", "planks", "tiles", "carpet"),
        "ceiling_kinds": ("paint", "panels"),
    },
    "unseen": {
        "wall": [(0.10, 0.50, 0.50), (0.50, 0.10, 0.16), (0.82, 0.60, 0.10), (0.16, 0.22, 0.48),
                 (0.62, 0.50, 0.80), (0.20, 0.55, 0.20), (0.92, 0.40, 0.30)],
        "floor": [(0.10, 0.10, 0.10), (0.62, 0.20, 0.14), (0.28, 0.32, 0.36), (0.85, 0.85, 0.85),
                  (0.30, 0.15, 0.35)],
        "ceiling": [(0.35, 0.22, 0.12), (0.20, 0.30, 0.45), (0.70, 0.82, 0.60)],
        "furniture": [(0.90, 0.20, 0.20), (0.20, 0.70, 0.30), (0.95, 0.85, 0.20),
                      (0.10, 0.10, 0.12), (0.55, 0.20, 0.60)],
        "wall_kinds": ("checker", "dots", "diagonal", "bricks", "marble"),
        "floor_kinds": ("checker", "bricks", "marble", "diagonal"),
        "ceiling_kinds": ("dots", "checker", "marble"),
    },
}


def _smooth_noise(lattice: np.ndarray, u, v, freq: float) -> np.ndarray:
    """Value noise in [-1, 1] at (u, v) (metres), smooth on a scale of 1/freq."""
    n = lattice.shape[0]
    x, y = u * freq, v * freq
    x0, y0 = np.floor(x), np.floor(y)
    fx, fy = x - x0, y - y0
    fx, fy = fx * fx * (3 - 2 * fx), fy * fy * (3 - 2 * fy)
    i0, j0 = x0.astype(np.int64) % n, y0.astype(np.int64) % n
    i1, j1 = (i0 + 1) % n, (j0 + 1) % n
    top = lattice[i0, j0] * (1 - fx) + lattice[i1, j0] * fx
    bot = lattice[i0, j1] * (1 - fx) + lattice[i1, j1] * fx
    return top * (1 - fy) + bot * fy


class _Material:
    """A procedural texture: ``colors(u, v)`` -> (N, 3) RGB in [0, 1]."""

    def __init__(self, rng: np.random.Generator, kind: str, base, alt):
        self.kind = kind
        self.base = np.clip(np.asarray(base) + rng.normal(0, 0.03, 3), 0, 1)
        self.alt = np.clip(np.asarray(alt) + rng.normal(0, 0.03, 3), 0, 1)
        self.lattice = rng.uniform(-1, 1, (64, 64))
        self.scale = rng.uniform(0.7, 1.4)
        self.angle = rng.uniform(0, np.pi)

    def colors(self, u, v):
        k, s, base, alt = self.kind, self.scale, self.base, self.alt
        noise = _smooth_noise(self.lattice, u, v, 2.0)
        mix = None  # fraction of alt colour per pixel
        shade = 1.0 + 0.04 * noise
        if k == "paint":
            pass
        elif k == "paint_noise":
            shade = 1.0 + 0.10 * noise + 0.05 * _smooth_noise(self.lattice, u, v, 9.0)
        elif k == "stripes":
            mix = (np.mod(u / (0.18 * s), 1.0) < 0.5) * 0.35
        elif k == "planks":
            w = 0.18 * s
            plank = np.floor(v / w)
            jitter = _smooth_noise(self.lattice, plank * 7.3, plank * 3.1, 1.0)
            grain = 0.06 * np.sin(u * 40 / s + 3 * noise)
            seam = np.mod(v / w, 1.0) < 0.06
            shade = (1.0 + 0.12 * jitter + grain) * np.where(seam, 0.7, 1.0)
        elif k == "tiles":
            t = 0.45 * s
            grout = (np.mod(u / t, 1.0) < 0.05) | (np.mod(v / t, 1.0) < 0.05)
            mix = grout.astype(float)
            shade = 1.0 + 0.05 * _smooth_noise(self.lattice, np.floor(u / t), np.floor(v / t), 1.0)
        elif k == "carpet":
            shade = 1.0 + 0.06 * noise + 0.07 * _smooth_noise(self.lattice, u, v, 40.0)
        elif k == "panels":
            t = 0.6 * s
            mix = ((np.mod(u / t, 1.0) < 0.03) | (np.mod(v / t, 1.0) < 0.03)) * 0.6
        elif k == "checker":
            t = 0.5 * s
            mix = (np.mod(np.floor(u / t) + np.floor(v / t), 2) == 1).astype(float)
        elif k == "dots":
            t = 0.25 * s
            du, dv = np.mod(u / t, 1.0) - 0.5, np.mod(v / t, 1.0) - 0.5
            mix = (du * du + dv * dv < 0.09).astype(float)
        elif k == "diagonal":
            c, sn = np.cos(self.angle), np.sin(self.angle)
            mix = (np.mod((c * u + sn * v) / (0.22 * s), 1.0) < 0.5).astype(float)
        elif k == "bricks":
            bh, bw = 0.09 * s, 0.24 * s
            row = np.floor(v / bh)
            uu = u / bw + 0.5 * np.mod(row, 2)
            mortar = (np.mod(v / bh, 1.0) < 0.12) | (np.mod(uu, 1.0) < 0.05)
            mix = mortar.astype(float)
            shade = 1.0 + 0.12 * _smooth_noise(self.lattice, np.floor(uu), row, 1.0)
        elif k == "marble":
            mix = np.abs(np.sin((u + v) * 3 / s + 4 * noise)) ** 3
        else:  # pragma: no cover - kinds come from the palettes above
            raise ValueError(k)
        rgb = np.broadcast_to(base, (len(u), 3)).copy()
        if mix is not None:
            m = np.asarray(mix, dtype=float)[:, None]
            rgb = rgb * (1 - m) + alt * m
        return np.clip(rgb * np.asarray(shade, dtype=float).reshape(-1, 1), 0, 1)


def _pick(rng, seq):
    return seq[int(rng.integers(len(seq)))]


def _surface_uv(face: np.ndarray, hit: np.ndarray):
    """Texture coordinates (metres) on each face: walls (horizontal, height), floor and
    ceiling (x, z)."""
    axis = face // 2
    u = np.where(axis == 0, hit[:, 2], hit[:, 0])
    v = np.where(axis == 1, hit[:, 2], hit[:, 1])
    return u, v


_FACE_NORMALS = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]],
                         dtype=float)  # pointing into the room


def _lighting(points, normals, light, ambient):
    to_light = light - points
    dist = np.linalg.norm(to_light, axis=1)
    lambert = np.clip(np.sum(normals * to_light, axis=1) / np.maximum(dist, 1e-6), 0, 1)
    return ambient + (1 - ambient) * lambert / (1 + 0.04 * dist * dist)


@dataclass
class _Box:
    lo: np.ndarray
    hi: np.ndarray
    material: _Material


@dataclass
class _Rect:
    face: int
    u0: float
    u1: float
    v0: float
    v1: float
    kind: str  # window | picture | door | rug | light
    color: np.ndarray
    frame: np.ndarray


def _place_clutter(rng, lo, hi, cam_pos, level, palette):
    """Furniture boxes and surface rectangles for one room."""
    if level == "none":
        return [], []
    heavy = level == "heavy"
    n_boxes = int(rng.integers(5, 10)) if heavy else int(rng.integers(1, 5))
    n_rects = int(rng.integers(3, 7)) if heavy else int(rng.integers(1, 4))
    size = 1.35 if heavy else 1.0
    boxes = []
    for _ in range(60):
        if len(boxes) >= n_boxes:
            break
        against_wall = rng.random() < 0.65
        bw, bd = rng.uniform(0.5, 2.0) * size, rng.uniform(0.35, 0.9) * size
        bh = rng.uniform(0.4, 2.1) if against_wall else rng.uniform(0.4, 0.95)
        if against_wall:
            wall = _pick(rng, (0, 1, 4, 5))
            axis, side = wall // 2, wall % 2
            along = 2 - axis  # x-walls run along z and vice versa
            blo, bhi = np.zeros(3), np.zeros(3)
            start = rng.uniform(lo[along], max(lo[along], hi[along] - bw))
            blo[along], bhi[along] = start, start + bw
            if side:
                blo[axis], bhi[axis] = hi[axis] - bd - 0.01, hi[axis] - 0.01
            else:
                blo[axis], bhi[axis] = lo[axis] + 0.01, lo[axis] + bd + 0.01
        else:
            cx, cz = rng.uniform(lo[0], hi[0]), rng.uniform(lo[2], hi[2])
            blo = np.array([cx - bw / 2, 0, cz - bd / 2])
            bhi = np.array([cx + bw / 2, 0, cz + bd / 2])
        blo[1], bhi[1] = 0.0, min(bh, hi[1] - 0.3)
        blo, bhi = np.maximum(blo, lo + 0.005), np.minimum(bhi, hi - 0.005)
        blo[1] = 0.0
        if np.any(bhi - blo < 0.1):
            continue
        if np.all((cam_pos > blo - 0.35) & (cam_pos < bhi + 0.35)):
            continue  # the camera would be inside or touching it
        kind = _pick(rng, ("paint", "paint_noise", "planks", "carpet"))
        boxes.append(_Box(blo, bhi, _Material(rng, kind, _pick(rng, palette["furniture"]),
                                              _pick(rng, palette["furniture"]))))
    rects = []
    for _ in range(n_rects):
        kind = _pick(rng, ("window", "picture", "picture", "door", "rug", "light"))
        if kind in ("rug",):
            face = FLOOR_FACE
        elif kind == "light":
            face = CEILING_FACE
        else:
            face = _pick(rng, (0, 1, 4, 5))
        axis = face // 2
        ua = 2 if axis == 0 else 0  # u runs along z on x-walls, else along x
        va = 2 if axis == 1 else 1
        umin, umax, vmin, vmax = lo[ua], hi[ua], lo[va], hi[va]
        if kind == "window":
            rw, rh = rng.uniform(0.6, 1.6), rng.uniform(0.8, 1.4)
            v0 = rng.uniform(0.7, max(0.71, vmax - rh - 0.2))
        elif kind == "picture":
            rw, rh = rng.uniform(0.3, 1.0), rng.uniform(0.3, 0.8)
            v0 = rng.uniform(1.0, max(1.01, vmax - rh - 0.3))
        elif kind == "door":
            rw, rh, v0 = rng.uniform(0.8, 1.0), min(2.05, vmax - 0.2), 0.0
        elif kind == "rug":
            rw, rh = rng.uniform(1.0, 2.5) * size, rng.uniform(0.8, 2.0) * size
            v0 = rng.uniform(vmin, max(vmin, vmax - rh))
        else:
            rw, rh = rng.uniform(0.4, 1.2), rng.uniform(0.4, 1.2)
            v0 = rng.uniform(vmin, max(vmin, vmax - rh))
        u0 = rng.uniform(umin, max(umin, umax - rw))
        color = {"window": np.array([0.80, 0.88, 0.97]), "light": np.array([1.0, 1.0, 0.95]),
                 "door": np.array(_pick(rng, palette["furniture"])),
                 "picture": rng.uniform(0.1, 0.9, 3),
                 "rug": np.array(_pick(rng, palette["furniture"]))}[kind]
        frame = np.array(_pick(rng, palette["furniture"])) * 0.8
        rects.append(_Rect(face, u0, u0 + rw, v0, v0 + rh, kind, color, frame))
    return boxes, rects


def _raycast_box(origin, inv_dirs, blo, bhi, t_limit):
    """Rays (given by 1/direction, (N, 3)) that enter box [blo, bhi] in front of the
    origin before ``t_limit`` (N,): (mask (N,), entry t (M,), entry axis (M,))."""
    t1 = (blo - origin) * inv_dirs
    t2 = (bhi - origin) * inv_dirs
    tmin3 = np.fmin(t1, t2)  # fmin/fmax skip the NaN of 0 * inf
    tmin = tmin3.max(axis=1)
    tmax = np.fmax(t1, t2).min(axis=1)
    hit = (tmax >= tmin) & (tmin > 0) & (tmin < t_limit)
    return hit, tmin[hit], np.argmax(tmin3[hit], axis=1)


def _pixels_covering(cam: Camera, lo, hi, image_size) -> np.ndarray:
    """Flat indices of the pixels inside the projected bounding rectangle of box [lo, hi]
    (all pixels when part of the box is behind the camera)."""
    h, w = image_size
    corners = _room_corners(lo, hi)
    if np.any(cam.depth(corners) <= 1e-3):
        return np.arange(h * w)
    p = cam.project(corners)
    x0, x1 = max(0, int(np.floor(p[:, 0].min()))), min(w - 1, int(np.ceil(p[:, 0].max())))
    y0, y1 = max(0, int(np.floor(p[:, 1].min()))), min(h - 1, int(np.ceil(p[:, 1].max())))
    if x0 > x1 or y0 > y1:
        return np.zeros(0, dtype=np.int64)
    return (np.arange(y0, y1 + 1)[:, None] * w + np.arange(x0, x1 + 1)[None, :]).ravel()


def _render(rng, cam, lo, hi, image_size, face_label, level, texture_set, clutter_rng):
    """(image (H, W, 3) uint8, segmentation (H, W) uint8, clutter (H, W) bool), or None
    when the full-resolution surfaces differ from ``face_label``'s."""
    h, w = image_size
    palette = _PALETTES[texture_set]
    ys, xs = np.meshgrid(np.arange(h, dtype=float), np.arange(w, dtype=float), indexing="ij")
    dirs = cam.rays(xs.ravel(), ys.ravel())
    face, t = raycast_room(cam.position, dirs, lo, hi)
    if set(np.unique(face).tolist()) != set(face_label):
        return None  # a sliver the coarse check could not see: the caller redraws
    hit = cam.position + t[:, None] * dirs

    # materials: walls often share one paint, as in real rooms
    wall_mats = {}
    shared = _Material(rng, _pick(rng, palette["wall_kinds"]), _pick(rng, palette["wall"]),
                       _pick(rng, palette["wall"]))
    for f in WALL_CYCLE:
        wall_mats[f] = shared if rng.random() < 0.6 else _Material(
            rng, _pick(rng, palette["wall_kinds"]), _pick(rng, palette["wall"]),
            _pick(rng, palette["wall"]))
    mats = dict(wall_mats)
    mats[FLOOR_FACE] = _Material(rng, _pick(rng, palette["floor_kinds"]),
                                 _pick(rng, palette["floor"]), _pick(rng, palette["floor"]))
    mats[CEILING_FACE] = _Material(rng, _pick(rng, palette["ceiling_kinds"]),
                                   _pick(rng, palette["ceiling"]), _pick(rng, palette["wall"]))
    light = np.array([rng.uniform(lo[0] + 0.3, hi[0] - 0.3), hi[1] - 0.05,
                      rng.uniform(lo[2] + 0.3, hi[2] - 0.3)])
    ambient = rng.uniform(0.35, 0.55)
    exposure = rng.uniform(0.9, 1.15)
    tint = 1 + rng.normal(0, 0.03, 3)

    u, v = _surface_uv(face, hit)
    rgb = np.zeros((len(face), 3))
    for f in np.unique(face):
        sel = face == f
        rgb[sel] = mats[int(f)].colors(u[sel], v[sel])
    normals = _FACE_NORMALS[face]
    # the ceiling is lit indirectly: give it a floor of brightness
    light_term = _lighting(hit, normals, light, ambient)
    light_term[face == CEILING_FACE] = np.maximum(light_term[face == CEILING_FACE], 0.75)

    boxes, rects = _place_clutter(clutter_rng, lo, hi, cam.position, level, palette)
    clutter = np.zeros(len(face), dtype=bool)
    on_face = {f: np.flatnonzero(face == f) for f in range(6)}
    for r in rects:
        idx = on_face[r.face]
        fu, fv = u[idx], v[idx]
        in_rect = (fu >= r.u0) & (fu <= r.u1) & (fv >= r.v0) & (fv <= r.v1)
        if not np.any(in_rect):
            continue
        sel, fu, fv = idx[in_rect], fu[in_rect], fv[in_rect]
        border = 0.04 if r.kind in ("window", "picture", "door") else 0.0
        inner_here = (fu >= r.u0 + border) & (fu <= r.u1 - border) & \
            (fv >= r.v0 + border) & (fv <= r.v1 - border)
        inner, iu, iv = sel[inner_here], fu[inner_here], fv[inner_here]
        rgb[sel] = r.frame
        col = np.broadcast_to(r.color, (len(inner), 3)).copy()
        if r.kind == "picture":
            col *= 0.8 + 0.4 * ((iu - r.u0) / max(r.u1 - r.u0, 1e-3))[:, None]
        elif r.kind == "window":
            bars = (np.abs(iu - (r.u0 + r.u1) / 2) < 0.025) | \
                (np.abs(iv - (r.v0 + r.v1) / 2) < 0.025)
            col[bars] = r.frame
        elif r.kind == "rug":
            col[np.mod((iu - r.u0) / 0.2, 1.0) < 0.3] *= 0.7
        rgb[inner] = np.clip(col, 0, 1)
        if r.kind in ("window", "light"):
            light_term[sel] = np.maximum(light_term[sel], 0.95)
        clutter[sel] = True
    # contact shadows around furniture on the floor
    floor_idx = on_face[FLOOR_FACE]
    fx, fz = hit[floor_idx, 0], hit[floor_idx, 2]
    for b in boxes:
        dx = np.maximum(np.maximum(b.lo[0] - fx, fx - b.hi[0]), 0)
        dz = np.maximum(np.maximum(b.lo[2] - fz, fz - b.hi[2]), 0)
        near = (dx < 0.25) & (dz < 0.25)
        shadow = 0.6 + 0.4 * np.minimum(np.hypot(dx[near], dz[near]) / 0.25, 1)
        light_term[floor_idx[near]] *= shadow
    # furniture in front of the room surfaces (tested only inside its projected bounds)
    t_best = t.copy()
    with np.errstate(divide="ignore"):
        inv_dirs = 1.0 / dirs
    for b in boxes:
        idx = _pixels_covering(cam, b.lo, b.hi, image_size)
        if idx.size == 0:
            continue
        hit_here, tb, ax = _raycast_box(cam.position, inv_dirs[idx], b.lo, b.hi, t_best[idx])
        if tb.size == 0:
            continue
        sel = idx[hit_here]
        d = dirs[sel]
        t_best[sel] = tb
        p = cam.position + tb[:, None] * d
        rows = np.arange(len(ax))
        n = np.zeros((len(ax), 3))
        n[rows, ax] = -np.sign(d[rows, ax])
        bu = np.where(ax == 0, p[:, 2], p[:, 0])
        bv = np.where(ax == 1, p[:, 2], p[:, 1])
        rgb[sel] = b.material.colors(bu, bv)
        light_term[sel] = _lighting(p, n, light, ambient) * np.where(ax == 1, 1.05, 0.9)
        clutter[sel] = True

    img = rgb * light_term[:, None] * exposure * tint
    img = img.reshape(h, w, 3)
    img = gaussian_filter(img, sigma=(0.6, 0.6, 0))
    img = img + rng.normal(0, rng.uniform(0.008, 0.02), img.shape)
    image = np.clip(np.round(img * 255), 0, 255).astype(np.uint8)

    label_of_face = np.zeros(6, dtype=np.uint8)
    for f, lab in face_label.items():
        label_of_face[f] = lab
    segmentation = label_of_face[face].reshape(h, w)
    return image, segmentation, clutter.reshape(h, w)


# ------------------------------------------------------------------ public API

def _check_args(image_size, clutter, texture_set):
    if clutter not in CLUTTER_LEVELS:
        raise UserError(f"clutter={clutter!r}: expected one of {list(CLUTTER_LEVELS)}")
    if texture_set not in TEXTURE_SETS:
        raise UserError(f"texture_set={texture_set!r}: expected one of {list(TEXTURE_SETS)}")
    try:
        h, w = (int(x) for x in image_size)
    except (TypeError, ValueError):
        raise UserError(f"image_size={image_size!r}: expected (H, W)") from None
    if h < 32 or w < 32:
        raise UserError(f"image_size={image_size!r}: expected H and W of at least 32 pixels")
    return h, w


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise UserError(f"seed={seed!r}: expected a non-negative integer")
    return int(seed)


def generate_one(seed: int, index: int, image_size=(128, 128), clutter: str = "normal",
                 texture_set: str = "train", name: str | None = None) -> LayoutSample:
    """Image ``index`` of the stream ``seed`` (see :func:`generate`)."""
    h, w = _check_args(image_size, clutter, texture_set)
    seed = _check_seed(seed)
    geometry_rng = np.random.default_rng([seed, index, 0])
    looks_rng = np.random.default_rng([seed, index, 1, TEXTURE_SETS.index(texture_set)])
    clutter_rng = np.random.default_rng([seed, index, 2, CLUTTER_LEVELS.index(clutter)])
    for _ in range(MAX_TRIES):
        cam, lo, hi, view = sample_view(geometry_rng, (h, w))
        rendered = _render(looks_rng, cam, lo, hi, (h, w), view.face_label, clutter,
                           texture_set, clutter_rng)
        if rendered is not None:
            break
    else:  # pragma: no cover - would need MAX_TRIES slivers in a row
        raise RuntimeError(f"no valid room view at {(h, w)}")
    image, seg, clutter_mask = rendered
    return LayoutSample(name=name or f"synth_{seed}_{index:06d}", image=image,
                        segmentation=seg, room_type=view.room_type,
                        keypoints=view.keypoints, scene="synthetic", clutter=clutter_mask)


def generate(n: int, seed: int, image_size=(128, 128), clutter: str = "normal",
             texture_set: str = "train", name_prefix: str = "synth_") -> list[LayoutSample]:
    """``n`` rendered rooms (:class:`LayoutSample`, room type, LSUN keypoints, semantic
    segmentation, clutter mask).  Deterministic in (seed, index): the same arguments
    give identical samples.  clutter: "none" | "normal" | "heavy"; texture_set:
    "train" | "unseen"."""
    if int(n) < 0:
        raise UserError(f"n={n!r}: expected a non-negative number of images")
    return [generate_one(seed, i, image_size, clutter, texture_set,
                         name=f"{name_prefix}{i:06d}") for i in range(int(n))]


def write_synthetic_dataset(root, n_train: int, n_test: int, n_test_hard: int, seed: int,
                            image_size=(128, 128), image_format: str = "png") -> dict[str, Path]:
    """Write train / test / test-hard splits in LSUN's format under ``root`` (index files
    training.mat, testing.mat, testing_hard.mat; images/, layout_seg/, clutter_seg/).

    train and test: normal clutter, train textures; test-hard: heavy clutter and unseen
    textures.  The three splits use independent streams derived from ``seed``.
    image_format "png" (default) keeps images lossless; "jpg" is what LSUN tools expect."""
    _check_seed(seed)
    seeds = [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(3)]
    plan = {"train": (n_train, seeds[0], "normal", "train", "train_"),
            "test": (n_test, seeds[1], "normal", "train", "test_"),
            "test-hard": (n_test_hard, seeds[2], "heavy", "unseen", "testhard_")}
    out = {}
    for split, (n, s, clutter, textures, prefix) in plan.items():
        samples = generate(n, s, image_size, clutter, textures, name_prefix=prefix)
        out[split] = write_lsun(root, split, samples, image_format=image_format)
    return out
