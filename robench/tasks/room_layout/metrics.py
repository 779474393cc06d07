"""The LSUN Room Layout challenge metrics, as the official MATLAB toolkit computes them.

Verified against the toolkit's source (``pixelwiseAccuracy.m``, ``cornerError.m``,
``evaluationFunc.m`` and Alex Melin's ``Hungarian.m``, as vendored in
leVirve/lsun-room ``lib/lsun_toolkit``, read via code search):

pixel error (``1 - pixelwiseAccuracy``)
    The prediction is resized to the ground truth's size with nearest neighbour
    (``imresize(..., 'nearest')``).  An overlap matrix counts pixels for every pair
    (predicted label, true label); the one-to-one assignment of predicted to true labels
    maximizing total overlap is found (``Hungarian(-overlap)``); the error is
    ``1 - matched pixels / (H * W)``.  Labels are arbitrary integers, so permuted labels
    cost nothing; unmatched extra regions count as wrong.

corner error (``cornerError.m``)
    ``D`` = Euclidean distances between predicted and true corners (pixels);
    ``cost`` = total distance of the minimum-cost one-to-one matching of
    min(Np, Ng) pairs (Hungarian); then ::

        error = (cost / diag + |Np - Ng| / 3) / max(Np, Ng),   diag = sqrt(H^2 + W^2)

    i.e. every missing or extra corner costs 1/3 of the diagonal, and the sum is
    averaged over the larger corner count.  (With no prediction at all the error is 1/3.)
    The toolkit's ``Hungarian.m`` pads a rectangular matrix with a constant, which makes
    it the rectangular assignment that ``scipy.optimize.linear_sum_assignment`` solves.

Averages (``evaluationFunc.m``): plain means over images.

All functions take numpy arrays; segmentations are (H, W) integer label maps,
corners are (K, 2) arrays of (x, y) pixel coordinates (any consistent origin).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist

# Each missing or extra corner costs this fraction of the image diagonal (cornerError.m).
MISSING_CORNER_COST = 1.0 / 3.0


def resize_nearest(labels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a 2-D label map exactly as MATLAB's ``imresize(x, shape,
    'nearest')`` (what the LSUN toolkit calls), ties included: see :func:`matlab_nearest_index`."""
    labels = np.asarray(labels)
    h, w = int(shape[0]), int(shape[1])
    if labels.shape == (h, w):
        return labels
    rows = matlab_nearest_index(labels.shape[0], h)
    cols = matlab_nearest_index(labels.shape[1], w)
    return labels[rows[:, None], cols[None, :]]


def matlab_nearest_index(n_in: int, n_out: int) -> np.ndarray:
    """0-based input index of each output pixel under MATLAB's ``imresize`` 'nearest' rule:
    output pixel x (1-based) maps to u = x/scale + 0.5·(1 − 1/scale), scale = n_out/n_in,
    in floating point, and takes the input pixel i whose box kernel covers it,
    −0.5 ≤ u − i < 0.5 (``contributions`` in imresize.m), clamped to the image. Computing
    u in the same floating-point order matters: an algebraically equal formula picks the
    neighbouring pixel in some tie cases."""
    scale = n_out / n_in
    x = np.arange(1, n_out + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    candidates = np.floor(u - 0.5)[:, None] + np.arange(3)[None, :]  # P = ceil(width) + 2
    distance = u[:, None] - candidates
    covered = (distance >= -0.5) & (distance < 0.5)
    index = candidates[np.arange(n_out), covered.argmax(axis=1)]
    return (np.clip(index, 1, n_in) - 1).astype(np.int64)


def overlap_matrix(pred_seg: np.ndarray, true_seg: np.ndarray):
    """(overlap, pred_labels, true_labels): overlap[i, j] = number of pixels labelled
    pred_labels[i] in ``pred_seg`` and true_labels[j] in ``true_seg`` (same shape)."""
    pred_labels, p = np.unique(np.asarray(pred_seg).ravel(), return_inverse=True)
    true_labels, t = np.unique(np.asarray(true_seg).ravel(), return_inverse=True)
    counts = np.bincount(p * len(true_labels) + t,
                         minlength=len(pred_labels) * len(true_labels))
    return counts.reshape(len(pred_labels), len(true_labels)), pred_labels, true_labels


def _check_seg(name: str, seg) -> np.ndarray:
    seg = np.asarray(seg)
    if seg.ndim != 2 or seg.size == 0:
        raise ValueError(f"{name} must be a non-empty 2-D label map (H, W), got shape {seg.shape}")
    if not (np.issubdtype(seg.dtype, np.integer) or seg.dtype == bool):
        if not np.all(np.mod(seg, 1) == 0):
            raise ValueError(f"{name} must hold integer labels, got dtype {seg.dtype}")
        seg = seg.astype(np.int64)
    return seg


def pixel_error(pred_seg, true_seg) -> float:
    """LSUN pixel error in [0, 1] of one image (see module docstring).

    pred_seg: (h, w) integer labels, any resolution and any label values;
    true_seg: (H, W) integer labels.  The prediction is resized to (H, W) first."""
    pred = _check_seg("pred_seg", pred_seg)
    true = _check_seg("true_seg", true_seg)
    pred = resize_nearest(pred, true.shape)
    overlap, _, _ = overlap_matrix(pred, true)
    rows, cols = linear_sum_assignment(overlap, maximize=True)
    return float(1.0 - overlap[rows, cols].sum() / true.size)


def _check_points(name: str, pts) -> np.ndarray:
    pts = np.asarray(pts, dtype=np.float64)
    if pts.size == 0:
        return pts.reshape(0, 2)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"{name} must be a (K, 2) array of (x, y) points, got shape {pts.shape}")
    if not np.all(np.isfinite(pts)):
        raise ValueError(f"{name} holds non-finite coordinates")
    return pts


