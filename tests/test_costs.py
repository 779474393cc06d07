"""The cost of a suite is said before it runs: from the store's own past runs of the same
configuration family, else from the task's typical run time."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

SUITE = """
suite: cost
seeds: [0, 1]
tasks:
  - task: toy
    grid: {n: [8, 16]}
    methods: [{name: mean}]
"""


def test_estimate_uses_the_store_history_most_specific_first(tmp_path, toy_plugin, monkeypatch):
    from robench import api, costs, registry

    suite = tmp_path / "s.yaml"
    suite.write_text(SUITE)
    store = tmp_path / "r.sqlite"
    specs = api.validate(suite, plugins=(toy_plugin,))
    toy = registry.tasks.get("toy")
    monkeypatch.setattr(toy, "typical_run_s", 100.0, raising=False)
    cold = costs.estimate(specs, store, workers=2)
    assert cold.from_task == 4 and cold.from_store == 0 and cold.seconds == pytest.approx(200.0)
    assert "~200 s with 2 workers" not in cold.describe()  # 200 s is shown in minutes
    assert "3 min with 2 workers (4 from the tasks' typical times)" in cold.describe()
    api.run(suite, store=store, plugins=(toy_plugin,), progress=False)
    from robench.store import Store
    with Store(store) as db:  # give the stored runs known durations: n=8 runs 10 s, n=16 runs 30 s
        for row in db.rows():
            db.conn.execute("UPDATE runs SET duration_s = ? WHERE id = ?",
                            (10.0 if row["task_params"]["n"] == 8 else 30.0, row["id"]))
        db.conn.commit()
    warm = costs.estimate(specs, store, workers=1)
    assert warm.from_store == 4 and warm.seconds == pytest.approx(80.0)
    other_seed = [s.model_copy(update={"seed": 7}) for s in specs]  # same configurations, new seeds
    assert costs.estimate(other_seed, store).seconds == pytest.approx(80.0)
    assert costs.estimate(specs, store, done={s.id for s in specs}).seconds == 0


def test_validate_and_run_say_the_cost_and_run_warns_past_an_hour(tmp_path, toy_plugin, monkeypatch, capsys):
    from typer.testing import CliRunner

    from robench import api, registry
    from robench.cli import app

    suite = tmp_path / "s.yaml"
    suite.write_text(SUITE)
    monkeypatch.setattr(registry.tasks.get("toy"), "typical_run_s", 2000.0, raising=False)
    result = CliRunner().invoke(app, ["validate", str(suite), "--plugin", toy_plugin, "--workers", "2",
                                      "--store", str(tmp_path / "r.sqlite")])
    assert result.exit_code == 0 and "expected wall time ~67 min with 2 workers" in result.output, result.output
    summary = api.run(suite, store=tmp_path / "r.sqlite", plugins=(toy_plugin,), progress=True)
    err = capsys.readouterr().err
    assert summary.estimate_s == pytest.approx(8000.0)
    assert "expected wall time ~2.2 h with 1 worker" in err and "over an hour" in err
    assert "toy[n=8]/mean seed=0" in err.replace("\n", " ")  # the progress line names what varies


def test_the_readme_parameter_reference_is_the_generated_one():
    """The README's table is `robench ls tasks -v --format markdown`, and every built-in
    task and method parameter has a meaning."""
    import re

    from robench import reference

    tasks = reference.reference(builtins_only=True)
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    block = re.search(r"<!-- parameter-reference:start -->\n(.*)<!-- parameter-reference:end -->", readme, re.S)
    assert block, "README has no parameter reference"
    assert block.group(1) == reference.markdown(tasks), \
        "README's parameter reference is stale: regenerate it with `robench ls tasks -v --format markdown`"
    undocumented = [(t["name"], "task", r["name"]) for t in tasks for r in t["params"] if not r["meaning"]]
    undocumented += [(t["name"], m["name"], r["name"]) for t in tasks for m in t["methods"]
                     for r in m["params"] if not r["meaning"]]
    assert undocumented == []
    assert all(t["typical_run_s"] for t in tasks)


def test_ls_tasks_verbose_lists_parameters(cli_env):
    import subprocess

    from tests.conftest import robench_cmd

    out = subprocess.run(robench_cmd("ls", "tasks", "-v"), capture_output=True, text=True, env=cli_env)
    assert out.returncode == 0
    assert "  sparsity: float = 0.9  fraction of prunable weights set to zero, in [0, 1)." in out.stdout
    # one row per parameter: name, padded to the task's longest, then type, default and constraint
    assert re.search(r"\n  baseline_epochs +int = 10 \[> 0\]  epochs of the shared dense baseline\n", out.stdout)
    bad = subprocess.run(robench_cmd("ls", "models", "-v"), capture_output=True, text=True, env=cli_env)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "robench ls tasks -v" in bad.stderr
