"""MNIST-C's 15 corruptions (Mu & Gilmer, "MNIST-C: A Robustness Benchmark for Computer
Vision", ICML workshop 2019, arXiv 1906.02337), written on numpy/scipy/scikit-image after
the paper's definitions, with five severities each.

MNIST-C fixes one setting per corruption. robench needs five severities, so each family
has a **ladder** (version :data:`LADDER_VERSION`) whose middle, severity 3, is the paper's
setting; severities 1–2 and 4–5 are weaker and stronger settings of the same parameter:

* where the setting comes from ImageNet-C's list of five (the reference code indexes it),
  the two entries below the paper's entry give severities 1–2 and the entries above it
  4–5, continued geometrically (ratio of the last step) where the list ends;
* where the paper has no parameter (stripe, dotted line, zigzag, Canny edges), the ladder
  is the stripe width (±2 px a step), the stroke's intensity (1/3, 2/3, 1) and then more
  strokes (2, 3), or the edge map blended into the image (1/3, 2/3, 1) and then edges of a
  smoother image (σ = 1.5, 2). Every ladder degrades monotonically: the mean PSNR to the
  clean image falls with the severity (tests/test_corruptions.py).

Images are (N, 28, 28, 1) float64 in [0, 1] (white digit on black); the geometric families
turn about the image centre ((W − 1)/2, (H − 1)/2), 13.5 at 28 px. Where the published
MNIST-C code differs from the paper's description, the paper wins, and the difference is
said in the family's text: its glass blur passes ``multichannel=True`` on a 2-D image, so
scikit-image blurred the rows only (here: both axes, as ImageNet-C's); its motion blur is
ImageMagick's (here: the numpy re-implementation of imagecorruptions, the same kernel);
its shear is scikit-image < 0.19's "shear" matrix (kept: it made the published data).
"""

from __future__ import annotations

import math

from robench.tasks.corruption_robustness.corruptions import _ops

BENCHMARK = "mnist-c"
LADDER_VERSION = "1"

