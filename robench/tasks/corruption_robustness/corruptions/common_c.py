"""ImageNet-C / CIFAR-10-C's 15 corruptions and 4 held-out ones (Hendrycks & Dietterich,
"Benchmarking Neural Network Robustness to Common Corruptions and Perturbations", ICLR
2019, arXiv 1903.12261), written on numpy/scipy/scikit-image/PIL after the paper's
definitions, for RGB images, with the paper's five severities.

Two constant sets: ``cifar-10-c`` (the constants of CIFAR-10-C, for 32×32 images: what
RobustBench's corruption leaderboard is measured on) and ``imagenet-c`` (ImageNet-C's, as
the ``imagecorruptions`` package 1.1.2 ships them, for images of 224 px and more). The
forms differ where the reference code did: CIFAR-10-C's pixelate upsamples with a box
filter (ImageNet-C: nearest), its elastic transform adds a random affine warp, its frost
texture is a fifth-size crop, its fog fractal is 32², ImageNet-C's the image's size.

Random parameters are drawn per image (``rngs``): noise, angles, fractals, crops.
``imagecorruptions`` 1.1.2 cannot be imported as it is here (it needs ``pkg_resources``,
gone from setuptools ≥ 81, and its glass blur, Gaussian blur and fog fail on scikit-image
≥ 0.19 and NumPy 2); tests/test_corruptions.py compares these families with it (behind an
import shim) where it works: exactly where the corruption is deterministic, in
distribution where it is random. Motion blur and snow use its numpy re-implementation of
ImageMagick's motion blur (the paper used ImageMagick). Frost reads the frost textures that
the ``imagecorruptions`` package ships (``pip install robench[corruptions]``).
"""

from __future__ import annotations

import functools

from robench.errors import UserError
from robench.tasks.corruption_robustness.corruptions import _ops
from robench.tasks.corruption_robustness.corruptions.mnist_c import glass_blur, salt_and_pepper

COMMON = ("gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur",
          "zoom_blur", "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate",
          "jpeg_compression")
HELD_OUT = ("speckle_noise", "gaussian_blur", "spatter", "saturate")


def _arange(start, stop, step):
    """``numpy.arange(start, stop, step)`` as a tuple of floats, without importing numpy:
    ceil((stop − start)/step) values start + i·δ, δ = (start + step) − start as numpy fills."""
    import math

    delta = (start + step) - start
    return tuple(start + i * delta for i in range(math.ceil((stop - start) / step)))


