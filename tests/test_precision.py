"""Mixed precision as a protocol choice: the `precision` parameter of the classification tasks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from conftest import check_one_line_user_error
from robench.spec import expand, parse_suite
from robench.tasks.base import RunContext
from robench.training import TrainSpec, accuracy, autocast, fit, make_sgd


def suite(**params):
    return parse_suite({"suite": "p", "tasks": [{"task": "compression", "params": params,
                                                  "methods": [{"name": "magnitude", "params": {"sparsity": 0.5}}]}]})


def test_fp32_keeps_the_run_ids_and_baseline_keys_stored_before_precision_existed():
    plain, fp32, bf16 = (expand(suite(**p))[0] for p in ({}, {"precision": "fp32"}, {"precision": "bf16"}))
    assert plain.id == fp32.id and bf16.id != plain.id
    base = TrainSpec(model="lenet-5", dataset="mnist-5k")
    assert TrainSpec(model="lenet-5", dataset="mnist-5k", precision="fp32").key() == base.key()
    assert TrainSpec(model="lenet-5", dataset="mnist-5k", precision="bf16").key() != base.key()


def test_an_unknown_precision_is_one_line_at_validate():
    check_one_line_user_error(lambda: expand(suite(precision="fp8")), "precision", "fp32", "bf16")


def test_autocast_runs_the_forward_pass_in_the_lower_precision():
    model = nn.Linear(8, 3)
    x = torch.rand(4, 8)
    with autocast("fp32", "cpu"):
        assert model(x).dtype == torch.float32
    with autocast("bf16", "cpu"):
        assert model(x).dtype == torch.bfloat16
    check_one_line_user_error(lambda: autocast("fp16", "cpu"), "fp16 needs a GPU")


def test_bf16_training_and_evaluation_learn_the_same_task():
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(512, 1, 4, 4, generator=generator)
    total = x.flatten(1).sum(1)
    x, y = x[(total - 8).abs() > 0.5][:256], (total[(total - 8).abs() > 0.5][:256] > 8).long()  # a margin
    results = {}
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Flatten(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 2))
        fit(model, x, y, epochs=30, batch_size=32, optimizer=make_sgd(model, 0.1), seed=0, precision=precision)
        results[precision] = (accuracy(model, x, y, precision=precision), [p.detach() for p in model.parameters()])
    assert results["fp32"][0] > 0.9 and results["bf16"][0] > 0.9
    # the weights stay fp32 (autocast changes the forward pass only) and the runs differ in the last bits
    assert all(p.dtype == torch.float32 for p in results["bf16"][1])
    assert any(not torch.equal(a, b) for a, b in zip(results["fp32"][1], results["bf16"][1]))


def test_a_bf16_compression_run_finishes_with_its_own_baseline(tmp_path, fast_classification_runs):
    from robench.tasks.compression.methods.magnitude import MagnitudePruning
    from robench.tasks.compression.task import CompressionTask

    tiny = dict(model="lenet-300-100", baseline_epochs=1, finetune_epochs=1, batch_size=128,
                latency_batch_size=8, latency_repeats=2)
    ctx = RunContext(tmp_path / "a", tmp_path / "cache")
    metrics = CompressionTask(**tiny, precision="bf16").run(MagnitudePruning(0.5), 0, ctx).metrics
    assert 0.5 < metrics["accuracy"] <= 1 and metrics["sparsity"] == pytest.approx(0.5, abs=0.01)
    baselines = sorted(p.name for p in (tmp_path / "cache" / "baselines").glob("*.pt"))
    assert len(baselines) == 1
    fp32_key = TrainSpec(model="lenet-300-100", dataset="mnist-5k", epochs=1).key()
    assert fp32_key not in baselines[0]
