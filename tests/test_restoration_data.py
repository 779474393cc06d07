"""Embedded restoration data (training patches, held-out test crops) and the folder loader."""

import hashlib
import warnings

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from robench.errors import UserError
from robench.tasks.restoration_spectrum import data


def check_images(t, n, size):
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float32
    assert t.shape == (n, 3, size, size)
    assert t.min() >= 0 and t.max() <= 1


def test_training_patches_shape_range_and_determinism():
    a = data.training_patches(64, 32, seed=0)
    check_images(a, 64, 32)
    assert torch.equal(a, data.training_patches(64, 32, seed=0))
    assert not torch.equal(a, data.training_patches(64, 32, seed=1))
    assert a.std(dim=(1, 2, 3)).min() > 0  # no empty patches
    check_images(data.training_patches(3, 64, seed=5, augment=False), 3, 64)
    assert data.training_patches(0, 16).shape == (0, 3, 16, 16)


def test_training_patches_come_from_the_training_images():
    patch = data.training_patches(1, 24, seed=3, augment=False)[0].permute(1, 2, 0).numpy()
    found = False
    for name in data.training_sources():
        image = data._try_load(name)
        hits = np.argwhere(np.all(image == patch[0, 0], axis=2))  # candidate top-left corners
        for top, left in hits:
            window = image[top:top + 24, left:left + 24]
            if window.shape == patch.shape and np.array_equal(window, patch):
                found = True
    assert found


def test_test_set_shape_range_and_determinism():
    sources = data.test_sources()
    t = data.test_set(64, 4)
    check_images(t, 4 * len(sources), 64)
    assert torch.equal(t, data.test_set(64, 4, seed=0))
    assert not torch.equal(t, data.test_set(64, 4, seed=1))
    flat = t.flatten(1)
    assert len(torch.unique(flat, dim=0)) == len(t)  # distinct tiles


def source_hashes(names):
    return {hashlib.sha256(data._try_load(name).tobytes()).hexdigest(): name for name in names}


def test_train_and_test_sources_are_disjoint():
    train, test = data.training_sources(), data.test_sources()
    assert set(train).isdisjoint(test)
    assert set(data.TRAIN_IMAGES + data.TRAIN_FALLBACK_IMAGES).isdisjoint(data.TEST_IMAGES)
    # by content too: skimage.data.cat is chelsea under another name
    assert set(source_hashes(train)).isdisjoint(source_hashes(test))
    assert len(source_hashes(train)) == len(train) and len(source_hashes(test)) == len(test)
    assert "sklearn:china" in test and "sklearn:flower" in test


def test_missing_training_images_fall_back_with_a_warning(monkeypatch):
    real = data._try_load
    missing = {"skimage:retina", "skimage:hubble_deep_field"}
    monkeypatch.setattr(data, "_try_load", lambda name: None if name in missing else real(name))
    with pytest.warns(UserWarning, match="retina"):
        used = data.training_sources()
    assert len(used) == len(data.TRAIN_IMAGES) and not missing & set(used)
    assert used[-2:] == data.TRAIN_FALLBACK_IMAGES[:2]
    monkeypatch.setattr(data, "_try_load", lambda name: None)
    with pytest.raises(UserError, match="training images"), pytest.warns(UserWarning):
        data.training_sources()


@pytest.mark.parametrize("call, fragment", [
    (lambda: data.training_patches(-1, 32), "n="),
    (lambda: data.training_patches(4, 0), "size="),
    (lambda: data.training_patches(4, 1000), "exceeds"),
    (lambda: data.test_set(64, 10_000), "n_per_image"),
    (lambda: data.test_set(64, 0), "n_per_image"),
])
def test_bad_arguments_raise_user_error(call, fragment):
    with pytest.raises(UserError, match=fragment):
        call()


# ---------------------------------------------------------------- image folders

@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    gray = rng.integers(0, 256, (36, 36), dtype=np.uint8)
    deep = rng.integers(0, 65536, (32, 34), dtype=np.uint16)  # 16-bit gray
    rgba = rng.integers(0, 256, (33, 33, 4), dtype=np.uint8)
    tiny = rng.integers(0, 256, (10, 10, 3), dtype=np.uint8)
    iio.imwrite(tmp_path / "a_rgb.png", rgb)
    iio.imwrite(tmp_path / "b_gray.png", gray)
    iio.imwrite(tmp_path / "c_deep.png", deep)
    iio.imwrite(tmp_path / "d_rgba.png", rgba)
    iio.imwrite(tmp_path / "e_tiny.png", tiny)
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "sub").mkdir()
    iio.imwrite(tmp_path / "sub" / "f.bmp", rgb[:32, :32])
    iio.imwrite(tmp_path / "sub" / "g.JPG", rgb, extension=".jpg")
    return tmp_path, {"rgb": rgb, "gray": gray, "deep": deep, "rgba": rgba}


def test_image_folder_center_crops(folder):
    root, arrays = folder
    with pytest.warns(UserWarning, match="e_tiny.png"):
        crops = data.image_folder(root, 32)
    check_images(crops, 4, 32)  # a, b, c, d; e too small, sub/ not searched
    rgb = arrays["rgb"][4:36, 9:41].astype(np.float32) / 255
    np.testing.assert_array_equal(crops[0].permute(1, 2, 0).numpy(), rgb)
    gray = arrays["gray"][2:34, 2:34].astype(np.float32) / 255
    for channel in range(3):
        np.testing.assert_array_equal(crops[1, channel].numpy(), gray)
    deep = arrays["deep"][:, 1:33].astype(np.float32) / 65535
    np.testing.assert_allclose(crops[2, 1].numpy(), deep, atol=1e-7)
    rgba = arrays["rgba"][0:32, 0:32, :3].astype(np.float32) / 255
    np.testing.assert_array_equal(crops[3].permute(1, 2, 0).numpy(), rgba)


def test_image_folder_tiles_recursive_and_max_images(folder):
    root, arrays = folder
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tiles = data.image_folder(root, 16, mode="tile")
        # 40x50 → 2x3, 36x36 → 2x2, 32x34 → 2x2, 33x33 → 2x2; the 10x10 one is too small
        assert tiles.shape == (6 + 4 + 4 + 4, 3, 16, 16)
        first = arrays["rgb"][4:20, 1:17].astype(np.float32) / 255
        np.testing.assert_array_equal(tiles[0].permute(1, 2, 0).numpy(), first)
        deeper = data.image_folder(root, 32, recursive=True)
        assert len(deeper) == 6  # + sub/f.bmp, sub/g.JPG
        assert len(data.image_folder(root, 32, max_images=2)) == 2


def test_image_folder_errors(tmp_path, folder):
    with pytest.raises(UserError, match="not a folder"):
        data.image_folder(tmp_path / "missing", 32)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.md").write_text("x")
    with pytest.raises(UserError, match="no png/jpg/jpeg/bmp images"):
        data.image_folder(empty, 32)
    root, _ = folder
    with pytest.raises(UserError, match="smaller than"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data.image_folder(root, 100)
    with pytest.raises(UserError, match="mode"):
        data.image_folder(root, 32, mode="random")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "x.png").write_bytes(b"not a png")
    with pytest.raises(UserError, match="cannot read") as info:
        data.image_folder(broken, 8)
    assert "\n" not in str(info.value)
