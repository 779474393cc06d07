"""Architectures as the field names them: torchvision and timm by name (``tv:``, ``timm:``),
the CIFAR built-ins with their papers' parameter counts, normalization inside the model,
and checkpoints from local files (torchvision, RobustBench and robench formats)."""

import subprocess
import sys

import pytest
import torch

from conftest import ROOT, robench_cmd
from conftest import check_one_line_user_error as check_refused
from robench import registry
from robench.models import build_model, export_state_dict, load_weights
from robench.models.normalize import CIFAR10_MEAN, CIFAR10_STD, IMAGENET_MEAN, IMAGENET_STD

pytestmark = pytest.mark.usefixtures("one_thread")

registry.load_builtins()


def grey(n=2, size=28, seed=0):
    return torch.rand(n, 1, size, size, generator=torch.Generator().manual_seed(seed))


def rgb(n=2, size=32, seed=0):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def built(name, seed=0, **kw):
    torch.manual_seed(seed)
    return build_model(name, **kw).eval()


# -- names ------------------------------------------------------------------------------------------------
def test_tv_name_resolves_to_one_entry_with_the_library_version():
    import torchvision

    assert "tv:resnet18" in registry.models and "tv:resnet19" not in registry.models
    entry = registry.models.entry("tv:resnet18")
    assert entry is registry.models.entry("tv:resnet18")  # made once, then looked up
    assert entry.name == "tv:resnet18" and entry.source == "torchvision"
    assert torchvision.__version__.split("+")[0] in entry.identity()
    assert "tv:resnet18" not in registry.models.names()  # listings stay the registered ones
    model = entry.load()(num_classes=7)
    assert isinstance(model.net, torchvision.models.ResNet) and model(grey()).shape == (2, 7)


def test_every_torchvision_classification_builder_has_a_name():
    import torchvision

    names = torchvision.models.list_models(module=torchvision.models)
    assert {"alexnet", "vgg16_bn", "googlenet", "resnet50", "mobilenet_v2"} <= set(names)
    assert all(f"tv:{n}" in registry.models for n in names)


def test_unknown_names_are_one_line_with_did_you_mean():
    check_refused(lambda: registry.models.entry("tv:resnet19"), "unknown model 'tv:resnet19'",
                  "did you mean 'tv:resnet18'?")
    check_refused(lambda: registry.models.entry("timm:resnt50"), "did you mean 'timm:resnet50'?")
    # a bare torchvision name means torchvision's, not the CIFAR resnet20 it resembles
    check_refused(lambda: registry.models.entry("resnet18"), "did you mean 'tv:resnet18'?")
    # hub names would be fetched: only timm's own registry is accepted
    check_refused(lambda: registry.models.entry("timm:hf-hub:timm/resnet18.a1_in1k"), "unknown model")


def test_a_plugin_cannot_take_a_library_prefix():
    check_refused(lambda: registry.register_model("tv:mine")(lambda num_classes=10: None),
                  "register_model('tv:mine')", "choose a name without it")


def test_timm_absent_is_one_line_saying_how_to_install(monkeypatch):
    monkeypatch.setattr(registry.models, "_on_demand", {})
    monkeypatch.setitem(sys.modules, "timm", None)  # import timm raises ImportError
    check_refused(lambda: registry.models.entry("timm:resnet18"), "timm is not installed", "pip install timm")
    assert "timm:resnet18" not in registry.models


def test_validate_accepts_tv_names_rejects_typos_and_ids_follow_the_library(tmp_path, monkeypatch):
    import torchvision

    import robench

    suite = tmp_path / "s.yaml"
    suite.write_text("suite: zoo\nseeds: [0]\ntasks:\n  - task: compression\n"
                     "    params: {model: tv:resnet18}\n    methods: [{name: dense}]\n")
    first = robench.validate(suite)
    assert len(first) == 1 and "model:tv:resnet18" in first[0].components
    suite.write_text(suite.read_text().replace("resnet18", "resnet19"))
    message = check_refused(lambda: robench.validate(suite), "tasks[0].params.model", "did you mean 'tv:resnet18'?")
    assert str(suite) in message
    suite.write_text(suite.read_text().replace("resnet19", "resnet18"))
    monkeypatch.setattr(registry.models, "_on_demand", {})
    monkeypatch.setattr(torchvision, "__version__", "99.0.0+cpu")  # a library upgrade
    upgraded = robench.validate(suite)
    assert upgraded[0].id != first[0].id and "99.0.0" in upgraded[0].components["model:tv:resnet18"]


