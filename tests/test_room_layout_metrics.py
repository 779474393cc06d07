"""LSUN toolkit metrics: hand-computed cases and brute-force assignment references."""

import itertools
from types import SimpleNamespace

import numpy as np
import pytest

from robench.tasks.room_layout.metrics import (
    corner_error, layout_metrics, mean_corner_error, mean_pixel_error, pixel_error,
    resize_nearest, room_type_accuracy,
)


def halves(h=4, w=4, left=1, right=2):
    seg = np.full((h, w), left, dtype=np.uint8)
    seg[:, w // 2:] = right
    return seg


# ---------------------------------------------------------------- pixel error

def test_identical_segmentation_has_zero_error():
    seg = halves()
    assert pixel_error(seg, seg) == 0.0


def test_permuted_labels_cost_nothing():
    true = np.array([[1, 1, 2, 2], [1, 1, 2, 2], [4, 4, 5, 5], [4, 4, 5, 5]])
    perm = {1: 5, 2: 4, 4: 1, 5: 2}
    pred = np.vectorize(perm.get)(true)
    assert pixel_error(pred, true) == 0.0
    # Any label values, not only 1..5.
    assert pixel_error(pred * 17 + 3, true) == 0.0


def test_hand_computed_partial_overlap():
    true = halves(4, 4)  # columns 0-1 label 1, columns 2-3 label 2
    pred = np.full((4, 4), 7)
    pred[:, 3] = 9
    # overlap: (7,1)=8, (7,2)=4, (9,2)=4 -> best 7->1, 9->2 = 12 of 16 pixels
    assert pixel_error(pred, true) == pytest.approx(0.25)


def test_extra_predicted_region_counts_as_wrong():
    true = halves(4, 4)
    pred = true.copy()
    pred[0, 0] = 3  # a third predicted label has no true partner
    assert pixel_error(pred, true) == pytest.approx(1 / 16)


def test_all_wrong_cases():
    true = halves(4, 4)
    top_bottom = np.ones((4, 4), int)
    top_bottom[2:] = 2
    assert pixel_error(top_bottom, true) == pytest.approx(0.5)
    # one predicted region over five equal true regions: only one fifth can match
    true5 = np.repeat(np.arange(1, 6)[None, :], 3, axis=0)
    assert pixel_error(np.zeros((3, 5), int), true5) == pytest.approx(0.8)


def test_prediction_at_lower_resolution_is_resized_nearest():
    true = halves(4, 4)
    pred = np.array([[5, 6], [5, 6]])  # upsampled x2 -> exactly the halves
    assert pixel_error(pred, true) == 0.0
    # non-integer ratio, MATLAB imresize 'nearest': rows/cols 0,1,1 of a 2x2 for 3x3
    small = np.array([[1, 2], [3, 4]])
    np.testing.assert_array_equal(resize_nearest(small, (3, 3)),
                                  [[1, 2, 2], [3, 4, 4], [3, 4, 4]])
    assert pixel_error(small, np.ones((3, 3), int)) == pytest.approx(1 - 4 / 9)


def _imresize_nearest_index(n_in, n_out):
    """MATLAB's imresize.m ``contributions`` for the box kernel, literally, one output pixel
    at a time in plain Python floats: u = x/scale + 0.5*(1 - 1/scale); indices
    floor(u - 1/2) + (0, 1, 2); weight box(u - index) = (-0.5 <= d < 0.5); clamped."""
    import math

    scale = n_out / n_in
    out = []
    for x in range(1, n_out + 1):
        u = x / scale + 0.5 * (1 - 1 / scale)
        left = math.floor(u - 0.5)
        chosen = [i for i in (left, left + 1, left + 2) if -0.5 <= u - i < 0.5]
        assert len(chosen) == 1
        out.append(min(max(1, chosen[0]), n_in) - 1)
    return out


# size pairs where u falls on a half-pixel in exact arithmetic, so floating point decides
# (the old formula floor((i + 0.5) * in / out) picked the neighbouring pixel there)
TIE_CASES = [(6, 5), (6, 23), (6, 25), (10, 47), (10, 69), (10, 113), (480, 64), (64, 480), (35, 113)]


@pytest.mark.parametrize("n_in, n_out", TIE_CASES)
def test_resize_nearest_matches_matlab_rule_on_ties(n_in, n_out):
    from robench.tasks.room_layout.metrics import matlab_nearest_index

    expected = _imresize_nearest_index(n_in, n_out)
    assert matlab_nearest_index(n_in, n_out).tolist() == expected
    labels = np.arange(n_in)[:, None] * 1000 + np.arange(n_in)[None, :]
    resized = resize_nearest(labels, (n_out, n_out))
    np.testing.assert_array_equal(resized, labels[np.ix_(expected, expected)])


def test_tie_cases_are_ties():
    """At least one of the pinned pairs is one where the algebraically equal formula differs."""
    differ = [(a, b) for a, b in TIE_CASES
              if [min(int((i + 0.5) * a / b), a - 1) for i in range(b)] != _imresize_nearest_index(a, b)]
    assert differ


def test_prediction_at_higher_resolution_is_resized_nearest():
    true = halves(4, 4)
    pred = np.kron(true, np.ones((3, 3), int))  # 12x12 version of the truth
    pred[0, 0] = 9  # sampled rows/cols are floor((i+.5)*3) = 1, 4, 7, 10: pixel (0,0) is not
    assert pixel_error(pred, true) == 0.0
    pred[1, 1] = 9  # this one is sampled
    assert pixel_error(pred, true) == pytest.approx(1 / 16)


def brute_force_pixel_error(pred, true):
    """Independent reference: try every one-to-one label map, count pixels directly."""
    pl, tl = list(np.unique(pred)), list(np.unique(true))
    best = 0
    if len(pl) <= len(tl):
        for perm in itertools.permutations(tl, len(pl)):
            best = max(best, sum(int(np.sum((pred == p) & (true == t))) for p, t in zip(pl, perm)))
    else:
        for perm in itertools.permutations(pl, len(tl)):
            best = max(best, sum(int(np.sum((pred == p) & (true == t))) for p, t in zip(perm, tl)))
    return 1 - best / true.size


def test_hungarian_matches_brute_force_on_random_segmentations():
    rng = np.random.default_rng(0)
    for trial in range(40):
        n_pred, n_true = rng.integers(1, 6, size=2)
        h, w = rng.integers(3, 12, size=2)
        # blocky random maps so that overlaps are uneven
        true = rng.integers(0, n_true, size=(h, w)) + 1
        pred = np.where(rng.random((h, w)) < 0.6, (true * 7) % (n_pred + 3),
                        rng.integers(0, n_pred, size=(h, w)))
        assert pixel_error(pred, true) == pytest.approx(brute_force_pixel_error(pred, true)), trial


def test_pixel_error_rejects_bad_shapes():
    with pytest.raises(ValueError, match="2-D"):
        pixel_error(np.zeros((2, 2, 3)), np.zeros((2, 2)))


# --------------------------------------------------------------- corner error

def test_identical_and_permuted_corners_have_zero_error():
    pts = np.array([[10.0, 5.0], [20.0, 7.0], [3.0, 30.0]])
    assert corner_error(pts, pts, (40, 30)) == 0.0
    assert corner_error(pts[::-1], pts, (40, 30)) == 0.0


def test_hand_computed_distance_over_diagonal():
    true = np.array([[0.0, 0.0], [20.0, 10.0]])
    pred = np.array([[3.0, 4.0], [20.0, 10.0]])  # one corner 5 px off
    # image 30 x 40 -> diagonal 50; (5/50 + 0) / 2
    assert corner_error(pred, true, (30, 40)) == pytest.approx(0.05)
    assert corner_error(pred, true, (30, 40, 3)) == pytest.approx(0.05)


def test_missing_and_extra_corners_cost_a_third_each():
    true = np.array([[0.0, 0.0], [20.0, 10.0]])
    assert corner_error(true[:1], true, (30, 40)) == pytest.approx((1 / 3) / 2)
    extra = np.vstack([true, [[5.0, 5.0]]])
    assert corner_error(extra, true, (30, 40)) == pytest.approx((1 / 3) / 3)
    # two extra, one of the matched ones 5 px off: (5/50 + 2/3) / 4
    extra2 = np.array([[3.0, 4.0], [20.0, 10.0], [39.0, 29.0], [35.0, 25.0]])
    assert corner_error(extra2, true, (30, 40)) == pytest.approx((0.1 + 2 / 3) / 4)


def test_no_prediction_and_nothing_to_predict():
    true = np.array([[0.0, 0.0], [20.0, 10.0]])
    assert corner_error(np.zeros((0, 2)), true, (30, 40)) == pytest.approx(1 / 3)
    assert corner_error([], [], (30, 40)) == 0.0


def test_corner_matching_is_optimal_not_greedy():
    true = np.array([[0.0, 0.0], [10.0, 0.0]])
    # pred (1,0) and (-8,0): greedy (1,0)->(0,0)=1 then (-8,0)->(10,0)=18, total 19;
    # optimal (1,0)->(10,0)=9 and (-8,0)->(0,0)=8, total 17.
    pred = np.array([[1.0, 0.0], [-8.0, 0.0]])
    assert corner_error(pred, true, (30, 40)) == pytest.approx((17 / 50) / 2)


def test_corner_error_matches_brute_force():
    rng = np.random.default_rng(1)
    for trial in range(30):
        n_pred, n_true = rng.integers(0, 6, size=2)
        pred = rng.uniform(0, 100, size=(n_pred, 2))
        true = rng.uniform(0, 100, size=(n_true, 2))
        if max(n_pred, n_true) == 0:
            continue
        best = 0.0
        if min(n_pred, n_true) > 0:
            small, large = (pred, true) if n_pred <= n_true else (true, pred)
            best = min(sum(np.hypot(*(small[i] - large[j])) for i, j in enumerate(perm))
                       for perm in itertools.permutations(range(len(large)), len(small)))
        expected = (best / np.hypot(80, 120) + abs(n_pred - n_true) / 3) / max(n_pred, n_true)
        assert corner_error(pred, true, (80, 120)) == pytest.approx(expected), trial


def test_corner_error_rejects_bad_points():
    with pytest.raises(ValueError, match=r"\(K, 2\)"):
        corner_error(np.zeros((3, 3)), np.zeros((3, 2)), (10, 10))


# ------------------------------------------------------------ types and batches

def test_room_type_accuracy():
    assert room_type_accuracy([0, 1, 5, 5], [0, 2, 5, 4]) == 0.5
    with pytest.raises(ValueError):
        room_type_accuracy([0, 1], [0])


def test_batch_helpers_average_over_images():
    t = halves(4, 4)
    wrong = np.ones((4, 4), int)
    assert mean_pixel_error([t, wrong], [t, t]) == pytest.approx(0.25)
    true_pts = [np.array([[0.0, 0.0], [20.0, 10.0]])] * 2
    pred_pts = [true_pts[0], true_pts[0][:1]]
    assert mean_corner_error(pred_pts, true_pts, [(30, 40)] * 2) == pytest.approx(1 / 12)
    with pytest.raises(ValueError, match="lengths"):
        mean_pixel_error([t], [t, t])
    samples = [SimpleNamespace(segmentation=t, keypoints=true_pts[0], room_type=3)] * 2
    out = layout_metrics([t, wrong], pred_pts, [3, 4], samples)
    assert out == pytest.approx({"pixel_error": 0.25, "corner_error": 1 / 12,
                                 "room_type_accuracy": 0.5})
