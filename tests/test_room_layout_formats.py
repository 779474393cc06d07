"""LSUN and Hedau readers/writers: round trips, hand-made files, clear errors."""

import numpy as np
import pytest
import scipy.io
from PIL import Image

from robench.errors import UserError
from robench.tasks.room_layout.formats import (
    LayoutSample, canonicalize_walls, read_hedau, read_lsun, write_hedau, write_lsun,
)
from robench.tasks.room_layout.room_types import CEILING, FLOOR, FRONTAL, LEFT, RIGHT


def room_seg(h=12, w=16):
    """A type-0-like layout: left | frontal | right walls, floor below, ceiling above."""
    seg = np.full((h, w), FRONTAL, np.uint8)
    seg[:, :4] = LEFT
    seg[:, 12:] = RIGHT
    seg[:3] = CEILING
    seg[9:] = FLOOR
    return seg


def sample(name, seed=0, h=12, w=16, room_type=0, k=8, labelled=True, clutter=False):
    rng = np.random.default_rng(seed)
    return LayoutSample(
        name=name, image=rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
        segmentation=room_seg(h, w) if labelled else None,
        room_type=room_type if labelled else -1,
        keypoints=rng.uniform(0, w - 1, (k if labelled else 0, 2)),
        scene="bedroom", clutter=(rng.random((h, w)) < 0.2) if clutter else None)


def assert_same(a, b, exact_image=True):
    assert a.name == b.name and a.scene == b.scene and a.room_type == b.room_type
    np.testing.assert_allclose(a.keypoints, b.keypoints, atol=1e-9)
    assert a.keypoints.shape == b.keypoints.shape
    if exact_image:
        np.testing.assert_array_equal(a.image, b.image)
    if a.segmentation is None:
        assert b.segmentation is None
    else:
        np.testing.assert_array_equal(a.segmentation, b.segmentation)
    if a.clutter is None:
        assert b.clutter is None
    else:
        np.testing.assert_array_equal(a.clutter, b.clutter)


# ------------------------------------------------------------------ LSUN

def test_lsun_round_trip_png_is_exact(tmp_path):
    train = [sample("r1", 1), sample("r2", 2, room_type=5, k=6, clutter=True)]
    val = [sample("v1", 3, h=10, w=14, room_type=9, k=2)]
    write_lsun(tmp_path, "train", train, image_format="png")
    write_lsun(tmp_path, "val", val, image_format="png")
    for written, read in zip(train, read_lsun(tmp_path, "train")):
        assert_same(written, read)
    (v,) = read_lsun(tmp_path, "validation")
    assert_same(val[0], v)
    assert read_lsun(tmp_path, "train", limit=1)[0].name == "r1"


def test_lsun_round_trip_jpg_is_close(tmp_path):
    s = sample("j1", 4)
    s.image = np.repeat(np.linspace(0, 255, 16, dtype=np.uint8)[None, :, None], 12, 0).repeat(3, 2)
    write_lsun(tmp_path, "train", [s])  # LSUN's own format: JPEG
    assert (tmp_path / "images" / "j1.jpg").is_file()
    (r,) = read_lsun(tmp_path, "train")
    assert_same(s, r, exact_image=False)
    assert np.abs(r.image.astype(int) - s.image).mean() < 3


def test_lsun_index_file_has_the_toolkits_layout(tmp_path):
    s = sample("t1", 5, room_type=4, k=4)
    write_lsun(tmp_path, "train", [s])
    m = scipy.io.loadmat(tmp_path / "training.mat")["training"]
    assert m.shape == (1, 1)
    assert m.dtype.names == ("image", "scene", "type", "point", "resolution")
    e = m[0, 0]  # indexed the way public loaders do (leVirve/lsun-room get_meta)
    assert e[0][0] == "t1" and e[1][0] == "bedroom" and e[2][0][0] == 4
    np.testing.assert_allclose(e[3], s.keypoints + 1)  # 1-based [x y]
    np.testing.assert_array_equal(e[4][0], [12, 16])  # [H W]
    layout = scipy.io.loadmat(tmp_path / "layout_seg" / "t1.mat")["layout"]
    assert layout.dtype == np.uint8
    np.testing.assert_array_equal(layout, s.segmentation)


