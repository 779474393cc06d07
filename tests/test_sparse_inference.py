"""The compression task's sparse inference path: the sparse kernels compute the dense
layers' function on every layout, and the automatic choice keeps a sparse layer only when
it measured faster and the whole model only when it is faster than the dense one."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from robench import registry

registry.load_builtins()  # before the method modules register themselves (else: duplicate names)
from robench.models import build_model  # noqa: E402
from robench.tasks.compression import _sparse, metrics  # noqa: E402
from robench.tasks.compression.methods.magnitude import MagnitudePruning  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


def pruned(module: nn.Module, keep: float, seed: int = 0) -> nn.Module:
    """``module`` with all but a random ``keep`` fraction of its weight zeroed."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        module.weight.mul_(torch.rand(module.weight.shape, generator=generator) < keep)
    return module.eval()


def batch_innermost(x: torch.Tensor) -> torch.Tensor:
    """``x`` with its memory ordered (C, H, W, N) (or (F, N)): the sparse layers' layout."""
    order = (*range(1, x.dim()), 0)
    inverse = (x.dim() - 1, *range(x.dim() - 1))
    return x.permute(order).contiguous().permute(inverse)


def lenet5_dns_regime() -> nn.Module:
    """LeNet-5 pruned to DNS's published per-layer densities (14 %, 3.1 %, 0.7 %, 4.3 %)."""
    torch.manual_seed(0)
    model = build_model("lenet-5")
    for index, keep in zip((0, 2, 5, 7), (0.14, 0.031, 0.007, 0.043)):
        pruned(model[index], keep, seed=index)
    return model.eval()


# -- kernels -----------------------------------------------------------------------------
CONVS = {
    "plain": dict(in_channels=3, out_channels=8, kernel_size=5),
    "stride-padding": dict(in_channels=3, out_channels=8, kernel_size=3, stride=2, padding=1),
    "rectangular": dict(in_channels=2, out_channels=5, kernel_size=(3, 2), stride=(1, 2), padding=(2, 0)),
    "dilation": dict(in_channels=3, out_channels=4, kernel_size=3, dilation=2, padding=1),
    "groups": dict(in_channels=4, out_channels=6, kernel_size=3, groups=2, padding=1),
    "depthwise": dict(in_channels=4, out_channels=4, kernel_size=3, groups=4),
    "same": dict(in_channels=3, out_channels=4, kernel_size=4, padding="same", dilation=2),
    "valid": dict(in_channels=3, out_channels=4, kernel_size=3, padding="valid"),
    "no-bias": dict(in_channels=3, out_channels=4, kernel_size=3, bias=False),
}


