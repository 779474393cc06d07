"""Transfer learning: a checkpoint whose classifier head does not fit the task initializes
the body (``load_weights(new_head=True)``, the tasks' ``weights_head: new``), the head is new,
and the baseline is fine-tuned from there."""

import pytest
import torch

from conftest import check_one_line_user_error as check_refused
from robench import registry
from robench.models import build_model, load_weights
from robench.models.weights import classifier_head

pytestmark = pytest.mark.usefixtures("one_thread")

registry.load_builtins()


def built(name, seed=0, **kw):
    torch.manual_seed(seed)
    return build_model(name, **kw).eval()


def test_the_head_is_the_last_linear_else_the_last_conv():
    from torch import nn

    assert classifier_head(built("tv:resnet18", num_classes=10))[0] == "net.fc"
    lenet = built("lenet-5")  # Sequential: conv, pool, conv, pool, flatten, fc, fc, fc
    assert classifier_head(lenet) == ("7", lenet[7]) and isinstance(lenet[7], nn.Linear)
    convs = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 5, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    assert classifier_head(convs) == ("2", convs[2])
    assert classifier_head(nn.Sequential(nn.ReLU())) == ("", None)


def test_new_head_loads_the_body_and_keeps_the_models_own_head(tmp_path):
    import torchvision

    torch.manual_seed(1)
    imagenet = torchvision.models.resnet18(num_classes=1000)  # a bare torchvision net, 1000 outputs
    path = tmp_path / "resnet18-imagenet.pth"
    torch.save(imagenet.state_dict(), path)
    fresh = built("tv:resnet18", seed=5, num_classes=10)
    model = load_weights(built("tv:resnet18", seed=5, num_classes=10), path, new_head=True)
    source = imagenet.state_dict()
    loaded = model.state_dict()
    body = [k for k in source if not k.startswith("fc.")]
    assert len(body) > 100 and all(torch.equal(loaded[f"net.{k}"], source[k]) for k in body)
    for key in ("net.fc.weight", "net.fc.bias"):  # the seeded build's head, not the checkpoint's
        assert torch.equal(loaded[key], fresh.state_dict()[key])
    assert not torch.equal(loaded["net.layer1.0.conv1.weight"], fresh.state_dict()["net.layer1.0.conv1.weight"])
    assert torch.equal(loaded["normalize.mean"], fresh.normalize.mean)  # the model's normalizer kept
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    # without new_head: the existing one-line error, now naming the way out
    check_refused(lambda: load_weights(built("tv:resnet18", num_classes=10), path), f"weights {path}",
                  "'net.fc.weight' has shape (1000, 512)", "expects (10, 512)", "weights_head: new")
    # a headless checkpoint loads too; every other key must still fit
    headless = tmp_path / "headless.pth"
    torch.save({k: v for k, v in source.items() if not k.startswith("fc.")}, headless)
    load_weights(built("tv:resnet18", num_classes=10), headless, new_head=True)
    bodyless = tmp_path / "bodyless.pth"
    torch.save({k: v for k, v in source.items() if k != "layer4.1.bn2.weight"}, bodyless)
    check_refused(lambda: load_weights(built("tv:resnet18", num_classes=10), bodyless, new_head=True),
                  "missing key 'net.layer4.1.bn2.weight'")
    narrow = tmp_path / "narrow.pth"
    torch.save({**source, "conv1.weight": source["conv1.weight"][:32]}, narrow)
    message = check_refused(lambda: load_weights(built("tv:resnet18", num_classes=10), narrow, new_head=True),
                            "'net.conv1.weight' has shape (32, 3, 7, 7)", "expects (64, 3, 7, 7)")
    assert "weights_head" not in message  # the hint is for the head only


def lenet_checkpoint(tmp_path, num_classes=7):
    torch.manual_seed(3)
    path = tmp_path / "lenet-7.pth"
    torch.save(build_model("lenet-5", num_classes=num_classes).state_dict(), path)
    return path