# family → five severities' parameters, per constant set (from the papers' reference code)
CONSTANTS: dict[str, dict[str, tuple]] = {
    "cifar-10-c": {
        "gaussian_noise": (0.04, 0.06, 0.08, 0.09, 0.10),
        "shot_noise": (500, 250, 100, 75, 50),
        "impulse_noise": (0.01, 0.02, 0.03, 0.05, 0.07),
        "defocus_blur": ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)),
        "glass_blur": ((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)),
        "motion_blur": ((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)),
        "zoom_blur": (_arange(1, 1.06, 0.01), _arange(1, 1.11, 0.01), _arange(1, 1.16, 0.01),
                      _arange(1, 1.21, 0.01), _arange(1, 1.26, 0.01)),
        "snow": ((0.1, 0.2, 1, 0.6, 8, 3, 0.95), (0.1, 0.2, 1, 0.5, 10, 4, 0.9), (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
                 (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85), (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8)),
        "frost": ((1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)),
        "fog": ((0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)),
        "brightness": (0.05, 0.1, 0.15, 0.2, 0.3),
        "contrast": (0.75, 0.5, 0.4, 0.3, 0.15),
        # (alpha, sigma, affine) as fractions of the image size
        "elastic_transform": ((0, 0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06), (0.1, 0.04, 0.05),
                              (0.1, 0.03, 0.03)),
        "pixelate": (0.95, 0.9, 0.85, 0.75, 0.65),
        "jpeg_compression": (80, 65, 58, 50, 40),
        "speckle_noise": (0.06, 0.1, 0.12, 0.16, 0.2),
        "gaussian_blur": (0.4, 0.6, 0.7, 0.8, 1),
        "spatter": ((0.62, 0.1, 0.7, 0.7, 0.5, 0), (0.65, 0.1, 0.8, 0.7, 0.5, 0), (0.65, 0.3, 1, 0.69, 0.5, 0),
                    (0.65, 0.1, 0.7, 0.69, 0.6, 1), (0.65, 0.1, 0.5, 0.68, 0.6, 1)),
        "saturate": ((0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2)),
    },
    "imagenet-c": {
        "gaussian_noise": (0.08, 0.12, 0.18, 0.26, 0.38),
        "shot_noise": (60, 25, 12, 5, 3),
        "impulse_noise": (0.03, 0.06, 0.09, 0.17, 0.27),
        "defocus_blur": ((3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)),
        "glass_blur": ((0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2)),
        "motion_blur": ((10, 3), (15, 5), (15, 8), (15, 12), (20, 15)),
        "zoom_blur": (_arange(1, 1.11, 0.01), _arange(1, 1.16, 0.01), _arange(1, 1.21, 0.02),
                      _arange(1, 1.26, 0.02), _arange(1, 1.31, 0.03)),
        "snow": ((0.1, 0.3, 3, 0.5, 10, 4, 0.8), (0.2, 0.3, 2, 0.5, 12, 4, 0.7), (0.55, 0.3, 4, 0.9, 12, 8, 0.7),
                 (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65), (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55)),
        "frost": ((1, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75)),
        "fog": ((1.5, 2), (2.0, 2), (2.5, 1.7), (2.5, 1.5), (3.0, 1.4)),
        "brightness": (0.1, 0.2, 0.3, 0.4, 0.5),
        "contrast": (0.4, 0.3, 0.2, 0.1, 0.05),
        # (alpha in units of 250 px, sigma and maximal displacement as fractions of the size): imagecorruptions
        "elastic_transform": (0.05, 0.065, 0.085, 0.1, 0.12),
        "pixelate": (0.6, 0.5, 0.4, 0.3, 0.25),
        "jpeg_compression": (25, 18, 15, 10, 7),
        "speckle_noise": (0.15, 0.2, 0.35, 0.45, 0.6),
        "gaussian_blur": (1, 2, 3, 4, 6),
        "spatter": ((0.65, 0.3, 4, 0.69, 0.6, 0), (0.65, 0.3, 3, 0.68, 0.6, 0), (0.65, 0.3, 2, 0.68, 0.5, 0),
                    (0.65, 0.3, 1, 0.65, 1.5, 1), (0.67, 0.4, 1, 0.65, 1.5, 1)),
        "saturate": ((0.3, 0), (0.1, 0), (2, 0), (5, 0.1), (20, 0.2)),
    },
}
DESCRIPTIONS = {
    "gaussian_noise": "x + N(0, σ²) per pixel and channel",
    "shot_noise": "Poisson(λ·x)/λ, λ photons at white",
    "impulse_noise": "salt-and-pepper on a fraction p of the values",
    "defocus_blur": "a disk kernel of radius r, anti-aliased",
    "glass_blur": "blur, local pixel swaps, blur",
    "motion_blur": "a one-sided Gaussian streak at a random angle in [−45°, 45°]",
    "zoom_blur": "the mean of the image zoomed into by each factor",
    "snow": "a blurred, streaked snow layer over a whitened image",
    "frost": "a frost texture blended in",
    "fog": "a diamond-square fractal added, contrast lowered",
    "brightness": "HSV value + c",
    "contrast": "(x − mean)·c + mean per channel",
    "elastic_transform": "a smooth random displacement field (and, CIFAR-10-C, a random affine warp)",
    "pixelate": "box downsampling by c, then back up",
    "jpeg_compression": "JPEG at quality q",
    "speckle_noise": "x + x·N(0, σ²)",
    "gaussian_blur": "a Gaussian of std σ",
    "spatter": "water drops (pale turquoise, embossed) or mud (brown) splashes",
    "saturate": "HSV saturation · a + b",
}
# restoration_spectrum's degradation family that undoes a corruption (restore, then classify)
RESTORATION = {"impulse_noise": "interpolation", "defocus_blur": "super_resolution",
               "glass_blur": "super_resolution", "motion_blur": "super_resolution",
               "zoom_blur": "super_resolution", "pixelate": "super_resolution",
               "gaussian_blur": "super_resolution"}