def test_ls_models_names_the_prefixes_without_importing_torch(cli_env):
    code = ("import sys\nfrom typer.testing import CliRunner\nfrom robench.cli import app\n"
            "r = CliRunner().invoke(app, ['ls', 'models']); print(r.output)\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=cli_env)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert any(line.split()[:1] == ["tv:NAME"] for line in lines)
    assert any(line.split()[:1] == ["timm:NAME"] for line in lines)
    assert lines[-1] == "False"


# -- what the factories build ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["tv:resnet18", "tv:mobilenet_v2", "tv:googlenet", "timm:test_efficientnet",
                                  "resnet20", "nin"])
def test_adapts_to_num_classes_and_grey_or_rgb_input(name):
    model = built(name, num_classes=7)
    assert model(grey()).shape == (2, 7) and model(rgb()).shape == (2, 7)
    x = grey()
    assert torch.allclose(model(x), model(x.repeat(1, 3, 1, 1)), atol=1e-6)  # grey = its RGB repetition
    same = built(name, num_classes=7, in_channels=1)  # declares grey input; the same network
    assert same.state_dict().keys() == model.state_dict().keys()
    check_refused(lambda: build_model(name, num_classes=7, in_channels=4), "in_channels=4", "expected 1")


@pytest.mark.parametrize("name, size", [("tv:googlenet", 32), ("tv:inception_v3", 75), ("timm:test_vit", 160),
                                        ("vgg16-cifar", 28)])
def test_logits_tensor_in_train_and_eval_mode(name, size):
    model = built(name, num_classes=5)
    for mode in (True, False):
        out = model.train(mode)(rgb(2, size))
        assert isinstance(out, torch.Tensor) and out.shape == (2, 5), (mode, type(out))
    assert not any("aux" in key.lower() for key in model.state_dict())


def test_normalization_is_inside_the_model():
    from torchvision.transforms.functional import normalize

    x = rgb()
    for name, mean, std in (("tv:resnet18", IMAGENET_MEAN, IMAGENET_STD), ("resnet20", CIFAR10_MEAN, CIFAR10_STD)):
        model = built(name, num_classes=10)
        assert torch.allclose(model(x), model.net(normalize(x, list(mean), list(std))), atol=1e-5)
        assert not torch.allclose(model(x), model.net(x), atol=1e-3)


def test_timm_models_use_their_own_mean_and_std():
    from timm.data import resolve_model_data_config

    model = built("timm:test_convnext", num_classes=3)
    config = resolve_model_data_config(model.net)
    assert config["mean"] != IMAGENET_MEAN  # this one is trained on (x - 0.5) / 0.5
    assert model.normalize.mean.flatten().tolist() == pytest.approx(list(config["mean"]))
    assert model.normalize.std.flatten().tolist() == pytest.approx(list(config["std"]))


# (name, parameters at 10 classes, the paper's rounded figure in millions)
CIFAR_NETS = [("resnet20", 269_722, 0.27), ("resnet56", 853_018, 0.85), ("wrn-28-10", 36_479_194, 36.5),
              ("vgg16-cifar", 14_728_266, 14.7), ("nin", 966_986, 0.97), ("nin-bn", 969_802, 0.97)]


@pytest.mark.parametrize("name, params, paper", CIFAR_NETS)
def test_cifar_builtins_have_their_papers_parameter_counts(name, params, paper):
    model = build_model(name, num_classes=10)
    count = sum(p.numel() for p in model.parameters())
    assert count == params and round(count / 1e6, 2 if paper < 1 else 1) == paper
    assert f"{params:,}" in registry.models.entry(name).doc  # the description says it
    assert model.normalize.mean.flatten().tolist() == pytest.approx(CIFAR10_MEAN)
    if name in ("resnet20", "nin"):  # the small ones: both input sizes (the others: 28 px in the contract)
        assert model.eval()(rgb()).shape == (2, 10) and model(grey()).shape == (2, 10)