def test_a_compression_run_fine_tunes_the_checkpoints_body_with_a_new_head(tmp_path, monkeypatch):
    import robench.training as training
    from robench import seeding
    from robench.tasks.base import RunContext
    from robench.tasks.compression.task import CompressionTask

    checkpoint = lenet_checkpoint(tmp_path)
    given = []
    real_fit = training.fit

    def capturing_fit(model, *args, **kwargs):
        given.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        return real_fit(model, *args, **kwargs)

    monkeypatch.setattr(training, "fit", capturing_fit)
    task = CompressionTask(model="lenet-5", weights=str(checkpoint), weights_head="new", baseline_epochs=1,
                           finetune_epochs=1, batch_size=128, latency=False)
    method = registry.methods.get("dense", task="compression")()
    result = task.run(method, 2, RunContext(tmp_path / "run", tmp_path / "cache"))
    assert given, "the baseline was not trained"
    start = given[0]  # the baseline's model as fit received it
    source = torch.load(checkpoint, weights_only=True)
    head = classifier_head(build_model("lenet-5"))[0]
    with seeding.scoped(2), torch.device("cpu"):  # the run's seed: the head of a fresh build
        fresh = build_model("lenet-5", num_classes=10).state_dict()
    heads = [k for k in start if k.startswith(head + ".")]
    assert heads and all(torch.equal(start[k], fresh[k]) for k in heads)
    assert all(torch.equal(start[k], v) for k, v in source.items() if k not in heads)
    assert result.metrics["baseline_accuracy"] > 0.5  # trained: 10 classes from a 7-class body
    # cached: a second run does not train the baseline again
    given.clear()
    spec = training.TrainSpec.of_task(task.params, 2)
    assert spec.weights_head == "new" and training.trained_baseline(spec, tmp_path / "cache")[1]["cached"]
    assert not given


def test_weights_head_load_keeps_run_ids_and_baseline_keys(tmp_path):
    from robench.spec import expand, parse_suite
    from robench.tasks.compression.task import CompressionTask
    from robench.training import TrainSpec

    checkpoint = str(lenet_checkpoint(tmp_path))

    def run_spec(**params):
        return expand(parse_suite({"suite": "s", "tasks": [{"task": "compression", "params": params,
                                                              "methods": [{"name": "dense"}]}]}))[0]

    today, load, new = (run_spec(weights=checkpoint), run_spec(weights=checkpoint, weights_head="load"),
                        run_spec(weights=checkpoint, weights_head="new"))
    assert today.id == load.id and "weights_head" not in load.task_params
    assert new.id != load.id and new.task_params["weights_head"] == "new"
    specs = {h: TrainSpec.of_task(CompressionTask(weights=checkpoint, weights_head=h).params, 0) for h in ("load", "new")}
    assert specs["load"].key() == TrainSpec.of_task(CompressionTask(weights=checkpoint).params, 0).key()
    assert specs["new"].key() != specs["load"].key() and specs["new"].weights_head == "new"


def test_weights_head_new_without_weights_is_one_line_at_validation(tmp_path):
    from robench.spec import expand, parse_suite

    def expand_with(**params):
        return expand(parse_suite({"suite": "s", "tasks": [{"task": "compression", "params": params,
                                                              "methods": [{"name": "dense"}]}]}))

    check_refused(lambda: expand_with(weights_head="new"), "params.weights_head", "expected weights: PATH")
    check_refused(lambda: expand_with(weights_head="fresh"), "params.weights_head", "'load' or 'new'")
    for task in ("compression", "sparsity_robustness", "robust_training", "corruption_robustness"):
        task_cls = registry.tasks.get(task)
        check_refused(lambda: task_cls(weights_head="new"), f"task '{task}'", "weights_head", "weights: PATH")
        assert task_cls(weights=str(tmp_path / "w.pth"), weights_head="new").params.weights_head == "new"
        assert task_cls().params.weights_head == "load"
