"""``restoration_spectrum`` on whole images (eval_size=full): a folder of PNGs of different,
non-square sizes scored image by image as scikit-image scores each one (the SR convention:
border crop and BT.601 Y), re-scored by ``verify``, and its parameters refused in one line."""

import math
import subprocess

import imageio.v3 as iio
import numpy as np
import pytest
import torch
import yaml
from scipy import ndimage

from robench import api
from robench.errors import UserError
from robench.tasks.base import RunContext
from robench.tasks.restoration_spectrum import data
from robench.tasks.restoration_spectrum.metrics import format_level
from robench.tasks.restoration_spectrum.task import RestorationSpectrumTask
from tests.conftest import robench_cmd

TINY = {"image_size": 16, "width": 4, "n_train": 16, "train_steps": 3, "finetune_steps": 2, "batch_size": 4}
SIZES = [(37, 50), (41, 29), (24, 61)]  # (height, width): none square, none a multiple of 4 on both sides

pytestmark = pytest.mark.usefixtures("one_thread")


def write_folder(folder, sizes=SIZES, seed=0):
    """Smooth RGB images (a restoration has something to restore), one PNG each."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for n, (h, w) in enumerate(sizes):
        image = ndimage.gaussian_filter(rng.random((h, w, 3)), sigma=(2, 2, 0))
        image = (image - image.min()) / (image.max() - image.min())
        iio.imwrite(folder / f"img{n}.png", np.rint(image * 255).astype(np.uint8))
    return folder


def _method(name, **params):
    from robench import registry
    registry.load_builtins()
    return registry.methods.get(name, task="restoration_spectrum")(**params)


def skimage_scores(truth, restored, k):
    """PSNR, SSIM (RGB, whole image) and PSNR-Y, SSIM-Y (BT.601 luma in [16, 235], ``k`` border
    pixels removed) of two uint8 (H, W, 3) images, by scikit-image alone."""
    from skimage.color import rgb2ycbcr
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    ssim_kw = {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False, "data_range": 255}
    y_truth = rgb2ycbcr(truth)[k:-k, k:-k, 0]
    y_restored = rgb2ycbcr(restored)[k:-k, k:-k, 0]
    return (peak_signal_noise_ratio(truth, restored, data_range=255),
            structural_similarity(truth, restored, channel_axis=-1, **ssim_kw),
            peak_signal_noise_ratio(y_truth, y_restored, data_range=255),
            structural_similarity(y_truth, y_restored, **ssim_kw))


@pytest.fixture(scope="module")
def whole_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("whole")
    root = write_folder(tmp / "images")
    params = {**TINY, "family": "super_resolution", "train_level": 2, "test_levels": [2, 3], "dataset": "folder",
              "root": str(root), "eval_size": "full", "y_channel": True, "crop_border": 2}
    task = RestorationSpectrumTask(**params)
    result = task.run(_method("base"), 0, RunContext(tmp / "art", tmp / "cache"))
    return task, result, root, tmp


def test_whole_images_are_scored_one_by_one_as_scikit_image_scores_them(whole_run):
    task, result, root, tmp = whole_run
    files = sorted(root.glob("*.png"))
    truths = [iio.imread(f) for f in files]  # the images as the files hold them, whole
    with np.load(tmp / "art" / result.artifacts["restored"], allow_pickle=False) as npz:
        sizes = npz["sizes"]
        assert sizes.tolist() == [list(t.shape[:2]) for t in truths]
        assert npz["ground_truth"].shape == (3, max(h for h, _ in SIZES), max(w for _, w in SIZES), 3)
        for i, level in enumerate(npz["levels"]):
            stored = npz[f"restored_{i}"]
            restored = [stored[n, :h, :w] for n, (h, w) in enumerate(sizes)]
            assert not stored[0, sizes[0][0]:].any()  # zero padding outside the image
            ours = np.array([skimage_scores(t, r, 2) for t, r in zip(truths, restored)])  # (images, 4)
            name = format_level(level)
            expected = ours.mean(axis=0)
            assert result.metrics[f"psnr@{name}"] == pytest.approx(expected[0], abs=1e-6)
            assert result.metrics[f"ssim@{name}"] == pytest.approx(expected[1], abs=1e-6)
            assert result.metrics[f"psnr_y@{name}"] == pytest.approx(expected[2], abs=1e-6)
            assert result.metrics[f"ssim_y@{name}"] == pytest.approx(expected[3], abs=1e-6)
            assert len(set(np.round(ours[:, 0], 6))) == 3  # one value per image, not one for the folder
            assert (tmp / "art" / f"restored@{name}.png").stat().st_size > 0
    # the networks trained on 16-px crops ran on each whole image: the base network is not bicubic
    bicubic = task.run(_method("bicubic"), 0, RunContext(tmp / "bicubic", tmp / "cache")).metrics
    assert bicubic["psnr@2"] != result.metrics["psnr@2"]
    assert math.isfinite(result.metrics["psnr_base_offtrain_mean"])


def test_verify_rescores_a_whole_image_run(whole_run):
    task, result, _, tmp = whole_run
    rescored = task.rescore(tmp / "art", 0, RunContext(tmp / "rescore", tmp / "cache"))
    assert set(rescored) == set(result.metrics) - {"recovery"}
    for name, value in rescored.items():
        assert value == pytest.approx(result.metrics[name], abs=1e-12), name
    folder = tmp / "cropped-artifact"
    folder.mkdir()
    with np.load(tmp / "art" / "restored.npz", allow_pickle=False) as npz:
        arrays = dict(npz)
    np.savez(folder / "restored.npz", **{**arrays, "restored_1": arrays["restored_1"][:, :-1]})
    with pytest.raises(UserError, match="restored_1 is uint8") as err:
        task.rescore(folder, 0, RunContext(tmp / "rescore", tmp / "cache"))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("family,levels,method", [("inpainting", [4, 6], "dlnet"),
                                                  ("interpolation", [0.3, 0.6], "base+paste")])
def test_context_encoder_networks_restore_whole_images_of_any_size(tmp_path, family, levels, method):
    root = write_folder(tmp_path / "images", sizes=[(37, 50), (41, 29)])
    task = RestorationSpectrumTask(**TINY, family=family, train_level=levels[1], test_levels=levels,
                                   dataset="folder", root=str(root), eval_size="full")
    params = {"steps": 2} if method == "dlnet" else {}
    result = task.run(_method(method, **params), 0, RunContext(tmp_path / "art", tmp_path / "cache"))
    assert all(math.isfinite(result.metrics[f"psnr@{format_level(lv)}"]) for lv in levels)
    # each whole image its own observation: interpolation masks differ between same-size images
    x = torch.rand(1, 3, 20, 24)
    first, second = task.degrade(x, levels[0], batch=0), task.degrade(x, levels[0], batch=1)
    assert first.level == second.level
    if family == "interpolation":
        assert not torch.equal(first.mask, second.mask)


def unpadded_features(net, x):
    """The context encoder's features as written before whole images (sides multiples of 4)."""
    F = torch.nn.functional
    e1 = F.relu(net.enc1(x))
    e2 = F.relu(net.enc2(e1))
    m = F.relu(net.mid2(F.relu(net.mid1(F.relu(net.enc3(e2))))))
    d2 = F.relu(net.dec2(torch.cat([F.interpolate(m, scale_factor=2.0, mode="nearest"), e2], 1)))
    return F.relu(net.dec1(torch.cat([F.interpolate(d2, scale_factor=2.0, mode="nearest"), e1], 1)))


