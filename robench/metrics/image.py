"""Batched image-quality metrics (PSNR, SSIM) in torch, matching scikit-image.

Both functions take two float tensors of shape (N, C, H, W) holding images in
``[0, data_range]`` and return one value per image, a float64 tensor of shape (N,), on
the inputs' device. They are pure (no state, no in-place changes to the inputs) and
differentiable. PSNR takes the difference and its squares in float64: scikit-image's
value to rounding (measured: below 1e-13 dB). SSIM filters mostly in float32 on the CPU
(see :func:`ssim`): within 1e-6 of scikit-image's float64 value (measured: at most 1.3e-7
on noisy natural crops of 32–512 px, 2.5e-7 on the worst case found, large black and
white areas with faint 8-bit noise); on a GPU it filters in float64 (exact to 1e-12).

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
SSIM_CHUNK_ELEMENTS = 1 << 17  # input elements per chunk of the convolution path (~1.5 MB of moment maps)
# The CPU path filters with banded matrices (see _ssim_sums_banded): output blocks of about
# SSIM_BLOCK rows/columns per matrix product, and at most SSIM_STRIPE_ELEMENTS input
# elements (images × channels × rows × columns) per stripe, so memory stays bounded
# (~60 bytes per element) whatever the image size and the maps stay in cache.
SSIM_BLOCK = 16
SSIM_STRIPE_ELEMENTS = 1 << 17
PSNR_CHUNK_ELEMENTS = 1 << 16  # input elements per float64 difference buffer of psnr (512 kB)
# Off the CPU (a GPU: no cache to fit, a launch per operator) both work in larger pieces
GPU_CHUNK_ELEMENTS = 1 << 22

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
    n = a.shape[0]
    flat_a, flat_b = a.reshape(n, -1), b.reshape(n, -1)
    per_image = max(1, flat_a.shape[1])
    budget = PSNR_CHUNK_ELEMENTS if a.device.type == "cpu" else GPU_CHUNK_ELEMENTS
    rows = max(1, budget // per_image)  # images per chunk, or one image in
    cols = min(per_image, budget)  # column pieces: float64 buffers stay in cache
    sums = []
    for i in range(0, n, rows):
        total = 0
        for j in range(0, per_image, cols):
            # the difference in float64 (both cast first: exact for float32 inputs, and mixed
            # float64-float32 arithmetic is a slow path), then one dot product per image
            diff = (flat_a[i:i + rows, j:j + cols].to(torch.float64)
                    - flat_b[i:i + rows, j:j + cols].to(torch.float64))
            total = total + torch.linalg.vecdot(diff, diff)
        sums.append(total)
    total = torch.cat(sums) if sums else torch.zeros(0, dtype=torch.float64, device=a.device)
    mse = total / per_image / float(data_range) ** 2
    return -10.0 * torch.log10(mse.clamp_min(MSE_FLOOR_RELATIVE))


def ssim(x: Any, y: Any, *, data_range: float = 1.0, y_channel: bool = False,
         crop_border: int = 0) -> Any:
    """Structural similarity per image (mean over channels), in [-1, 1].

    x, y: (N, C, H, W) float tensors in [0, data_range], at least 11×11 after
    ``crop_border``. Returns a float64 tensor (N,).

    On the CPU the images are rescaled to [0, 1] and written as s = x + y − 2o and d = x − y
    (o: each channel's mean over the stripe, which SSIM's variances do not see), so the
    E[·²] − E[·]² cancellations stay small (:func:`_ssim_formula`); s and s² go through the
    first filtering pass in float64, everything else runs in float32 (float64 matrix
    products are 4× slower, float64 depthwise convolutions ~50×): within 1e-6 of
    scikit-image (measured: at most 2.5e-7). The separable Gaussian filtering of the four
    moment maps is two batched products with banded matrices (:func:`_ssim_sums_banded`:
    several times faster than torch's depthwise convolution there), over stripes of at
    most ``SSIM_STRIPE_ELEMENTS`` input elements, so memory is bounded for any image
    size. On other devices, and when an input requires a gradient, it is one grouped
    depthwise convolution per direction (:func:`_ssim_chunk`), in float64 on a GPU (exact,
    and never TF32) and in float32 on MPS and for gradients on the CPU (within ~2e-6).
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
    scale = 1.0 / float(data_range)
    differentiable = torch.is_grad_enabled() and (a.requires_grad or b.requires_grad)
    if a.device.type == "cpu" and not differentiable:
        return _ssim_banded(a, b, _gaussian_taps(a.device), scale)
    # off the CPU: float64 (cheap on a GPU, and safe from TF32 convolutions), but MPS has none
    dtype = torch.float32 if a.device.type in ("cpu", "mps") else torch.float64
    budget = SSIM_CHUNK_ELEMENTS if a.device.type == "cpu" else GPU_CHUNK_ELEMENTS
    chunk = max(1, budget // (c * h * w))
    return torch.cat([_ssim_chunk(a[i:i + chunk], b[i:i + chunk], _gaussian_taps(a.device).to(dtype), scale)
                      for i in range(0, n, chunk)])


def _ssim_banded(a: Any, b: Any, window: Any, scale: float) -> Any:
    """SSIM of (N, C, H, W) images → float64 (N,), by :func:`_ssim_sums_banded` over chunks
    of images (small images) or stripes of output rows (large ones) of at most
    ``SSIM_STRIPE_ELEMENTS`` input elements each (plus the window's halo)."""
    import torch

    n, c, h, w = a.shape
    halo = window.numel() - 1
    rows_out, cols_out = h - halo, w - halo
    per_image = c * h * w
    images = max(1, SSIM_STRIPE_ELEMENTS // per_image)
    stripe = rows_out if images > 1 else max(SSIM_BLOCK, SSIM_STRIPE_ELEMENTS // (c * w) - halo)
    totals = []
    for i in range(0, n, images):
        j = min(n, i + images)
        total = 0
        for top in range(0, rows_out, stripe):
            bottom = min(rows_out, top + stripe) + halo
            part_a, part_b = a[i:j, :, top:bottom], b[i:j, :, top:bottom]
            # the shift of both images: each channel's mean over the stripe (the more local, the
            # smaller the float32 cancellations; any constant per window gives the same SSIM)
            offset = part_a.mean(dim=(2, 3))
            total = total + _ssim_sums_banded(part_a, part_b, offset, window, scale)
        totals.append(total)
    return torch.cat(totals) / (c * rows_out * cols_out)


def _blocks(length: int, target: int) -> tuple[int, int]:
    """(number of blocks, block size) covering ``length`` with blocks of about ``target``."""
    count = -(-length // target)
    return count, -(-length // count)


def _banded(window: Any, rows: int) -> Any:
    """(rows, rows + taps − 1): row i holds the window at columns i … i + taps − 1, zeros
    elsewhere, so ``G @ X[k : k + rows + taps − 1]`` is the 'valid' filtering of rows k …
    k + rows − 1 of X along its first axis."""
    import torch

    taps = window.numel()
    band = torch.zeros(rows, rows + taps - 1, dtype=window.dtype, device=window.device)
    band.as_strided((rows, taps), (rows + taps, 1)).copy_(window.expand(rows, taps))
    return band


def _ssim_sums_banded(a: Any, b: Any, offset: Any, window: Any, scale: float) -> Any:
    """Sum over channels and 'valid' pixels of the SSIM map of n images (n, C, h, w) (a
    stripe: whole images or a band of rows with its halo), float64 (n,). ``offset`` (n, C):
    the shift of both images; ``scale``: 1 / data_range.

    The four moment maps of :func:`_ssim_formula` (s, s², d, d²) of every image channel
    lie side by side as the columns of one wide matrix (rows: image rows, zero padded to
    whole row blocks; columns: kind, image, channel, image column, zero padded to whole
    column blocks; s and s² float64, d and d² float32). Filtering along the rows is one
    batched product ``G @ X[block]`` per dtype with the banded (R, R + 10) Gaussian matrix
    G (:func:`_banded`) over the row blocks, into one float32 matrix; filtering that along
    the columns is one batched product ``Y[:, block] @ G'ᵀ`` over the column blocks. That
    is the 'valid' convolution (scikit-image's reflect-then-crop) with (R + 10) / 11 times
    its multiply-adds, at matrix-product speed (several times torch's depthwise
    convolution on the CPU). The padding rows and columns are computed and left out of
    the sum. Side by side, not stacked: stacking the maps' rows in one tall matrix makes
    every row product (16 × 26) @ (26 × W), three times slower (measured)."""
    import torch

    n, c, h, w = a.shape
    halo = window.numel() - 1
    rows_out, cols_out = h - halo, w - halo
    row_blocks, row_block = _blocks(rows_out, SSIM_BLOCK)
    col_blocks, col_block = _blocks(cols_out, SSIM_BLOCK)
    hp, wx = row_blocks * row_block, col_blocks * col_block + halo  # output rows, input columns
    half = 2 * n * c * wx  # columns of the s maps (s, s²), then of the d maps (d, d²)
    rows_first = (2, 0, 1, 3)
    # s and s² go through the first (row) filtering in float64: float32 rounding of these O(1)
    # values, whose local mean is then squared and subtracted, is what float32 SSIM loses
    # most to (measured on noisy 64-px crops: 1.4e-6 of SSIM; 4e-8 with this; 6e-7 with
    # s alone in float64); d is small, and everything after the first filtering is float32
    moments_s = torch.empty(hp + halo, 2, n, c, wx, dtype=torch.float64, device=a.device)
    moments_d = torch.empty(hp + halo, 2, n, c, wx, dtype=torch.float32, device=a.device)
    for moments in (moments_s, moments_d):
        moments[h:].zero_()
        moments[:h, ..., w:].zero_()
    xs, xs2 = (moments_s[:h, kind, ..., :w] for kind in range(2))  # (h, n, c, w) views
    xd, xd2 = (moments_d[:h, kind, ..., :w] for kind in range(2))
    torch.add(a.permute(rows_first), b.permute(rows_first), out=xs)  # s = x + y − 2o
    xs.sub_((2.0 * offset).to(torch.float64).view(n, c, 1))
    torch.sub(a.permute(rows_first), b.permute(rows_first), out=xd)  # d = x − y, rounded once
    if scale != 1.0:
        xs.mul_(scale)
        xd.mul_(scale)
    torch.mul(xs, xs, out=xs2)
    torch.mul(xd, xd, out=xd2)

    filtered = torch.empty(row_blocks, row_block, 2 * half, dtype=torch.float32, device=a.device)
    band = _banded(window, row_block)
    rows = moments_s.view(hp + halo, half).unfold(0, row_block + halo, row_block).transpose(1, 2)
    filtered[..., :half] = torch.bmm(band.expand(row_blocks, -1, -1), rows)
    band = band.to(torch.float32)
    rows = moments_d.view(hp + halo, half).unfold(0, row_block + halo, row_block).transpose(1, 2)
    torch.bmm(band.expand(row_blocks, -1, -1), rows, out=filtered[..., half:])
    k = 4 * n * c
    band_t = _banded(window.to(torch.float32), col_block).t().contiguous()
    out = torch.empty(col_blocks, hp * k, col_block, dtype=torch.float32, device=a.device)
    torch.bmm(filtered.view(hp * k, wx).unfold(1, col_block + halo, col_block).transpose(0, 1),
              band_t.expand(col_blocks, -1, -1), out=out)
    mu_s, e_s2, mu_d, e_d2 = out.view(col_blocks, hp, 4, n, c, col_block)[:, :rows_out].unbind(2)
    shift = (2.0 * scale * offset).to(torch.float32).view(n, c, 1)
    ssim_map = _ssim_formula(mu_s, mu_d, e_s2, e_d2, shift)  # (col_blocks, rows_out, n, c, col_block)
    total = ssim_map.sum(dim=(0, 1), dtype=torch.float64).sum(dim=(1, 2))
    valid_last = cols_out - (col_blocks - 1) * col_block
    if valid_last < col_block:  # the last column block's padding columns
        total = total - ssim_map[-1, ..., valid_last:].sum(dim=(0, 2, 3), dtype=torch.float64)
    return total


def _ssim_formula(mu_s: Any, mu_d: Any, e_s2: Any, e_d2: Any, shift: Any) -> Any:
    """The SSIM map from the filtered moments of s = x + y − 2o and d = x − y (float32
    tensors of one shape; ``shift`` = 2o, broadcastable), a new tensor.

    With S = mu_s + 2o = mu_x + mu_y, var_s = E[s²] − mu_s² and var_d = E[d²] − mu_d²,
    Wang et al.'s SSIM = luminance · contrast-structure is, exactly,
    ``(S² − mu_d² + 2 C1) / (S² + mu_d² + 2 C1) · (var_s − var_d + 2 C2) / (var_s + var_d + 2 C2)``
    (as 2 mu_x mu_y = (S² − mu_d²)/2, mu_x² + mu_y² = (S² + mu_d²)/2, 2 cov = (var_s −
    var_d)/2, var_x + var_y = (var_s + var_d)/2). Why this form: var_s carries the
    cancellation error of E[s²] − mu_s² (large where the local mean is far from o), but
    the contrast-structure term moves by only 2 var_d / (var_s + var_d + 2 C2)² per unit of
    it, small where x and y are close (what restorations are); d is small there, so var_d
    and mu_d are precise in float32. The classic form divides the cancellation errors of
    E[x²+y²] and E[xy] by var + C2 ~ 1e-3: with float32 filtering it was 10× further from
    scikit-image on black/white halves with noise (4e-6 against 4e-7)."""
    import torch

    c1, c2 = SSIM_K1 ** 2, SSIM_K2 ** 2
    var_s = torch.addcmul(e_s2, mu_s, mu_s, value=-1)
    var_d = torch.addcmul(e_d2, mu_d, mu_d, value=-1)
    contrast = torch.sub(var_s, var_d).add_(2 * c2)
    contrast_den = var_s.add_(var_d).add_(2 * c2)
    s_sq = torch.add(mu_s, shift).square_()
    d_sq = torch.mul(mu_d, mu_d)
    luminance = torch.sub(s_sq, d_sq).add_(2 * c1)
    luminance_den = s_sq.add_(d_sq).add_(2 * c1)
    return luminance.mul_(contrast).div_(luminance_den.mul_(contrast_den))


def _ssim_chunk(a: Any, b: Any, window: Any, scale: float) -> Any:
    """SSIM of a few images (n, C, H, W) → float64 (n,), by depthwise convolutions in the
    window's dtype (the path off the CPU, and for gradients): the moments of
    :func:`_ssim_formula`, stacked as 4C channels of one channels-last tensor and filtered
    by one separable depthwise 'valid' convolution (scikit-image's reflect-then-crop)."""
    import torch
    import torch.nn.functional as F

    c = a.shape[1]
    taps = window.numel()
    dtype = window.dtype
    if dtype == torch.float64:
        a, b = a.to(dtype), b.to(dtype)
    offset = a.mean(dim=(2, 3), keepdim=True)
    # s = x + y − 2o and d = x − y in units of data_range, in the filtering dtype
    s = ((a - offset) + (b - offset)).to(dtype)
    d = (a - b).to(dtype)
    if scale != 1.0:
        s, d = s * scale, d * scale
    s, d = s.permute(0, 2, 3, 1), d.permute(0, 2, 3, 1)  # NHWC views
    moments = torch.cat([s, d, s * s, d * d], dim=-1).permute(0, 3, 1, 2)
    groups = 4 * c
    filtered = F.conv2d(moments, window.view(1, 1, taps, 1).expand(groups, 1, taps, 1), groups=groups)
    filtered = F.conv2d(filtered, window.view(1, 1, 1, taps).expand(groups, 1, 1, taps), groups=groups)
    ssim_map = _ssim_formula(*filtered.split(c, dim=1), (2.0 * scale * offset).to(dtype))
    return ssim_map.mean(dim=(2, 3), dtype=torch.float64).mean(dim=1)


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