def apply(constants: str, family: str, x, severity: int, rngs):
    """The corruption ``family`` at ``severity`` (1–5) with the ``constants`` set
    ("cifar-10-c" or "imagenet-c") of (N, H, W, 3) float64 RGB images in [0, 1], image i
    drawing from ``rngs[i]``; returns (N, H, W, 3) float64 (clipped to [0, 1] by the caller)."""
    params = CONSTANTS[constants][family][severity - 1]
    return globals()[f"_{family}"](x, params, rngs, constants)


# ------------------------------------------------------------------ noise

def _gaussian_noise(x, sigma, rngs, constants):
    import numpy as np

    return x + np.stack([rng.normal(0.0, sigma, image.shape) for image, rng in zip(x, rngs)])


def _shot_noise(x, lam, rngs, constants):
    import numpy as np

    return np.stack([rng.poisson(image * lam) for image, rng in zip(x, rngs)]) / float(lam)


def _impulse_noise(x, amount, rngs, constants):
    return salt_and_pepper(x, amount, rngs)


def _speckle_noise(x, sigma, rngs, constants):
    import numpy as np

    return x + x * np.stack([rng.normal(0.0, sigma, image.shape) for image, rng in zip(x, rngs)])


# ------------------------------------------------------------------ blur

def _gaussian_blur(x, sigma, rngs, constants):
    return _ops.gaussian_blur(x, sigma)


def _defocus_blur(x, params, rngs, constants):
    radius, alias_blur = params
    return _ops.correlate_channels(x, _ops.disk_kernel(radius, alias_blur))


def _glass_blur(x, params, rngs, constants):
    return glass_blur(x, params, rngs, coin=False)


def _motion_blur(x, params, rngs, constants):
    radius, sigma = params
    return _ops.motion_blur(x, radius, sigma, [rng.uniform(-45, 45) for rng in rngs])


def _zoom_blur(x, factors, rngs, constants):
    out = x.copy()
    for factor in factors:
        out += _ops.clipped_zoom(x, factor)
    return out / (len(factors) + 1)


# ------------------------------------------------------------------ weather

def _snow(x, params, rngs, constants):
    import numpy as np

    mu, spread, zoom, threshold, radius, sigma, keep = params
    n, h, w, _ = x.shape
    layer = np.stack([rng.normal(mu, spread, (h, w)) for rng in rngs])[..., None]
    layer = _ops.clipped_zoom(layer, zoom)
    layer[layer < threshold] = 0
    layer = np.clip(layer, 0, 1)
    layer = _ops.motion_blur(layer, radius, sigma, [rng.uniform(-135, -45) for rng in rngs])
    layer = np.round(layer * 255) / 255  # the reference stores the layer as an 8-bit image
    x = keep * x + (1 - keep) * np.maximum(x, _ops.gray(x) * 1.5 + 0.5)
    return x + layer + np.rot90(layer, k=2, axes=(1, 2))