def test_nin_has_deepdefense_layer_names():
    nin, with_bn = build_model("nin").state_dict(), build_model("nin-bn").state_dict()
    convs = ["conv1", "cccp1", "cccp2", "conv2", "cccp3", "cccp4", "conv3", "cccp5", "cccp6"]
    assert [k for k in nin if k.startswith("net.")] == [f"net.{c}.{w}" for c in convs for w in ("weight", "bias")]
    assert {k for k in with_bn if "_bn." in k} == {f"net.{c}_bn.{w}" for c in convs[:-1]
                                                  for w in ("weight", "bias", "running_mean", "running_var",
                                                            "num_batches_tracked")}


def test_wrn_28_10_has_robustbench_key_names():
    keys = set(build_model("wrn-28-10").state_dict())
    for key in ("net.conv1.weight", "net.block1.layer.0.bn1.weight", "net.block1.layer.0.convShortcut.weight",
                "net.block2.layer.3.conv2.weight", "net.block3.layer.0.convShortcut.weight", "net.bn1.running_var",
                "net.fc.weight", "net.fc.bias"):
        assert key in keys, key
    assert "net.block1.layer.1.convShortcut.weight" not in keys  # equal widths: identity shortcut


# -- weights from a file -----------------------------------------------------------------------------------
def test_loads_a_torchvision_checkpoint(tmp_path):
    import torchvision

    torch.manual_seed(1)
    bare = torchvision.models.resnet18(num_classes=10).eval()
    path = tmp_path / "resnet18.pth"
    torch.save(bare.state_dict(), path)  # torchvision's format: the bare network's state dict
    model = load_weights(built("tv:resnet18", num_classes=10), path)
    x = rgb()
    from torchvision.transforms.functional import normalize
    assert torch.allclose(model(x), bare(normalize(x, list(IMAGENET_MEAN), list(IMAGENET_STD))), atol=1e-5)
    assert model.normalize.mean.flatten().tolist() == pytest.approx(IMAGENET_MEAN)  # kept


def test_loads_googlenet_checkpoints_with_their_aux_heads(tmp_path):
    import torchvision

    bare = torchvision.models.googlenet(num_classes=10, aux_logits=True, init_weights=True, transform_input=True)
    path = tmp_path / "googlenet.pth"
    torch.save(bare.state_dict(), path)
    assert any(k.startswith("aux1.") for k in bare.state_dict())
    model = load_weights(built("tv:googlenet", num_classes=10), path)
    assert torch.equal(model.net.fc.weight, bare.fc.weight)


def test_loads_robustbench_checkpoints(tmp_path):
    from robench.models.cifar_archs import CifarResNet

    torch.manual_seed(2)
    bare = CifarResNet(20, 10).eval()
    x = rgb()
    # RobustBench: {"state_dict": ...} from a DataParallel model (keys "module.…"), beside other entries
    path = tmp_path / "Standard.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in bare.state_dict().items()}, "epoch": 200,
                "best_prec1": 91.7}, path)
    model = load_weights(built("resnet20"), path, normalization="none")  # trained on raw [0, 1] input
    assert torch.allclose(model(x), bare(x), atol=1e-5)
    # {"model_state_dict": ...} with a wrapper's "model." prefix; the model's own normalizer kept
    other = tmp_path / "other.pt"
    torch.save({"model_state_dict": {f"model.{k}": v for k, v in bare.state_dict().items()}}, other)
    model = load_weights(built("resnet20"), other)
    mean = torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR10_STD).view(1, 3, 1, 1)
    assert torch.allclose(model(x), bare((x - mean) / std), atol=1e-5)
    model = load_weights(built("resnet20"), other, normalization=((0.5,) * 3, (0.25,) * 3))
    assert torch.allclose(model(x), bare((x - 0.5) / 0.25), atol=1e-5)


def test_loads_robench_exports_with_their_normalizer(tmp_path):
    source = built("resnet20", seed=3)
    with torch.no_grad():
        source.normalize.mean.fill_(0.25)  # an export carries the statistics it was trained with
    path = export_state_dict(source, tmp_path / "model.pt")
    model = load_weights(built("resnet20", seed=4), path)
    x = rgb()
    assert torch.equal(model.normalize.mean, source.normalize.mean) and torch.allclose(model(x), source(x))
    plain = load_weights(build_model("lenet-5"), export_state_dict(build_model("lenet-5"), tmp_path / "lenet.pt"))
    check_refused(lambda: load_weights(plain, tmp_path / "lenet.pt", normalization="none"), "no normalizer inside")


