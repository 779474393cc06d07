"""Network Sketching: the sketching algorithms, the bwn/sign baselines, projected
fine-tuning of the coefficients and the associative binary convolution."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import check_one_line_user_error
from robench import registry

registry.load_builtins()  # before the method modules register themselves (else: duplicate names)
from robench.models import build_model
from robench.spec import expand, parse_suite
from robench.tasks.compression.methods._associative import (AssociativeBinaryConv2d, AssociativeBinaryLinear,
                                                            additions, associative_plan, hamming_matrix,
                                                            minimum_spanning_tree)
from robench.tasks.compression.methods.base import prunable_layers
from robench.tasks.compression.methods.sketch import (BinaryWeightNetwork, NetworkSketching, SignBinarization,
                                                      fit_coefficients, output_positions, reconstruct, sketch_error,
                                                      sketch_weight)
from robench.training import fit, make_sgd
from tests.compression_helpers import small_net, toy_data  # noqa: E402


pytestmark = pytest.mark.usefixtures("one_thread")


def lenet5_weights():
    torch.manual_seed(1)
    model = build_model("lenet-5")
    return {name: layer.weight.detach().clone() for name, layer in prunable_layers(model) if name != "5"}


def sample_weights():
    """A Gaussian weight and LeNet-5's conv1, conv2 and fc2 as initialised (fc1 is slow)."""
    gen = torch.Generator().manual_seed(0)
    return {"gaussian": torch.randn(32, 200, generator=gen), **{f"lenet5.{k}": w for k, w in lenet5_weights().items()}}


# -- the sketching algorithms -------------------------------------------------------------
@pytest.mark.parametrize("name, weight", list(sample_weights().items()))
def test_refined_beats_direct_and_error_falls_with_m(name, weight):
    errors = {variant: [sketch_error(weight, sketch_weight(weight, m, variant).reconstruction) for m in range(1, 6)]
              for variant in ("direct", "refined")}
    direct, refined = errors["direct"], errors["refined"]
    assert direct[0] == pytest.approx(refined[0], rel=1e-6)  # m = 1: the same (a = mean|w|)
    for m in range(2, 6):
        assert refined[m - 1] <= direct[m - 1] * (1 + 1e-9), (name, m, refined, direct)
    for variant, curve in errors.items():
        assert all(b <= a * (1 + 1e-9) for a, b in zip(curve, curve[1:])), (name, variant, curve)
    assert refined[-1] < 0.3 * refined[1]  # and it really falls (≈ 4× per basis on these weights)
    if name == "gaussian":
        assert refined[4] < 0.8 * direct[4]  # refined is clearly better for larger m


def test_m1_direct_is_bwn_is_mean_abs_scale():
    weight = lenet5_weights()["2"]  # conv2 (50, 20, 5, 5)
    w = weight.reshape(50, -1)
    sketch = sketch_weight(weight, 1, "direct")
    assert torch.equal(sketch.bases[:, 0], torch.where(w >= 0, 1, -1).to(torch.int8))
    torch.testing.assert_close(sketch.coefficients[:, 0], w.double().abs().mean(1))
    refined = sketch_weight(weight, 1, "refined")
    torch.testing.assert_close(refined.coefficients, sketch.coefficients)

    model = nn.Sequential(nn.Conv2d(20, 50, 5))
    with torch.no_grad():
        model[0].weight.copy_(weight)
    method = BinaryWeightNetwork().prepare(model, None, 0, 0)
    model = method.finalize(model)
    assert torch.equal(model[0].weight, sketch.reconstruction)
    torch.testing.assert_close(model[0].weight.reshape(50, -1), w.abs().mean(1, keepdim=True) * torch.sign(w))
    assert not method.wants_finetuning()


