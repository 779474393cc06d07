"""Batched image-quality metrics (PSNR, SSIM) in torch, matching scikit-image.

Both functions take two float tensors of shape (N, C, H, W) holding images in
``[0, data_range]`` and return one value per image, a float64 tensor of shape (N,), on
the inputs' device. They are pure (no state, no in-place changes to the inputs) and
differentiable. PSNR accumulates its MSE in float64; SSIM filters in float32 on data
rescaled and shifted for accuracy (see :func:`ssim`); both agree with scikit-image's
float64 results far inside the tolerances above.

Conventions (keyword arguments, defaults first):

- **full RGB image** by default: every channel, every pixel. RGB values are the mean
  over channels, as scikit-image's ``channel_axis`` does for SSIM (for PSNR the MSE is
  taken over all channels at once, which is what ``peak_signal_noise_ratio`` does).
- ``y_channel=True``: compare the ITU-R BT.601 luma Y instead, computed as BasicSR's
  ``rgb2ycbcr(img, y_only=True)`` for images in [0, 1]:
  ``Y = (65.481 R + 128.553 G + 24.966 B + 16) / 255`` (so Y lies in [16/255, 235/255]),
  rescaled by ``data_range`` for other ranges. ``data_range`` itself is unchanged (BasicSR
  keeps 255 for Y in [16, 235]). Channel order is RGB (BasicSR's own pipeline reads BGR
  with OpenCV and swaps the weights; with RGB tensors this is the same number).
  Single-channel images pass through unchanged, as in BasicSR's ``to_y_channel``.
- ``crop_border=k``: drop ``k`` pixels on each side of both images before measuring, as
  BasicSR's ``calculate_psnr``/``calculate_ssim`` (commonly ``k`` = the SR scale).

SSIM is Wang et al. 2004 as scikit-image computes it with
``structural_similarity(..., gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
data_range=R)``: an 11-tap Gaussian window (σ = 1.5, truncated at 3.5 σ), K1 = 0.01,
K2 = 0.03, population covariances, and the SSIM map averaged over the pixels whose whole
window lies inside the image (scikit-image filters with reflection and then crops a
5-pixel strip, which is the same thing as a 'valid' convolution). Images must be at
least 11×11 after cropping.

PSNR is ``10 log10(R² / MSE)`` with the MSE clamped below at ``MSE_FLOOR_RELATIVE · R²``,
so an exact reconstruction gives a finite PSNR of exactly ``PSNR_MAX_DB`` (100 dB) instead
of infinity, for every data range. scikit-image returns ``inf`` there; everywhere else
the values agree.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from robench.errors import UserError

MSE_FLOOR_RELATIVE = 1e-10  # MSE floor as a fraction of data_range²: caps PSNR at 100 dB
PSNR_MAX_DB = -10.0 * math.log10(MSE_FLOOR_RELATIVE)

SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5  # scikit-image's choice: radius int(3.5 * 1.5 + 0.5) = 5, an 11-tap window
SSIM_K1 = 0.01
SSIM_K2 = 0.03
SSIM_CHUNK_ELEMENTS = 1 << 17  # input elements per chunk: ~1.5 MB of float32 moment maps

# BasicSR rgb2ycbcr(y_only=True) for RGB in [0, 1]: Y·255 = 65.481 R + 128.553 G + 24.966 B + 16
BT601_Y_WEIGHTS = (65.481 / 255.0, 128.553 / 255.0, 24.966 / 255.0)
BT601_Y_OFFSET = 16.0 / 255.0


def psnr(x: Any, y: Any, *, data_range: float = 1.0, y_channel: bool = False,
         crop_border: int = 0) -> Any:
    """Peak signal-to-noise ratio in dB per image.

    x, y: (N, C, H, W) float tensors in [0, data_range] (which is the reference does not
    matter: PSNR is symmetric). Returns a float64 tensor (N,), at most ``PSNR_MAX_DB``.
    The MSE is accumulated in float64.
    """
    import torch

    a, b = _prepare(x, y, data_range, y_channel, crop_border, "psnr")
    mse = (a - b).square().mean(dim=(1, 2, 3), dtype=torch.float64) / float(data_range) ** 2
    return -10.0 * torch.log10(mse.clamp_min(MSE_FLOOR_RELATIVE))


def ssim(x: Any, y: Any, *, data_range: float = 1.0, y_channel: bool = False,
         crop_border: int = 0) -> Any:
    """Structural similarity per image (mean over channels), in [-1, 1].

    x, y: (N, C, H, W) float tensors in [0, data_range], at least 11×11 after
    ``crop_border``. Returns a float64 tensor (N,).

    The filtering runs in float32 (torch's fast CPU path for depthwise convolutions
    needs it; float64 is ~50× slower) on images rescaled to [0, 1] and shifted by the
    mean of each of x's channels, which SSIM's variances and covariance do not see but
    which keeps the E[x²] − E[x]² cancellations small: agreement with scikit-image's
    float64 result is below 1e-6 even on high-contrast flat blocks, inside the 1e-4 contract. Images are processed a
    few at a time so the intermediate maps stay in cache.
    """
    import torch

    a, b = _prepare(x, y, data_range, y_channel, crop_border, "ssim")
    n, c, h, w = a.shape
    taps = 2 * int(SSIM_TRUNCATE * SSIM_SIGMA + 0.5) + 1
    if h < taps or w < taps:
        raise UserError(f"ssim: images are {h}x{w} after crop_border={crop_border}; "
                        f"expected at least {taps}x{taps} (the Gaussian window)")
    if n == 0:
        return torch.zeros(0, dtype=torch.float64, device=a.device)
    window = _gaussian_taps(a.device).to(torch.float32)
    chunk = max(1, SSIM_CHUNK_ELEMENTS // (c * h * w))
    scale = 1.0 / float(data_range)
    return torch.cat([_ssim_chunk(a[i:i + chunk], b[i:i + chunk], window, scale)
                      for i in range(0, n, chunk)])


def _ssim_chunk(a: Any, b: Any, window: Any, scale: float) -> Any:
    """SSIM of a few images (n, C, H, W) → float64 (n,)."""
    import torch
    import torch.nn.functional as F

    c = a.shape[1]
    taps = window.numel()
    # Units of data_range, shifted by the same constant o for x and y, then float32.
    offset = a.mean(dim=(2, 3), keepdim=True)
    a = (a - offset).to(torch.float32)
    b = (b - offset).to(torch.float32)
    offset = offset.to(torch.float32)
    if scale != 1.0:
        a, b, offset = a * scale, b * scale, offset * scale
    a, b = a.permute(0, 2, 3, 1), b.permute(0, 2, 3, 1)  # NHWC views
    # SSIM needs mu_x, mu_y, var_x + var_y and cov_xy: four filtered maps, stacked as 4C
    # channels of one channels-last tensor and filtered by one separable depthwise 'valid'
    # convolution (the same as scikit-image's reflect-then-crop).
    moments = torch.cat([a, b, torch.addcmul(a * a, b, b), a * b], dim=-1).permute(0, 3, 1, 2)
    groups = 4 * c
    filtered = F.conv2d(moments, window.view(1, 1, taps, 1).expand(groups, 1, taps, 1), groups=groups)
    filtered = F.conv2d(filtered, window.view(1, 1, 1, taps).expand(groups, 1, 1, taps), groups=groups)
    mu_x, mu_y, e_sum_sq, e_xy = filtered.split(c, dim=1)

    c1, c2 = SSIM_K1 ** 2, SSIM_K2 ** 2
    mu_xy = mu_x * mu_y
    contrast_structure = (2 * (e_xy - mu_xy) + c2) / (
        e_sum_sq - torch.addcmul(mu_x * mu_x, mu_y, mu_y) + c2)  # (2 cov + C2) / (var_x + var_y + C2)
    # Luminance on the unshifted means (expanding it in o would cancel badly where mu ≈ 0).
    mu_x = mu_x + offset
    mu_y = mu_y + offset
    luminance = (2 * mu_x * mu_y + c1) / (torch.addcmul(mu_x * mu_x, mu_y, mu_y) + c1)
    return (luminance * contrast_structure).mean(dim=(2, 3), dtype=torch.float64).mean(dim=1)


def rgb_to_y(x: Any, data_range: float = 1.0) -> Any:
    """BT.601 luma as BasicSR's ``rgb2ycbcr(y_only=True)``: (N, 3, H, W) → (N, 1, H, W),
    both in units of ``data_range`` (Y in [16/255, 235/255] · data_range)."""
    wr, wg, wb = BT601_Y_WEIGHTS
    y = wr * x[:, 0:1] + wg * x[:, 1:2] + wb * x[:, 2:3]
    return y + BT601_Y_OFFSET * float(data_range)


def _gaussian_taps(device: Any) -> Any:
    """The 1-D window of scipy.ndimage.gaussian_filter (σ = 1.5, truncate = 3.5), float64."""
    import torch

    radius = int(SSIM_TRUNCATE * SSIM_SIGMA + 0.5)
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64, device=device)
    taps = torch.exp(-0.5 * (offsets / SSIM_SIGMA) ** 2)
    return taps / taps.sum()


def _prepare(x: Any, y: Any, data_range: float, y_channel: bool, crop_border: int,
             name: str) -> tuple[Any, Any]:
    """Validate, pick the working dtype, convert to Y and crop: the shared conventions."""
    import torch

    for label, t in (("x", x), ("y", y)):
        if not isinstance(t, torch.Tensor):
            raise UserError(f"{name}: {label} is a {type(t).__name__}; expected a torch tensor (N, C, H, W)")
        if t.dim() != 4:
            raise UserError(f"{name}: {label} has shape {tuple(t.shape)}; expected 4 dimensions (N, C, H, W)")
    if x.shape != y.shape:
        raise UserError(f"{name}: shapes differ, {tuple(x.shape)} vs {tuple(y.shape)}; expected equal shapes")
    if isinstance(data_range, bool) or not isinstance(data_range, numbers.Real) or not data_range > 0:
        raise UserError(f"{name}: data_range={data_range!r}; expected a positive number (1.0 for [0, 1], 255 for [0, 255])")
    if isinstance(crop_border, bool) or not isinstance(crop_border, numbers.Integral) or crop_border < 0:
        raise UserError(f"{name}: crop_border={crop_border!r}; expected a non-negative integer")
    crop_border = int(crop_border)
    h, w = x.shape[-2:]
    if 2 * crop_border >= min(h, w):
        raise UserError(f"{name}: crop_border={crop_border} leaves nothing of {h}x{w} images")

    # Work in float64 if either input is, else in float32 (PSNR accumulates in float64).
    work = torch.float64 if torch.float64 in (x.dtype, y.dtype) else torch.float32
    a = x.to(work)  # not detached: the metrics are differentiable (usable as losses)
    b = y.to(work)
    if y_channel:
        channels = a.shape[1]
        if channels == 3:
            a, b = rgb_to_y(a, data_range), rgb_to_y(b, data_range)
        elif channels != 1:
            raise UserError(f"{name}: y_channel=True needs RGB (3 channels) or grayscale images; got {channels} channels")
    if crop_border:
        a = a[..., crop_border:h - crop_border, crop_border:w - crop_border]
        b = b[..., crop_border:h - crop_border, crop_border:w - crop_border]
    return a, b