def test_context_encoder_pads_odd_sizes_and_leaves_multiples_of_4_alone():
    from robench.tasks.restoration_spectrum.architectures import ContextEncoder

    torch.manual_seed(0)
    net = ContextEncoder(4).eval()
    with torch.no_grad():
        y = torch.rand(2, 3, 24, 32)
        assert torch.equal(net.features(y), unpadded_features(net, y))
        x = torch.rand(2, 3, 41, 29)
        padded = torch.nn.functional.pad(x, (0, 3, 0, 3), mode="replicate")  # 44 x 32
        assert torch.equal(net.features(x), unpadded_features(net, padded)[..., :41, :29])
        assert net(x).shape == x.shape


def test_bundled_whole_images_are_the_held_out_images_center_cropped(tmp_path):
    task = RestorationSpectrumTask(**TINY, family="super_resolution", train_level=2, test_levels=[2],
                                   eval_size="full", max_side=48)
    result = task.run(_method("bicubic"), 0, RunContext(tmp_path / "art", tmp_path / "cache"))
    with np.load(tmp_path / "art" / "restored.npz", allow_pickle=False) as npz:
        truth, sizes = npz["ground_truth"], npz["sizes"]
    sources = [data._try_load(name) for name in data.test_sources()]
    assert sizes.tolist() == [[min(48, s.shape[0]), min(48, s.shape[1])] for s in sources]
    for image, source, (h, w) in zip(truth, sources, sizes):
        top, left = (source.shape[0] - h) // 2, (source.shape[1] - w) // 2
        np.testing.assert_array_equal(image[:h, :w], np.rint(source[top:top + h, left:left + w] * 255))
    assert math.isfinite(result.metrics["psnr_mean"])