def test_sign_baseline_is_exactly_plus_minus_one():
    model = small_net()
    with torch.no_grad():
        model[0].weight[0, 0, 0, 0] = 0.0  # sign(0) := +1
    original = [layer.weight.detach().clone() for _, layer in prunable_layers(model)]
    method = SignBinarization().prepare(model, None, 0, 0)
    model = method.finalize(model)
    for (_, layer), w0 in zip(prunable_layers(model), original):
        assert set(layer.weight.unique().tolist()) == {-1.0, 1.0}
        assert torch.equal(layer.weight, torch.where(w0 >= 0, 1.0, -1.0))
    assert model[0].weight[0, 0, 0, 0] == 1.0


@pytest.mark.parametrize("m", [2, 3, 5])
def test_refined_coefficients_satisfy_the_normal_equations(m):
    weight = sample_weights()["gaussian"]
    sketch = sketch_weight(weight, m, "refined")
    residual = weight.double() - reconstruct(sketch.bases, sketch.coefficients)
    correlation = torch.einsum("omn,on->om", sketch.bases.double(), residual)  # Bᵀ r per filter
    assert correlation.abs().max() < 1e-10 * weight.abs().sum(1).max()
    torch.testing.assert_close(fit_coefficients(weight, sketch.bases), sketch.coefficients)
    # direct's coefficients are not the least-squares ones once m >= 3
    direct = sketch_weight(weight, m, "direct")
    r = weight.double() - reconstruct(direct.bases, direct.coefficients)
    assert m == 2 or torch.einsum("omn,on->om", direct.bases.double(), r).abs().max() > 1e-3


def test_sketch_error_and_bad_arguments():
    w = torch.tensor([[3.0, 4.0]])
    assert sketch_error(w, torch.zeros_like(w)) == 1.0
    assert sketch_error(w, w) == 0.0
    assert sketch_error(w, torch.tensor([[3.0, 3.0]])) == pytest.approx(1 / 25)
    with pytest.raises(ValueError, match="variant"):
        sketch_weight(w, 2, "greedy")


