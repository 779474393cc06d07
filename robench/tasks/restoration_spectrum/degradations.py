"""Degradation operators A with a level: inpainting, interpolation, super-resolution.

Every family has the same interface, ``degrade(x, level, seed) -> Observation``:

- ``x``: ground-truth images, a float tensor (N, C, H, W) with values in [0, 1].
- ``level``: how strong the degradation is, in the family's own unit (see ``FAMILIES``).
- ``seed``: a non-negative integer. Same (images, level, seed, options) → same
  observation. Random draws come from ``numpy.random.default_rng(seed)`` one image after
  the other, so the first k images of a batch get the same masks as a batch of those k.

The returned :class:`Observation` holds what a restoration method may use: the
observation ``y``, the mask of observed pixels, the differentiable forward operator A,
the data-fidelity term ‖M ⊙ (y − A(x))‖², and ``network_input`` (the image a feed-forward
restoration network is given).

Families (levels, defaults at 64×64):

- ``inpainting``: a square hole of side ``s`` pixels, centered; ``max_shift=d`` moves each
  image's hole by a seeded offset in [-d, d]² (kept inside the image).
- ``interpolation``: a random fraction ``p`` of the pixels is dropped (exactly
  ``round(p·H·W)``, at least one dropped and one kept), the same pixels in every channel.
- ``super_resolution``: downscale by the integer factor ``k`` to ``(H // k, W // k)`` with
  torch's anti-aliased bicubic (``F.interpolate(mode="bicubic", antialias=True)``: the
  PIL/Pillow bicubic filter, a = -0.5, widened by the scale so it low-passes before
  sampling). When ``k`` does not divide the size the resampling scale is ``H / (H // k)``.
  ``network_input`` is y upsampled back to (H, W) with plain bicubic (a = -0.75, the
  OpenCV/torch default; anti-aliasing does nothing useful when upsampling), clamped to
  [0, 1]. ``y`` itself is not clamped, so A(x) = y holds exactly at the ground truth.

For inpainting and interpolation ``y = x ⊙ M`` (zeros in the holes) and the holes of
``network_input`` are filled with each image's per-channel mean over observed pixels
(``fill="mean"``, the context-encoder convention) or with 0 (``fill="zero"``).
"""

from __future__ import annotations

import difflib
import functools
import math
import numbers
from dataclasses import dataclass
from typing import Any, Callable

from robench.errors import UserError

FILLS = ("mean", "zero")


@dataclass(frozen=True)
class Observation:
    """A degraded batch and its operator.

    y: (N, C, H, W) for inpainting/interpolation, (N, C, H // k, W // k) for super-resolution.
    mask: (N, 1, H, W), 1 = observed, 0 = missing (same dtype as x); None for super-resolution.
    network_input: (N, C, H, W) in [0, 1], what a restoration network sees.
    forward_operator: differentiable A, (N, C, H, W) → tensor shaped like y.
    """
    family: str
    level: float
    seed: int
    y: Any
    mask: Any
    network_input: Any
    forward_operator: Callable[[Any], Any]

    def fidelity(self, x: Any) -> Any:
        """‖M ⊙ (y − A(x))‖² per image: sum of squares over (C, H, W), shape (N,).
        Zero at the ground truth; differentiable in x."""
        residual = self.y - self.forward_operator(x)
        if self.mask is not None:
            residual = residual * self.mask
        return residual.square().sum(dim=(1, 2, 3))


@dataclass(frozen=True)
class DegradationFamily:
    """One family: its operator, what its level means, and its default levels."""
    name: str
    degrade: Callable[..., Observation]  # degrade(x, level, seed=0, **options)
    level_name: str
    level_description: str
    train_level: float  # the single level a base network is trained at
    test_levels: tuple  # the spectrum a method is evaluated on
    image_size: int = 64  # the size the default levels are meant for


# ---------------------------------------------------------------- forward operators
# Module-level (not closures) so an Observation pickles.

