"""Batched torch PSNR/SSIM against scikit-image, image by image."""

import math

import numpy as np
import pytest
import torch
from skimage import data as skdata
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from robench.errors import UserError
from robench.metrics.image import PSNR_MAX_DB, psnr, ssim

PSNR_TOL_DB = 1e-6
SSIM_TOL = 1e-12  # the CPU path filters in float64: scikit-image's float64 value to rounding


def reference(x, y, data_range):
    """scikit-image per image on float64 (N, C, H, W) arrays: (psnr, ssim) lists."""
    psnrs, ssims = [], []
    for a, b in zip(np.asarray(x, np.float64), np.asarray(y, np.float64)):
        psnrs.append(peak_signal_noise_ratio(a, b, data_range=data_range))
        if a.shape[0] == 1:
            s = structural_similarity(a[0], b[0], data_range=data_range, gaussian_weights=True,
                                      sigma=1.5, use_sample_covariance=False)
        else:
            s = structural_similarity(a.transpose(1, 2, 0), b.transpose(1, 2, 0), channel_axis=-1,
                                      data_range=data_range, gaussian_weights=True, sigma=1.5,
                                      use_sample_covariance=False)
        ssims.append(s)
    return np.array(psnrs), np.array(ssims)


def check_against_skimage(x, y, data_range, **conventions):
    ours_psnr = psnr(torch.as_tensor(x), torch.as_tensor(y), data_range=data_range, **conventions)
    ours_ssim = ssim(torch.as_tensor(x), torch.as_tensor(y), data_range=data_range, **conventions)
    assert ours_psnr.shape == (len(x),) and ours_ssim.shape == (len(x),)
    ref_psnr, ref_ssim = reference(x, y, data_range)
    np.testing.assert_allclose(ours_psnr.numpy(), ref_psnr, rtol=0, atol=PSNR_TOL_DB)
    np.testing.assert_allclose(ours_ssim.numpy(), ref_ssim, rtol=0, atol=SSIM_TOL)


def noisy(x, sigma, data_range, rng):
    return np.clip(x + sigma * data_range * rng.standard_normal(x.shape), 0, data_range)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("data_range", [1.0, 255.0, 2.0])
def test_random_images_match_skimage(channels, data_range):
    rng = np.random.default_rng(channels * 1000 + int(data_range))
    x = rng.random((5, channels, 37, 52)) * data_range
    y = noisy(x, 0.1, data_range, rng)
    check_against_skimage(x, y, data_range)


def test_float32_inputs_match_skimage_on_the_same_values():
    rng = np.random.default_rng(1)
    x = rng.random((4, 3, 32, 32)).astype(np.float32)
    y = noisy(x, 0.05, 1.0, rng).astype(np.float32)
    check_against_skimage(x, y, 1.0)


@pytest.mark.parametrize("data_range", [1.0, 255.0])
def test_float32_stress_case_high_contrast_flat_blocks(data_range):
    """Piecewise-flat black/white blocks with faint noise, where E[x²] − E[x]² and the
    luminance term cancel hardest (float32 inputs)."""
    rng = np.random.default_rng(8)
    blocks = rng.choice([0.0, 1.0, 0.02, 0.98], size=(6, 3, 8, 8))
    x = np.kron(blocks, np.ones((1, 1, 8, 8))) * data_range
    for sigma in (1e-3, 1e-2, 0.3):
        y = noisy(x, sigma, data_range, rng)
        x32, y32 = x.astype(np.float32), y.astype(np.float32)
        check_against_skimage(x32, y32, data_range)
        check_against_skimage(np.roll(x32, 3, axis=-1), np.roll(y32, 3, axis=-1), data_range)


def real_crops():
    astronaut = skdata.astronaut().astype(np.float64) / 255.0  # (512, 512, 3)
    camera = skdata.camera().astype(np.float64) / 255.0  # (512, 512)
    rgb = np.stack([astronaut[r:r + 64, c:c + 80].transpose(2, 0, 1)
                    for r, c in [(0, 0), (100, 200), (300, 150), (440, 420)]])
    gray = np.stack([camera[None, r:r + 96, c:c + 64] for r, c in [(0, 0), (200, 250), (400, 300)]])
    return rgb, gray


@pytest.mark.parametrize("sigma", [0.01, 0.05, 0.2])
def test_real_images_match_skimage(sigma):
    rng = np.random.default_rng(int(sigma * 100))
    rgb, gray = real_crops()
    for images in (rgb, gray):
        check_against_skimage(images, noisy(images, sigma, 1.0, rng), 1.0)
        scaled = images * 255.0
        check_against_skimage(scaled, noisy(scaled, sigma, 255.0, rng), 255.0)


