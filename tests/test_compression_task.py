"""The compression task: counting (compression ratio, sparsity, FLOPs), exports, end to end."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from robench import registry
from robench.errors import UserError

registry.load_builtins()  # before the task modules register themselves (else: duplicate names)
from robench.tasks.base import Method, RunContext
from robench.tasks.compression import metrics
from robench.tasks.compression.methods.dns import DynamicNetworkSurgery
from robench.tasks.compression.methods.magnitude import MagnitudePruning
from robench.tasks.compression.methods.random_prune import RandomPruning
from robench.tasks.compression.task import CompressionTask

TINY = dict(model="lenet-300-100", baseline_epochs=1, finetune_epochs=1, batch_size=128,
            latency_batch_size=8, latency_repeats=2)


def hand_model():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 2, 3),                                 # 6x6 → 4x4: 18 weights × 16 positions
        nn.Conv2d(2, 4, 3, stride=2, padding=1, groups=2),  # 4x4 → 2x2: 36 weights × 4 positions
        nn.Flatten(),
        nn.Linear(16, 3),                                   # 48 weights × 1
    )


def test_flops_ratio_matches_a_hand_count():
    model = hand_model()
    with torch.no_grad():
        model[0].weight.view(-1)[:6] = 0
        model[1].weight.view(-1)[:9] = 0
        model[3].weight.view(-1)[:16] = 0
    stats = metrics.layer_stats(model, (1, 6, 6))
    assert [s.output_positions for s in stats] == [16, 4, 1]
    assert [s.macs_dense for s in stats] == [18 * 16, 36 * 4, 48]
    assert [s.macs_nonzero for s in stats] == [12 * 16, 27 * 4, 32]
    assert metrics.flops_ratio(stats) == pytest.approx((288 + 144 + 48) / (192 + 108 + 32))
    assert metrics.weight_sparsity(stats) == pytest.approx(31 / 102)
    total = 102 + 2 + 4 + 3
    assert metrics.compression_ratio(model) == pytest.approx(total / (total - 31))


def test_dense_model_counts_are_neutral():
    model = hand_model()
    stats = metrics.layer_stats(model, (1, 6, 6))
    assert metrics.flops_ratio(stats) == 1.0 and metrics.compression_ratio(model) == 1.0
    assert metrics.weight_sparsity(stats) == 0.0


def test_sparse_inference_model_computes_the_same_function():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 5))
    MagnitudePruning(0.95).prepare(model, None, 1, 0)
    fast = metrics.sparse_inference_model(model)
    assert isinstance(fast[1], metrics.CSRLinear) and isinstance(fast[3], metrics.CSRLinear)
    x = torch.rand(7, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(fast(x), model(x))
    assert isinstance(model[1], nn.Linear)  # the original is untouched
    assert len(metrics.paired_latency_ms([model, fast], x, repeats=3)) == 2


def test_params_are_validated():
    with pytest.raises(UserError, match=r"^task 'compression': params\.finetune_epochs: .*greater than 0 \(got 0\)$"):
        CompressionTask(finetune_epochs=0)
    with pytest.raises(UserError, match=r"^task 'compression': params\.fine_tune_epochs: unknown key"):
        CompressionTask(fine_tune_epochs=3)
    assert CompressionTask().params.model == "lenet-5"


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module", autouse=True)
def fast_runs(fast_classification_runs):
    """mnist-5k loaded once, one torch thread (see conftest)."""


def run(method, seed, tmp_path, cache_dir, **params):
    ctx = RunContext(tmp_path, cache_dir)
    return CompressionTask(**{**TINY, **params}).run(method, seed, ctx)


def test_end_to_end_reports_and_exports_agree(tmp_path, cache_dir):
    result = run(MagnitudePruning(0.9, "global"), 0, tmp_path, cache_dir)
    m = result.metrics
    assert set(m) == set(CompressionTask.metrics_info)
    assert all(isinstance(v, float) for v in m.values())
    assert 0.5 < m["accuracy"] <= 1 and 0.5 < m["baseline_accuracy"] <= 1
    assert m["accuracy_delta"] == pytest.approx(m["accuracy"] - m["baseline_accuracy"])
    assert m["sparsity"] == pytest.approx(0.9, abs=1e-6)
    assert m["latency_ms"] > 0 and m["speedup_measured"] == pytest.approx(m["latency_dense_ms"] / m["latency_ms"])

    assert result.artifacts == {"model": "model.pt", "layers": "layers.json"}
    state = torch.load(tmp_path / "model.pt", weights_only=True)
    total = sum(t.numel() for t in state.values())
    nonzero = sum(int(torch.count_nonzero(t)) for t in state.values())
    assert m["compression_ratio"] == pytest.approx(total / nonzero)

    report = json.loads((tmp_path / "layers.json").read_text())
    layers = report["layers"]
    assert [layer["name"] for layer in layers] == ["1", "3", "5"]
    for layer in layers:
        weight = state[f"{layer['name']}.weight"]
        assert layer["weights"] == weight.numel()
        assert layer["nonzero_weights"] == int(torch.count_nonzero(weight))
        assert layer["sparsity"] == pytest.approx(1 - layer["nonzero_weights"] / layer["weights"])
    assert report["total"]["params"] == total and report["total"]["nonzero_params"] == nonzero
    assert report["total"]["macs_dense"] / report["total"]["macs_nonzero"] == pytest.approx(m["flops_ratio"])
    for layer in layers:  # storage: each weight by its cheapest encoding, biases as float32
        assert layer["storage"]["bits"] == metrics.weight_storage(state[f"{layer['name']}.weight"])["bits"]
        assert isinstance(layer["inference"]["sparse"], bool)
    biases = sum(t.numel() for k, t in state.items() if k.endswith("bias"))
    assert report["total"]["storage_bits"] == sum(layer["storage"]["bits"] for layer in layers) + 32 * biases
    assert m["compression_ratio_bits"] == pytest.approx(32 * total / report["total"]["storage_bits"])
    assert 1 < m["compression_ratio_bits"] < m["compression_ratio"]  # float values + index overhead


DETERMINISTIC = ["accuracy", "baseline_accuracy", "accuracy_delta", "compression_ratio", "sparsity", "flops_ratio"]


def test_same_seed_same_metrics(tmp_path, cache_dir):
    first = run(RandomPruning(0.8), 1, tmp_path / "a", cache_dir).metrics
    second = run(RandomPruning(0.8), 1, tmp_path / "b", cache_dir).metrics
    other = run(RandomPruning(0.8), 2, tmp_path / "c", cache_dir).metrics
    assert {k: first[k] for k in DETERMINISTIC} == {k: second[k] for k in DETERMINISTIC}
    assert (tmp_path / "a" / "model.pt").read_bytes() == (tmp_path / "b" / "model.pt").read_bytes()
    assert first["baseline_accuracy"] != other["baseline_accuracy"] or first["accuracy"] != other["accuracy"]


def test_lenet5_dns_end_to_end(tmp_path, cache_dir):
    result = run(DynamicNetworkSurgery(), 0, tmp_path, cache_dir, model="lenet-5", batch_size=64,
                 finetune_epochs=2)
    m = result.metrics
    assert m["compression_ratio"] > 10 and m["flops_ratio"] > 2
    assert m["accuracy"] > 0.5  # 1 baseline + 2 fine-tune epochs: a sanity bound only
    state = torch.load(tmp_path / "model.pt", weights_only=True)
    assert list(state["0.weight"].shape) == [20, 1, 5, 5]


def test_registering_a_method_of_another_task_is_refused():
    class Other(Method):
        def __init__(self):
            pass
    with pytest.raises(UserError, match="CompressionMethod"):
        registry.register_method("compression", "test-other-task-method")(Other)
    assert ("test-other-task-method", "compression") not in registry.methods


def _powers_of_two_or_zero(tensor):
    """Independent check (plain Python): every entry is 0 or ±2^k, k an integer; the set of k."""
    import math
    exponents = set()
    for value in tensor.flatten().tolist():
        if value == 0:
            continue
        mantissa, exponent = math.frexp(abs(value))
        assert mantissa == 0.5, f"{value} is not a power of two"
        exponents.add(exponent - 1)
    return exponents


def test_inq_and_dns_inq_export_powers_of_two_and_report_bits(tmp_path, cache_dir):
    from robench.tasks.compression.methods.inq import IncrementalNetworkQuantization
    from robench.tasks.compression.methods.pipeline import DNSThenINQ

    inq = run(IncrementalNetworkQuantization(bits=4), 0, tmp_path / "inq", cache_dir)
    state = torch.load(tmp_path / "inq" / "model.pt", weights_only=True)
    for name, weight in state.items():
        if name.endswith("weight"):
            exponents = _powers_of_two_or_zero(weight)
            assert max(exponents) - min(exponents) + 1 <= 2 ** (4 - 1) // 2  # n1 − n2 + 1 magnitudes
    assert inq.metrics["bits"] == 4.0
    assert inq.metrics["bits_per_weight"] < 4.1  # a 4-bit code per weight plus a tiny codebook

    both = run(DNSThenINQ(dns={"c": 2.0}, inq={"bits": 5}), 0, tmp_path / "both", cache_dir, finetune_epochs=2)
    state = torch.load(tmp_path / "both" / "model.pt", weights_only=True)
    for name, weight in state.items():
        if name.endswith("weight"):
            _powers_of_two_or_zero(weight)
    m = both.metrics
    assert m["sparsity"] > 0.5 and m["compression_ratio"] > 2
    # 5-bit values instead of float32 more than pay for the sparse indices
    assert m["compression_ratio_bits"] > m["compression_ratio"]


def test_sketch_runs_without_retraining_and_reports_its_encoding(tmp_path, cache_dir):
    from robench.tasks.compression.methods.sketch import NetworkSketching

    m = run(NetworkSketching(m=2, variant="refined"), 0, tmp_path, cache_dir).metrics
    assert 0 < m["sketch_error"] < 0.2 and 0 < m["additions_saved"] < 1
    # m bits per weight + 32·m bits per output filter: a bit over 2 bits per weight
    assert 2.0 < m["bits_per_weight"] < 2.5 and m["compression_ratio_bits"] > 10
    assert m["compression_ratio"] == pytest.approx(1.0, abs=0.01)  # nothing is zero
    report = json.loads((tmp_path / "layers.json").read_text())
    assert all(layer["storage"]["encoding"] == "method" for layer in report["layers"])


# ------------------------------------------------------------------ latency: false

class _PruneOnly(MagnitudePruning):
    """Magnitude pruning without fine-tuning: a run of seconds that still takes the default
    (sparse) inference path when latency is measured."""

    def wants_finetuning(self):
        return False


def _forbid_timing(monkeypatch):
    """Every way the task measures latency raises."""
    from robench.tasks.compression import _sparse
    from robench.tasks.compression.methods.base import CompressionMethod

    def boom(*args, **kwargs):
        raise AssertionError("timed or built an inference model")

    monkeypatch.setattr(metrics, "paired_latency_ms", boom)
    monkeypatch.setattr(_sparse, "paired_latency_ms", boom)
    monkeypatch.setattr(CompressionMethod, "inference_model", boom)


def test_latency_false_times_nothing_and_leaves_the_latency_metrics_out(tmp_path, cache_dir, monkeypatch):
    _forbid_timing(monkeypatch)
    with pytest.raises(AssertionError, match="timed or built"):  # the default measures: the guard bites
        run(_PruneOnly(0.9, "global"), 0, tmp_path / "timed", cache_dir)

    result = run(_PruneOnly(0.9, "global"), 0, tmp_path / "untimed", cache_dir, latency=False)
    m = result.metrics
    assert set(m) == set(CompressionTask.metrics_info) - {"latency_ms", "latency_dense_ms", "speedup_measured"}
    assert m["sparsity"] == pytest.approx(0.9, abs=1e-6) and 0 < m["accuracy"] <= 1
    report = json.loads((tmp_path / "untimed" / "layers.json").read_text())
    assert report["inference"] == {"latency": False, "sparse": False}  # no sparse path was chosen
    assert all(layer["inference"] == {"sparse": False} for layer in report["layers"])


def test_measured_latency_is_recorded_in_layers_json(tmp_path, cache_dir):
    run(_PruneOnly(0.95, "global"), 0, tmp_path, cache_dir)
    report = json.loads((tmp_path / "layers.json").read_text())
    assert report["inference"]["latency"] is True and isinstance(report["inference"]["sparse"], bool)
    candidates = [layer for layer in report["layers"] if "dense_ms" in layer["inference"]]
    assert candidates  # 95% sparse layers were timed dense against sparse
    assert all(layer["inference"]["sparse"] == report["inference"]["sparse"]
               for layer in candidates if layer["inference"]["faster"])


def test_latency_true_keeps_the_run_ids_stored_before_the_parameter_existed():
    from robench.spec import RunSpec, canonical_task_params, expand, parse_suite
    from robench.tasks.compression.task import CompressionParams

    def spec(**params):
        return expand(parse_suite({"suite": "s", "tasks": [{"task": "compression", "params": params, "methods": [
            {"name": "magnitude", "params": {"sparsity": 0.5}}]}]}))[0]

    plain, on, off = spec(), spec(latency=True), spec(latency=False)
    # the canonical params before `latency` existed: every field but the added ones at their defaults
    before = CompressionParams().model_dump(mode="json")
    for name in ("latency", "base", "precision", "weights", "weights_normalization", "weights_head"):
        del before[name]
    assert plain.task_params == before == canonical_task_params(CompressionTask, {"latency": True}, "s", "p")
    old = RunSpec(**{**plain.model_dump(), "task_params": before})
    assert plain.id == on.id == old.id and plain.config_id == old.config_id
    assert off.task_params["latency"] is False and off.id != plain.id
