"""Batched image-quality metrics (PSNR, SSIM) in torch, matching scikit-image.

Both functions take two float tensors of shape (N, C, H, W) holding images in
``[0, data_range]`` and return one value per image, a float64 tensor of shape (N,), on
the inputs' device. They are pure (no state, no in-place changes to the inputs) and
differentiable. PSNR takes the difference and its squares in float64: scikit-image's
value to rounding (measured: below 1e-13 dB). SSIM filters in float64 on the CPU (a
compiled kernel, see :func:`ssim`) and on a GPU: scikit-image's float64 value to 1e-12;
its gradient path filters in float32 (within ~2e-6).

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
    The squared error is accumulated in float64: on the CPU (no gradient needed) by one
    compiled pass per image (:mod:`robench.metrics.image_kernels`) on
    ``torch.get_num_threads()`` threads, elsewhere by float64 dot products in chunks.
    """
    import torch

    a, b = _prepare(x, y, data_range, y_channel, crop_border, "psnr")
    n = a.shape[0]
    flat_a, flat_b = a.reshape(n, -1), b.reshape(n, -1)
    per_image = max(1, flat_a.shape[1])
    differentiable = torch.is_grad_enabled() and (a.requires_grad or b.requires_grad)
    if a.device.type == "cpu" and not differentiable:
        from robench.metrics.image_kernels import squared_error_sums

        total = torch.from_numpy(squared_error_sums(flat_a.detach().numpy(), flat_b.detach().numpy(),
                                                    threads=torch.get_num_threads()))
    else:
        total = _squared_error_sums(flat_a, flat_b)
    mse = total / per_image / float(data_range) ** 2
    return -10.0 * torch.log10(mse.clamp_min(MSE_FLOOR_RELATIVE))


def _squared_error_sums(flat_a: Any, flat_b: Any) -> Any:
    """Σ (a − b)² per row of (N, L) tensors in float64, by float64 dot products over chunks
    (the differentiable path, and the one off the CPU)."""
    import torch

    n, per_image = flat_a.shape
    per_image = max(1, per_image)
    budget = PSNR_CHUNK_ELEMENTS if flat_a.device.type == "cpu" else GPU_CHUNK_ELEMENTS
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
    return torch.cat(sums) if sums else torch.zeros(0, dtype=torch.float64, device=flat_a.device)


def ssim(x: Any, y: Any, *, data_range: float = 1.0, y_channel: bool = False,
         crop_border: int = 0) -> Any:
    """Structural similarity per image (mean over channels), in [-1, 1].

    x, y: (N, C, H, W) float tensors in [0, data_range], at least 11×11 after
    ``crop_border``. Returns a float64 tensor (N,).

    On the CPU (no gradient needed) it is one compiled float64 pass per image plane
    (:mod:`robench.metrics.image_kernels`, numba): scikit-image's value on float64 input to
    rounding (measured: below 1e-14), the planes and bands of rows shared among
    ``torch.get_num_threads()`` threads. On other devices, and when an input requires a
    gradient, it is one grouped depthwise convolution per direction (:func:`_ssim_chunk`),
    in float64 on a GPU (exact, and never TF32) and in float32 on MPS and for gradients on
    the CPU (within ~2e-6).
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
        from robench.metrics.image_kernels import ssim_planes

        planes = ssim_planes(a.detach().reshape(n * c, h, w).numpy(), b.detach().reshape(n * c, h, w).numpy(),
                             _gaussian_taps("cpu").numpy(), scale, SSIM_K1 ** 2, SSIM_K2 ** 2,
                             threads=torch.get_num_threads())
        return torch.from_numpy(planes).view(n, c).mean(dim=1)
    # off the CPU: float64 (cheap on a GPU, and safe from TF32 convolutions), but MPS has none
    dtype = torch.float32 if a.device.type in ("cpu", "mps") else torch.float64
    budget = SSIM_CHUNK_ELEMENTS if a.device.type == "cpu" else GPU_CHUNK_ELEMENTS
    chunk = max(1, budget // (c * h * w))
    return torch.cat([_ssim_chunk(a[i:i + chunk], b[i:i + chunk], _gaussian_taps(a.device).to(dtype), scale)
                      for i in range(0, n, chunk)])


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
