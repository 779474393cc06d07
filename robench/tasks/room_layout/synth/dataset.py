"""The public API of the room generator: :func:`generate` rooms as
:class:`~robench.tasks.room_layout.formats.LayoutSample` lists, and
:func:`write_synthetic_dataset` (train / test / test-hard in LSUN's format)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from robench.errors import UserError
from robench.tasks.room_layout.formats import LayoutSample, write_lsun
from robench.tasks.room_layout.synth.appearance import render
from robench.tasks.room_layout.synth.cameras import MAX_TRIES, sample_view

CLUTTER_LEVELS = ("none", "normal", "heavy")
TEXTURE_SETS = ("train", "unseen")


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
        rendered = render(looks_rng, cam, lo, hi, (h, w), view.face_label, clutter,
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