def test_lsun_reads_hand_made_files(tmp_path):
    """Files built with scipy directly (not by write_lsun), as in the real release."""
    (tmp_path / "images").mkdir()
    (tmp_path / "layout_seg").mkdir()
    img = np.zeros((6, 9, 3), np.uint8)
    img[..., 0] = 200
    Image.fromarray(img[..., 0]).save(tmp_path / "images" / "hm.jpg")  # grey JPEG
    layout = np.ones((6, 9), np.uint8)
    layout[:, 5:] = 2
    scipy.io.savemat(tmp_path / "layout_seg" / "hm.mat", {"layout": layout})
    index = np.zeros((1, 1), dtype=[(f, object) for f in
                                    ("image", "scene", "type", "point", "resolution")])
    index[0, 0] = ("hm", "office", 10.0, np.array([[5.0, 1.0], [5.0, 6.0]]), np.array([6.0, 9.0]))
    scipy.io.savemat(tmp_path / "validation.mat", {"validation": index})
    (s,) = read_lsun(tmp_path, "val")
    assert s.image.shape == (6, 9, 3) and s.room_type == 10 and s.scene == "office"
    np.testing.assert_allclose(s.keypoints, [[4, 0], [4, 5]])
    np.testing.assert_array_equal(s.segmentation, layout)


def test_lsun_unlabelled_split(tmp_path):
    t = sample("u1", 6, labelled=False)
    write_lsun(tmp_path, "test", [t], image_format="png")
    (r,) = read_lsun(tmp_path, "test")
    assert r.room_type == -1 and r.segmentation is None and r.keypoints.shape == (0, 2)
    assert not (tmp_path / "layout_seg" / "u1.mat").exists()


def test_lsun_extra_split_name(tmp_path):
    write_lsun(tmp_path, "test-hard", [sample("h1", 7)], image_format="png")
    assert (tmp_path / "testing_hard.mat").is_file()
    assert read_lsun(tmp_path, "test-hard")[0].name == "h1"


def one_line_error(excinfo, *fragments):
    msg = str(excinfo.value)
    assert "\n" not in msg, msg
    for f in fragments:
        assert f in msg, msg


def test_lsun_errors_name_the_file_and_what_was_expected(tmp_path):
    with pytest.raises(UserError) as e:
        read_lsun(tmp_path, "train")
    one_line_error(e, "training.mat", "not found", "struct array")

    write_lsun(tmp_path, "train", [sample("e1", 8)], image_format="png")
    (tmp_path / "layout_seg" / "e1.mat").unlink()
    with pytest.raises(UserError) as e:
        read_lsun(tmp_path, "train")
    one_line_error(e, "e1.mat", "layout")

    scipy.io.savemat(tmp_path / "layout_seg" / "e1.mat", {"layout": np.ones((3, 3), np.uint8)})
    with pytest.raises(UserError) as e:
        read_lsun(tmp_path, "train")
    one_line_error(e, "e1.mat", "3x3", "12x16")

    (tmp_path / "images" / "e1.png").unlink()
    with pytest.raises(UserError) as e:
        read_lsun(tmp_path, "train")
    one_line_error(e, "e1.jpg", "not found", "training.mat")

    (tmp_path / "training.mat").write_bytes(b"not a mat file")
    with pytest.raises(UserError) as e:
        read_lsun(tmp_path, "train")
    one_line_error(e, "training.mat", "not a readable MATLAB")

    scipy.io.savemat(tmp_path / "training.mat", {"a": 1, "b": 2})
    with pytest.raises(UserError) as e:
        read_lsun(tmp_path, "train")
    one_line_error(e, "training.mat", "'training'")

    with pytest.raises(UserError) as e:
        read_lsun(tmp_path, "no such split!")
    one_line_error(e, "no such split!")


def test_lsun_resolution_mismatch_and_bad_samples(tmp_path):
    write_lsun(tmp_path, "train", [sample("m1", 9)], image_format="png")
    Image.fromarray(np.zeros((5, 5, 3), np.uint8)).save(tmp_path / "images" / "m1.png")
    with pytest.raises(UserError) as e:
        read_lsun(tmp_path, "train")
    one_line_error(e, "m1.png", "5x5", "[12 16]")

    bad = sample("m2", 10)
    bad.image = bad.image.astype(np.float32)
    with pytest.raises(UserError) as e:
        write_lsun(tmp_path, "val", [bad])
    one_line_error(e, "m2", "uint8")
    with pytest.raises(UserError):
        write_lsun(tmp_path, "val", [sample("d", 1), sample("d", 2)])


