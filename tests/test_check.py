"""`robench check METHOD`: conformance of plug-in methods with their task's contract."""

from __future__ import annotations

import subprocess
import textwrap

import pytest

from robench.check import check_method
from robench.errors import UserError
from tests.conftest import robench_cmd

BAD_RECIPES = textwrap.dedent('''
    import torch
    from robench.registry import register_method
    from robench.tasks.robust_training.methods.base import RobustTrainingRecipe
    from robench.tasks.compression.methods.base import CompressionMethod


    @register_method("robust_training", "peeks-at-test")
    class PeeksAtTest(RobustTrainingRecipe):
        def train(self, model, data, epochs, seed, *, batch_size=64, lr=0.01):
            data.test  # not allowed
            return model


    @register_method("robust_training", "returns-nothing")
    class ReturnsNothing(RobustTrainingRecipe):
        def train(self, model, data, epochs, seed, *, batch_size=64, lr=0.01):
            super().train(model, data, epochs, seed, batch_size=batch_size, lr=lr)


    @register_method("robust_training", "noisy")
    class Noisy(RobustTrainingRecipe):
        """Ignores the seed: two runs differ."""
        def after_step(self, model):
            with torch.no_grad():
                for p in model.parameters():
                    p.add_(1e-3 * torch.randn(p.shape, generator=torch.Generator().manual_seed(
                        int.from_bytes(__import__("os").urandom(4), "little"))))


    @register_method("robust_training", "forgets-params")
    class ForgetsParams(RobustTrainingRecipe):
        def __init__(self, strength: float = 1.0):
            self.alpha = strength  # not stored under its own name


    @register_method("compression", "swaps-modules")
    class SwapsModules(CompressionMethod):
        """Replaces a layer in prepare: the optimizer then trains a detached copy."""
        def prepare(self, model, data, total_steps, seed):
            name, module = next((n, m) for n, m in model.named_children() if isinstance(m, torch.nn.Conv2d))
            clone = torch.nn.Conv2d(module.in_channels, module.out_channels, module.kernel_size)
            clone.load_state_dict(module.state_dict())
            setattr(model, name, clone)
            return self


    @register_method("compression", "in-two-tasks")
    class InTwoTasksCompression(CompressionMethod):
        pass


    @register_method("robust_training", "in-two-tasks")
    class InTwoTasksRecipe(RobustTrainingRecipe):
        pass
''')


@pytest.fixture(scope="module")
def plugin(tmp_path_factory):
    path = tmp_path_factory.mktemp("plugins") / "bad_recipes.py"
    path.write_text(BAD_RECIPES)
    return str(path)


def failures(method, plugin, **kw):
    task, checks = check_method(method, plugins=(plugin,), run_task=False, **kw)
    return task, {c.name: c.detail for c in checks if not c.ok}, checks


def test_reference_recipes_pass(plugin):
    for name in ("vanilla", "parseval"):
        task, failed, checks = failures(name, plugin)
        assert task == "robust_training" and failed == {} and len(checks) >= 8


# methods whose parameters have no usable default
REQUIRED_PARAMS = {("compression", "pipeline"): {"stages": [{"name": "magnitude", "params": {"sparsity": 0.5}},
                                                             {"name": "inq", "params": {"bits": 5}}]}}


def _builtin_methods():
    from robench import registry

    registry.load_builtins()
    return [(e.task, e.name) for e in registry.methods.entries() if e.source == "builtin"]


@pytest.mark.slow
@pytest.mark.parametrize("task, method", _builtin_methods(), ids=[f"{t}/{m}" for t, m in _builtin_methods()])
def test_every_builtin_passes_check(task, method, one_thread):
    """`robench check` over every registered built-in method: registration, parameters,
    its task's contract on tiny data and one end-to-end run at the task's check settings."""
    params = REQUIRED_PARAMS.get((task, method), {})
    _, checks = check_method(method, task, params)
    failed = [f"{c.name}: {c.detail}" for c in checks if not c.ok]
    assert not failed, failed
    assert len(checks) >= 4


def test_each_check_is_reported_as_it_finishes(plugin):
    seen = []
    _, checks = check_method("returns-nothing", plugins=(plugin,), run_task=False, on_check=seen.append)
    assert seen == checks and not seen[-1].ok


def test_reading_the_test_split_is_caught(plugin):
    _, failed, _ = failures("peeks-at-test", plugin)
    assert "training split only" in next(iter(failed)) and "data.test" in next(iter(failed.values()))


def test_returning_nothing_is_caught(plugin):
    _, failed, _ = failures("returns-nothing", plugin)
    assert failed == {"train() returns an nn.Module": "got NoneType"}


def test_ignoring_the_seed_is_caught(plugin):
    _, failed, _ = failures("noisy", plugin)
    assert list(failed) == ["deterministic for a seed"]


