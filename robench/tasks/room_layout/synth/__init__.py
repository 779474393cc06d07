"""Procedurally rendered cuboid rooms with LSUN ground truth (robench's offline default).

A room is an axis-aligned box (x across, y up with the floor at 0, z ahead) seen from a
random camera inside it (room size, camera height, yaw, pitch, roll of at most 3 degrees,
horizontal field of view).  Every pixel's ray is cast to the room surface it leaves the
box through (:func:`.geometry.raycast_room`), which gives the segmentation; the LSUN
room type follows from the visible surfaces, and the keypoints from the projected room
corners and the projected room edges clipped to the image, in the orders of
:mod:`robench.tasks.room_layout.room_types`.

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

The package follows the generator's steps: :mod:`.geometry` (the room box, the camera, ray
casting and the check that a view is a clean instance of its type), :mod:`.cameras` (the
camera prior per target type), :mod:`.appearance` (textures, lighting, clutter, the
rendered image) and :mod:`.dataset` (the public API: :func:`generate`, and
:func:`write_synthetic_dataset` in LSUN's format).
"""

from robench.tasks.room_layout.synth.cameras import MAX_TRIES, sample_view
from robench.tasks.room_layout.synth.dataset import (
    CLUTTER_LEVELS, TEXTURE_SETS, generate, generate_one, write_synthetic_dataset,
)
from robench.tasks.room_layout.synth.geometry import (
    MIN_SURFACE_FRACTION, Camera, analyze_view, raycast_room,
)

__all__ = ["CLUTTER_LEVELS", "MAX_TRIES", "MIN_SURFACE_FRACTION", "TEXTURE_SETS", "Camera",
           "analyze_view", "generate", "generate_one", "raycast_room", "sample_view",
           "write_synthetic_dataset"]