def test_exact_reconstruction_is_finite_and_capped():
    rgb, gray = real_crops()
    for images, data_range in ((rgb, 1.0), (gray * 255.0, 255.0)):
        x = torch.as_tensor(images)
        value = psnr(x, x.clone(), data_range=data_range)
        assert torch.isfinite(value).all()
        assert torch.allclose(value, torch.full_like(value, PSNR_MAX_DB))
        assert torch.allclose(ssim(x, x.clone(), data_range=data_range), torch.ones(len(x), dtype=torch.float64))
    assert PSNR_MAX_DB == pytest.approx(100.0)


def test_crop_border_matches_skimage_on_cropped_images():
    rng = np.random.default_rng(3)
    rgb, _ = real_crops()
    y = noisy(rgb, 0.05, 1.0, rng)
    k = 4
    ours_psnr = psnr(torch.as_tensor(rgb), torch.as_tensor(y), crop_border=k)
    ours_ssim = ssim(torch.as_tensor(rgb), torch.as_tensor(y), crop_border=k)
    ref_psnr, ref_ssim = reference(rgb[..., k:-k, k:-k], y[..., k:-k, k:-k], 1.0)
    np.testing.assert_allclose(ours_psnr.numpy(), ref_psnr, atol=PSNR_TOL_DB)
    np.testing.assert_allclose(ours_ssim.numpy(), ref_ssim, atol=SSIM_TOL)
    # Cropping really changes the number when the error sits at the border.
    z = rgb.copy()
    z[..., :k, :] = 0
    full = psnr(torch.as_tensor(rgb), torch.as_tensor(z))
    cropped = psnr(torch.as_tensor(rgb), torch.as_tensor(z), crop_border=k)
    assert (cropped == PSNR_MAX_DB).all() and (full < 40).all()


def bt601_y(images, data_range):
    """numpy BT.601 luma, BasicSR rgb2ycbcr(y_only=True): (N, 3, H, W) → (N, 1, H, W)."""
    unit = images / data_range
    y = (65.481 * unit[:, 0] + 128.553 * unit[:, 1] + 24.966 * unit[:, 2] + 16.0) / 255.0
    return (y * data_range)[:, None]


@pytest.mark.parametrize("data_range", [1.0, 255.0])
def test_y_channel_matches_bt601_then_skimage(data_range):
    rng = np.random.default_rng(4)
    rgb, _ = real_crops()
    x = rgb * data_range
    y = noisy(x, 0.05, data_range, rng)
    ours_psnr = psnr(torch.as_tensor(x), torch.as_tensor(y), data_range=data_range, y_channel=True)
    ours_ssim = ssim(torch.as_tensor(x), torch.as_tensor(y), data_range=data_range, y_channel=True)
    ref_psnr, ref_ssim = reference(bt601_y(x, data_range), bt601_y(y, data_range), data_range)
    np.testing.assert_allclose(ours_psnr.numpy(), ref_psnr, atol=PSNR_TOL_DB)
    np.testing.assert_allclose(ours_ssim.numpy(), ref_ssim, atol=SSIM_TOL)
    # Y of white and black are 235/255 and 16/255 of the range.
    white_y = bt601_y(np.full((1, 3, 1, 1), data_range), data_range)
    assert white_y.item() == pytest.approx(235.0 / 255.0 * data_range, abs=1e-3 * data_range)


def test_y_channel_with_crop_border_and_gray_passthrough():
    rng = np.random.default_rng(5)
    rgb, gray = real_crops()
    y = noisy(rgb, 0.05, 1.0, rng)
    ours = ssim(torch.as_tensor(rgb), torch.as_tensor(y), y_channel=True, crop_border=3)
    _, ref = reference(bt601_y(rgb, 1.0)[..., 3:-3, 3:-3], bt601_y(y, 1.0)[..., 3:-3, 3:-3], 1.0)
    np.testing.assert_allclose(ours.numpy(), ref, atol=SSIM_TOL)
    g = torch.as_tensor(gray)
    gn = torch.as_tensor(noisy(gray, 0.05, 1.0, rng))
    assert torch.equal(psnr(g, gn, y_channel=True), psnr(g, gn))


def test_values_do_not_depend_on_the_batch():
    rng = np.random.default_rng(6)
    x = torch.as_tensor(rng.random((6, 3, 24, 24)))
    y = torch.as_tensor(noisy(x.numpy(), 0.1, 1.0, rng))
    for metric in (psnr, ssim):
        whole = metric(x, y)
        alone = torch.cat([metric(x[i:i + 1], y[i:i + 1]) for i in range(len(x))])
        assert torch.allclose(whole, alone, rtol=0, atol=1e-12)