def test_unstored_params_are_caught(plugin):
    _, failed, _ = failures("forgets-params", plugin)
    assert "parameters round-trip and are JSON" in failed or "constructor accepts its parameters" in failed


def test_a_compression_hook_that_swaps_modules_is_caught(plugin):
    task, failed, _ = failures("swaps-modules", plugin)
    assert task == "compression" and "keeps the model's parameter objects (the optimizer holds them)" in failed


def test_unknown_method_and_ambiguous_params_are_user_errors(plugin):
    with pytest.raises(UserError, match="did you mean 'deepdefense'"):
        check_method("deepdefence", plugins=(plugin,), run_task=False)
    with pytest.raises(UserError, match=r"several tasks \(compression, robust_training\); pass --task"):
        check_method("in-two-tasks", plugins=(plugin,), run_task=False)
    # sparsity_robustness takes compression's methods: one entry, not an ambiguity
    task, checks = check_method("magnitude", plugins=(plugin,), run_task=False)
    assert task == "compression" and all(c.ok for c in checks)
    with pytest.raises(UserError, match="sparsty"):
        check_method("magnitude", task="compression", params={"sparsty": 0.5}, plugins=(plugin,), run_task=False)


def test_cli_full_check_passes_and_a_failing_one_exits_1(plugin, cli_env, tmp_path):
    ok = subprocess.run(robench_cmd("check", "magnitude", "-t", "compression", "-p", "sparsity=0.8"), capture_output=True, text=True,
                        env=cli_env, cwd=tmp_path, timeout=300)
    assert ok.returncode == 0, ok.stderr
    assert "ok    runs through 'compression' at its check settings" in ok.stdout
    assert "compression/magnitude: 11/11 checks passed" in ok.stderr
    bad = subprocess.run(robench_cmd("check", "returns-nothing", "--quick", "--plugin", plugin),
                         capture_output=True, text=True, env=cli_env, cwd=tmp_path, timeout=300)
    assert bad.returncode == 1 and "FAIL  train() returns an nn.Module: got NoneType" in bad.stdout
    assert "Traceback" not in bad.stdout + bad.stderr
    unknown = subprocess.run(robench_cmd("check", "no-such-method"), capture_output=True, text=True,
                             env=cli_env, cwd=tmp_path, timeout=60)
    assert unknown.returncode == 2 and unknown.stderr.count("\n") == 1 and "unknown method" in unknown.stderr
    assert not list(tmp_path.glob(".robench/results.sqlite"))  # nothing stored


def test_check_model_covers_corruption_robustness(one_thread):
    """`robench check --model NAME` runs corruption_robustness too: its tiny run (two
    families, one severity, 40 images, no fine-tuning) passes on LeNet-5; a task that takes
    no model is refused in one line naming the classification tasks."""
    from robench.check import CLASSIFICATION_TASKS, MODEL_CHECK_RUNS, check_model

    assert "corruption_robustness" in CLASSIFICATION_TASKS and set(MODEL_CHECK_RUNS) == set(CLASSIFICATION_TASKS)
    tasks, checks = check_model("lenet-5", task="corruption_robustness")
    failed = [f"{c.name}: {c.detail}" for c in checks if not c.ok]
    assert tasks == ["corruption_robustness"] and not failed, failed
    assert "runs through 'corruption_robustness' (magnitude) at its check settings" in [c.name for c in checks]
    with pytest.raises(UserError, match="classification tasks .*corruption_robustness") as info:
        check_model("lenet-5", task="room_layout")
    assert "\n" not in str(info.value)


def test_a_deep_models_check_runs_robust_training_at_a_fixed_eps_ref(one_thread):
    """The model checks' runs read mnist-check (500 training images) and robust_training's
    attacks run at a fixed eps_ref: ResNet-20's one-epoch baseline there is a near-constant
    classifier that DeepFool cannot cross, and a calibrated eps_ref was refused (the check's
    budget, not the model's contract)."""
    from robench.check import MODEL_CHECK_DATASET, MODEL_CHECK_RUNS, check_model

    assert MODEL_CHECK_DATASET == "mnist-check" and MODEL_CHECK_RUNS["robust_training"][1]["eps_ref"] > 0
    tasks, checks = check_model("resnet20", task="robust_training")
    failed = [f"{c.name}: {c.detail}" for c in checks if not c.ok]
    assert tasks == ["robust_training"] and not failed, failed


@pytest.mark.paper_scale
def test_nin_passes_every_model_check():
    """NIN without BatchNorm (DeepDefense's, the one built-in that does not train well from
    scratch) through every model check. About a minute on two cores."""
    from robench.check import check_model

    _, checks = check_model("nin")
    failed = [f"{c.name}: {c.detail}" for c in checks if not c.ok]
    assert len(checks) >= 19 and not failed, failed