def test_whole_image_options_leave_existing_run_ids_alone():
    from robench.spec import expand, parse_suite

    def ids(params):
        suite = {"suite": "x", "tasks": [{"task": "restoration_spectrum", "params": params,
                                          "methods": [{"name": "bicubic"}]}]}
        return [s.id for s in expand(parse_suite(suite))]

    plain = ids({"family": "super_resolution"})
    assert ids({"family": "super_resolution", "eval_size": "crop", "max_side": 512}) == plain
    assert ids({"family": "super_resolution", "eval_size": "full"}) != plain


# ---------------------------------------------------------------- bad input: one line

def suite_file(tmp_path, params):
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump({"suite": "whole", "seeds": [0], "tasks": [
        {"task": "restoration_spectrum", "params": params, "methods": [{"name": "bicubic"}]}]}))
    return path


@pytest.mark.parametrize("params,expected", [
    ({"eval_size": "full", "max_side": 1024}, "max_side"),
    ({"eval_size": "whole"}, "eval_size"),
    ({"max_side": 256}, "max_side applies to eval_size=full"),
    ({"eval_size": "full", "image_size": 64, "max_side": 48}, "below image_size"),
    ({"eval_size": "full", "folder_mode": "tile"}, "folder_mode applies to eval_size=crop"),
    ({"eval_size": "full", "n_test_per_image": 4}, "n_test_per_image applies to eval_size=crop"),
])
def test_bad_whole_image_params_are_one_line_at_validate(tmp_path, params, expected):
    with pytest.raises(UserError) as err:
        api.validate(suite_file(tmp_path, {"family": "super_resolution", **params}))
    assert expected in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("size,params", [((40, 600), {}), ((200, 100), {"max_side": 128}),
                                         ((12, 40), {})])
def test_a_folder_image_outside_the_sides_is_refused_at_validate(tmp_path, size, params):
    root = write_folder(tmp_path / "images", sizes=[(30, 40), size])
    path = suite_file(tmp_path, {"family": "super_resolution", "dataset": "folder", "root": str(root),
                                 "eval_size": "full", "image_size": 16, **params})
    with pytest.raises(UserError) as err:
        api.validate(path)
    message = str(err.value)
    assert "img1.png is" in message and f"{size[1]}x{size[0]}" in message and "\n" not in message
    api.validate(suite_file(tmp_path, {"family": "super_resolution", "dataset": "folder", "root": str(root)}))
    with pytest.raises(UserError, match="img1.png") as err:  # the loader says the same when run directly
        data.whole_images(root, 16, params.get("max_side", 512))
    assert "\n" not in str(err.value)


def test_robench_validate_prints_one_line_without_traceback(tmp_path, cli_env):
    path = suite_file(tmp_path, {"family": "super_resolution", "eval_size": "full", "max_side": 1024})
    out = subprocess.run(robench_cmd("validate", path), capture_output=True, text=True, env=cli_env, timeout=120)
    assert out.returncode != 0
    assert "max_side" in out.stderr + out.stdout and "Traceback" not in out.stderr