def test_metrics_are_pure_and_differentiable():
    rng = np.random.default_rng(7)
    x = torch.as_tensor(rng.random((2, 3, 16, 16)), dtype=torch.float32)
    y = x.clone().add_(0.1).clamp_(0, 1).requires_grad_(True)
    before = (x.clone(), y.detach().clone())
    (psnr(x, y).sum() + ssim(x, y).sum()).backward()
    assert y.grad is not None and torch.isfinite(y.grad).all() and y.grad.abs().sum() > 0
    assert torch.equal(x, before[0]) and torch.equal(y.detach(), before[1])


@pytest.mark.parametrize("call, fragment", [
    (lambda: psnr(torch.zeros(1, 3, 16, 16), torch.zeros(1, 3, 16, 15)), "shapes differ"),
    (lambda: psnr(torch.zeros(3, 16, 16), torch.zeros(3, 16, 16)), "4 dimensions"),
    (lambda: psnr(np.zeros((1, 3, 16, 16)), torch.zeros(1, 3, 16, 16)), "torch tensor"),
    (lambda: psnr(torch.zeros(1, 3, 16, 16), torch.zeros(1, 3, 16, 16), data_range=0), "data_range"),
    (lambda: ssim(torch.zeros(1, 3, 16, 16), torch.zeros(1, 3, 16, 16), data_range=-1.0), "data_range"),
    (lambda: ssim(torch.zeros(1, 3, 10, 40), torch.zeros(1, 3, 10, 40)), "at least 11x11"),
    (lambda: ssim(torch.zeros(1, 3, 16, 16), torch.zeros(1, 3, 16, 16), crop_border=3), "at least 11x11"),
    (lambda: psnr(torch.zeros(1, 3, 16, 16), torch.zeros(1, 3, 16, 16), crop_border=8), "crop_border"),
    (lambda: psnr(torch.zeros(1, 3, 16, 16), torch.zeros(1, 3, 16, 16), crop_border=-1), "crop_border"),
    (lambda: psnr(torch.zeros(1, 4, 16, 16), torch.zeros(1, 4, 16, 16), y_channel=True), "y_channel"),
])
def test_bad_input_is_one_clear_line(call, fragment):
    with pytest.raises(UserError) as info:
        call()
    message = str(info.value)
    assert fragment in message and "\n" not in message


def test_psnr_formula_on_a_constant_error():
    x = torch.zeros(1, 1, 8, 8, dtype=torch.float64)
    y = torch.full_like(x, 0.1)
    assert psnr(x, y).item() == pytest.approx(10 * math.log10(1 / 0.01), abs=1e-9)


# ---------------------------------------------------------------- the CPU kernel and the convolution paths

def conv_ssim(x, y, data_range=1.0, dtype=torch.float32):
    """SSIM by the convolution path (off the CPU, and for gradients), in ``dtype``."""
    from robench.metrics.image import _gaussian_taps, _ssim_chunk
    return _ssim_chunk(x, y, _gaussian_taps(x.device).to(dtype), 1.0 / data_range)


@pytest.mark.parametrize("shape", [(3, 3, 61, 83), (2, 1, 11, 40), (1, 3, 200, 37), (70, 3, 24, 24), (1, 2, 30, 300)])
def test_cpu_kernel_matches_skimage_at_any_size(shape):
    """Whole images of odd, non-square sizes (an odd number of output rows: the kernel does
    two at a time; 290 output columns: three strips of 96 and one of 2), the 11-pixel
    minimum and many small crops: the compiled CPU pass is scikit-image's float64 value to rounding, and so is the float64
    convolution path (a GPU's); the float32 one (gradients on the CPU) within 2e-6."""
    rng = np.random.default_rng(sum(shape))
    x = rng.random(shape)
    y = noisy(x, 0.05, 1.0, rng)
    _, ref_ssim = reference(x, y, 1.0)
    np.testing.assert_allclose(ssim(torch.as_tensor(x), torch.as_tensor(y)).numpy(), ref_ssim, rtol=0, atol=1e-12)
    for dtype, tol in ((torch.float32, 2e-6), (torch.float64, 1e-12)):
        np.testing.assert_allclose(conv_ssim(torch.as_tensor(x), torch.as_tensor(y), dtype=dtype).numpy(), ref_ssim,
                                   rtol=0, atol=tol)


