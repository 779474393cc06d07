"""Procedural rooms: ground truth consistent with LSUN conventions, determinism, clutter."""

import numpy as np
import pytest

from robench.errors import UserError
from robench.tasks.room_layout import synth
from robench.tasks.room_layout.formats import read_lsun, write_lsun
from robench.tasks.room_layout.metrics import corner_error, pixel_error
from robench.tasks.room_layout.room_types import (
    CEILING, FLOOR, FRONTAL, LEFT, N_KEYPOINTS, RIGHT, ROOM_TYPES, room_type_from_surfaces,
)

SIZES = [(64, 64), (48, 80), (80, 56)]


@pytest.fixture(scope="module")
def rooms():
    return {size: synth.generate(70, 7, size) for size in SIZES}


def labels_within(seg, x, y, radius):
    h, w = seg.shape
    ys, xs = np.mgrid[0:h, 0:w]
    return set(np.unique(seg[(xs - x) ** 2 + (ys - y) ** 2 <= radius ** 2]).tolist())


def test_all_room_types_are_generated(rooms):
    types = {s.room_type for samples in rooms.values() for s in samples}
    assert types == set(range(11))


def test_room_type_matches_visible_surfaces(rooms):
    for samples in rooms.values():
        for s in samples:
            visible = set(np.unique(s.segmentation).tolist())
            assert visible == set(ROOM_TYPES[s.room_type].surfaces), s.name
            assert room_type_from_surfaces(visible) == s.room_type
            assert s.keypoints.shape == (N_KEYPOINTS[s.room_type], 2)


def test_keypoints_lie_on_region_boundaries_or_the_border(rooms):
    """Inner corners touch their three surfaces and border points their two, within
    1.5 px; border points sit on the first/last pixel row or column."""
    for (h, w), samples in rooms.items():
        for s in samples:
            for k, (kp, (x, y)) in enumerate(zip(ROOM_TYPES[s.room_type].keypoints, s.keypoints)):
                near = labels_within(s.segmentation, x, y, 1.5)
                assert kp.surfaces <= near, (s.name, s.room_type, k, near)
                border_distance = min(x, y, w - 1 - x, h - 1 - y)
                if kp.is_corner:
                    assert border_distance > 1.0, (s.name, k)
                else:
                    assert abs(border_distance) < 1e-6, (s.name, k, x, y)


def test_lsun_orientation_conventions(rooms):
    """Left wall left of frontal left of right wall, ceiling above floor; type 0 points go
    top-left, bottom-left, bottom-right, top-right; 'left/right' and 'top/bottom' ends."""
    for samples in rooms.values():
        for s in samples:
            seg = s.segmentation
            rows, cols = np.indices(seg.shape)
            col = {lab: cols[seg == lab].mean() for lab in (LEFT, FRONTAL, RIGHT)
                   if (seg == lab).any()}
            xs = [col[lab] for lab in (LEFT, FRONTAL, RIGHT) if lab in col]
            assert xs == sorted(xs), s.name
            if (seg == CEILING).any() and (seg == FLOOR).any():
                assert rows[seg == CEILING].mean() < rows[seg == FLOOR].mean()
            kp = s.keypoints
            if s.room_type == 0:
                (x1, y1), (x3, y3), (x5, y5), (x7, y7) = kp[[0, 2, 4, 6]]
                assert y1 < y3 and y7 < y5 and x1 < x7 and x3 < x5, s.name
            if s.room_type in (6, 8, 9):
                assert kp[0, 0] < kp[1, 0]
            if s.room_type in (7, 10):
                assert kp[0, 1] < kp[1, 1]
            if s.room_type == 7:
                assert kp[2, 1] < kp[3, 1] and kp[0, 0] < kp[2, 0]


def test_same_seed_same_output_and_prefix_property():
    a = synth.generate(4, 123, (48, 48))
    b = synth.generate(6, 123, (48, 48))
    for x, y in zip(a, b):
        assert x.name == y.name and x.room_type == y.room_type
        np.testing.assert_array_equal(x.image, y.image)
        np.testing.assert_array_equal(x.segmentation, y.segmentation)
        np.testing.assert_array_equal(x.keypoints, y.keypoints)
        np.testing.assert_array_equal(x.clutter, y.clutter)
    c = synth.generate(4, 124, (48, 48))
    assert any(not np.array_equal(x.image, y.image) for x, y in zip(a, c))