def frost_textures() -> list:
    """The six frost photographs shipped with ``imagecorruptions`` (float64 RGB in [0, 1]),
    read from the package's files without importing it (once per process)."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("imagecorruptions")
    folder = Path(spec.origin).parent / "frost" if spec is not None and spec.origin else None
    names = ("frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg", "frost6.jpg")
    if folder is None or not all((folder / name).is_file() for name in names):
        raise UserError("corruption 'frost' blends the frost photographs of the imagecorruptions package, which "
                        "is not installed; pip install 'robench[corruptions]' (or leave frost out of families)")
    return list(_read_textures(tuple(str(folder / name) for name in names)))


@functools.lru_cache(maxsize=1)
def _read_textures(paths: tuple[str, ...]) -> tuple:
    import numpy as np
    from PIL import Image

    def read(path):
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"), dtype=np.float64) / 255.0
    return tuple(read(p) for p in paths)


@functools.lru_cache(maxsize=8)
def _frost_layers(constants: str, h: int, w: int) -> tuple:
    """The five frost textures the reference draws from, resized for (h, w) images:
    CIFAR-10-C a fifth of the photograph's size (bilinear), ImageNet-C scaled to cover the
    image × 1.1 (bicubic)."""
    import math

    import numpy as np

    out = []
    for texture in frost_textures()[:5]:  # the reference draws from the first five
        th, tw = texture.shape[:2]
        if constants == "cifar-10-c":
            out.append(_resize(texture, int(round(th * 0.2)), int(round(tw * 0.2))))
        else:
            factor = 1.1 * max(1.0, h / th, w / tw)
            out.append(np.clip(_resize(texture, int(math.ceil(th * factor)), int(math.ceil(tw * factor)),
                                       cubic=True), 0, 1))
    return tuple(out)


def _resize(image, height: int, width: int, cubic: bool = False):
    """OpenCV's ``resize`` (INTER_LINEAR, or INTER_CUBIC) of (h, w, 3): half-pixel centres,
    no anti-aliasing (torch's interpolate with align_corners=False)."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None]
    out = F.interpolate(t, size=(height, width), mode="bicubic" if cubic else "bilinear", align_corners=False)
    return out[0].numpy().transpose(1, 2, 0)


def _frost(x, params, rngs, constants):
    import numpy as np

    keep, amount = params
    n, h, w, _ = x.shape
    textures = _frost_layers(constants, h, w)
    layers = []
    for rng in rngs:
        texture = textures[int(rng.integers(5))]
        top = int(rng.integers(0, texture.shape[0] - h))
        left = int(rng.integers(0, texture.shape[1] - w))
        layers.append(texture[top:top + h, left:left + w])
    return keep * x + amount * np.stack(layers)


def _fog(x, params, rngs, constants):
    amount, decay = params
    n, h, w, _ = x.shape
    size = 32 if constants == "cifar-10-c" else _ops.next_power_of_two(max(h, w))
    size = max(size, _ops.next_power_of_two(max(h, w)))
    fog = _ops.plasma_fractals(size, decay, rngs)[:, :h, :w, None]
    peak = x.max(axis=(1, 2, 3), keepdims=True)
    return (x + amount * fog) * peak / (peak + amount)


def _spatter(x, params, rngs, constants):
    import numpy as np

    mu, spread, sigma, threshold, strength, mud = params
    n, h, w, _ = x.shape
    liquid = np.stack([rng.normal(mu, spread, (h, w)) for rng in rngs])[..., None]
    liquid = _ops.gaussian_blur(liquid, sigma)
    liquid[liquid < threshold] = 0
    if mud:
        mask = _ops.gaussian_blur((liquid > threshold).astype(np.float64), strength)
        mask[mask < 0.8] = 0
        colour = np.array([63, 42, 20]) / 255.0
        return x * (1 - mask) + colour * mask
    return x + _water(liquid[..., 0], strength)[..., None] * (np.array([175, 238, 238]) / 255.0)


def _water(liquid, strength):
    """The water drops' (N, H, W) weight: the liquid layer times an embossed, equalized
    distance to its edges (the reference's OpenCV pipeline on scikit-image/scipy: Canny
    edges, distance transform capped at 20, 3×3 box blur, histogram equalization, the
    emboss kernel [[−2, −1, 0], [−1, 1, 1], [0, 1, 2]] saturated to 8 bits, 3×3 box blur),
    normalized to max 1 and scaled by ``strength``."""
    import numpy as np
    from scipy import ndimage
    from skimage import exposure, feature

    emboss = np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]], dtype=np.float64)
    out = np.zeros_like(liquid)
    for i, layer in enumerate(liquid):
        u8 = np.floor(layer * 255).clip(0, 255)
        edges = feature.canny(u8, sigma=0.5, low_threshold=50, high_threshold=150)
        dist = np.minimum(ndimage.distance_transform_edt(~edges), 20.0)
        dist = np.floor(ndimage.uniform_filter(dist, 3, mode="mirror")).clip(0, 255)
        dist = np.floor(exposure.equalize_hist(dist.astype(np.uint8), nbins=256) * 255)
        dist = np.clip(np.round(ndimage.correlate(dist, emboss, mode="mirror")), 0, 255)
        dist = ndimage.uniform_filter(dist, 3, mode="mirror")
        m = layer * dist
        out[i] = m / m.max() * strength if m.max() > 0 else 0.0
    return out