@pytest.fixture
def pools(monkeypatch):
    """Threads for any amount of work (the kernels otherwise keep small batches on one
    thread), and a count of the thread pools the kernels start."""
    import concurrent.futures

    from robench.metrics import image_kernels

    started = []

    class Counted(concurrent.futures.ThreadPoolExecutor):
        def __init__(self, workers, *args, **kwargs):
            started.append(workers)
            super().__init__(workers, *args, **kwargs)
    monkeypatch.setattr(image_kernels, "MIN_ELEMENTS_PER_THREAD", 1)
    monkeypatch.setattr(concurrent.futures, "ThreadPoolExecutor", Counted)
    return started


@pytest.mark.parametrize("shape", [(1, 1, 300, 29), (2, 3, 120, 64), (1, 2, 11, 11)])
def test_cpu_kernel_gives_the_same_value_on_any_number_of_threads(shape, pools):
    """The work is cut into bands of output rows per plane (each re-reads its 10-row halo)
    and shared among threads: one grayscale image on 4 threads is cut in 4 bands; the
    value is the one-thread value to rounding."""
    from robench.metrics.image import SSIM_K1, SSIM_K2, _gaussian_taps
    from robench.metrics.image_kernels import ssim_planes

    rng = np.random.default_rng(len(shape) + shape[2])
    x = rng.random(shape)
    y = noisy(x, 0.1, 1.0, rng).astype(np.float32)
    planes_x, planes_y = x.reshape(-1, *shape[2:]), y.reshape(-1, *shape[2:])
    window = _gaussian_taps("cpu").numpy()
    one = ssim_planes(planes_x, planes_y, window, 1.0, SSIM_K1 ** 2, SSIM_K2 ** 2, threads=1)
    assert pools == []
    for threads in (2, 3, 4):
        np.testing.assert_allclose(ssim_planes(planes_x, planes_y, window, 1.0, SSIM_K1 ** 2, SSIM_K2 ** 2, threads=threads),
                                   one, rtol=0, atol=1e-14)
    assert max(pools) >= 2
    _, ref_ssim = reference(x, y.astype(np.float64), 1.0)
    np.testing.assert_allclose(one.reshape(shape[:2]).mean(axis=1), ref_ssim, rtol=0, atol=1e-12)


def test_psnr_gives_the_same_value_on_any_number_of_threads(pools):
    """PSNR's squared error is cut into pieces of ≥ 64k elements per image that threads
    share: a single 300×300 RGB image (four pieces) on 1–4 threads is scikit-image's value."""
    rng = np.random.default_rng(5)
    x = rng.random((1, 3, 300, 300)).astype(np.float32)
    y = noisy(x, 0.05, 1.0, rng).astype(np.float32)
    ref_psnr, _ = reference(x.astype(np.float64), y.astype(np.float64), 1.0)
    before = torch.get_num_threads()
    try:
        for threads in (1, 2, 3, 4):
            torch.set_num_threads(threads)
            np.testing.assert_allclose(psnr(torch.from_numpy(x), torch.from_numpy(y)).numpy(), ref_psnr,
                                       rtol=0, atol=1e-10)
    finally:
        torch.set_num_threads(before)
    assert sorted(set(pools)) == [2, 3, 4]


@pytest.mark.parametrize("data_range", [1.0, 255.0])
def test_black_and_white_halves_agree(data_range):
    """The hardest case for float32 SSIM found: half black, half white, 8-bit noise (large
    flat regions; float32 filtering was up to 1.2e-5 off). The CPU kernel and the float64
    convolution path (what a GPU runs) are both exact."""
    rng = np.random.default_rng(int(data_range))
    base = np.concatenate([np.zeros((2, 3, 96, 48)), np.ones((2, 3, 96, 48))], axis=-1)
    x = np.round(np.clip(base + 0.01 * rng.standard_normal(base.shape), 0, 1) * 255) / 255 * data_range
    y = np.round(np.clip(base + 0.01 * rng.standard_normal(base.shape), 0, 1) * 255) / 255 * data_range
    check_against_skimage(x, y, data_range)
    _, ref_ssim = reference(x, y, data_range)
    exact = conv_ssim(torch.as_tensor(x), torch.as_tensor(y), data_range, torch.float64).numpy()
    np.testing.assert_allclose(exact, ref_ssim, rtol=0, atol=1e-12)


def test_gradients_take_the_convolution_path_with_the_same_values():
    rng = np.random.default_rng(9)
    x = torch.as_tensor(rng.random((2, 3, 40, 50)))
    y = torch.as_tensor(noisy(x.numpy(), 0.05, 1.0, rng))
    plain = ssim(x, y)
    with torch.enable_grad():
        differentiable = ssim(x, y.clone().requires_grad_(True))
    assert differentiable.requires_grad and not plain.requires_grad
    torch.testing.assert_close(differentiable.detach(), plain, rtol=0, atol=1e-6)
