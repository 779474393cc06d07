"""INQ (power-of-two quantization, incremental freezing), its one-shot ablation and the
uniform k-bit baseline, on tiny synthetic models (no dataset needed)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from conftest import check_one_line_user_error
from robench import registry
from robench.data import ArraySplit

registry.load_builtins()  # before the method modules register themselves (else: duplicate names)
from robench.tasks.compression.methods.base import apply_masks, prunable_layers
from robench.tasks.compression.methods.inq import (IncrementalNetworkQuantization, OneShotPowerOfTwo,
                                                   allowed_values, inq_exponents, quantize_pow2)
from robench.tasks.compression.methods.magnitude import smallest_magnitude_mask
from robench.tasks.compression.methods.uniform import (UniformQuantization, quantize_uniform,
                                                       uniform_scale)
from robench.training import fit, make_sgd
from tests.compression_helpers import small_net, toy_data  # noqa: E402


pytestmark = pytest.mark.usefixtures("one_thread")


def layers(model):
    return dict(prunable_layers(model))


def weights(model):
    return {name: layer.weight.detach().clone() for name, layer in prunable_layers(model)}


def check_powers_of_two(weight: torch.Tensor, n1: int, n2: int) -> None:
    """Independent of the quantizer: every nonzero |w| is exactly 2^k, n2 ≤ k ≤ n1."""
    for value in weight.flatten().tolist():
        if value == 0.0:
            continue
        mantissa, exponent = math.frexp(abs(value))  # |v| = m·2^e, m in [0.5, 1)
        assert mantissa == 0.5, f"{value} is not a power of two"
        assert n2 <= exponent - 1 <= n1, f"{value} = 2^{exponent - 1} is outside 2^{n2}..2^{n1}"


# -- the power-of-two quantizer ----------------------------------------------------------
@pytest.mark.parametrize("s, n1", [(1.0, 0), (0.75, 0), (0.7499, -1), (1.5, 1), (1.4999, 0), (0.1, -3),
                                   (3.0, 2), (0.05, -4)])
def test_n1_follows_floor_log2_of_four_thirds_of_the_max(s, n1):
    weight = torch.tensor([0.0, -s, s / 3])  # the max is |−s|
    assert inq_exponents(weight, 5) == (n1, n1 - 7)  # b = 5: n2 = n1 + 1 − 16/2


@pytest.mark.parametrize("bits, n2", [(2, 0), (3, -1), (4, -3), (5, -7), (6, -15)])
def test_n2_and_the_size_of_the_allowed_set(bits, n2):
    assert inq_exponents(torch.tensor([1.0, -0.3]), bits) == (0, n2)
    values = allowed_values(0, n2)
    assert len(values) == 2 ** (bits - 1) + 1
    assert torch.equal(values, -values.flip(0)) and values[len(values) // 2] == 0
    check_powers_of_two(values, 0, n2)


def test_all_zero_layer_has_no_scale_and_stays_zero():
    assert inq_exponents(torch.zeros(3, 4), 5) is None
    assert torch.equal(quantize_pow2(torch.zeros(3, 4), 5), torch.zeros(3, 4))


def test_rounding_at_the_interval_boundaries():
    # n1 = 0, n2 = −2: magnitudes {0, 0.25, 0.5, 1}; boundaries 0.125, 0.375, 0.75
    def below(x):
        return torch.nextafter(torch.tensor(x), torch.tensor(0.0)).item()

    cases = [(0.125, 0.25), (below(0.125), 0.0), (0.375, 0.5), (below(0.375), 0.25), (0.75, 1.0),
             (below(0.75), 0.5), (1e-6, 0.0), (0.0, 0.0), (0.25, 0.25), (1.4, 1.0),
             (1.5, 1.0), (7.0, 1.0)]  # ≥ 3·2^n1/2 saturates at 2^n1 (its nearest value)
    w = torch.tensor([x for x, _ in cases])
    expected = torch.tensor([q for _, q in cases])
    assert torch.equal(quantize_pow2(w, 3, n1=0, n2=-2), expected)
    assert torch.equal(quantize_pow2(-w, 3, n1=0, n2=-2), -expected)
    assert torch.equal(quantize_pow2(w, 4, n1=0), quantize_pow2(w, 4, n1=0, n2=-3))


@pytest.mark.parametrize("bits", [2, 3, 4, 5])
def test_quantizer_rounds_to_the_nearest_allowed_value(bits):
    w = torch.randn(2000, generator=torch.Generator().manual_seed(bits)) * 0.1
    n1, n2 = inq_exponents(w, bits)
    q = quantize_pow2(w, bits)
    assert torch.isin(q, allowed_values(n1, n2)).all()
    check_powers_of_two(q, n1, n2)
    assert len(torch.unique(q)) <= 2 ** (bits - 1) + 1
    # independent reference: numpy argmin of the distance to each allowed value
    grid = np.array([0.0] + [s * 2.0 ** k for k in range(n2, n1 + 1) for s in (1, -1)])
    wn = w.double().numpy()
    nearest = grid[np.abs(wn[:, None] - grid[None, :]).argmin(1)]
    np.testing.assert_array_equal(q.double().numpy(), nearest)


# -- INQ -------------------------------------------------------------------------------
class Recorder:
    """Step hooks around an INQ method that snapshot the frozen weights after every freeze."""

    def __init__(self, method):
        self.method = method
        self.snapshots = []  # (portion index, {name: (frozen mask, values)})

    def _snapshot(self, model):
        self.snapshots.append((self.method.portion_index_, {
            name: (self.method.frozen_[name].clone(), layer.weight.detach().clone())
            for name, layer in layers(model).items()}))

    def before_forward(self, model, step):
        before = self.method.portion_index_
        self.method.before_forward(model, step)
        if self.method.portion_index_ != before:
            self._snapshot(model)

    def after_backward(self, model, step):
        self.method.after_backward(model, step)

    def after_step(self, model, step):
        self.method.after_step(model, step)


@pytest.mark.parametrize("bits", [2, 3, 4, 5])
def test_inq_freezes_incrementally_and_exports_powers_of_two(bits):
    model = small_net()
    x, y = toy_data()
    trained = weights(model)
    biases = [layer.bias.detach().clone() for layer in layers(model).values()]
    method = IncrementalNetworkQuantization(bits=bits)
    steps_per_epoch = 6  # 48 samples, batch 8
    method.prepare(model, None, total_steps=3 * steps_per_epoch, seed=0)
    recorder = Recorder(method)
    recorder._snapshot(model)
    fit(model, x, y, epochs=3, batch_size=8, optimizer=make_sgd(model, 0.05), seed=0, hooks=recorder)

    assert [k for k, _ in recorder.snapshots] == [0, 1, 2]
    for k, frozen in recorder.snapshots:  # the portions: round(p·n) frozen per layer
        for name, (mask, _) in frozen.items():
            n = mask.numel()
            assert int(mask.sum()) == math.floor(method.portions[k] * n + 0.5)
    # every frozen weight kept its value to the end of training (momentum, weight decay on)
    end = weights(model)
    for _, frozen in recorder.snapshots:
        for name, (mask, values) in frozen.items():
            assert torch.equal(end[name][mask], values[mask])
    # the weights never frozen during training were retrained, and the biases moved
    last_mask = recorder.snapshots[-1][1]
    for name, (mask, _) in last_mask.items():
        assert (end[name][~mask] != trained[name][~mask]).float().mean() > 0.9
    assert all(not torch.equal(b, layer.bias) for b, layer in zip(biases, layers(model).values()))

    model = method.finalize(model)
    assert method.quantized_fraction() == 1.0
    for name, layer in layers(model).items():
        n1, n2 = method.exponents_[name]
        assert (n1, n2) == inq_exponents(trained[name], bits)  # from the weights at prepare
        assert torch.isin(layer.weight, allowed_values(n1, n2)).all()
        check_powers_of_two(layer.weight, n1, n2)
        assert len(torch.unique(layer.weight)) <= 2 ** (bits - 1) + 1
        assert layer.weight.dtype == torch.float32
    assert method.extra_metrics(model, None) == {"bits": float(bits)}
    assert method.storage_bits("0", layers(model)["0"]) is None


def test_frozen_weights_get_no_gradient():
    model = small_net()
    x, y = toy_data(n=8)
    method = IncrementalNetworkQuantization(portions=[0.5, 1.0]).prepare(model, None, 4, seed=0)
    method.before_forward(model, 0)
    nn.functional.cross_entropy(model(x), y).backward()
    method.after_backward(model, 0)
    for name, layer in layers(model).items():
        frozen = method.frozen_[name]
        assert (layer.weight.grad[frozen] == 0).all()
        assert (layer.weight.grad[~frozen] != 0).any()


def test_magnitude_partition_freezes_the_largest_weights_first():
    model = small_net()
    trained = weights(model)
    method = IncrementalNetworkQuantization(portions=[0.3, 1.0]).prepare(model, None, 10, seed=0)
    for name, w in trained.items():
        frozen = method.frozen_[name]
        assert int(frozen.sum()) == math.floor(0.3 * w.numel() + 0.5)
        assert w[frozen].abs().min() >= w[~frozen].abs().max()
        assert torch.equal(model.get_submodule(name).weight[frozen], quantize_pow2(w, 5)[frozen])
        assert torch.equal(model.get_submodule(name).weight[~frozen], w[~frozen])  # untouched


def test_random_partition_depends_on_the_seed():
    def frozen(seed, partition="random"):
        method = IncrementalNetworkQuantization(portions=[0.5, 1.0], partition=partition)
        method.prepare(small_net(), None, 10, seed=seed)
        return torch.cat([mask.flatten() for mask in method.frozen_.values()])

    assert torch.equal(frozen(0), frozen(0))
    assert not torch.equal(frozen(0), frozen(1))
    assert not torch.equal(frozen(0), frozen(0, "magnitude"))
    assert torch.equal(frozen(0, "magnitude"), frozen(1, "magnitude"))


def test_keep_zeros_keeps_a_pruned_layer_pruned():
    model = small_net()
    x, y = toy_data()
    masks = {name: smallest_magnitude_mask(layer.weight.detach().abs().flatten(), layer.weight.numel() // 2)
             .view_as(layer.weight) for name, layer in layers(model).items()}
    apply_masks(model, masks)
    pruned = weights(model)
    method = IncrementalNetworkQuantization(bits=4, portions=[0.5, 1.0]).prepare(model, None, 12, seed=0)
    for name, w in pruned.items():
        survivors = int((w != 0).sum())
        assert method.exponents_[name] == inq_exponents(w, 4)
        assert int(method.frozen_[name].sum()) == int((w == 0).sum()) + math.floor(0.5 * survivors + 0.5)
    fit(model, x, y, epochs=2, batch_size=8, optimizer=make_sgd(model, 0.05), seed=0, hooks=method)
    model = method.finalize(model)
    for name, layer in layers(model).items():
        assert (layer.weight[pruned[name] == 0] == 0).all()

    # without keep_zeros the zeros are ordinary weights: retrained, some come back
    model = small_net()
    apply_masks(model, masks)
    method = IncrementalNetworkQuantization(bits=4, portions=[0.5, 1.0], keep_zeros=False)
    method.prepare(model, None, 12, seed=0)
    for name, w in pruned.items():
        assert int(method.frozen_[name].sum()) == math.floor(0.5 * w.numel() + 0.5)
    fit(model, x, y, epochs=2, batch_size=8, optimizer=make_sgd(model, 0.05), seed=0, hooks=method)
    revived = sum(int((model.get_submodule(n).weight[pruned[n] == 0] != 0).sum()) for n in pruned)
    assert revived > 0


def test_an_all_zero_layer_stays_zero():
    model = small_net()
    with torch.no_grad():
        model[5].weight.zero_()
    method = IncrementalNetworkQuantization(keep_zeros=False).prepare(model, None, 0, seed=0)
    assert method.exponents_["5"] is None and method.frozen_["5"].all()
    assert (method.finalize(model)[5].weight == 0).all()


def test_lr_restarts_are_the_phase_starts():
    inq = IncrementalNetworkQuantization()
    assert inq.lr_restarts(120) == [40, 80]
    assert inq.phase_starts(120) == [0, 40, 80]
    assert inq.lr_restarts(100) == [33, 66]
    assert inq.lr_restarts(0) == [] and inq.lr_restarts(1) == [] and inq.lr_restarts(2) == [1]
    assert IncrementalNetworkQuantization(portions=[0.5, 1.0]).lr_restarts(100) == []
    assert OneShotPowerOfTwo().lr_restarts(100) == []


@pytest.mark.parametrize("total_steps, epochs", [(0, 0), (2, 1), (1, 1)])
def test_short_budgets_quantize_everything_at_finalize(total_steps, epochs):
    model = small_net()
    x, y = toy_data(n=16)
    method = IncrementalNetworkQuantization(bits=3).prepare(model, None, total_steps, seed=0)
    batch = 16 // total_steps if total_steps else 16
    fit(model, x, y, epochs=epochs, batch_size=batch, optimizer=make_sgd(model, 0.05), seed=0, hooks=method)
    model = method.finalize(model)
    for name, layer in layers(model).items():
        n1, n2 = method.exponents_[name]
        check_powers_of_two(layer.weight, n1, n2)


def test_oneshot_freezes_everything_at_prepare_and_only_biases_train():
    model = small_net()
    x, y = toy_data()
    trained = weights(model)
    method = OneShotPowerOfTwo(bits=3)
    assert method.get_params() == {"bits": 3} and list(method.portions) == [1.0]
    method.prepare(model, None, 12, seed=0)
    assert method.quantized_fraction() == 1.0
    at_prepare = weights(model)
    for name, w in trained.items():
        assert torch.equal(at_prepare[name], quantize_pow2(w, 3))
    biases = [layer.bias.detach().clone() for layer in layers(model).values()]
    fit(model, x, y, epochs=2, batch_size=8, optimizer=make_sgd(model, 0.05), seed=0, hooks=method)
    model = method.finalize(model)
    assert all(torch.equal(at_prepare[n], w) for n, w in weights(model).items())
    assert all(not torch.equal(b, layer.bias) for b, layer in zip(biases, layers(model).values()))


def test_inq_bad_params_are_one_line_user_errors():
    for kwargs, word in [({"bits": 1}, "bits"), ({"bits": 9}, "bits"), ({"bits": 4.0}, "bits"),
                         ({"portions": [0.5, 0.5, 1.0]}, "portions"), ({"portions": [0.5, 0.9]}, "portions"),
                         ({"portions": [0.0, 1.0]}, "portions"), ({"portions": [1.5]}, "portions"),
                         ({"portions": []}, "portions"), ({"portions": "0.5"}, "portions"),
                         ({"partition": "largest"}, "partition"), ({"keep_zeros": "yes"}, "keep_zeros")]:
        check_one_line_user_error(lambda: IncrementalNetworkQuantization(**kwargs), "'inq'", word)
    check_one_line_user_error(lambda: OneShotPowerOfTwo(bits=1), "'inq-oneshot'", "bits")
    with pytest.raises(ValueError):
        quantize_pow2(torch.ones(3), 1)


def test_constructors_store_params_only_and_registry_names_resolve():
    expected = {"inq": IncrementalNetworkQuantization, "inq-oneshot": OneShotPowerOfTwo,
                "uniform": UniformQuantization}
    for name, cls in expected.items():
        assert registry.methods.get(name, task="compression") is cls
        method = cls()
        assert vars(method) == method.get_params()
    assert IncrementalNetworkQuantization().get_params() == {
        "bits": 5, "portions": [0.5, 0.75, 0.875, 1.0], "partition": "magnitude", "keep_zeros": True}


# -- uniform ---------------------------------------------------------------------------
@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_uniform_grid_is_symmetric_with_at_most_2k_minus_1_values(bits):
    w = torch.randn(3000, generator=torch.Generator().manual_seed(bits))
    q = quantize_uniform(w, bits)
    scale = uniform_scale(w, bits)
    assert scale == pytest.approx(w.abs().max().item() / (2 ** (bits - 1) - 1))
    assert len(torch.unique(q)) <= 2 ** bits - 1
    assert torch.equal(quantize_uniform(-w, bits), -q)
    levels = q / scale
    assert torch.allclose(levels, levels.round(), atol=1e-4)
    assert levels.abs().max().round() == 2 ** (bits - 1) - 1  # the max maps to ±max
    assert (q - w).abs().max() <= scale / 2 + 1e-6
    assert torch.equal(quantize_uniform(torch.zeros(5), bits), torch.zeros(5))


def test_uniform_ste_trains_the_float_shadow_and_exports_the_grid():
    model = small_net()
    x, y = toy_data()
    bits = 3
    trained = weights(model)
    forwards = []

    def on_grid(module, inputs):  # the forward (and so the gradient) sees Q(W)
        forwards.append(torch.equal(module.weight, quantize_uniform(module.weight, bits)))

    handles = [layer.register_forward_pre_hook(on_grid) for layer in layers(model).values()]
    method = UniformQuantization(bits=bits).prepare(model, None, 12, seed=0)
    fit(model, x, y, epochs=2, batch_size=8, optimizer=make_sgd(model, 0.05), seed=0, hooks=method)
    for handle in handles:
        handle.remove()
    assert len(forwards) == 3 * 12 and all(forwards)
    shadow = weights(model)
    for name, w in shadow.items():
        assert (w != trained[name]).float().mean() > 0.9  # the float shadow moved
        assert len(torch.unique(w)) > 2 ** bits - 1        # and is not on the grid
    model = method.finalize(model)
    for name, layer in layers(model).items():
        assert torch.equal(layer.weight, quantize_uniform(shadow[name], bits))
        assert len(torch.unique(layer.weight)) <= 2 ** bits - 1
    assert method.extra_metrics(model, None) == {}


def test_uniform_step_applies_the_gradient_at_the_quantized_weights_to_the_float_ones():
    bits, lr = 3, 0.1
    model = small_net()
    x, y = toy_data(n=8)
    start = weights(model)
    reference = small_net()  # the same net with Q(W) loaded: its gradient is what STE applies
    with torch.no_grad():
        for name, layer in layers(reference).items():
            layer.weight.copy_(quantize_uniform(start[name], bits))
    nn.functional.cross_entropy(reference(x), y).backward()
    method = UniformQuantization(bits=bits).prepare(model, None, 1, seed=0)
    fit(model, x, y, epochs=1, batch_size=8, seed=0, hooks=method,
        optimizer=torch.optim.SGD(model.parameters(), lr=lr))  # plain SGD: w ← w − lr·g
    for name, layer in layers(model).items():
        expected = start[name] - lr * layers(reference)[name].weight.grad
        assert torch.allclose(layer.weight, expected, atol=1e-6)


def test_uniform_int8_dynamic_metrics_on_a_linear_model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 3))
    x, y = toy_data(n=80)
    fit(model, x, y, epochs=3, batch_size=16, optimizer=make_sgd(model, 0.1), seed=0)
    method = UniformQuantization(bits=8).prepare(model, None, 0, seed=0)
    model = method.finalize(model)
    data = SimpleNamespace(test=ArraySplit(x, y))
    metrics = method.extra_metrics(model, data)
    assert set(metrics) == {"latency_int8_dynamic_ms", "latency_float_ms", "accuracy_int8_dynamic"}
    assert 0 < metrics["latency_int8_dynamic_ms"] < 1000 and 0 < metrics["latency_float_ms"] < 1000
    from robench.training import accuracy
    assert abs(metrics["accuracy_int8_dynamic"] - accuracy(model, x, y)) <= 0.05
    assert all(isinstance(layer, nn.Linear) for layer in layers(model).values())  # model untouched
    assert UniformQuantization(bits=4).extra_metrics(model, data) == {}
    conv_only = nn.Sequential(nn.Conv2d(1, 3, 8), nn.Flatten())
    assert UniformQuantization(bits=8).extra_metrics(conv_only, data) == {}


def test_uniform_bad_params_are_one_line_user_errors():
    for bits in (1, 17, 2.5, True, "8"):
        check_one_line_user_error(lambda: UniformQuantization(bits=bits), "'uniform'", "bits")
    assert UniformQuantization().get_params() == {"bits": 8}
