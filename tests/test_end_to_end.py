"""End to end through the CLI on the real compression task (small budget): a plug-in file
from outside the repo, the README's own example, the store, the exported models and the
leaderboard."""

import json
import re
import subprocess

import pytest
import torch

from conftest import ROOT, robench_cmd

SMALL = ["--param", "model=lenet-300-100", "--param", "baseline_epochs=1", "--param", "finetune_epochs=1",
         "--param", "latency_repeats=3"]


def readme_plugin() -> str:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"## Benchmark your own method.*?```python\n(.*?)```", text, re.S)
    assert block, "README lost its plug-in example"
    return block.group(1)


@pytest.mark.slow
def test_readme_plugin_runs_through_compression_and_leaderboard(tmp_path, cli_env):
    plugin = tmp_path / "elsewhere" / "my_pruner.py"
    plugin.parent.mkdir()
    plugin.write_text(readme_plugin())
    run = subprocess.run(robench_cmd("run", "--plugin", plugin, "--task", "compression",
                                     "--method", "l1-share,magnitude", "--seeds", "0", *SMALL,
                                     "--store", "r.sqlite"),
                         capture_output=True, text=True, env=cli_env, cwd=tmp_path)
    assert run.returncode == 0, run.stderr

    out = subprocess.run(robench_cmd("results", "--format", "json", "--store", "r.sqlite"),
                         capture_output=True, text=True, env=cli_env, cwd=tmp_path)
    runs = json.loads(out.stdout)
    assert {r["method"] for r in runs} == {"l1-share", "magnitude"}
    for r in runs:
        assert r["status"] == "done" and r["provenance"]["torch"] and r["seed"] == 0
        state = torch.load(r["artifacts"]["model"], weights_only=True)
        total = sum(t.numel() for t in state.values())
        nonzero = sum(int((t != 0).sum()) for t in state.values())
        assert r["metrics"]["compression_ratio"] == pytest.approx(total / nonzero)
    l1 = next(r for r in runs if r["method"] == "l1-share")
    assert l1["metrics"]["compression_ratio"] > 1.2  # the plug-in really pruned

    lb = subprocess.run(robench_cmd("leaderboard", "--out", "site", "--store", "r.sqlite"),
                        capture_output=True, text=True, env=cli_env, cwd=tmp_path)
    assert lb.returncode == 0, lb.stderr
    page = (tmp_path / "site" / "compression.html").read_text()
    assert "l1-share" in page and "magnitude" in page
    assert (tmp_path / "site" / "index.html").exists()