# ------------------------------------------------------------------ Hedau

def test_hedau_round_trip(tmp_path):
    train = [sample("img_b", 11), sample("img_a", 12)]
    test = [sample("img_c", 13, h=10, w=14)]
    write_hedau(tmp_path, train, test, image_format="png")
    ind = scipy.io.loadmat(tmp_path / "traintestind.mat")
    np.testing.assert_array_equal(ind["trainind"], [[2, 1]])  # 1-based, name order
    np.testing.assert_array_equal(ind["testind"], [[3]])
    fields = scipy.io.loadmat(tmp_path / "groundtruth" / "img_b_labels.mat")["fields"]
    assert fields[0, 6] == 5 and fields[11, 6] == 1 and fields[6, 0] == 4  # Hedau codes
    got = read_hedau(tmp_path, "train")
    assert [s.name for s in got] == ["img_b", "img_a"]
    for w, r in zip(train, got):
        np.testing.assert_array_equal(w.image, r.image)
        np.testing.assert_array_equal(w.segmentation, r.segmentation)
        assert r.room_type == 0 and r.keypoints.shape == (0, 2)
    assert read_hedau(tmp_path, "test")[0].segmentation.shape == (10, 14)


def test_hedau_hand_made_labels_are_mapped_and_walls_canonicalized(tmp_path):
    (tmp_path / "Images").mkdir()
    (tmp_path / "groundtruth").mkdir()
    Image.fromarray(np.zeros((4, 6, 3), np.uint8)).save(tmp_path / "Images" / "room.jpg")
    fields = np.array([[4, 4, 4, 2, 2, 2]] * 3 + [[1] * 6])  # left wall | middle wall, floor
    scipy.io.savemat(tmp_path / "groundtruth" / "room_labels.mat",
                     {"fields": fields, "labels": fields, "gtPolyg": np.zeros((1, 3))})
    scipy.io.savemat(tmp_path / "traintestind.mat", {"trainind": np.array([[1.0]]),
                                                     "testind": np.zeros((1, 0))})
    (s,) = read_hedau(tmp_path, "train")
    # two walls are named left/right (type 4: floor corner), floor stays floor
    np.testing.assert_array_equal(s.segmentation[0], [LEFT] * 3 + [RIGHT] * 3)
    assert (s.segmentation[3] == FLOOR).all() and s.room_type == 4
    assert read_hedau(tmp_path, "test") == []


def test_hedau_errors(tmp_path):
    with pytest.raises(UserError) as e:
        read_hedau(tmp_path, "train")
    one_line_error(e, "traintestind.mat", "not found")
    write_hedau(tmp_path, [sample("x1", 1)], [], image_format="png")
    scipy.io.savemat(tmp_path / "traintestind.mat", {"trainind": np.array([[1.0, 5.0]]),
                                                     "testind": np.zeros((1, 0))})
    with pytest.raises(UserError) as e:
        read_hedau(tmp_path, "train")
    one_line_error(e, "traintestind.mat", "image 5", "1 images")
    scipy.io.savemat(tmp_path / "traintestind.mat", {"trainind": np.array([[1.0]]),
                                                     "testind": np.zeros((1, 0))})
    (tmp_path / "groundtruth" / "x1_labels.mat").unlink()
    with pytest.raises(UserError) as e:
        read_hedau(tmp_path, "train")
    one_line_error(e, "x1_labels.mat", "not found")
    with pytest.raises(UserError):
        read_hedau(tmp_path, "validation-ish")


def test_canonicalize_walls():
    seg = room_seg()
    np.testing.assert_array_equal(canonicalize_walls(seg), seg)
    only_frontal_and_right = seg.copy()
    only_frontal_and_right[only_frontal_and_right == LEFT] = FRONTAL
    out = canonicalize_walls(only_frontal_and_right)
    assert set(np.unique(out)) == {LEFT, RIGHT, FLOOR, CEILING}