# -- the associative implementation -------------------------------------------------------
def random_bases(out, m, n, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.where(torch.rand(out, m, n, generator=gen) < 0.5, 1, -1).to(torch.int8)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("stride, padding, dilation", [(1, 0, 1), (2, 1, 1), ((1, 2), (2, 0), 2)])
def test_associative_conv_equals_the_plain_conv(dtype, stride, padding, dilation):
    gen = torch.Generator().manual_seed(1)
    out, m, cin, k = 6, 3, 3, 3
    bases = random_bases(out, m, cin * k * k)
    bases[4, 2] = bases[0, 1]  # a duplicate filter (Hamming distance 0)
    bases[5, 0] = -bases[1, 1]
    a = torch.randn(out, m, generator=gen, dtype=dtype)
    bias = torch.randn(out, generator=gen, dtype=dtype)
    x = torch.randn(2, cin, 10, 9, generator=gen, dtype=dtype)
    weight = reconstruct(bases, a).reshape(out, cin, k, k)
    expected = F.conv2d(x, weight, bias, stride=stride, padding=padding, dilation=dilation)
    module = AssociativeBinaryConv2d(bases, a, bias, k, stride, padding, dilation)
    got = module(x)
    assert got.shape == expected.shape and got.dtype == dtype
    tolerance = 1e-12 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(got, expected, rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_associative_linear_equals_the_plain_linear(dtype):
    gen = torch.Generator().manual_seed(2)
    bases = random_bases(20, 4, 50)
    a = torch.randn(20, 4, generator=gen, dtype=dtype)
    x = torch.randn(3, 5, 50, generator=gen, dtype=dtype)  # leading dims are kept
    expected = F.linear(x, reconstruct(bases, a))
    tolerance = 1e-12 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(AssociativeBinaryLinear(bases, a, None)(x), expected, rtol=tolerance, atol=tolerance)


def test_tree_costs_and_fewer_additions_on_real_weights():
    for weight in lenet5_weights().values():
        bases = sketch_weight(weight, 3, "refined").bases
        plan = associative_plan(bases)
        flat = bases.reshape(-1, bases.shape[-1])
        count, n = flat.shape
        roots = np.flatnonzero(plan.parent < 0)
        assert len(roots) == 1 and plan.cost[roots[0]] == n - 1
        for v in np.flatnonzero(plan.parent >= 0)[:50]:
            assert plan.cost[v] == int((flat[v] != flat[plan.parent[v]]).sum())
        assert (plan.depth[plan.order][1:] >= plan.depth[plan.order][:-1]).all()  # breadth-first
        plain, associative = additions(bases)
        assert plain == count * (n - 1)
        assert associative < plain
    duplicated = random_bases(4, 1, 30).repeat(1, 2, 1)  # every filter twice: half of them are free
    plan = associative_plan(duplicated)
    assert sorted(plan.cost.tolist()).count(0) == 4


def test_prim_matches_scipy_minimum_spanning_tree():
    from scipy.sparse.csgraph import minimum_spanning_tree as scipy_mst

    rng = np.random.default_rng(0)
    upper = np.triu(rng.integers(1, 100, size=(60, 60)), 1)
    dist = upper + upper.T
    parent = minimum_spanning_tree(dist)
    assert (parent == -1).sum() == 1
    assert sum(dist[v, p] for v, p in enumerate(parent) if p >= 0) == scipy_mst(dist).sum()

    hamming = hamming_matrix(random_bases(120, 1, 40, seed=3))
    assert (hamming + np.eye(120, dtype=np.int64) > 0).all()  # no duplicates: scipy sees every edge
    parent = minimum_spanning_tree(hamming)
    assert sum(hamming[v, p] for v, p in enumerate(parent) if p >= 0) == scipy_mst(hamming).sum()


# -- the methods ------------------------------------------------------------------------
def test_storage_bits_formula():
    conv, linear = nn.Conv2d(2, 4, 3), nn.Linear(10, 7)
    assert NetworkSketching(m=3).storage_bits("0", conv) == 3 * 4 * 18 + 32 * 3 * 4
    assert NetworkSketching(m=2).storage_bits("1", linear) == 2 * 70 + 32 * 2 * 7
    assert BinaryWeightNetwork().storage_bits("0", conv) == 4 * 18 + 32 * 4
    assert SignBinarization().storage_bits("0", conv) == 4 * 18  # no scale to store
    assert NetworkSketching().storage_bits("x", nn.ReLU()) is None


class SpanChecker:
    """Delegates to the method and checks after every step that each filter lies in span{B_j}."""

    def __init__(self, method):
        self.method, self.steps = method, 0

    def before_forward(self, model, step):
        self.method.before_forward(model, step)

    def after_backward(self, model, step):
        self.method.after_backward(model, step)

    def after_step(self, model, step):
        self.method.after_step(model, step)
        check_in_span(model, self.method)
        self.steps += 1


def check_in_span(model, method):
    for name, layer in prunable_layers(model):
        bases = method.bases_[name]
        refit = reconstruct(bases, fit_coefficients(layer.weight, bases))
        assert sketch_error(layer.weight.reshape(refit.shape), refit) < 1e-12


def test_finetuning_moves_only_the_coefficients_within_the_span():
    model = small_net()
    x, y = toy_data()
    method = NetworkSketching(m=2, finetune=True)
    assert method.wants_finetuning()
    method.prepare(model, None, total_steps=9, seed=0)
    bases = {k: b.clone() for k, b in method.bases_.items()}
    coefficients = {k: a.clone() for k, a in method.coefficients_.items()}
    bias = model[3].bias.detach().clone()
    checker = SpanChecker(method)
    fit(model, x, y, epochs=3, batch_size=16, optimizer=make_sgd(model, 0.1), seed=0, hooks=checker)
    model = method.finalize(model)
    assert checker.steps == 9
    check_in_span(model, method)
    for name, layer in prunable_layers(model):
        assert torch.equal(method.bases_[name], bases[name])
        assert not torch.allclose(method.coefficients_[name], coefficients[name])
        torch.testing.assert_close(layer.weight.detach().reshape(layer.weight.shape[0], -1).double(),
                                   reconstruct(bases[name], method.coefficients_[name]))
    assert not torch.equal(model[3].bias, bias)  # biases train normally


def test_without_finetuning_the_model_is_the_sketch_and_inference_model_matches_it():
    torch.manual_seed(0)
    model = build_model("lenet-5")
    dense = [layer.weight.detach().clone() for _, layer in prunable_layers(model)]
    method = NetworkSketching(m=3, variant="direct")
    assert not method.wants_finetuning()
    model = method.prepare(model, None, 0, 0).finalize(model)
    x = torch.rand(4, 1, 28, 28)
    fast = method.inference_model(model, x)
    kinds = [type(module).__name__ for module in fast]
    assert kinds.count("AssociativeBinaryConv2d") == 2 and kinds.count("AssociativeBinaryLinear") == 2
    with torch.no_grad():
        torch.testing.assert_close(fast(x), model(x), rtol=1e-4, atol=1e-4)
    assert isinstance(model[0], nn.Conv2d)  # the evaluated model is untouched

    class Splits:
        input_shape = (1, 28, 28)
    extra = method.extra_metrics(model, Splits())
    sketches = [sketch_weight(w, 3, "direct").reconstruction for w in dense]
    expected = (sum(float(((w.double() - s.double()) ** 2).sum()) for w, s in zip(dense, sketches))
                / sum(float((w.double() ** 2).sum()) for w in dense))
    assert extra["sketch_error"] == pytest.approx(expected)
    positions = output_positions(model, (1, 28, 28))
    assert positions == {"0": 24 * 24, "2": 8 * 8, "5": 1, "7": 1}
    plans = {name: associative_plan(bases) for name, bases in method.bases_.items()}
    saved = 1 - (sum(positions[k] * p.associative_additions for k, p in plans.items())
                 / sum(positions[k] * p.plain_additions for k, p in plans.items()))
    assert extra["additions_saved"] == pytest.approx(saved)
    assert 0.0 < extra["additions_saved"] < 1.0
    # layers weigh in by output positions: conv1 (24·24 positions) dominates the unweighted count
    unweighted = method.extra_metrics(model, None)["additions_saved"]
    assert unweighted != pytest.approx(extra["additions_saved"])


def test_inference_model_keeps_a_layer_changed_after_sketching():
    model = small_net()
    method = NetworkSketching(m=2).prepare(model, None, 0, 0)
    model = method.finalize(model)
    with torch.no_grad():
        model[5].weight[0, 0] += 1.0  # no longer Σ a_j B_j
    fast = method.inference_model(model, torch.rand(2, 1, 8, 8))
    assert isinstance(fast[0], AssociativeBinaryConv2d) and isinstance(fast[3], AssociativeBinaryLinear)
    assert isinstance(fast[5], nn.Linear)


def test_bad_params_are_one_line_user_errors():
    check_one_line_user_error(lambda: NetworkSketching(m=0), "'sketch'", "m=0", ">= 1")
    check_one_line_user_error(lambda: NetworkSketching(m=2.5), "m=2.5")
    check_one_line_user_error(lambda: NetworkSketching(variant="x"), "variant='x'", "'direct' or 'refined'")
    check_one_line_user_error(lambda: NetworkSketching(finetune="yes"), "finetune")


def test_registry_params_and_labels():
    expected = {"sketch": NetworkSketching, "bwn": BinaryWeightNetwork, "sign": SignBinarization}
    for name, cls in expected.items():
        assert registry.methods.get(name, task="compression") is cls
        method = cls()
        assert vars(method) == method.get_params()
    assert NetworkSketching().get_params() == {"m": 3, "variant": "refined", "finetune": False}
    assert BinaryWeightNetwork().get_params() == {} and repr(SignBinarization()) == "SignBinarization()"
    suite = parse_suite({"suite": "s", "tasks": [{"task": "compression", "methods": [
        {"name": "sketch", "grid": {"m": [1, 3]}}, {"name": "sketch", "params": {"variant": "direct"}},
        {"name": "bwn"}, {"name": "sign"}]}]})
    labels = {spec.method_label for spec in expand(suite)}
    assert labels == {"sketch(m=1, variant=refined)", "sketch(m=3, variant=refined)",
                      "sketch(m=3, variant=direct)", "bwn", "sign"}
