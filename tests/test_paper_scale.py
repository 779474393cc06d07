"""The papers' architectures on tiny real-format data: compression (magnitude, INQ),
sparsity_robustness and robust_training finish on torchvision's ResNet-18 at 224 px (an
ImageNet-layout folder of JPEGs, streamed) and on WideResNet-28-10 (CIFAR-10 batches), and a
baseline can come from the user's checkpoint instead of training."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
import torch

from conftest import check_one_line_user_error, head_favouring
from robench.tasks.base import RunContext

FGSM_ONLY = ({"kind": "fgsm", "norm": "linf", "epsilons": [0.03]},)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    from test_streamed_data import image_folder

    root = tmp_path_factory.mktemp("paper-scale")
    imagenet = image_folder(root / "imagenette", per_class=(2, 1))
    cifar = root / "cifar10" / "cifar-10-batches-py"
    cifar.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        entry = {b"data": rng.integers(0, 256, size=(2, 3072), dtype=np.uint8), b"labels": [1, 7]}
        (cifar / name).write_bytes(pickle.dumps(entry, protocol=3))
    (cifar / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"c%d" % i for i in range(10)]},
                                                      protocol=3))
    return {"tv:resnet18": dict(dataset="imagefolder", dataset_root=str(imagenet)),
            "wrn-28-10": dict(dataset="cifar10", dataset_root=str(root / "cifar10"))}


@pytest.fixture(autouse=True)
def decode_here(monkeypatch):
    monkeypatch.setenv("ROBENCH_DATA_WORKERS", "0")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One cache for the module: each model's baseline is trained once."""
    return tmp_path_factory.mktemp("cache")


def method(task: str, name: str, **params):
    from robench import registry

    return registry.methods.get(name, task=task)(**params)


def finite(metrics: dict) -> bool:
    return all(isinstance(v, float) and not math.isnan(v) for v in metrics.values())


@pytest.mark.parametrize("model", ["tv:resnet18", pytest.param("wrn-28-10", marks=pytest.mark.paper_scale)])
def test_compression_magnitude_and_inq_finish(model, folders, tmp_path, cache):
    from robench.tasks.compression.task import CompressionTask

    task = CompressionTask(model=model, **folders[model], baseline_epochs=1, finetune_epochs=1, batch_size=4,
                           latency_batch_size=2, latency_repeats=1)
    # sparsity 0.4: below the level at which the task times sparse CPU kernels layer by layer
    # (minutes for these networks; the MNIST-scale tests cover that path)
    pruned = task.run(method("compression", "magnitude", sparsity=0.4), 0, RunContext(tmp_path / "m", cache))
    assert finite(pruned.metrics) and pruned.metrics["sparsity"] == pytest.approx(0.4, abs=0.01)
    quantized = task.run(method("compression", "inq", bits=4), 0, RunContext(tmp_path / "q", cache))
    assert finite(quantized.metrics) and quantized.metrics["bits_per_weight"] <= 5
    from robench.models import build_model
    from robench.tasks.base import load_exported_model
    from robench.tasks.compression.methods.base import prunable_layers

    net = build_model(model, num_classes=len(task_classes(task)))
    load_exported_model(tmp_path / "q" / "model.pt", net, "inq")
    for _, layer in prunable_layers(net):  # INQ's defining property, on every conv/linear layer
        w = layer.weight.detach().abs()
        nonzero = w[w > 0]
        assert torch.equal(torch.exp2(torch.round(torch.log2(nonzero))), nonzero)


def task_classes(task):
    from robench.data import load_dataset

    return range(load_dataset(task.params.dataset, task.params.dataset_root).num_classes)