def apply_mask(x: Any, mask: Any) -> Any:
    """A for inpainting/interpolation: x ⊙ M, with M (N, 1, H, W) broadcast over channels."""
    return x * mask


def bicubic_downscale(x: Any, size: tuple[int, int]) -> Any:
    """A for super-resolution: anti-aliased bicubic resize of (N, C, H, W) to ``size``."""
    import torch.nn.functional as F
    return F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=True)


def bicubic_upscale(y: Any, size: tuple[int, int]) -> Any:
    """Plain bicubic (a = -0.75) resize of (N, C, h, w) back to ``size``, clamped to [0, 1]."""
    import torch.nn.functional as F
    return F.interpolate(y, size=size, mode="bicubic", align_corners=False).clamp(0.0, 1.0)


# ---------------------------------------------------------------- the three families

def inpainting(x: Any, level: int, seed: int = 0, *, max_shift: int = 0,
               fill: str = "mean") -> Observation:
    """Square hole of side ``level`` pixels, centered, or shifted per image by a seeded
    offset in [-max_shift, max_shift]² (then clipped so the hole stays inside)."""
    import numpy as np
    import torch

    x = _check_images(x, "inpainting")
    seed = _check_seed(seed, "inpainting")
    fill = _check_fill(fill, "inpainting")
    n, _, h, w = x.shape
    side = _integer_level(level, "inpainting", "hole side (pixels)")
    if not 1 <= side < min(h, w):
        raise UserError(f"inpainting: hole side {level!r} does not fit {h}x{w} images; "
                        f"expected an integer in [1, {min(h, w) - 1}]")
    if isinstance(max_shift, bool) or not isinstance(max_shift, numbers.Integral) or max_shift < 0:
        raise UserError(f"inpainting: max_shift={max_shift!r}; expected a non-negative integer (pixels)")

    top, left = (h - side) // 2, (w - side) // 2
    offsets = np.zeros((n, 2), dtype=np.int64)
    if max_shift:
        offsets = np.random.default_rng(seed).integers(-max_shift, max_shift + 1, size=(n, 2))
    mask = torch.ones((n, 1, h, w), dtype=x.dtype, device=x.device)
    for i, (dy, dx) in enumerate(offsets.tolist()):
        t = min(max(top + dy, 0), h - side)
        l = min(max(left + dx, 0), w - side)
        mask[i, :, t:t + side, l:l + side] = 0
    return _masked_observation("inpainting", x, side, seed, mask, fill)


def interpolation(x: Any, level: float, seed: int = 0, *, fill: str = "mean") -> Observation:
    """Drop a random fraction ``level`` in (0, 1) of the pixels, the same in every channel."""
    import numpy as np
    import torch

    x = _check_images(x, "interpolation")
    seed = _check_seed(seed, "interpolation")
    fill = _check_fill(fill, "interpolation")
    if isinstance(level, bool) or not isinstance(level, numbers.Real) or not 0 < level < 1:
        raise UserError(f"interpolation: drop fraction {level!r}; expected a number strictly between 0 and 1")
    n, _, h, w = x.shape
    pixels = h * w
    dropped = min(max(int(round(float(level) * pixels)), 1), pixels - 1)
    scores = np.random.default_rng(seed).random((n, pixels))
    # The `dropped` lowest scores of each image are its missing pixels: an exact count.
    order = np.argsort(scores, axis=1, kind="stable")[:, :dropped]
    keep = np.ones((n, pixels), dtype=np.float32)
    np.put_along_axis(keep, order, 0.0, axis=1)
    mask = torch.from_numpy(keep).reshape(n, 1, h, w).to(device=x.device, dtype=x.dtype)
    return _masked_observation("interpolation", x, float(level), seed, mask, fill)


