"""Corruption benchmarks: MNIST-C (grey digits), CIFAR-10-C and ImageNet-C (RGB), five
severities per family, generated from clean images with seeded randomness.

* ``mnist-c`` (:mod:`.mnist_c`): MNIST-C's 15 corruptions; the paper fixes one setting
  each, robench's ladder puts it at severity 3 (ladder version ``mnist_c.LADDER_VERSION``).
* ``cifar-10-c`` and ``imagenet-c`` (:mod:`.common_c`): the 15 common corruptions of
  Hendrycks & Dietterich with their five severities, plus 4 held-out ones (speckle noise,
  Gaussian blur, spatter, saturate) that a user asks for by name; the constants of
  CIFAR-10-C (32×32 images) or of ImageNet-C (as the ``imagecorruptions`` package has them).

:func:`corrupt` is the one entry point: a corrupted image is a pure function of the clean
image, the benchmark, family, severity, seed and the image's index in its split
(:func:`._ops.image_rngs`), and is returned as 8-bit (what the published datasets store).
:data:`CORRUPTIONS_VERSION` changes whenever any family's output would.
"""

from __future__ import annotations

import difflib

from robench.errors import UserError
from robench.tasks.corruption_robustness.corruptions import common_c, mnist_c

# 1: MNIST-C (ladder 1), CIFAR-10-C and ImageNet-C constants
CORRUPTIONS_VERSION = "1"
BENCHMARKS = ("mnist-c", "cifar-10-c", "imagenet-c")
CHANNELS = {"mnist-c": 1, "cifar-10-c": 3, "imagenet-c": 3}
SEVERITIES = (1, 2, 3, 4, 5)
IMPULSE_THRESHOLD = 0.2  # |value − 3×3 median| above which a 0 or 1 is an impulse (impulse_mask)


def default_families(benchmark: str) -> tuple[str, ...]:
    """The families a benchmark's mean corruption error averages over: MNIST-C's 15, or
    ImageNet-C's 15 common corruptions (not the held-out four)."""
    return mnist_c.FAMILIES if benchmark == "mnist-c" else common_c.COMMON


def all_families(benchmark: str) -> tuple[str, ...]:
    """Every family of ``benchmark``: the defaults and, for the RGB ones, the held-out four."""
    return mnist_c.FAMILIES if benchmark == "mnist-c" else common_c.COMMON + common_c.HELD_OUT


def held_out(benchmark: str, family: str) -> bool:
    return benchmark != "mnist-c" and family in common_c.HELD_OUT


def check_family(benchmark: str, family: str) -> str:
    """``family`` if ``benchmark`` has it, else a one-line UserError with a did-you-mean."""
    known = all_families(benchmark)
    if family in known:
        return family
    close = difflib.get_close_matches(str(family), known, n=1)
    other = [b for b in BENCHMARKS if b != benchmark and family in all_families(b)]
    hint = (f"; did you mean {close[0]!r}?" if close else "") + (f" ({family!r} is a {other[0]} corruption)"
                                                                   if other and not close else "")
    raise UserError(f"unknown {benchmark} corruption {family!r}{hint}; expected one of {', '.join(known)}")


def check_any_family(family: str) -> str:
    """``family`` if some benchmark has it, else a one-line UserError with a did-you-mean."""
    known = tuple(dict.fromkeys(f for b in BENCHMARKS for f in all_families(b)))
    if family in known:
        return family
    close = difflib.get_close_matches(str(family), known, n=1)
    raise UserError(f"unknown corruption {family!r}" + (f"; did you mean {close[0]!r}?" if close else "") +
                    f"; expected an MNIST-C corruption ({', '.join(mnist_c.FAMILIES)}) or an ImageNet-C one "
                    f"({', '.join(common_c.COMMON + common_c.HELD_OUT)})")


def check_severity(severity) -> int:
    if isinstance(severity, bool) or not isinstance(severity, int) or severity not in SEVERITIES:
        raise UserError(f"severity {severity!r}; expected an integer from 1 to 5")
    return severity