# family → (five severities' parameters, what a severity means and its defining property)
LADDERS: dict[str, tuple[tuple, str]] = {
    "shot_noise": ((12.0, 5.0, 3.0, 1.8, 1.08),
                   "Poisson photon noise: out = Poisson(λ·x)/λ, λ photons at white; mean x, variance x/λ "
                   "(paper: λ = 3)"),
    "impulse_noise": ((0.06, 0.09, 0.17, 0.27, 0.43),
                      "salt-and-pepper: a fraction p of the pixels set to 0 or 1 with equal odds (paper: p = 0.17)"),
    "glass_blur": (((0.6, 1, 1), (0.7, 1, 1), (0.7, 1, 2), (0.9, 2, 1), (1.0, 2, 3)),
                   "(σ, δ, iterations): Gaussian blur σ, then `iterations` passes in which each pixel, with "
                   "probability 1/2, swaps with one at an offset in [−δ, δ)², then blur σ again "
                   "(paper: 0.7, 1, 2)"),
    "motion_blur": (((6, 1.0), (8, 2.0), (10, 3.0), (15, 5.0), (15, 8.0)),
                    "(radius, σ): one-sided Gaussian streak exp(−i²/2σ²), i = 0 … 2·radius, at a uniform "
                    "angle in [−45°, 45°] (paper: 10, 3)"),
    "shear": ((0.2, 0.3, 0.4, 0.6, 0.8),
              "shear angle c (radians, random sign) about the centre: inverse map [[1, −sin c], [0, cos c]] "
              "(scikit-image < 0.19's AffineTransform(shear=c)) (paper: 0.4)"),
    "scale": ((1 / 0.9, 1 / 0.8, 1 / 0.7, 1 / 0.6, 1 / 0.5),
              "zoom out by 1/c about the centre: the digit shrinks to 90 … 50 % of its size (paper: 70 %)"),
    "rotate": ((0.2, 0.3, 0.4, 0.6, 0.8),
               "rotation by c radians (random sign) about the centre (paper: 0.4 rad ≈ 23°)"),
    "brightness": ((0.3, 0.4, 0.5, 0.6, 0.7),
                   "HSV value + c, which for a grey image is clip(x + c, 0, 1) (paper: c = 0.5)"),
    "translate": ((1, 2, 3, 4, 5),
                  "shift by c pixels along each axis, random signs, zeros enter (paper: 3 px)"),
    "stripe": ((3, 5, 7, 9, 11),
               "invert (1 − x) the c leftmost and c rightmost columns (paper: 7 of 28)"),
    "fog": (((2.5, 1.7), (2.5, 1.5), (3.0, 1.4), (3.5, 1.3), (4.0, 1.2)),
            "(c, decay): add c × a 256² diamond-square fractal's top-left corner, rescale by max/(max + c) "
            "(paper: 3, 1.4)"),
    "spatter": (((0.60, 0.3, 1.0, 0.65, 1.5), (0.62, 0.3, 1.0, 0.65, 1.5), (0.65, 0.3, 1.0, 0.65, 1.5),
                 (0.67, 0.4, 1.0, 0.65, 1.5), (0.69, 0.5, 1.0, 0.65, 1.5)),
                "(μ, s, σ1, t, σ2) mud: N(μ, s) noise blurred σ1, thresholded at t, the mask blurred σ2 and "
                "kept where ≥ 0.8; out = x·(1 − m) + 63/255·m (paper: 0.65, 0.3, 1, 0.65, 1.5)"),
    "dotted_line": (((1, 1 / 3), (1, 2 / 3), (1, 1.0), (2, 1.0), (3, 1.0)),
                    "(lines, intensity): lines from column 0 to 27 at random rows, drawn on alternate 2-column "
                    "dashes and added (clipped) (paper: one line at full intensity)"),
    "zigzag": (((1, 1 / 3), (1, 2 / 3), (1, 1.0), (2, 1.0), (3, 1.0)),
               "(zigzags, intensity): a zigzag (period 4 px, amplitude 2 px) from column 2 to 25 around a "
               "random line, added (clipped) (paper: one at full intensity)"),
    "canny_edges": (((1 / 3, 1.0), (2 / 3, 1.0), (1.0, 1.0), (1.0, 1.5), (1.0, 2.0)),
                    "(a, σ): (1 − a)·x + a·Canny(x, σ) (scikit-image's canny, default thresholds) (paper: the "
                    "edge map alone, σ = 1)"),
}
FAMILIES = tuple(LADDERS)
# restoration_spectrum's degradation family that undoes a corruption (restore, then
# classify); the others have none (the classifier sees them as they are)
RESTORATION = {"impulse_noise": "interpolation", "glass_blur": "super_resolution", "motion_blur": "super_resolution"}


def apply(family: str, x, severity: int, rngs):
    """The corruption ``family`` at ``severity`` (1–5) of (N, H, W, 1) float64 images in
    [0, 1], image i drawing from ``rngs[i]``; returns (N, H, W, 1) float64 (not yet
    clipped where the family does not clip)."""
    params = LADDERS[family][0][severity - 1]
    return globals()[f"_{family}"](x, params, rngs)


# ------------------------------------------------------------------ noise

def _shot_noise(x, lam, rngs):
    import numpy as np

    return np.stack([rng.poisson(image * lam) for image, rng in zip(x, rngs)]) / lam


def _impulse_noise(x, amount, rngs):
    return salt_and_pepper(x, amount, rngs)


def salt_and_pepper(x, amount, rngs):
    """Each value (pixel and channel) replaced with probability ``amount`` by 1 or 0 with
    equal odds (scikit-image's ``random_noise(mode="s&p")``)."""
    import numpy as np

    out = x.copy()
    for image, rng in zip(out, rngs):
        flipped = rng.random(image.shape) < amount
        salted = rng.random(image.shape) < 0.5
        image[flipped & salted] = 1.0
        image[flipped & ~salted] = 0.0
    return np.asarray(out)