def corner_error(pred_pts, true_pts, image_shape) -> float:
    """LSUN corner error of one image (see module docstring); 0 when both are empty.

    pred_pts, true_pts: (K, 2) (x, y) pixel coordinates in the ground truth's frame;
    image_shape: (H, W, ...) of the ground-truth image (only H and W are used)."""
    pred = _check_points("pred_pts", pred_pts)
    true = _check_points("true_pts", true_pts)
    h, w = float(image_shape[0]), float(image_shape[1])
    diag = float(np.hypot(h, w))
    n_pred, n_true = len(pred), len(true)
    n_max = max(n_pred, n_true)
    if n_max == 0:
        return 0.0
    matched = 0.0
    if n_pred and n_true:
        dist = cdist(pred, true)
        rows, cols = linear_sum_assignment(dist)
        matched = float(dist[rows, cols].sum())
    return (matched / diag + abs(n_pred - n_true) * MISSING_CORNER_COST) / n_max


def room_type_accuracy(pred_types, true_types) -> float:
    """Fraction of images whose predicted LSUN room type equals the true one."""
    pred = np.asarray(pred_types).ravel()
    true = np.asarray(true_types).ravel()
    if pred.shape != true.shape:
        raise ValueError(f"got {pred.size} predicted and {true.size} true room types")
    if true.size == 0:
        raise ValueError("room_type_accuracy needs at least one image")
    return float(np.mean(pred == true))


def _same_length(**seqs) -> int:
    lengths = {k: len(v) for k, v in seqs.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"batch lengths differ: {lengths}")
    n = next(iter(lengths.values()))
    if n == 0:
        raise ValueError("a batch metric needs at least one image")
    return n


def mean_pixel_error(pred_segs: Sequence, true_segs: Sequence) -> float:
    """Mean over images of :func:`pixel_error` (the toolkit's meanPxError)."""
    _same_length(pred_segs=pred_segs, true_segs=true_segs)
    return float(np.mean([pixel_error(p, t) for p, t in zip(pred_segs, true_segs)]))


def mean_corner_error(pred_pts: Sequence, true_pts: Sequence, image_shapes: Sequence) -> float:
    """Mean over images of :func:`corner_error` (the toolkit's meanPtError)."""
    _same_length(pred_pts=pred_pts, true_pts=true_pts, image_shapes=image_shapes)
    return float(np.mean([corner_error(p, t, s)
                          for p, t, s in zip(pred_pts, true_pts, image_shapes)]))


def layout_metrics(pred_segs: Sequence, pred_pts: Sequence | None, pred_types: Sequence | None,
                   samples: Sequence) -> dict[str, float]:
    """All three metrics of a batch against ground-truth samples (objects with
    ``segmentation``, ``keypoints``, ``room_type``); corner and type metrics are
    skipped when their predictions are None.  Values are fractions (not percent)."""
    out = {"pixel_error": mean_pixel_error(pred_segs, [s.segmentation for s in samples])}
    if pred_pts is not None:
        out["corner_error"] = mean_corner_error(
            pred_pts, [s.keypoints for s in samples], [s.segmentation.shape for s in samples])
    if pred_types is not None:
        out["room_type_accuracy"] = room_type_accuracy(pred_types,
                                                       [s.room_type for s in samples])
    return out