def describe(benchmark: str, family: str) -> str:
    """What a family does and (MNIST-C) its ladder, in one line."""
    if benchmark == "mnist-c":
        ladder, text = mnist_c.LADDERS[family]
        return f"{text}; severities 1-5: {', '.join(_short(v) for v in ladder)}"
    values = common_c.CONSTANTS[benchmark][family]
    return f"{common_c.DESCRIPTIONS[family]}; severities 1-5: {', '.join(_short(v) for v in values)}"


def _short(value) -> str:
    if isinstance(value, tuple):
        if len(value) > 4 and all(isinstance(v, float) for v in value):  # zoom factors
            return f"zoom {value[0]:g}..{value[-1]:g}"
        return "(" + ", ".join(_short(v) for v in value) + ")"
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def restoration_family(benchmark: str, family: str) -> str | None:
    """The ``restoration_spectrum`` degradation family whose restorers undo ``family``
    (impulse noise: interpolation, with the impulses found by :func:`impulse_mask`; blurs
    and pixelation: super-resolution), or None: no restoration family matches (noise other
    than impulses, weather, geometry, digital artifacts), the input is classified as is."""
    table = mnist_c.RESTORATION if benchmark == "mnist-c" else common_c.RESTORATION
    return table.get(family)


def corrupt(images, benchmark: str, family: str, severity: int, seed: int, indices):
    """Corrupt a batch: ``images`` float (N, C, H, W) in [0, 1] (numpy or torch; quantized
    to 8 bits first, as the datasets are), ``indices`` (N,) the images' indices in their
    split. Returns uint8 (N, C, H, W): the family at ``severity`` (1–5), clipped to [0, 1]
    and truncated to 8 bits (as np.uint8 of the reference code's 0–255 floats).

    MNIST-C takes 1-channel images, CIFAR-10-C and ImageNet-C 3-channel ones."""
    import numpy as np

    from robench.tasks.corruption_robustness.corruptions import _ops

    check_family(benchmark, family)
    check_severity(severity)
    array = images.detach().cpu().numpy() if hasattr(images, "detach") else np.asarray(images)
    if array.ndim != 4 or array.shape[1] != CHANNELS[benchmark]:
        raise UserError(f"{benchmark} corrupts {CHANNELS[benchmark]}-channel images (N, C, H, W); "
                        f"got shape {tuple(array.shape)}")
    indices = [int(i) for i in np.asarray(indices).reshape(-1)]
    if len(indices) != len(array):
        raise UserError(f"corrupt: {len(indices)} indices for {len(array)} images")
    if not len(array):
        return np.zeros(array.shape, dtype=np.uint8)
    clean = np.round(np.clip(array, 0, 1) * 255.0).astype(np.uint8).transpose(0, 2, 3, 1)
    x = _ops.to_float(clean)
    rngs = _ops.image_rngs(seed, benchmark, family, severity, indices)
    if benchmark == "mnist-c":
        out = mnist_c.apply(family, x, severity, rngs)
    else:
        out = common_c.apply(benchmark, family, x, severity, rngs)
    return np.ascontiguousarray(_ops.to_uint8(out).transpose(0, 3, 1, 2))


def impulse_mask(images):
    """Where salt-and-pepper impulses are, found from the image alone (what a restorer may
    know): a pixel any of whose channels is at 0 or 1 and differs by more than
    :data:`IMPULSE_THRESHOLD` from the median of its 3×3 neighbourhood in that channel (a
    switching median filter's detector). ``images`` float (N, C, H, W) in [0, 1]
    (numpy or torch); returns bool (N, 1, H, W), True = an impulse (a missing pixel)."""
    import numpy as np
    from scipy import ndimage

    array = images.detach().cpu().numpy() if hasattr(images, "detach") else np.asarray(images)
    median = ndimage.median_filter(array, size=(1, 1, 3, 3), mode="mirror")
    extreme = (array <= 1e-6) | (array >= 1 - 1e-6)
    return (extreme & (np.abs(array - median) > IMPULSE_THRESHOLD)).any(axis=1, keepdims=True)