# ------------------------------------------------------------------ blur

def _glass_blur(x, params, rngs):
    return glass_blur(x, params, rngs, coin=True)


def glass_blur(x, params, rngs, coin: bool):
    """Blur σ, quantize to 8 bits, shuffle locally (:func:`local_shuffle`), blur σ again."""
    import numpy as np

    sigma, delta, iterations = params
    image = np.floor(_ops.gaussian_blur(x, sigma) * 255.0) / 255.0  # np.uint8 in the reference
    return _ops.gaussian_blur(local_shuffle(image, delta, iterations, rngs, coin), sigma)


def local_shuffle(x, delta: int, iterations: int, rngs, coin: bool):
    """Glass blur's pixel swaps, in place on (N, H, W, C) and returned: ``iterations``
    passes over rows H−δ … δ+1 and columns W−δ … δ+1 (bottom-right inwards), each pixel
    swapping with the pixel at an offset (dx, dy) uniform in [−δ, δ)² — when ``coin``
    (MNIST-C), only with probability 1/2. Row 0 and column 0 never move."""
    import numpy as np

    n, h, w, _ = x.shape
    rows = list(range(h - delta, delta, -1))
    cols = list(range(w - delta, delta, -1))
    steps = iterations * len(rows) * len(cols)
    offsets = np.stack([rng.integers(-delta, delta, size=(steps, 2)) for rng in rngs])  # (N, steps, (dx, dy))
    swaps = (np.stack([rng.random(steps) < 0.5 for rng in rngs]) if coin
             else np.ones((n, steps), dtype=bool))
    batch = np.arange(n)
    k = 0
    for _ in range(iterations):
        for r in rows:
            for c in cols:
                who = batch[swaps[:, k]]
                r2, c2 = r + offsets[who, k, 1], c + offsets[who, k, 0]
                here = x[who, r, c].copy()
                x[who, r, c] = x[who, r2, c2]
                x[who, r2, c2] = here
                k += 1
    return x


def _motion_blur(x, params, rngs):
    radius, sigma = params
    return _ops.motion_blur(x, radius, sigma, [rng.uniform(-45, 45) for rng in rngs])


# ------------------------------------------------------------------ geometry

def _centre(x):
    h, w = x.shape[1:3]
    return (w - 1) / 2.0, (h - 1) / 2.0


def _signs(rngs, count: int = 1):
    import numpy as np

    return np.array([rng.choice([-1, 1], count) for rng in rngs], dtype=np.float64)


def _shear(x, c, rngs):
    import numpy as np

    cx, cy = _centre(x)
    mats = [_ops.centred_affine([[1.0, -math.sin(s * c)], [0.0, math.cos(s * c)]], cx, cy) for s in _signs(rngs)[:, 0]]
    return _ops.affine_warp(x, np.stack(mats))


def _rotate(x, c, rngs):
    import numpy as np

    cx, cy = _centre(x)
    mats = []
    for s in _signs(rngs)[:, 0]:
        a = s * c
        mats.append(_ops.centred_affine([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]], cx, cy))
    return _ops.affine_warp(x, np.stack(mats))


def _scale(x, c, rngs):
    import numpy as np

    cx, cy = _centre(x)
    mat = _ops.centred_affine([[c, 0.0], [0.0, c]], cx, cy)
    return _ops.affine_warp(x, np.broadcast_to(mat, (len(x), 2, 3)))


def _translate(x, c, rngs):
    import numpy as np

    signs = _signs(rngs, 2)
    mats = np.zeros((len(x), 2, 3))
    mats[:, 0, 0] = mats[:, 1, 1] = 1.0
    mats[:, :, 2] = c * signs  # the output at (col, row) reads the input at (col + dx, row + dy)
    return _ops.affine_warp(x, mats)


# ------------------------------------------------------------------ intensity and overlays

def _brightness(x, c, rngs):
    import numpy as np

    return np.clip(x + c, 0, 1)


