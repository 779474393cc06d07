"""Array operations the corruption families share, on numpy/scipy/scikit-image, batched.

Images are float64 arrays (N, H, W, C) with values in [0, 1] unless a function says
otherwise; every operation works on the whole batch at once where the algorithm allows
(per-image randomness is drawn from one generator per image, see :func:`image_rngs`).
Border conventions are named after the libraries the reference code used: OpenCV's
BORDER_REFLECT_101 is scipy's ``mode="mirror"``, scikit-image's ``gaussian`` default is
scipy's ``mode="nearest"``.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence

# float → uint8 as the published datasets store images (np.uint8 of the 0–255 floats, a
# truncation); the epsilon keeps a value computed as k/255·255 = k − 1e-13 at k
UINT8_EPS = 1e-6


def image_rngs(seed: int, benchmark: str, family: str, severity: int, indices) -> list:
    """One ``numpy.random.Generator`` per image, seeded by (seed, benchmark/family, the
    image's index in its split): a corrupted image is a pure function of those, the severity
    and the clean image, whatever the batch it is generated in. The severity does not enter
    the seed: every severity of an image starts from the same draws (common random numbers:
    the noise, angle or fractal is the same, the severity sets its strength), so a severity
    curve is not blurred by fresh randomness at each step."""
    code = zlib.crc32(f"{benchmark}/{family}".encode("utf-8"))
    return ImageRngs([(int(seed), code, int(i)) for i in indices])


class ImageRngs(Sequence):
    """The per-image generators of :func:`image_rngs`, each made when first used and kept
    (a deterministic family never pays for them; a random one draws from one stream per
    image however often it asks)."""

    def __init__(self, keys: list[tuple[int, int, int]]):
        self._keys = keys
        self._made: list = [None] * len(keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if self._made[i] is None:
            import numpy as np

            self._made[i] = np.random.Generator(np.random.PCG64(np.random.SeedSequence(list(self._keys[i]))))
        return self._made[i]


def to_float(images_uint8):
    """uint8 (N, H, W, C) → float64 in [0, 1]."""
    import numpy as np

    return np.asarray(images_uint8, dtype=np.float64) / 255.0


def to_uint8(x):
    """float (…) in [0, 1] (clipped) → uint8 by truncation of x·255, as np.uint8 does on the
    reference code's 0–255 floats (plus :data:`UINT8_EPS`)."""
    import numpy as np

    return np.floor(np.clip(x, 0.0, 1.0) * 255.0 + UINT8_EPS).astype(np.uint8)


def gray(x):
    """(N, H, W, 3) RGB → (N, H, W, 1) luma with OpenCV's RGB2GRAY weights (BT.601)."""
    return (x[..., 0:1] * 0.299 + x[..., 1:2] * 0.587 + x[..., 2:3] * 0.114)


def gaussian_blur(x, sigma: float, mode: str = "nearest", truncate: float = 4.0):
    """scikit-image's ``filters.gaussian(..., channel_axis=-1)`` on each image of (N, H, W,
    C): a Gaussian of std ``sigma`` pixels over H and W only (scipy, ``mode``, ``truncate``)."""
    from scipy import ndimage

    return ndimage.gaussian_filter(x, sigma=(0, sigma, sigma, 0), mode=mode, truncate=truncate)


def cv2_gaussian_kernel(size: int, sigma: float):
    """OpenCV's ``getGaussianKernel(size, sigma)`` (sigma > 0): exp(−d²/2σ²) normalized, 1-D."""
    import numpy as np

    d = np.arange(size) - (size - 1) / 2.0
    k = np.exp(-d ** 2 / (2.0 * sigma ** 2))
    return k / k.sum()


def disk_kernel(radius: float, alias_blur: float):
    """ImageNet-C's defocus kernel: the disk x² + y² ≤ r² on the grid [−8, 8]² (r ≤ 8; else
    [−r, r]²), normalized to sum 1, then anti-aliased by a 3×3 (r ≤ 8; else 5×5) Gaussian of
    std ``alias_blur`` with reflect-101 borders. (2L+1, 2L+1) float64."""
    import numpy as np
    from scipy import ndimage

    if radius <= 8:
        grid, size = np.arange(-8, 9), 3
    else:
        grid, size = np.arange(-int(radius), int(radius) + 1), 5
    xx, yy = np.meshgrid(grid, grid)
    disk = (xx ** 2 + yy ** 2 <= radius ** 2).astype(np.float64)
    disk /= disk.sum()
    g = cv2_gaussian_kernel(size, alias_blur)
    return ndimage.correlate(disk, np.outer(g, g), mode="mirror")


def correlate_channels(x, kernel):
    """OpenCV's ``filter2D`` (a correlation, reflect-101 borders) of every channel of every
    image of (N, H, W, C) with the 2-D ``kernel``."""
    from scipy import ndimage

    return ndimage.correlate(x, kernel[None, :, :, None], mode="mirror")


def clipped_zoom(x, factor: float):
    """Zoom into the centre of every image of (N, H, W, C) by ``factor`` ≥ 1: crop the
    central ceil(H/factor) × ceil(W/factor), resize it by ``factor`` with linear
    interpolation (``scipy.ndimage.zoom(order=1)``'s grid, as two interpolation matrices)
    and trim the result to (H, W), centred."""
    import numpy as np

    h, w = x.shape[1:3]
    ch, cw = int(math.ceil(h / factor)), int(math.ceil(w / factor))
    top, left = (h - ch) // 2, (w - cw) // 2
    oh, ow = int(round(ch * factor)), int(round(cw * factor))
    zoom_rows, zoom_cols = zoom_matrix(ch, oh), zoom_matrix(cw, ow)
    out = np.einsum("ih,nhwc,jw->nijc", zoom_rows, x[:, top:top + ch, left:left + cw], zoom_cols, optimize=True)
    trim_top, trim_left = (oh - h) // 2, (ow - w) // 2
    return out[:, trim_top:trim_top + h, trim_left:trim_left + w]


def zoom_matrix(n_in: int, n_out: int):
    """(n_out, n_in) linear interpolation of ``scipy.ndimage.zoom(order=1)`` along one axis:
    output i samples the input at i·(n_in − 1)/(n_out − 1) (the end points aligned)."""
    import numpy as np

    out = np.zeros((n_out, n_in))
    position = np.arange(n_out) * ((n_in - 1) / (n_out - 1) if n_out > 1 else 0.0)
    low = np.clip(np.floor(position).astype(np.int64), 0, n_in - 1)
    high = np.minimum(low + 1, n_in - 1)
    frac = position - low
    out[np.arange(n_out), low] += 1 - frac
    out[np.arange(n_out), high] += frac
    return out


def motion_kernel(radius: int, sigma: float):
    """ImageMagick's motion-blur weights (as imagecorruptions re-implements them): a one-sided
    Gaussian exp(−i²/2σ²) over i = 0 … 2·radius, normalized to sum 1."""
    import numpy as np

    i = np.arange(2 * int(radius) + 1, dtype=np.float64)
    k = np.exp(-i ** 2 / (2.0 * sigma ** 2))
    return k / k.sum()


def motion_blur(x, radius: int, sigma: float, angles_deg):
    """Motion blur of each image of (N, H, W, C) along its own angle (degrees, (N,)):
    Σ_i k_i · x shifted by i pixels against the direction of motion, edge pixels repeated
    (ImageMagick's MotionBlurImage as imagecorruptions re-implements it in numpy). Shifts
    that leave the image end the sum (so the weights then sum to less than 1)."""
    import numpy as np

    n, h, w = x.shape[:3]
    kernel = motion_kernel(radius, sigma)
    theta = np.deg2rad(np.asarray(angles_deg, dtype=np.float64))
    sin, cos = np.sin(theta), np.cos(theta)
    out = np.zeros_like(x)
    batch = np.arange(n)[:, None, None]
    alive = np.ones(n, dtype=bool)
    for i, weight in enumerate(kernel):
        dy = -np.ceil(i * sin - 0.5).astype(np.int64)
        dx = -np.ceil(i * cos - 0.5).astype(np.int64)
        alive &= (np.abs(dy) < h) & (np.abs(dx) < w)
        if not alive.any():
            break
        rows = np.clip(np.arange(h)[None, :] - dy[:, None], 0, h - 1)
        cols = np.clip(np.arange(w)[None, :] - dx[:, None], 0, w - 1)
        shifted = x[batch, rows[:, :, None], cols[:, None, :]]
        out += (weight * alive)[:, None, None, None] * shifted
    return out


def plasma_fractal(mapsize: int, decay: float, rng):
    """A (mapsize, mapsize) diamond-square height map in [0, 1] (ImageNet-C's fog): the
    random displacement at each scale is uniform in ±wibble², wibble starting at 100 and
    divided by ``decay`` per halving of the step. ``mapsize`` is a power of two."""
    import numpy as np

    assert mapsize & (mapsize - 1) == 0, mapsize
    field = np.empty((mapsize, mapsize), dtype=np.float64)
    field[0, 0] = 0.0
    step, wibble = mapsize, 100.0

    def displaced(values):
        return values / 4 + wibble * rng.uniform(-wibble, wibble, values.shape)

    while step >= 2:
        half = step // 2
        corners = field[0:mapsize:step, 0:mapsize:step]
        squares = corners + np.roll(corners, shift=-1, axis=0)
        squares += np.roll(squares, shift=-1, axis=1)
        field[half:mapsize:step, half:mapsize:step] = displaced(squares)
        centres = field[half:mapsize:step, half:mapsize:step]
        corners = field[0:mapsize:step, 0:mapsize:step]
        left = centres + np.roll(centres, 1, axis=0) + corners + np.roll(corners, -1, axis=1)
        field[0:mapsize:step, half:mapsize:step] = displaced(left)
        top = centres + np.roll(centres, 1, axis=1) + corners + np.roll(corners, -1, axis=0)
        field[half:mapsize:step, 0:mapsize:step] = displaced(top)
        step //= 2
        wibble /= decay
    field -= field.min()
    return field / field.max()


def plasma_fractals(mapsize: int, decay: float, rngs):
    """:func:`plasma_fractal` per generator, (N, mapsize, mapsize) (one map at a time: a
    batched version was no faster, its arrays leave the cache)."""
    import numpy as np

    return np.stack([plasma_fractal(mapsize, decay, rng) for rng in rngs])


def next_power_of_two(n: int) -> int:
    return 1 if n <= 1 else 2 ** (int(n) - 1).bit_length()


def affine_warp(x, matrices, mode: str = "grid-constant"):
    """Warp each image of (N, H, W, C) by its inverse map ``matrices`` (N, 2, 3) in (column,
    row) coordinates, as scikit-image's ``warp(image, inverse_map=AffineTransform(...))``:
    output pixel (col, row) takes the input at M · (col, row, 1), bilinear, 0 outside."""
    import numpy as np
    from scipy import ndimage

    n, h, w, c = x.shape
    rows, cols = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij")
    m = np.asarray(matrices, dtype=np.float64)
    src_col = m[:, 0, 0, None, None] * cols + m[:, 0, 1, None, None] * rows + m[:, 0, 2, None, None]
    src_row = m[:, 1, 0, None, None] * cols + m[:, 1, 1, None, None] * rows + m[:, 1, 2, None, None]
    batch = np.broadcast_to(np.arange(n, dtype=np.float64)[:, None, None], (n, h, w))
    out = np.empty_like(x)
    for channel in range(c):
        out[..., channel] = ndimage.map_coordinates(x[..., channel], [batch, src_row, src_col], order=1, mode=mode,
                                                    cval=0.0)
    return out


def centred_affine(linear, centre_col: float, centre_row: float):
    """A 2×3 inverse map (column, row) that applies the 2×2 ``linear`` about a fixed centre."""
    import numpy as np

    a = np.asarray(linear, dtype=np.float64)
    offset = np.array([centre_col, centre_row]) - a @ np.array([centre_col, centre_row])
    return np.concatenate([a, offset[:, None]], axis=1)


def line_layer(c0: float, r0: float, c1: float, r1: float, h: int, w: int):
    """MNIST-C's line stroke (H, W) in [0, 1]: at vertical distance d from the line through
    (c0, r0) and (c1, r1) the value is log(1 − d/2.3) + 1 clipped to [0, 1] (1 on the line,
    0 from d ≈ 1.45 px on), limited to the columns floor(c0) … ceil(c1) − 1."""
    import numpy as np

    if c1 == c0:
        return np.zeros((h, w))
    cc, rr = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    slope = (r1 - r0) / (c1 - c0)
    dist = np.clip(np.abs(rr - (slope * (cc - c0) + r0)), 0, 2.3 - 1e-10)
    layer = np.clip(np.log(1 - dist / 2.3) + 1, 0, 1)
    layer[:, :int(math.floor(c0))] = 0
    layer[:, int(math.ceil(c1)):] = 0
    return layer


def hsv_adjust(x, channel: int, scale: float, shift: float):
    """RGB (N, H, W, 3) → HSV, channel ``channel`` (1: saturation, 2: value) set to
    clip(v · scale + shift, 0, 1), → RGB (scikit-image's conversions)."""
    import numpy as np
    from skimage import color

    hsv = color.rgb2hsv(x, channel_axis=-1)
    hsv[..., channel] = np.clip(hsv[..., channel] * scale + shift, 0, 1)
    return color.hsv2rgb(hsv, channel_axis=-1)


def pil_roundtrip(u8, fn):
    """Apply ``fn`` (a PIL Image → PIL Image) to every image of uint8 (N, H, W, C); returns
    uint8 (N, H, W, C). Grey images are PIL mode L, RGB mode RGB."""
    import numpy as np
    from PIL import Image

    out = np.empty_like(u8)
    for i, image in enumerate(u8):
        pil = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
        result = np.asarray(fn(pil))
        out[i] = result[..., None] if result.ndim == 2 else result
    return out
