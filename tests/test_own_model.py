"""Your own model: the README's example as written, `robench check --model`, run ids that
follow the plug-in file, and `robench.benchmark()` on an nn.Module."""

import re
import subprocess
import textwrap

import pytest

from conftest import ROOT, robench_cmd

SMALL = ["--param", "baseline_epochs=1", "--param", "finetune_epochs=1", "--param", "latency_repeats=2",
         "--param", "latency_batch_size=8"]


def readme_block(section: str, language: str, index: int = 0) -> str:
    text = (ROOT / "README.md").read_text()
    part = re.search(rf"## {re.escape(section)}\n(.*?)\n## ", text, re.S)
    assert part, f"README lost its section {section!r}"
    blocks = re.findall(rf"```{language}\n(.*?)```", part.group(1), re.S)
    return blocks[index]


def cli(*args, cwd, env, timeout=600):
    return subprocess.run(robench_cmd(*args), capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout)


@pytest.mark.slow
def test_readme_model_example_runs_as_written(tmp_path, cli_env):
    plugin = tmp_path / "elsewhere" / "tiny_cnn.py"
    plugin.parent.mkdir()
    plugin.write_text(readme_block("Benchmark your own model", "python"))
    checked = cli("check", "--model", "tiny-cnn", "--plugin", plugin, "--task", "compression", cwd=tmp_path, env=cli_env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "FAIL" not in checked.stdout and "runs through 'compression'" in checked.stdout
    suite = tmp_path / "tiny-cnn.yaml"
    suite.write_text(readme_block("Benchmark your own model", "yaml"))
    valid = cli("validate", suite, "--plugin", plugin, cwd=tmp_path, env=cli_env)
    assert valid.returncode == 0 and valid.stderr.strip().splitlines()[0].endswith("valid, 27 runs"), valid.stderr
    assert "expected wall time" in valid.stderr  # the cost is said before anything runs
    ran = cli("run", "--plugin", plugin, "--task", "compression", "--method", "dense", "--param", "model=tiny-cnn",
              *SMALL, "--store", "r.sqlite", cwd=tmp_path, env=cli_env)
    assert ran.returncode == 0, ran.stderr[-2000:]


BAD_MODELS = textwrap.dedent('''
    from robench import register_model


    @register_model("softmax-net")
    def softmax_net(num_classes=10):
        from torch import nn
        return nn.Sequential(nn.Flatten(), nn.Linear(784, num_classes), nn.Softmax(dim=1))


    @register_model("wrong-shape")
    def wrong_shape(num_classes=10):
        from torch import nn
        return nn.Sequential(nn.Flatten(), nn.Linear(784, num_classes + 1))


    @register_model("rgb-net")
    def rgb_net(num_classes=10):
        from torch import nn
        return nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.LazyLinear(num_classes))
''')


@pytest.mark.parametrize("model, violation", [
    ("softmax-net", "FAIL  returns logits, not probabilities: every row is in [0, 1] and sums to 1"),
    ("wrong-shape", "FAIL  returns (N, classes) outputs: got (16, 11), expected (16, 10)"),
    ("rgb-net", "FAIL  runs on a batch: does not take the input the classification tasks feed on MNIST-shaped "
                "data: (N, 1, 28, 28) float images in [0, 1], 10 classes (torch: RuntimeError"),
])
def test_check_model_names_the_violation(model, violation, tmp_path, cli_env):
    plugin = tmp_path / "bad_models.py"
    plugin.write_text(BAD_MODELS)
    out = cli("check", "--model", model, "--plugin", plugin, "--quick", cwd=tmp_path, env=cli_env)
    assert out.returncode == 1, out.stdout + out.stderr
    assert violation in out.stdout, out.stdout
    assert "Traceback" not in out.stderr


def test_check_model_bad_input_is_one_line(tmp_path, cli_env):
    out = cli("check", "--model", "lenet-55", cwd=tmp_path, env=cli_env)
    assert out.returncode == 2 and out.stderr.strip() == \
        "robench: error: unknown model 'lenet-55'; did you mean 'lenet-5'?"
    out = cli("check", "dns", "--model", "lenet-5", cwd=tmp_path, env=cli_env)
    assert out.returncode == 2 and "give a METHOD or --model NAME" in out.stderr


PLUGIN_MODEL = '''
from robench import register_model


@register_model("edit-me")
def edit_me(num_classes=10):
    from torch import nn
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.ReLU(), {extra}nn.Linear(32, num_classes))
'''

EDIT_SUITE = """
suite: edits
seeds: [0]
tasks:
  - task: compression
    params: {model: MODEL, baseline_epochs: 1, finetune_epochs: 1, latency_repeats: 2, latency_batch_size: 8}
    grid: {model: [edit-me, linear]}
    methods: [{name: dense}]
"""


@pytest.mark.slow
def test_editing_a_plugin_model_recomputes_exactly_its_runs(tmp_path, cli_env):
    plugin = tmp_path / "edit_me.py"
    plugin.write_text(PLUGIN_MODEL.format(extra=""))
    suite = tmp_path / "s.yaml"
    suite.write_text(EDIT_SUITE.replace("model: MODEL, ", ""))
    first = cli("run", suite, "--plugin", plugin, "--store", "r.sqlite", cwd=tmp_path, env=cli_env)
    assert first.returncode == 0 and "2 done" in first.stderr, first.stderr[-2000:]
    again = cli("run", suite, "--plugin", plugin, "--store", "r.sqlite", cwd=tmp_path, env=cli_env)
    assert "all 2 runs already in" in again.stderr
    plugin.write_text(PLUGIN_MODEL.format(extra="nn.Dropout(0.1), "))
    edited = cli("run", suite, "--plugin", plugin, "--store", "r.sqlite", cwd=tmp_path, env=cli_env)
    assert edited.returncode == 0, edited.stderr[-2000:]
    assert "1 already stored, 1 done" in edited.stderr  # the plug-in model's run only
    import robench

    frame = robench.results(tmp_path / "r.sqlite")
    mine = frame[frame["task_params"].map(lambda p: p["model"] == "edit-me")]
    assert len(mine) == 2 and mine["id"].nunique() == 2  # old run kept, new one added
    hashes = {tuple(p.get("components", {}).values()) for p in mine["provenance"]}
    assert len(hashes) == 2 and all(p.get("plugin_files", {}).get("edit_me.py") for p in mine["provenance"])
    assert len(frame[frame["task_params"].map(lambda p: p["model"] == "linear")]) == 1


@pytest.mark.slow
def test_benchmark_takes_a_module(tmp_path):
    from torch import nn

    import robench

    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 10))
    frame = robench.benchmark(net, task="sparsity_robustness", store=tmp_path / "r.sqlite", progress=False,
                              sparsity=0.5, baseline_epochs=1, finetune_epochs=1, n_test=16, attack_preset="smoke")
    assert len(frame) == 1 and frame.iloc[0]["status"] == "done"
    assert frame.iloc[0]["metrics.rho2"] > 0
    name = frame.iloc[0]["task_params"]["model"]
    assert name.startswith("sequential-")
    again = robench.benchmark(net, task="sparsity_robustness", store=tmp_path / "r.sqlite", progress=False,
                              sparsity=0.5, baseline_epochs=1, finetune_epochs=1, n_test=16, attack_preset="smoke")
    assert list(again["id"]) == list(frame["id"])  # the same module: the same run, not recomputed
    with pytest.raises(robench.UserError, match="takes no model"):
        robench.benchmark(net, task="room_layout")