def test_clutter_hides_pixels_but_not_the_ground_truth():
    normal = synth.generate(16, 5, (64, 64), clutter="normal")
    heavy = synth.generate(16, 5, (64, 64), clutter="heavy")
    empty = synth.generate(16, 5, (64, 64), clutter="none")
    for n, h, e in zip(normal, heavy, empty):
        # same room and camera: identical ground truth whatever the clutter
        np.testing.assert_array_equal(n.segmentation, h.segmentation)
        np.testing.assert_array_equal(n.keypoints, e.keypoints)
        assert not e.clutter.any()
    frac_normal = np.mean([s.clutter.mean() for s in normal])
    frac_heavy = np.mean([s.clutter.mean() for s in heavy])
    assert frac_heavy > frac_normal > 0
    # the clutter really changes the image where it is
    changed = [np.abs(h.image.astype(int) - e.image).sum(axis=2) > 30 for h, e in zip(heavy, empty)]
    inside = np.mean([c[h.clutter].mean() for c, h in zip(changed, heavy) if h.clutter.any()])
    assert inside > 0.5


def test_texture_sets_differ_and_images_are_valid():
    train = synth.generate(3, 9, (48, 64), texture_set="train")
    unseen = synth.generate(3, 9, (48, 64), texture_set="unseen")
    for a, b in zip(train, unseen):
        assert a.image.dtype == np.uint8 and a.image.shape == (48, 64, 3)
        assert a.image.std() > 3  # not a flat image
        np.testing.assert_array_equal(a.segmentation, b.segmentation)
        assert not np.array_equal(a.image, b.image)


def test_ground_truth_scores_perfectly_on_the_metrics(rooms):
    for s in rooms[(64, 64)][:10]:
        assert pixel_error(s.segmentation, s.segmentation) == 0.0
        assert corner_error(s.keypoints, s.keypoints, s.segmentation.shape) == 0.0


def test_round_trip_through_lsun_files(tmp_path):
    samples = synth.generate(5, 21, (40, 56), clutter="heavy")
    write_lsun(tmp_path, "train", samples, image_format="png")
    back = read_lsun(tmp_path, "train")
    assert [s.name for s in back] == [s.name for s in samples]
    for a, b in zip(samples, back):
        assert (a.room_type, a.scene) == (b.room_type, b.scene)
        np.testing.assert_array_equal(a.image, b.image)
        np.testing.assert_array_equal(a.segmentation, b.segmentation)
        np.testing.assert_array_equal(a.clutter, b.clutter)
        np.testing.assert_allclose(a.keypoints, b.keypoints, rtol=0, atol=1e-9)


def test_write_synthetic_dataset(tmp_path):
    paths = synth.write_synthetic_dataset(tmp_path, 3, 2, 2, seed=4, image_size=(40, 40))
    assert {p.name for p in paths.values()} == {"training.mat", "testing.mat", "testing_hard.mat"}
    train, test, hard = (read_lsun(tmp_path, s) for s in ("train", "test", "test-hard"))
    assert (len(train), len(test), len(hard)) == (3, 2, 2)
    assert len({s.name for s in train + test + hard}) == 7
    assert not np.array_equal(train[0].image, test[0].image)
    regenerated = synth.write_synthetic_dataset(tmp_path / "again", 3, 2, 2, seed=4,
                                                image_size=(40, 40))
    assert regenerated.keys() == paths.keys()
    np.testing.assert_array_equal(read_lsun(tmp_path / "again", "test-hard")[1].image,
                                  hard[1].image)


def test_bad_arguments_are_user_errors():
    with pytest.raises(UserError, match="clutter"):
        synth.generate(1, 0, clutter="lots")
    with pytest.raises(UserError, match="texture_set"):
        synth.generate(1, 0, texture_set="val")
    with pytest.raises(UserError, match="image_size"):
        synth.generate(1, 0, image_size=(8, 8))
    with pytest.raises(UserError, match="seed"):
        synth.generate(1, -3)
