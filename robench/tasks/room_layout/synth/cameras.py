"""The camera prior of the synthetic rooms: per target room type, where the camera stands,
where it looks and its field of view and pitch (:func:`sample_view`)."""

from __future__ import annotations

import numpy as np

from robench.tasks.room_layout.room_types import ROOM_TYPES
from robench.tasks.room_layout.synth.geometry import Camera, analyze_view

MAX_TRIES = 400  # camera draws per image before giving up (never reached in practice)


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