def test_bad_weight_files_are_one_line(tmp_path):
    model = built("resnet20")
    text = tmp_path / "notes.txt"
    text.write_text("not a checkpoint")
    code = tmp_path / "pickled.pt"
    torch.save({"state_dict": model.state_dict(), "model": torch.nn.Linear(2, 2)}, code)  # code: weights_only refuses
    listed = tmp_path / "list.pt"
    torch.save([1, 2], listed)
    optimizer_only = tmp_path / "opt.pt"
    torch.save({"epoch": 3, "lr": 0.1}, optimizer_only)
    narrow = tmp_path / "five.pt"
    export_state_dict(build_model("resnet20", num_classes=5), narrow)
    other_arch = tmp_path / "resnet56.pt"
    export_state_dict(build_model("resnet56"), other_arch)
    extra = tmp_path / "extra.pt"
    torch.save({**built("resnet20").state_dict(), "net.head2.weight": torch.zeros(3)}, extra)
    for path, words in [
        (tmp_path / "missing.pt", ("no such file",)),
        (tmp_path, ("is a folder",)),
        (text, ("cannot read it",)),
        (code, ("cannot read it", "weights_only")),
        (listed, ("holds a list", "expected a state dict")),
        (optimizer_only, ("entry 'epoch' is not a tensor (int)",)),
        (narrow, ("'net.linear.weight' has shape (5, 64)", "expects (10, 64)")),
        (other_arch, ("unexpected key 'net.layer1.3.conv1.weight'",)),
        (extra, ("unexpected key 'net.head2.weight'",)),
    ]:
        message = check_refused(lambda: load_weights(built("resnet20"), path), f"weights {path}", *words)
        assert "Traceback" not in message
    bare = tmp_path / "bare.pt"
    torch.save({k.removeprefix("net."): v for k, v in list(model.state_dict().items())[:-2]}, bare)
    check_refused(lambda: load_weights(built("resnet20"), bare), "missing key 'net.linear.weight'",
                  "expected a tensor of shape (10, 64)", "2 keys missing in all")
    check_refused(lambda: load_weights(built("resnet20"), narrow, normalization="cifar"), "normalization='cifar'")


# -- the model contract ------------------------------------------------------------------------------------
def test_model_contract_passes_for_a_torchvision_architecture():
    from robench.check import check_model

    _, checks = check_model("tv:resnet18", run_task=False)
    failed = [f"{c.name}: {c.detail}" for c in checks if not c.ok]
    assert not failed and len(checks) >= 10, failed


def test_check_model_cli_passes_for_a_cifar_builtin(tmp_path, cli_env):
    out = subprocess.run(robench_cmd("check", "--model", "resnet20", "--quick"), capture_output=True, text=True,
                         cwd=tmp_path, env={**cli_env, "OMP_NUM_THREADS": "1"}, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr[-2000:]
    assert "FAIL" not in out.stdout and "ok    the attack layer runs on it" in out.stdout
    assert "checks passed" in out.stderr


def test_model_checks_let_a_minimal_attacks_median_be_infinite(tmp_path):
    """A median norm is inf when the attack's budget leaves most points unbroken (the tasks'
    tiny check budgets on a deep network): a model check accepts it, a method check does not,
    and neither accepts any other infinite metric."""
    import math

    from robench.check import MAY_BE_INFINITE_FOR_MODELS, _run_once
    from robench.tasks.base import Method, Task, TaskParams, TaskResult

    class Budgeted(Task):
        Params = TaskParams
        primary_metric = "accuracy"
        infinite = "cw_l2_median"

        def run(self, method, seed, ctx):
            return TaskResult({"accuracy": 0.9, Budgeted.infinite: math.inf})

    def ran(folder, **kw):
        (tmp_path / folder).mkdir()
        [result] = _run_once(Budgeted, Method, tmp_path / folder, params={}, label="runs", **kw)
        return result

    assert ran("model", may_be_infinite=MAY_BE_INFINITE_FOR_MODELS).ok
    assert ran("method").detail == "metric 'cw_l2_median' is infinite"
    Budgeted.infinite = "rho2"
    assert ran("other", may_be_infinite=MAY_BE_INFINITE_FOR_MODELS).detail == "metric 'rho2' is infinite"