@pytest.mark.parametrize("model", ["tv:resnet18", pytest.param("wrn-28-10", marks=pytest.mark.paper_scale)])
def test_sparsity_robustness_finishes(model, folders, tmp_path, cache):
    from robench.tasks.sparsity_robustness.task import SparsityRobustnessTask

    task = SparsityRobustnessTask(model=model, **folders[model], baseline_epochs=1, finetune_epochs=1,
                                  batch_size=4, n_test=2, attack_batch_size=2, attacks=FGSM_ONLY)
    result = task.run(method("sparsity_robustness", "magnitude", sparsity=0.4), 0, RunContext(tmp_path / "r", cache))
    assert finite(result.metrics) and "robust_accuracy_linf@0.03" in result.metrics


@pytest.mark.slow
@pytest.mark.parametrize("model", ["tv:resnet18", pytest.param("wrn-28-10", marks=pytest.mark.paper_scale)])
def test_robust_training_finishes(model, folders, tmp_path):
    from robench.data import load_dataset
    from robench.tasks.robust_training.task import RobustTrainingTask

    data = load_dataset(**{"name": folders[model]["dataset"], "root": folders[model]["dataset_root"]})
    label = int(data.test.take([0])[1])
    weights = head_favouring(model, data.num_classes, label, tmp_path / "head.pth",
                             margin={"tv:resnet18": 2.0, "wrn-28-10": 0.5}[model])
    task = RobustTrainingTask(model=model, **folders[model], weights=str(weights), epochs=1, batch_size=4,
                              n_test=1, deepfool_steps=5, pgd_steps=1, attack_preset=None, preset_factors=None,
                              eval_batch_size=1)
    result = task.run(method("robust_training", "adv-fgs", eps=0.03), 0, RunContext(tmp_path / "r", tmp_path))
    metrics = result.metrics
    assert all(isinstance(v, float) for v in metrics.values())  # rho2 may be NaN: DeepFool had 5 steps
    assert metrics["eps_ref"] > 0 and 0 <= metrics["clean_accuracy"] <= 1 and "robust_accuracy@1x" in metrics


def test_a_checkpoint_is_the_baseline_and_is_not_trained(tmp_path, monkeypatch, fast_classification_runs):
    import robench.training as training
    from robench.models import build_model
    from robench.tasks.compression.task import CompressionTask

    torch.manual_seed(0)
    net = build_model("lenet-300-100", num_classes=10)
    checkpoint = tmp_path / "lenet.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}}, checkpoint)  # RobustBench's
    monkeypatch.setattr(training, "fit", lambda *a, **k: pytest.fail("the baseline was trained"))
    spec = training.TrainSpec(model="lenet-300-100", dataset="mnist-5k", weights=str(checkpoint))
    model, info = training.trained_baseline(spec, tmp_path / "cache")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), net.state_dict().values()))
    from robench.data import load_dataset
    assert info["test_accuracy"] == training.accuracy(net, load_dataset("mnist-5k").test)
    key = spec.key()
    moved = tmp_path / "elsewhere.pth"
    moved.write_bytes(checkpoint.read_bytes())
    assert training.TrainSpec(model="lenet-300-100", dataset="mnist-5k", weights=str(moved)).key() == key
    torch.save(build_model("lenet-300-100", num_classes=10).state_dict(), checkpoint)
    assert training.TrainSpec(model="lenet-300-100", dataset="mnist-5k", weights=str(checkpoint)).key() != key
    task = CompressionTask(model="lenet-300-100", weights=str(moved), finetune_epochs=1, latency_batch_size=2,
                           latency_repeats=1)
    assert task.params.weights == str(moved)


def test_a_missing_checkpoint_is_one_line_at_validate(tmp_path):
    from robench.spec import expand, parse_suite

    suite = parse_suite({"suite": "w", "tasks": [{"task": "compression", "params": {
        "weights": str(tmp_path / "nope.pth")}, "methods": [{"name": "dense"}]}]})
    check_one_line_user_error(lambda: check_folders(expand(suite)), "weights", "no such file", "nope.pth")


def check_folders(specs):
    from robench import registry
    from robench.spec import check_registered

    for spec in specs:
        check_registered(registry.tasks.get(spec.task), dict(spec.task_params), "<suite>", "tasks[0].params")