def _stripe(x, width, rngs):
    out = x.copy()
    out[:, :, :width] = 1.0 - out[:, :, :width]
    out[:, :, x.shape[2] - width:] = 1.0 - out[:, :, x.shape[2] - width:]
    return out


def _fog(x, params, rngs):
    import numpy as np

    c, decay = params
    h, w = x.shape[1:3]
    size = max(256, _ops.next_power_of_two(max(h, w)))
    fog = _ops.plasma_fractals(size, decay, rngs)[:, :h, :w, None]
    peak = x.max(axis=(1, 2, 3), keepdims=True)
    return np.clip((x + c * fog) * peak / (peak + c), 0, 1)


def _spatter(x, params, rngs):
    import numpy as np

    mu, spread, sigma_liquid, threshold, sigma_mask = params
    liquid = np.stack([rng.normal(mu, spread, x.shape[1:3]) for rng in rngs])[..., None]
    liquid = _ops.gaussian_blur(liquid, sigma_liquid)
    mask = _ops.gaussian_blur((liquid > threshold).astype(np.float64), sigma_mask)
    mask[mask < 0.8] = 0.0
    return np.clip(x * (1 - mask) + 63 / 255 * mask, 0, 1)


def _dotted_line(x, params, rngs):
    import numpy as np

    lines, intensity = params
    h, w = x.shape[1:3]
    dashes = (np.arange(w) // 2) % 2 == 1  # columns 2-3, 6-7, ... are drawn (0-1, 4-5, ... are gaps)
    layers = []
    for rng in rngs:
        layer = np.zeros((h, w))
        for _ in range(lines):
            r0, r1 = rng.integers(0, h - 1, size=2)
            layer = layer + _ops.line_layer(0, r0, w - 1, r1, h, w) * dashes[None, :]
        layers.append(layer)
    return np.clip(x + intensity * np.stack(layers)[..., None], 0, 1)


def zigzag_vertices(c0: float, r0: float, c1: float, r1: float, period: float = 4.0, amplitude: float = 2.0):
    """Vertices (cols, rows) of a zigzag around the line (c0, r0) → (c1, r1): along the
    line at t = 0, period/2, 3·period/2, … and its end, offset ±amplitude perpendicular
    (alternating; 0 at both ends)."""
    import numpy as np

    theta = math.atan2(r1 - r0, c1 - c0)
    length = math.hypot(c1 - c0, r1 - r0)
    ts = [0.0] + [t for t in np.arange(period / 2, length, period)] + [length]
    offsets = [0.0] + [amplitude * (-1) ** i for i in range(len(ts) - 2)] + [0.0]
    cols = [c0 + t * math.cos(theta) - o * math.sin(theta) for t, o in zip(ts, offsets)]
    rows = [r0 + t * math.sin(theta) + o * math.cos(theta) for t, o in zip(ts, offsets)]
    return np.array(cols), np.array(rows)


def _zigzag(x, params, rngs):
    import numpy as np

    count, intensity = params
    h, w = x.shape[1:3]
    layers = []
    for rng in rngs:
        layer = np.zeros((h, w))
        for _ in range(count):
            r0 = float(rng.integers(0, h - 1))
            r1 = r0 + float(rng.integers(-5, 5))
            cols, rows = zigzag_vertices(2.0, r0, w - 3.0, r1)
            for i in range(1, len(cols)):
                a, b = (i - 1, i) if cols[i] >= cols[i - 1] else (i, i - 1)  # a stroke is drawn left to right
                layer = np.maximum(layer, _ops.line_layer(cols[a], rows[a], cols[b], rows[b], h, w))
        layers.append(layer)
    return np.clip(x + intensity * np.stack(layers)[..., None], 0, 1)


def _canny_edges(x, params, rngs):
    import numpy as np
    from skimage import feature

    blend, sigma = params
    edges = np.stack([feature.canny(image[..., 0], sigma=sigma) for image in x]).astype(np.float64)[..., None]
    return (1 - blend) * x + blend * edges
