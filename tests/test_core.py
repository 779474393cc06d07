"""Core behaviour: registry, suites and RunSpecs, the store, executors and the CLI.

Uses the torch-free toy task in tests/plugins/toy_task.py so these tests are fast.
"""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

from conftest import ROOT, TOY, robench_cmd
from robench import api, registry
from robench.errors import UserError
from robench.spec import expand, load_suite, parse_suite
from robench.store import Store


def write_suite(tmp_path, body, name="s.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


TOY_SUITE = """
suite: toy-suite
seeds: [0, 1]
tasks:
  - task: toy
    params: {n: 40}
    methods:
      - name: mean
        grid: {trim: [0.0, 0.1]}
      - name: median
"""


# -- registry ----------------------------------------------------------------------------
def test_unknown_names_get_did_you_mean(toy_plugin):
    with pytest.raises(UserError, match="did you mean 'median'"):
        registry.methods.get("medain", task="toy")
    with pytest.raises(UserError, match="did you mean 'compression'"):
        registry.tasks.get("compresion")


def test_duplicate_names_are_an_error(toy_plugin):
    reg = registry.Registry("models")
    reg.register("net")(lambda: 1)
    with pytest.raises(UserError, match="duplicate model name 'net'"):
        reg.register("net")(lambda: 2)


def test_builtin_decorator_resolves_its_lazy_entry():
    registry.load_builtins()
    entry = registry.models.entry("lenet-5")
    model_fn = entry.load()  # imports robench.models.lenet, whose decorator runs
    assert entry.obj is model_fn and model_fn.__name__ == "lenet5"


def test_ls_and_help_do_not_import_torch():
    code = ("import sys; from typer.testing import CliRunner; from robench.cli import app;"
            "r = CliRunner().invoke(app, ['ls']); assert r.exit_code == 0, r.output;"
            "assert 'compression' in r.output and 'mnist-5k' in r.output;"
            "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0;"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_plugin_file_errors_are_one_line(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def broken(:\n")
    with pytest.raises(UserError, match=r"bad.py:1: syntax error"):
        registry.load_plugin_file(bad)
    with pytest.raises(UserError, match="no such file"):
        registry.load_plugin_file(tmp_path / "missing.py")


# -- suites and RunSpecs -------------------------------------------------------------------
def test_suite_expands_grid_and_seeds(tmp_path, toy_plugin):
    specs = expand(load_suite(write_suite(tmp_path, TOY_SUITE)))
    assert len(specs) == (2 + 1) * 2
    assert {s.method_label for s in specs} == {"mean", "mean(trim=0.1)", "median"}
    assert len({s.id for s in specs}) == 6 and len({s.config_id for s in specs}) == 3


def test_id_is_canonical_and_versioned(tmp_path, toy_plugin):
    implicit = expand(parse_suite({"suite": "a", "tasks": [{"task": "toy", "methods": [{"name": "mean"}]}]}))
    explicit = expand(parse_suite({"suite": "b", "tasks": [
        {"task": "toy", "params": {"n": 50}, "methods": [{"name": "mean", "params": {"trim": 0}}]}]}))
    assert implicit[0].id == explicit[0].id  # defaults spelled out do not change the id
    bumped = implicit[0].model_copy(update={"method_version": "2"})
    assert bumped.id != implicit[0].id
    other_seed = implicit[0].model_copy(update={"seed": 1})
    assert other_seed.id != implicit[0].id and other_seed.config_id == implicit[0].config_id


@pytest.mark.parametrize("body, expected", [
    ("suite: x\ntasks:\n  - task: toy\n    methods: [{name: mean}\n", r"s\.yaml:\d+:\d+: YAML syntax error"),
    ("suite: x\ntasks:\n  - task: toy\n    methdos: []\n", r"s\.yaml: tasks\[0\]\.methdos: unknown key"),
    ("suite: x\nseeds: [zero]\ntasks:\n  - task: toy\n    methods: [{name: mean}]\n",
     r"s\.yaml: seeds\[0\]: .*integer.*'zero'"),
    ("suite: x\ntasks:\n  - task: toy\n    params: {n: many}\n    methods: [{name: mean}]\n",
     r"s\.yaml: tasks\[0\]\.params\.n: .*integer.*'many'"),
    ("suite: x\ntasks:\n  - task: toy\n    methods: [{name: mean, params: {trimm: 0.1}}]\n",
     r"tasks\[0\]\.methods\[0\]\.params\.trimm: unknown parameter of method 'mean' \(expected one of: trim\)"),
    ("suite: x\ntasks:\n  - task: toy\n    methods: [{name: mean, params: {trim: lots}}]\n",
     r"tasks\[0\]\.methods\[0\]\.params\.trim: .*number.*'lots'"),
    ("suite: x\ntasks:\n  - task: toy\n    methods: [{name: mean, params: {trim: 0.7}}]\n",
     r"tasks\[0\]\.methods\[0\]\.params: trim must be in"),
    ("suite: x\ntasks:\n  - task: toy\n    methods: [{name: meen}]\n",
     r"tasks\[0\]\.methods\[0\]\.name: unknown method 'meen' for task 'toy'; did you mean 'mean'"),
    ("suite: x\ntasks:\n  - task: toi\n    methods: [{name: mean}]\n", r"tasks\[0\]\.task: unknown task 'toi'"),
    ("- just\n- a list\n", r"s\.yaml: expected a mapping"),
])
def test_bad_suites_give_one_clear_line(tmp_path, toy_plugin, body, expected):
    path = write_suite(tmp_path, body)
    with pytest.raises(UserError) as info:
        expand(load_suite(path), source=str(path))
    message = str(info.value)
    assert "\n" not in message
    import re
    assert re.search(expected, message), message


# -- store -----------------------------------------------------------------------------------
def test_foreign_files_are_refused_and_left_untouched(tmp_path):
    text = tmp_path / "notes.sqlite"
    text.write_text("my precious notes\n")
    with pytest.raises(UserError, match="not a SQLite database"):
        Store(text)
    assert text.read_text() == "my precious notes\n"

    other = tmp_path / "other.sqlite"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE customers (name TEXT)")
    con.execute("INSERT INTO customers VALUES ('ada')")
    con.commit()
    con.close()
    before = other.read_bytes()
    with pytest.raises(UserError, match="another program"):
        Store(other)
    assert other.read_bytes() == before

    with pytest.raises(UserError, match="does not exist"):
        Store(tmp_path / "none.sqlite", create=False)
    assert not (tmp_path / "none.sqlite").exists()


def test_run_store_results_and_skip(tmp_path, toy_plugin):
    suite = write_suite(tmp_path, TOY_SUITE)
    store = tmp_path / "r.sqlite"
    first = api.run(suite, store=store, plugins=(toy_plugin,), progress=False)
    assert (first.total, first.skipped, first.done, first.failed) == (6, 0, 6, 0)
    frame = api.results(store)
    assert len(frame) == 6 and set(frame["status"]) == {"done"}
    row = frame[(frame.method_label == "median") & (frame.seed == 1)].iloc[0]
    import numpy as np
    sample = np.random.default_rng(1).normal(3.0, 1.0, 40)
    assert row["metrics.abs_error"] == pytest.approx(abs(np.median(sample) - 3.0))
    assert row["primary_metric"] == "abs_error" and not row["greater_is_better"]
    assert row["provenance"]["python"] and "robench" in row["provenance"]
    assert open(row["artifacts"]["estimate"]).read().strip() == repr(float(row["metrics.estimate"]))
    assert row["suites"] == ["toy-suite"]

    again = api.run(suite, store=store, plugins=(toy_plugin,), progress=False)
    assert (again.skipped, again.done) == (6, 0)
    assert api.results(store)["finished_at"].tolist() == frame["finished_at"].tolist()


def test_failing_plugin_is_stored_as_failed_and_suite_goes_on(tmp_path, toy_plugin):
    suite = write_suite(tmp_path, """
        suite: with-broken
        tasks:
          - task: toy
            methods: [{name: boom}, {name: mean}]
        """)
    store = tmp_path / "r.sqlite"
    summary = api.run(suite, store=store, plugins=(toy_plugin,), progress=False)
    assert (summary.done, summary.failed) == (1, 1)
    frame = api.results(store)
    failed = frame[frame.status == "failed"].iloc[0]
    assert failed["method"] == "boom" and "RuntimeError: boom" in failed["error"]
    assert "Traceback" in failed["error"] and failed["artifacts"] == {}
    # a re-run retries the failed one only
    again = api.run(suite, store=store, plugins=(toy_plugin,), progress=False)
    assert (again.skipped, again.failed) == (1, 1)


def test_process_pool_matches_serial(tmp_path, toy_plugin):
    suite = write_suite(tmp_path, TOY_SUITE)
    api.run(suite, store=tmp_path / "serial.sqlite", plugins=(toy_plugin,), progress=False)
    api.run(suite, store=tmp_path / "pool.sqlite", workers=2, executor="process",
            plugins=(toy_plugin,), progress=False)
    serial = api.results(tmp_path / "serial.sqlite").set_index("id")
    pool = api.results(tmp_path / "pool.sqlite").set_index("id")
    assert sorted(serial.index) == sorted(pool.index)
    assert (serial["metrics.abs_error"] == pool.loc[serial.index, "metrics.abs_error"]).all()


# -- CLI -------------------------------------------------------------------------------------
def run_cli(*args, env, cwd):
    return subprocess.run(robench_cmd(*args), capture_output=True, text=True, env=env, cwd=cwd)


def test_cli_user_errors_are_one_line_without_traceback(tmp_path, cli_env):
    store = tmp_path / "r.sqlite"
    store.write_text("not a database")
    bad_yaml = write_suite(tmp_path, "suite: x\ntasks: [\n")
    cases = [
        ("run", bad_yaml, "--store", tmp_path / "ok.sqlite"),
        ("run", tmp_path / "missing.yaml"),
        ("run", "--task", "compresion", "--method", "dns"),
        ("run", "--task", "toy", "--method", "mean", "--param", "colour=red", "--plugin", TOY,
         "--store", tmp_path / "ok.sqlite"),
        ("results", "--store", store),
        ("results", "--store", tmp_path / "nothing.sqlite"),
        ("ls", "gadgets"),
        ("run", write_suite(tmp_path, TOY_SUITE, "t.yaml"), "--plugin", TOY, "--store", store),
    ]
    for args in cases:
        out = run_cli(*args, env=cli_env, cwd=tmp_path)
        assert out.returncode == 2, (args, out.stdout, out.stderr)
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("robench: error: "), (args, out.stderr)
        assert "Traceback" not in out.stderr
    assert store.read_text() == "not a database"
    assert not (tmp_path / "nothing.sqlite").exists()


def test_cli_adhoc_run_and_json_results(tmp_path, cli_env):
    out = run_cli("run", "--task", "toy", "--method", "mean,median", "--seeds", "0,1,2",
                  "--param", "trim=0.1", "--param", "n=30", "--plugin", TOY, "--store", "r.sqlite",
                  env=cli_env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    out = run_cli("results", "--format", "json", "--store", "r.sqlite", env=cli_env, cwd=tmp_path)
    runs = json.loads(out.stdout)
    assert len(runs) == 6
    for r in runs:
        assert r["task_params"]["n"] == 30 and r["seed"] in (0, 1, 2)
        assert set(r["metrics"]) == {"abs_error", "estimate"} and r["provenance"]["python"]
    assert {r["method_params"].get("trim") for r in runs if r["method"] == "mean"} == {0.1}
    out = run_cli("results", "--format", "csv", "--store", "r.sqlite", env=cli_env, cwd=tmp_path)
    assert out.stdout.splitlines()[0].startswith("id,") and len(out.stdout.splitlines()) == 7


def test_cli_exit_code_is_nonzero_when_a_run_fails(tmp_path, cli_env):
    out = run_cli("run", "--task", "toy", "--method", "boom,median", "--plugin", TOY, "--store", "r.sqlite",
                  env=cli_env, cwd=tmp_path)
    assert out.returncode == 1
    assert "1 failed" in out.stderr


def test_kill_minus_nine_loses_nothing_stored(tmp_path, cli_env):
    suite = write_suite(tmp_path, """
        suite: slow
        seeds: [0, 1, 2, 3, 4, 5, 6, 7]
        tasks:
          - task: toy
            params: {sleep: 0.4}
            methods: [{name: mean}]
        """)
    store = tmp_path / "r.sqlite"
    proc = subprocess.Popen(robench_cmd("run", suite, "--plugin", TOY, "--store", store, "-q"),
                            env=cli_env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    count = 0
    while time.time() < deadline:
        time.sleep(0.1)
        if store.exists():
            try:
                with sqlite3.connect(store) as con:
                    count = con.execute("SELECT count(*) FROM runs").fetchone()[0]
            except sqlite3.OperationalError:
                continue
            if count >= 3:
                break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = api.results(store).set_index("id")["finished_at"].to_dict()
    assert 3 <= len(before) < 8
    out = run_cli("run", suite, "--plugin", TOY, "--store", store, "-q", env=cli_env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    after = api.results(store)
    assert len(after) == 8 and after["id"].is_unique and set(after["status"]) == {"done"}
    for run_id, finished in before.items():  # completed runs were kept, not recomputed
        assert after.set_index("id").loc[run_id, "finished_at"] == finished


def test_entry_point_plugins_are_loaded(tmp_path, monkeypatch):
    """A package exposing the ``robench.plugins`` group registers on setup()."""
    from importlib import metadata

    pkg = tmp_path / "thirdparty_robench.py"
    pkg.write_text("from robench import register_model\n"
                   "@register_model('third-party-net')\n"
                   "def net(num_classes=10):\n    'a model from an installed package'\n    return None\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    ep = metadata.EntryPoint(name="thirdparty", value="thirdparty_robench", group="robench.plugins")
    monkeypatch.setattr(metadata, "entry_points", lambda group=None: [ep] if group == "robench.plugins" else [])
    monkeypatch.setattr(registry, "_entry_points_loaded", False)
    registry.load_entry_point_plugins()
    try:
        assert registry.models.entry("third-party-net").doc == "a model from an installed package"
    finally:
        registry.models._entries.pop((None, "third-party-net"), None)


def test_builtin_module_imported_before_listing_is_not_a_duplicate():
    code = ("import robench.tasks.compression.methods.dense as d; from robench import registry;"
            "registry.load_builtins(); e = registry.methods.entry('dense', task='compression');"
            "assert e.load() is d.Dense and e.doc.startswith('Reference'); print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_api_names_stay_functions_after_their_submodules_are_imported():
    """robench.check and robench.verify are API functions and submodules of the same name:
    importing the submodule must not shadow the function (a second call used to fail with
    "module object is not callable")."""
    import importlib

    import robench
    from robench import api

    for name in ("check", "verify"):
        module = importlib.import_module(f"robench.{name}")
        assert getattr(robench, name) is getattr(api, name) and callable(getattr(robench, name))
        assert module.__name__ == f"robench.{name}"  # the module itself is still importable
