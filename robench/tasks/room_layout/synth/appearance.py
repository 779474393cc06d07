"""Appearance of a synthetic room: procedural textures, lighting, clutter (furniture
boxes and rectangles on the surfaces), blur and sensor noise (:func:`render`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

from robench.tasks.room_layout.synth.geometry import (
    CEILING_FACE, FLOOR_FACE, WALL_CYCLE, Camera, raycast_room, room_corners,
)

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
    corners = room_corners(lo, hi)
    if np.any(cam.depth(corners) <= 1e-3):
        return np.arange(h * w)
    p = cam.project(corners)
    x0, x1 = max(0, int(np.floor(p[:, 0].min()))), min(w - 1, int(np.ceil(p[:, 0].max())))
    y0, y1 = max(0, int(np.floor(p[:, 1].min()))), min(h - 1, int(np.ceil(p[:, 1].max())))
    if x0 > x1 or y0 > y1:
        return np.zeros(0, dtype=np.int64)
    return (np.arange(y0, y1 + 1)[:, None] * w + np.arange(x0, x1 + 1)[None, :]).ravel()


def render(rng, cam, lo, hi, image_size, face_label, level, texture_set, clutter_rng):
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
