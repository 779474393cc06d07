"""PSNR and SSIM on the CPU as compiled passes (numba), in float64.

PSNR's squared error is one vectorized float64 sum per image (exact differences of
float32 inputs), cut into pieces that threads share.

SSIM is one pass per image plane. scikit-image computes SSIM as five Gaussian-filtered
maps (x, y, x², y², xy), each a separate pass over a whole image, and then a dozen
elementwise passes for the formula. Here each plane is read once, in strips of ``STRIP``
output columns: per input row, four moments (x, y, x² + y², xy: the formula needs only
the sum of the two variances) are filtered along the row into a ring of the last 12
filtered rows; two output rows at a time are filtered down the columns from those 12
rows, the SSIM formula is evaluated on them and summed. The ring stays in the L1/L2
caches and everything is float64, so the values are scikit-image's on float64 input to
rounding (measured: below 1e-14); benchmarks/bench_image_metrics.py measures the speed
against scikit-image's loop (benchmarks/RESULTS.md).

The window (the caller's: :mod:`robench.metrics.image` passes scipy's Gaussian at σ =
1.5 truncated at 3.5 σ) has 11 taps and is symmetric, so each filtered value is 6
multiplies and 10 adds, written out below so that the compiler vectorizes the loops over
a row (``error_model="numpy"``: no Python zero-division check, which would keep the
division scalar). Work is split into (plane, band of output rows) items that threads
take in turn (the kernel releases the GIL): one large grayscale image uses every thread,
and a batch with under ``MIN_ELEMENTS_PER_THREAD`` elements per thread stays on one.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

TAPS = 11  # the window's length: the sums below are written out for it (symmetric, 6 weights)
STRIP = 96  # output columns per strip: the ring of row-filtered rows (12 × 4 × 96 doubles) stays in L1/L2
RING = TAPS + 1  # two output rows at a time read 12 input rows


@numba.njit(inline="always")
def _filtered_row(a, b, window, p, r, c0, iw, sw, scale, mom, dst):
    """Row r of plane p, input columns c0 … c0 + iw: its four moments (x, y, x² + y², xy)
    into ``mom`` (4, ≥ iw), each filtered along the row into ``dst`` (4, ≥ sw)."""
    for j in range(iw):
        x = a[p, r, c0 + j] * scale
        y = b[p, r, c0 + j] * scale
        mom[0, j] = x
        mom[1, j] = y
        mom[2, j] = x * x + y * y
        mom[3, j] = x * y
    W0, W1, W2, W3, W4, W5 = window[0], window[1], window[2], window[3], window[4], window[5]
    for m in range(4):
        for j in range(sw):
            dst[m, j] = (W0 * (mom[m, j] + mom[m, j + 10]) + W1 * (mom[m, j + 1] + mom[m, j + 9])
                         + W2 * (mom[m, j + 2] + mom[m, j + 8]) + W3 * (mom[m, j + 3] + mom[m, j + 7])
                         + W4 * (mom[m, j + 4] + mom[m, j + 6]) + W5 * mom[m, j + 5])


@numba.njit(inline="always")
def _ssim_row_sum(col, sw, c1, c2):
    """The SSIM map summed over one output row of filtered moments ``col`` (4, ≥ sw)."""
    total = 0.0
    for j in range(sw):
        ux, uy = col[0, j], col[1, j]
        uxy = ux * uy
        uu = ux * ux + uy * uy
        total += ((2.0 * uxy + c1) * (2.0 * (col[3, j] - uxy) + c2)) / ((uu + c1) * (col[2, j] - uu + c2))
    return total


@numba.njit(nogil=True, fastmath=True, boundscheck=False, error_model="numpy", cache=True)
def _ssim_sums(a, b, window, scale, c1, c2, items, out):
    """For each item (plane p, output rows [r0, r1)) of ``items`` (k, 3): the sum of the
    SSIM map over those rows of plane p of ``a``/``b`` (P, H, W), values times ``scale``,
    into ``out[k]``."""
    wo = a.shape[2] - TAPS + 1
    W0, W1, W2, W3, W4, W5 = window[0], window[1], window[2], window[3], window[4], window[5]
    ring = np.empty((RING, 4, STRIP))  # row-filtered moments, input row r0 + i in slot i % RING
    mom = np.empty((4, STRIP + TAPS - 1))
    col = np.empty((4, STRIP))
    col2 = np.empty((4, STRIP))
    for k in range(items.shape[0]):
        p, r0, r1 = items[k, 0], items[k, 1], items[k, 2]
        total = 0.0
        for c0 in range(0, wo, STRIP):
            sw = min(STRIP, wo - c0)  # output columns of this strip
            iw = sw + TAPS - 1
            for i in range(TAPS - 1):
                _filtered_row(a, b, window, p, r0 + i, c0, iw, sw, scale, mom, ring[i % RING])
            for t in range(r0, r1, 2):  # output rows t and t + 1: input rows t … t + 11
                i = t - r0
                _filtered_row(a, b, window, p, t + 10, c0, iw, sw, scale, mom, ring[(i + 10) % RING])
                pair = t + 1 < r1
                if pair:
                    _filtered_row(a, b, window, p, t + 11, c0, iw, sw, scale, mom, ring[(i + 11) % RING])
                s0, s1, s2, s3 = i % RING, (i + 1) % RING, (i + 2) % RING, (i + 3) % RING
                s4, s5, s6, s7 = (i + 4) % RING, (i + 5) % RING, (i + 6) % RING, (i + 7) % RING
                s8, s9, s10, s11 = (i + 8) % RING, (i + 9) % RING, (i + 10) % RING, (i + 11) % RING
                for m in range(4):
                    if pair:  # twelve rows read once for two outputs
                        for j in range(sw):
                            q0, q1, q2, q3 = ring[s0, m, j], ring[s1, m, j], ring[s2, m, j], ring[s3, m, j]
                            q4, q5, q6, q7 = ring[s4, m, j], ring[s5, m, j], ring[s6, m, j], ring[s7, m, j]
                            q8, q9, q10, q11 = ring[s8, m, j], ring[s9, m, j], ring[s10, m, j], ring[s11, m, j]
                            col[m, j] = (W0 * (q0 + q10) + W1 * (q1 + q9) + W2 * (q2 + q8) + W3 * (q3 + q7)
                                         + W4 * (q4 + q6) + W5 * q5)
                            col2[m, j] = (W0 * (q1 + q11) + W1 * (q2 + q10) + W2 * (q3 + q9) + W3 * (q4 + q8)
                                          + W4 * (q5 + q7) + W5 * q6)
                    else:
                        for j in range(sw):
                            col[m, j] = (W0 * (ring[s0, m, j] + ring[s10, m, j]) + W1 * (ring[s1, m, j] + ring[s9, m, j])
                                         + W2 * (ring[s2, m, j] + ring[s8, m, j]) + W3 * (ring[s3, m, j] + ring[s7, m, j])
                                         + W4 * (ring[s4, m, j] + ring[s6, m, j]) + W5 * ring[s5, m, j])
                total += _ssim_row_sum(col, sw, c1, c2)
                if pair:
                    total += _ssim_row_sum(col2, sw, c1, c2)
        out[k] = total


MIN_ELEMENTS_PER_THREAD = 1 << 18  # below this a thread costs more to start than it saves


def _split(kernel: Any, items: np.ndarray, threads: int, elements: int, *args: Any) -> np.ndarray:
    """``kernel(*args, items, out)`` over ``items`` (k, 3), shared among up to ``threads``
    threads in contiguous runs of items (the kernels release the GIL), one per
    ``MIN_ELEMENTS_PER_THREAD`` of the ``elements`` read: the k sums."""
    sums = np.zeros(len(items))
    runs = min(max(1, int(threads)), len(items), max(1, elements // MIN_ELEMENTS_PER_THREAD))
    if runs <= 1:
        kernel(*args, items, sums)
        return sums
    from concurrent.futures import ThreadPoolExecutor

    def work(run: np.ndarray) -> None:
        out = np.zeros(len(run))
        kernel(*args, items[run], out)
        sums[run] = out
    with ThreadPoolExecutor(runs) as pool:
        list(pool.map(work, np.array_split(np.arange(len(items)), runs)))
    return sums


def ssim_planes(a: np.ndarray, b: np.ndarray, window: np.ndarray, scale: float, c1: float, c2: float,
                threads: int = 1) -> np.ndarray:
    """Mean SSIM map of each plane of a, b (P, H, W) float32 or float64, H and W ≥ 11
    ('valid' window positions only), filtered by the symmetric 11-tap ``window``: float64
    (P,). ``threads``: how many threads share the work, in bands of output rows."""
    window = np.ascontiguousarray(window, dtype=np.float64)
    if window.shape != (TAPS,) or not np.array_equal(window, window[::-1]):
        raise ValueError(f"ssim_planes: the window has shape {window.shape}; expected a symmetric ({TAPS},) window")
    a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
    planes, h, w = a.shape
    rows_out, cols_out = h - TAPS + 1, w - TAPS + 1
    # bands per plane: enough items for every thread, none shorter than ~4 windows (each band
    # re-filters its 10-row halo)
    bands = max(1, min(-(-max(1, int(threads)) // planes), rows_out // (4 * TAPS)))
    edges = np.linspace(0, rows_out, bands + 1).astype(np.int64)
    items = np.array([(p, edges[i], edges[i + 1]) for p in range(planes) for i in range(bands)], dtype=np.int64)
    sums = _split(_ssim_sums, items, threads, a.size, a, b, window, scale, c1, c2)
    return np.bincount(items[:, 0], weights=sums, minlength=planes) / (rows_out * cols_out)


@numba.njit(nogil=True, fastmath=True, boundscheck=False, error_model="numpy", cache=True)
def _squared_error_sums(a, b, items, out):
    """For each item (row i, columns [j0, j1)) of ``items``: the float64 sum of
    (a[i, j] − b[i, j])² over those columns into ``out[k]``."""
    for k in range(items.shape[0]):
        i, j0, j1 = items[k, 0], items[k, 1], items[k, 2]
        total = 0.0
        for j in range(j0, j1):
            d = np.float64(a[i, j]) - np.float64(b[i, j])
            total += d * d
        out[k] = total


def squared_error_sums(a: np.ndarray, b: np.ndarray, threads: int = 1) -> np.ndarray:
    """Σ (a − b)² of each row of a, b (N, L) float32 or float64, in float64 (exact
    differences of float32 inputs): (N,). Rows are cut into pieces of at least 64k
    elements so that ``threads`` threads share one image too."""
    a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
    n, length = a.shape
    pieces = max(1, min(-(-max(1, int(threads)) // max(n, 1)), length // (1 << 16)))
    edges = np.linspace(0, length, pieces + 1).astype(np.int64)
    items = np.array([(i, edges[j], edges[j + 1]) for i in range(n) for j in range(pieces)],
                     dtype=np.int64).reshape(-1, 3)
    sums = _split(_squared_error_sums, items, threads, a.size, a, b)
    return np.bincount(items[:, 0], weights=sums, minlength=n)
