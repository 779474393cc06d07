"""Degradation operators against numpy references; fidelity, gradients, seeds, bad levels."""

import pickle

import numpy as np
import pytest
import torch

from robench.errors import UserError
from robench.tasks.restoration_spectrum.degradations import (FAMILIES, Observation, degrade, get_family,
                                                             inpainting, interpolation, super_resolution)


def images(n=3, c=3, h=64, w=64, seed=0, dtype=torch.float64):
    return torch.as_tensor(np.random.default_rng(seed).random((n, c, h, w)), dtype=dtype)


# ---------------------------------------------------------------- numpy references

def inpainting_mask_reference(n, h, w, side, seed=0, max_shift=0):
    """Centered square hole, each image's hole moved by a default_rng(seed) offset and clipped."""
    offsets = np.zeros((n, 2), dtype=int)
    if max_shift:
        offsets = np.random.default_rng(seed).integers(-max_shift, max_shift + 1, size=(n, 2))
    mask = np.ones((n, 1, h, w))
    for i, (dy, dx) in enumerate(offsets):
        top = np.clip((h - side) // 2 + dy, 0, h - side)
        left = np.clip((w - side) // 2 + dx, 0, w - side)
        mask[i, :, top:top + side, left:left + side] = 0
    return mask


def interpolation_mask_reference(n, h, w, p, seed):
    """The round(p·H·W) pixels with the lowest default_rng(seed) scores are dropped."""
    scores = np.random.default_rng(seed).random((n, h * w))
    dropped = min(max(int(round(p * h * w)), 1), h * w - 1)
    mask = np.ones((n, h * w))
    for i in range(n):
        mask[i, np.argsort(scores[i], kind="stable")[:dropped]] = 0
    return mask.reshape(n, 1, h, w)


def cubic(x, a):
    x = np.abs(x)
    return np.where(x < 1, ((a + 2) * x - (a + 3)) * x * x + 1,
                    np.where(x < 2, ((a * x - 5 * a) * x + 8 * a) * x - 4 * a, 0.0))


def antialias_bicubic_matrix(n_in, n_out):
    """Pillow-style resampling (cubic a = -0.5 stretched by the scale, renormalized at borders)."""
    scale = n_in / n_out
    support = 2.0 * max(scale, 1.0)
    stretch = 1.0 / max(scale, 1.0)
    m = np.zeros((n_out, n_in))
    for i in range(n_out):
        center = scale * (i + 0.5)
        lo, hi = max(int(center - support + 0.5), 0), min(int(center + support + 0.5), n_in)
        j = np.arange(lo, hi)
        weights = cubic((j - center + 0.5) * stretch, -0.5)
        m[i, lo:hi] = weights / weights.sum()
    return m


def bicubic_matrix(n_in, n_out):
    """Keys cubic convolution (a = -0.75), half-pixel centers, replicated borders."""
    scale = n_in / n_out
    m = np.zeros((n_out, n_in))
    for i in range(n_out):
        source = scale * (i + 0.5) - 0.5
        x0 = int(np.floor(source))
        t = source - x0
        for k, distance in zip(range(-1, 3), (t + 1, t, 1 - t, 2 - t)):
            m[i, min(max(x0 + k, 0), n_in - 1)] += cubic(distance, -0.75)
    return m


def resize_reference(x, matrix_h, matrix_w):
    return np.einsum("ih,nchw,jw->ncij", matrix_h, x, matrix_w)


# ---------------------------------------------------------------- agreement with references

@pytest.mark.parametrize("side, max_shift, seed", [(8, 0, 0), (20, 0, 5), (32, 0, 0), (16, 10, 3), (30, 40, 1)])
def test_inpainting_matches_reference(side, max_shift, seed):
    x = images(n=4, h=64, w=48)
    obs = inpainting(x, side, seed, max_shift=max_shift)
    mask = inpainting_mask_reference(4, 64, 48, side, seed, max_shift)
    np.testing.assert_array_equal(obs.mask.numpy(), mask)
    np.testing.assert_array_equal(obs.y.numpy(), x.numpy() * mask)
    assert ((1 - obs.mask).sum(dim=(1, 2, 3)) == side * side).all()


@pytest.mark.parametrize("p", [0.1, 0.37, 0.5, 0.9])
def test_interpolation_matches_reference_and_fraction(p):
    x = images(n=3, h=40, w=56)
    obs = interpolation(x, p, seed=11)
    mask = interpolation_mask_reference(3, 40, 56, p, 11)
    np.testing.assert_array_equal(obs.mask.numpy(), mask)
    np.testing.assert_array_equal(obs.y.numpy(), x.numpy() * mask)
    dropped = (1 - obs.mask).sum(dim=(1, 2, 3))
    assert (dropped == round(p * 40 * 56)).all()
    # one mask for all channels: a dropped pixel is zero in every channel
    assert obs.mask.shape == (3, 1, 40, 56)
    for i in range(3):
        missing = obs.mask[i, 0] == 0
        assert (obs.y[i][:, missing] == 0).all() and (obs.y[i][:, ~missing] > 0).all()


@pytest.mark.parametrize("k", [1, 2, 3, 4])
@pytest.mark.parametrize("h, w", [(64, 64), (48, 70)])
def test_super_resolution_matches_reference(k, h, w):
    x = images(n=2, h=h, w=w)
    obs = super_resolution(x, k)
    low = resize_reference(x.numpy(), antialias_bicubic_matrix(h, h // k), antialias_bicubic_matrix(w, w // k))
    assert obs.y.shape == (2, 3, h // k, w // k) and obs.mask is None
    np.testing.assert_allclose(obs.y.numpy(), low, rtol=0, atol=1e-12)
    up = np.clip(resize_reference(low, bicubic_matrix(h // k, h), bicubic_matrix(w // k, w)), 0, 1)
    np.testing.assert_allclose(obs.network_input.numpy(), up, rtol=0, atol=1e-12)


def test_super_resolution_downscale_agrees_with_pillow():
    Image = pytest.importorskip("PIL.Image")
    x = np.random.default_rng(2).random((64, 48)).astype(np.float32)
    for k in (2, 3, 4):
        pil = np.asarray(Image.fromarray(x, mode="F").resize((48 // k, 64 // k), Image.BICUBIC))
        ours = super_resolution(torch.as_tensor(x, dtype=torch.float64)[None, None], k).y[0, 0].numpy()
        np.testing.assert_allclose(ours, pil, atol=1e-6)


# ---------------------------------------------------------------- fidelity and gradients

def observations(x):
    return [inpainting(x, 16, 0), inpainting(x, 12, 1, max_shift=8), interpolation(x, 0.5, 2),
            super_resolution(x, 2), super_resolution(x, 3)]


def test_fidelity_is_zero_at_ground_truth_and_positive_elsewhere():
    x = images(n=3)
    for obs in observations(x):
        assert obs.fidelity(x).shape == (3,)
        assert torch.allclose(obs.fidelity(x), torch.zeros(3, dtype=x.dtype), atol=1e-20)
        other = (x + 0.05 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0), dtype=x.dtype))
        assert (obs.fidelity(other) > 0).all(), obs.family
        assert (obs.fidelity(torch.zeros_like(x)) > 0).all(), obs.family


def test_fidelity_ignores_missing_pixels():
    x = images(n=2)
    obs = interpolation(x, 0.3, 0)
    changed = x + (1 - obs.mask) * 0.5  # only where nothing was observed
    assert torch.allclose(obs.fidelity(changed), torch.zeros(2, dtype=x.dtype))
    manual = ((obs.mask * (obs.y - x * obs.mask - 0.1 * obs.mask)) ** 2).sum(dim=(1, 2, 3))
    assert torch.allclose(obs.fidelity(x + 0.1), manual)


def test_gradients_flow_through_forward_operator():
    x = images(n=2)
    for obs in observations(x):
        estimate = torch.full_like(x, 0.5, requires_grad=True)
        obs.fidelity(estimate).sum().backward()
        grad = estimate.grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, obs.family
        if obs.mask is not None:  # nothing to learn from the holes
            assert (grad * (1 - obs.mask)).abs().sum() == 0
    small = images(n=1, c=1, h=12, w=12).requires_grad_(True)
    for obs in (super_resolution(small.detach(), 3), inpainting(small.detach(), 4, 0)):
        assert torch.autograd.gradcheck(obs.forward_operator, (small,))


def test_network_input_fill():
    x = images(n=2)
    mean_fill = inpainting(x, 20, 0)
    zero_fill = inpainting(x, 20, 0, fill="zero")
    hole = mean_fill.mask == 0
    observed_mean = (x * mean_fill.mask).sum(dim=(2, 3)) / mean_fill.mask.sum(dim=(2, 3))
    expected = torch.where(hole, observed_mean[:, :, None, None].expand_as(x), x)
    assert torch.allclose(mean_fill.network_input, expected)
    assert torch.equal(zero_fill.network_input, zero_fill.y)
    for obs in observations(x):
        assert obs.network_input.shape == x.shape
        assert obs.network_input.min() >= 0 and obs.network_input.max() <= 1


# ---------------------------------------------------------------- seeds

def test_same_seed_same_observation_and_different_seeds_differ():
    x = images(n=4)
    for family, level, options in (("interpolation", 0.4, {}), ("inpainting", 16, {"max_shift": 12})):
        a = degrade(family, x, level, 7, **options)
        b = degrade(family, x.clone(), level, 7, **options)
        c = degrade(family, x, level, 8, **options)
        assert torch.equal(a.y, b.y) and torch.equal(a.mask, b.mask)
        assert not torch.equal(a.mask, c.mask)
    assert torch.equal(inpainting(x, 16, 0).mask, inpainting(x, 16, 9).mask)  # centered: no randomness
    assert torch.equal(super_resolution(x, 2, 0).y, super_resolution(x, 2, 5).y)


def test_a_batch_prefix_gets_the_same_masks():
    x = images(n=5)
    whole = interpolation(x, 0.6, 3)
    first = interpolation(x[:2], 0.6, 3)
    assert torch.equal(whole.mask[:2], first.mask)


def test_dtype_and_device_follow_the_input():
    x = images(n=1, dtype=torch.float32)
    for obs in observations(x):
        assert obs.y.dtype == torch.float32 and obs.network_input.dtype == torch.float32
        if obs.mask is not None:
            assert obs.mask.dtype == torch.float32


def test_observation_pickles():
    x = images(n=1, h=16, w=16)
    for obs in (inpainting(x, 4, 0), interpolation(x, 0.5, 0), super_resolution(x, 2)):
        again = pickle.loads(pickle.dumps(obs))
        assert isinstance(again, Observation)
        assert torch.equal(again.fidelity(x * 0.5), obs.fidelity(x * 0.5))


# ---------------------------------------------------------------- registry

def test_families_registry_defaults_run_at_64():
    assert set(FAMILIES) == {"inpainting", "interpolation", "super_resolution"}
    x = images(n=1, h=64, w=64)
    for name, family in FAMILIES.items():
        assert family.name == name and family.image_size == 64
        assert family.train_level in family.test_levels
        for level in family.test_levels:
            obs = family.degrade(x, level, 0)
            assert obs.family == name and obs.network_input.shape == x.shape
    assert FAMILIES["inpainting"].test_levels[0] == 8 and FAMILIES["inpainting"].test_levels[-1] == 32
    assert FAMILIES["super_resolution"].test_levels == (2, 3, 4)


def test_unknown_family_suggests_a_name():
    with pytest.raises(UserError, match="did you mean 'inpainting'"):
        get_family("inpaint")


# ---------------------------------------------------------------- bad levels

@pytest.mark.parametrize("family, level, fragment", [
    ("inpainting", -4, "hole side"),
    ("inpainting", 0, "hole side"),
    ("inpainting", 64, "does not fit"),
    ("inpainting", 100, "does not fit"),
    ("inpainting", 10.5, "integer"),
    ("inpainting", "16", "integer"),
    ("interpolation", 0.0, "strictly between 0 and 1"),
    ("interpolation", 1.0, "strictly between 0 and 1"),
    ("interpolation", -0.2, "strictly between 0 and 1"),
    ("interpolation", 1.5, "strictly between 0 and 1"),
    ("interpolation", float("nan"), "strictly between 0 and 1"),
    ("super_resolution", 0, "scale factor"),
    ("super_resolution", -2, "scale factor"),
    ("super_resolution", 2.5, "integer"),
    ("super_resolution", float("inf"), "integer"),
    ("super_resolution", True, "integer"),
    ("super_resolution", 65, "scale factor"),
])
def test_invalid_levels_raise_one_clear_line(family, level, fragment):
    with pytest.raises(UserError) as info:
        degrade(family, images(n=1), level, 0)
    message = str(info.value)
    assert fragment in message and family in message and "\n" not in message


def test_integral_float_levels_are_accepted():
    x = images(n=1)
    assert torch.equal(inpainting(x, 16.0, 0).mask, inpainting(x, 16, 0).mask)
    assert super_resolution(x, 2.0).y.shape[-1] == 32


@pytest.mark.parametrize("call, fragment", [
    (lambda: inpainting(images(n=1), 8, -1), "seed"),
    (lambda: inpainting(images(n=1), 8, 0, max_shift=-3), "max_shift"),
    (lambda: interpolation(images(n=1), 0.5, 0, fill="noise"), "fill"),
    (lambda: interpolation(images(n=1) * 2, 0.5, 0), "[0, 1]"),
    (lambda: interpolation(np.zeros((1, 3, 8, 8)), 0.5, 0), "float tensor"),
    (lambda: super_resolution(torch.zeros(3, 8, 8), 2), "float tensor"),
])
def test_bad_arguments_raise_one_clear_line(call, fragment):
    with pytest.raises(UserError) as info:
        call()
    assert fragment in str(info.value) and "\n" not in str(info.value)