# ------------------------------------------------------------------ digital

def _brightness(x, c, rngs, constants):
    return _ops.hsv_adjust(x, 2, 1.0, c)


def _saturate(x, params, rngs, constants):
    return _ops.hsv_adjust(x, 1, params[0], params[1])


def _contrast(x, c, rngs, constants):
    means = x.mean(axis=(1, 2), keepdims=True)
    return (x - means) * c + means


def _elastic_transform(x, params, rngs, constants):
    import numpy as np
    from scipy import ndimage

    n, h, w, channels = x.shape
    out = np.empty_like(x)
    rows, cols = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij")
    for i, (image, rng) in enumerate(zip(x, rngs)):
        if constants == "cifar-10-c":
            alpha, sigma, affine = (v * h for v in params)
            image = _random_affine(image, affine, rng)
            dx = ndimage.gaussian_filter(rng.uniform(-1, 1, (h, w)), sigma, mode="reflect", truncate=3) * alpha
            dy = ndimage.gaussian_filter(rng.uniform(-1, 1, (h, w)), sigma, mode="reflect", truncate=3) * alpha
        else:  # imagecorruptions: sigma 1% of the size, displacements up to 0.5% of it
            alpha, sigma, most = params * 250, (h * 0.01, w * 0.01), h * 0.005
            dx = ndimage.gaussian_filter(rng.uniform(-most, most, (h, w)), sigma, mode="reflect", truncate=3) * alpha
            dy = ndimage.gaussian_filter(rng.uniform(-most, most, (h, w)), sigma, mode="reflect", truncate=3) * alpha
        for c in range(channels):
            out[i, ..., c] = ndimage.map_coordinates(image[..., c], [rows + dy, cols + dx], order=1, mode="reflect")
    return out


def _random_affine(image, spread: float, rng):
    """CIFAR-10-C's random affine warp: the three points centre ± size/3 each moved by a
    uniform offset in ±spread; the image warped by the affine map between them (bilinear,
    reflect-101 borders, as OpenCV's warpAffine)."""
    import numpy as np
    from scipy import ndimage

    h, w = image.shape[:2]
    centre = np.array([h // 2, w // 2], dtype=np.float64)  # (x, y) as the reference: both from the shape
    third = min(h, w) // 3
    src = np.array([centre + third, [centre[0] + third, centre[1] - third], centre - third], dtype=np.float32)
    dst = src + rng.uniform(-spread, spread, size=src.shape).astype(np.float32)
    src, dst = src.astype(np.float64), dst.astype(np.float64)
    # forward map (x, y) → A·(x, y) + b taking src to dst; the output samples the input at its inverse
    forward = np.linalg.solve(np.c_[src, np.ones(3)], dst).T  # (2, 3)
    inverse = np.linalg.inv(forward[:, :2])
    rows, cols = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij")
    px, py = cols - forward[0, 2], rows - forward[1, 2]
    src_x = inverse[0, 0] * px + inverse[0, 1] * py
    src_y = inverse[1, 0] * px + inverse[1, 1] * py
    return np.stack([ndimage.map_coordinates(image[..., c], [src_y, src_x], order=1, mode="mirror")
                     for c in range(image.shape[2])], axis=-1)


def _pixelate(x, c, rngs, constants):
    from PIL import Image

    n, h, w, _ = x.shape
    up = Image.BOX if constants == "cifar-10-c" else Image.NEAREST
    small = (int(w * c), int(h * c))
    out = _ops.pil_roundtrip(_ops.to_uint8(x), lambda im: im.resize(small, Image.BOX).resize((w, h), up))
    return _ops.to_float(out)


def _jpeg_compression(x, quality, rngs, constants):
    import io

    from PIL import Image

    def jpeg(image):
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=int(quality))
        buffer.seek(0)
        with Image.open(buffer) as decoded:
            return decoded.copy()
    return _ops.to_float(_ops.pil_roundtrip(_ops.to_uint8(x), jpeg))