@pytest.mark.parametrize("config", CONVS.values(), ids=CONVS.keys())
@pytest.mark.parametrize("layout", ["nchw", "batch-innermost"])
def test_sparse_conv_computes_the_dense_convolution(config, layout):
    torch.manual_seed(0)
    conv = pruned(nn.Conv2d(**config), keep=0.3)
    x = torch.randn(5, config["in_channels"], 11, 9)
    x = batch_innermost(x) if layout == "batch-innermost" else x
    sparse = metrics.CSRConv2d(conv)
    with torch.no_grad():
        y = sparse(x)
        torch.testing.assert_close(y, conv(x), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(sparse(x), y)  # the kept indices are reused
    assert y.permute(1, 2, 3, 0).is_contiguous()  # batch-innermost for the next sparse layer


def test_sparse_conv_in_blocks_of_output_rows(monkeypatch):
    """A layer whose indices exceed MAX_BAG_ENTRIES runs in blocks of output rows (the
    last block overlapping the previous one) with the same result."""
    monkeypatch.setattr(_sparse, "MAX_BAG_ENTRIES", 1)  # one output row per block
    torch.manual_seed(0)
    conv = pruned(nn.Conv2d(2, 3, 3, padding=1), keep=0.5)
    x = torch.randn(4, 2, 7, 6)
    sparse = metrics.CSRConv2d(conv)
    monkeypatch.setattr(_sparse, "MAX_BAG_ENTRIES", 2 * sparse.nnz * 6)  # 2 rows per block: 0-1, 2-3, 4-5, 5-6
    with torch.no_grad():
        assert sparse._bag_block(9, 8, 7, 6)[0] == 2
        torch.testing.assert_close(sparse(x), conv(x), atol=1e-5, rtol=1e-5)


def test_fully_pruned_layers_output_their_bias():
    conv, linear = nn.Conv2d(2, 3, 3), nn.Linear(6, 4)
    with torch.no_grad():
        conv.weight.zero_()
        linear.weight.zero_()
        x = torch.randn(2, 2, 5, 5)
        torch.testing.assert_close(metrics.CSRConv2d(conv)(x), conv(x))
        torch.testing.assert_close(metrics.CSRLinear(linear)(torch.randn(2, 6)), linear.bias.expand(2, 4))


@pytest.mark.parametrize("shape", [(7, 12), (3, 5, 12), (1, 12)])
@pytest.mark.parametrize("bias", [True, False])
def test_sparse_linear_computes_the_dense_linear(shape, bias):
    torch.manual_seed(0)
    linear = pruned(nn.Linear(12, 9, bias=bias), keep=0.2)
    sparse = metrics.CSRLinear(linear)
    for x in (torch.randn(shape), batch_innermost(torch.randn(shape))):
        with torch.no_grad():
            torch.testing.assert_close(sparse(x), linear(x), atol=1e-5, rtol=1e-5)


POOLS = {
    "2x2": dict(kernel_size=2),
    "3x3-stride2-ceil": dict(kernel_size=3, stride=2, ceil_mode=True),
    "3x3-stride2-padding": dict(kernel_size=3, stride=2, padding=1),
    "padding-ceil": dict(kernel_size=(2, 3), stride=(2, 1), padding=1, ceil_mode=True),
    "1x1": dict(kernel_size=1),
}


@pytest.mark.parametrize("config", POOLS.values(), ids=POOLS.keys())
@pytest.mark.parametrize("size", [(8, 8), (7, 10)])
def test_layout_max_pool_computes_max_pool_and_keeps_the_layout(config, size):
    pool = nn.MaxPool2d(**config)
    layout_pool = _sparse.LayoutMaxPool2d(pool)
    x = torch.randn(3, 4, *size)
    with torch.no_grad():
        y = layout_pool(batch_innermost(x))
        torch.testing.assert_close(y, pool(x), rtol=0, atol=0)
        assert y.permute(1, 2, 3, 0).is_contiguous()
        torch.testing.assert_close(layout_pool(x), pool(x), rtol=0, atol=0)  # NCHW: torch's kernel


# -- the model and the automatic choice ------------------------------------------------------
def test_lenet5_in_dns_regime_computes_the_same_function_on_sparse_kernels():
    model = lenet5_dns_regime()
    x = torch.rand(16, 1, 28, 28)
    fast = metrics.sparse_inference_model(model)  # no example: every candidate converted
    kinds = [type(module).__name__ for module in fast]
    assert kinds == ["CSRConv2d", "LayoutMaxPool2d", "CSRConv2d", "LayoutMaxPool2d", "Flatten",
                     "CSRLinear", "ReLU", "CSRLinear"]
    assert fast.sparse_model_ == {"sparse": True}
    assert all(choice["sparse"] for choice in fast.sparse_layers_.values())
    with torch.no_grad():
        torch.testing.assert_close(fast(x), model(x), atol=1e-5, rtol=1e-5)
    assert isinstance(model[0], nn.Conv2d) and isinstance(model[1], nn.MaxPool2d)  # the original is untouched


def fake_timer(layer_ms: dict[str, tuple[float, float]], model_ms: tuple[float, float]):
    """A timer that reports ``layer_ms[type of the dense layer]`` = (dense, sparse) for a
    layer pair and ``model_ms`` for the whole-model pair (modules with children); it
    records what it timed."""
    calls = []

    def timer(models, x, repeats, warmup=3):
        dense, sparse = models
        calls.append((type(dense).__name__, type(sparse).__name__, repeats))
        whole_model = next(dense.children(), None) is not None
        return list(model_ms if whole_model else layer_ms[type(dense).__name__])

    timer.calls = calls
    return timer


def test_the_faster_kernel_per_layer_is_kept_and_recorded():
    model = lenet5_dns_regime()
    x = torch.rand(8, 1, 28, 28)
    timer = fake_timer({"Conv2d": (2.0, 1.0), "Linear": (1.0, 2.0)}, model_ms=(10.0, 5.0))
    fast = metrics.sparse_inference_model(model, x, repeats=5, timer=timer)
    assert [type(m).__name__ for m in fast][:3] == ["CSRConv2d", "LayoutMaxPool2d", "CSRConv2d"]
    assert isinstance(fast[5], nn.Linear) and isinstance(fast[7], nn.Linear)
    assert fast.sparse_layers_["0"] == {"sparsity": pytest.approx(0.86, abs=0.02), "sparse": True,
                                        "dense_ms": 2.0, "sparse_ms": 1.0, "faster": True}
    assert fast.sparse_layers_["5"]["sparse"] is False and fast.sparse_layers_["5"]["faster"] is False
    assert fast.sparse_model_ == {"sparse": True, "dense_ms": 10.0, "sparse_ms": 5.0}
    assert ("Sequential", "Sequential", 5) in timer.calls  # the whole model was checked
    json.dumps({"layers": fast.sparse_layers_, "model": fast.sparse_model_})  # what the task exports
    with torch.no_grad():
        torch.testing.assert_close(fast(x), model(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("model_ms", [(5.0, 6.0), (5.0, 4.9)], ids=["slower", "within-noise"])
def test_the_dense_model_is_kept_when_the_sparse_model_is_not_faster(model_ms):
    """Every layer measured faster alone, but the whole sparse model is not (at least
    SPARSE_MIN_GAIN times) faster: the dense copy is returned, the measurements recorded."""
    model = lenet5_dns_regime()
    x = torch.rand(8, 1, 28, 28)
    timer = fake_timer({"Conv2d": (2.0, 1.0), "Linear": (2.0, 1.0)}, model_ms=model_ms)
    fast = metrics.sparse_inference_model(model, x, timer=timer)
    assert [type(m) for m in fast] == [type(m) for m in model]  # no sparse layer, no layout pool
    assert all(c["faster"] and not c["sparse"] for c in fast.sparse_layers_.values())
    assert fast.sparse_model_ == {"sparse": False, "dense_ms": model_ms[0], "sparse_ms": model_ms[1]}
    assert fast is not model


def test_a_much_slower_sparse_layer_is_timed_once():
    model = lenet5_dns_regime()
    timer = fake_timer({"Conv2d": (1.0, 3.5), "Linear": (1.0, 3.5)}, model_ms=(1.0, 1.0))
    fast = metrics.sparse_inference_model(model, torch.rand(4, 1, 28, 28), repeats=9, timer=timer)
    assert all(repeats == 1 for *_, repeats in timer.calls) and len(timer.calls) == 4
    assert fast.sparse_model_ == {"sparse": False}  # nothing faster: no whole-model check


def test_a_layer_the_forward_never_reaches_stays_dense():
    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.used, self.unused = pruned(nn.Linear(8, 8), 0.1), pruned(nn.Linear(8, 8), 0.1)

        def forward(self, x):
            return self.used(x)

    timer = fake_timer({"Linear": (2.0, 1.0)}, model_ms=(2.0, 1.0))
    model = Branchy()
    zeros = int((model.unused.weight == 0).sum())
    assert 0 < zeros < 64  # a random 10 % kept: the exact count is this draw's
    fast = metrics.sparse_inference_model(model, torch.rand(3, 8), timer=timer)
    assert isinstance(fast.used, metrics.CSRLinear) and isinstance(fast.unused, nn.Linear)
    # the recorded sparsity is the layer's own, exact to one weight's 1/64
    assert fast.sparse_layers_["unused"] == {"sparsity": pytest.approx(zeros / 64, abs=0.5 / 64), "sparse": False}


def test_the_real_timer_chooses_and_keeps_the_function():
    """With the real clock the choice may go either way; the outputs may not."""
    model = nn.Sequential(nn.Conv2d(1, 6, 3, padding=1, stride=2), nn.ReLU(), nn.Conv2d(6, 8, 3),
                          nn.Flatten(), nn.Linear(8 * 2 * 2, 5))
    MagnitudePruning(0.9).prepare(model, None, 1, 0)
    x = torch.rand(5, 1, 8, 8)
    fast = metrics.sparse_inference_model(model, x)
    assert set(fast.sparse_layers_) == {"0", "2", "4"}
    for name, choice in fast.sparse_layers_.items():
        assert choice["faster"] == (choice["sparse_ms"] < choice["dense_ms"])
        assert choice["sparse"] == (choice["faster"] and fast.sparse_model_["sparse"])
        assert isinstance(fast.get_submodule(name), (metrics.CSRConv2d, metrics.CSRLinear)) == choice["sparse"]
    with torch.no_grad():
        torch.testing.assert_close(fast(x), model(x), atol=1e-5, rtol=1e-5)