def super_resolution(x: Any, level: int, seed: int = 0) -> Observation:
    """Anti-aliased bicubic downscale by the integer factor ``level`` (deterministic: the
    seed is recorded but unused)."""
    x = _check_images(x, "super_resolution")
    seed = _check_seed(seed, "super_resolution")
    factor = _integer_level(level, "super_resolution", "scale factor")
    h, w = x.shape[-2:]
    if factor < 1 or h // factor < 1 or w // factor < 1:
        raise UserError(f"super_resolution: scale factor {level!r} for {h}x{w} images; "
                        f"expected an integer in [1, {min(h, w)}]")
    low_size = (h // factor, w // factor)
    forward = functools.partial(bicubic_downscale, size=low_size)
    y = forward(x)
    return Observation(family="super_resolution", level=factor, seed=seed, y=y, mask=None,
                       network_input=bicubic_upscale(y, (h, w)), forward_operator=forward)


FAMILIES: dict[str, DegradationFamily] = {
    "inpainting": DegradationFamily(
        name="inpainting", degrade=inpainting, level_name="hole_side_px",
        level_description="side of the square hole, pixels",
        train_level=20, test_levels=(8, 12, 16, 20, 24, 28, 32)),
    "interpolation": DegradationFamily(
        name="interpolation", degrade=interpolation, level_name="drop_fraction",
        level_description="fraction of pixels dropped, in (0, 1)",
        train_level=0.5, test_levels=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)),
    "super_resolution": DegradationFamily(
        name="super_resolution", degrade=super_resolution, level_name="scale_factor",
        level_description="integer downscaling factor",
        train_level=3, test_levels=(2, 3, 4)),
}


def degrade(family: str, x: Any, level: float, seed: int = 0, **options: Any) -> Observation:
    """Apply the family named ``family`` (a key of ``FAMILIES``) to ``x`` at ``level``."""
    return get_family(family).degrade(x, level, seed, **options)


def get_family(name: str) -> DegradationFamily:
    try:
        return FAMILIES[name]
    except (KeyError, TypeError):
        close = difflib.get_close_matches(str(name), FAMILIES, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise UserError(f"unknown degradation family {name!r}; expected one of "
                        f"{', '.join(FAMILIES)}{hint}") from None


# ---------------------------------------------------------------- helpers

def _masked_observation(family: str, x: Any, level: float, seed: int, mask: Any,
                        fill: str) -> Observation:
    y = apply_mask(x, mask)
    if fill == "mean":
        observed = mask.sum(dim=(2, 3), keepdim=True)
        mean = y.sum(dim=(2, 3), keepdim=True) / observed.clamp_min(1.0)
        network_input = y + mean * (1 - mask)
    else:
        network_input = y.clone()
    return Observation(family=family, level=level, seed=seed, y=y, mask=mask,
                       network_input=network_input,
                       forward_operator=functools.partial(apply_mask, mask=mask))


def _check_images(x: Any, family: str) -> Any:
    import torch

    if not isinstance(x, torch.Tensor) or x.dim() != 4 or not x.is_floating_point():
        what = f"shape {tuple(x.shape)} {x.dtype}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise UserError(f"{family}: images are {what}; expected a float tensor (N, C, H, W)")
    x = x.detach()
    if x.numel() and not (bool(torch.isfinite(x).all()) and x.min() >= -1e-6 and x.max() <= 1 + 1e-6):
        raise UserError(f"{family}: image values span [{float(x.min()):.4g}, {float(x.max()):.4g}]; "
                        "expected values in [0, 1]")
    return x


def _check_seed(seed: Any, family: str) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise UserError(f"{family}: seed={seed!r}; expected a non-negative integer")
    return int(seed)


def _check_fill(fill: Any, family: str) -> str:
    if fill not in FILLS:
        raise UserError(f"{family}: fill={fill!r}; expected one of {', '.join(FILLS)}")
    return fill


def _integer_level(level: Any, family: str, what: str) -> int:
    """An int, or a float with an integral value (YAML may give 16.0); never a bool."""
    if isinstance(level, bool) or not isinstance(level, numbers.Real) \
            or not math.isfinite(float(level)) or float(level) != int(level):
        raise UserError(f"{family}: {what} {level!r}; expected a positive integer")
    return int(level)
