"""Hardening: every bad input is one line, exit 2, store untouched — found at `validate`
where it can be; every fault survived; every cached file verified.

Each case reproduces a defect a hostile test found (issue 17). CLI cases run in
subprocesses where the exit status or the process tree matters, in-process otherwise.
"""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conftest import ROOT, TOY, robench_cmd
from robench import api
from robench.errors import UserError

SUITE = """
suite: hard
seeds: [0, 1]
tasks:
  - task: toy
    params: {n: 30}
    methods:
      - name: mean
      - name: median
"""


def write(tmp_path, text, name="s.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else "absent"


def snapshot(path: Path):
    """What a refused command must leave as it was: the store's bytes, every row of every
    table, and the names of the files beside it (no new -wal, artifacts or cache files)."""
    folder = path.parent
    names = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")) if folder.is_dir() else None
    if not path.is_file():
        return digest(path), names, None
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro&immutable=1", uri=True)  # reads, never writes
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        rows = {t: sorted(map(repr, conn.execute(f'SELECT * FROM "{t}"'))) for t in tables}
    except sqlite3.DatabaseError:  # not a database: its bytes say it all
        rows = None
    finally:
        conn.close()
    return digest(path), names, rows


def cli(*args, cwd, env=None, timeout=120):
    return subprocess.run(robench_cmd(*args), capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout)


def assert_one_line_exit_2(out, *words):
    assert out.returncode == 2, (out.returncode, out.stderr[-2000:])
    assert "Traceback" not in out.stderr
    lines = [line for line in out.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("robench: error: "), out.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])


@pytest.fixture
def store(tmp_path, toy_plugin):
    """A store holding the toy suite's four runs."""
    path = tmp_path / "store" / "r.sqlite"
    api.run(write(tmp_path, SUITE), store=path, plugins=(TOY,), progress=False)
    return path


# -- bad input: one line, exit 2, store untouched -------------------------------------------
BAD_SUITES = [
    ("seed 10^20", "suite: x\nseeds: [100000000000000000000]\ntasks:\n  - task: toy\n    methods: [{name: mean}]\n",
     "seeds[0]"),
    ("seed as a string", "suite: x\nseeds: ['0']\ntasks:\n  - task: toy\n    methods: [{name: mean}]\n", "seeds[0]"),
    ("seed as a bool", "suite: x\nseeds: [true]\ntasks:\n  - task: toy\n    methods: [{name: mean}]\n", "seeds[0]"),
    ("duplicate keys", "suite: x\nsuite: y\ntasks:\n  - task: toy\n    methods: [{name: mean}]\n", "duplicate key 'suite'"),
    ("huge suite name", "suite: " + "a" * 100_000 + "\ntasks:\n  - task: toy\n    methods: [{name: mean}]\n", "suite:"),
    ("unknown model", "suite: x\ntasks:\n  - task: compression\n    params: {model: lenet-55}\n    methods: [{name: dense}]\n",
     "params.model: unknown model 'lenet-55'; did you mean 'lenet-5'"),
    ("unknown dataset", "suite: x\ntasks:\n  - task: compression\n    params: {dataset: mnist-50k}\n    methods: [{name: dense}]\n",
     "params.dataset: unknown dataset 'mnist-50k'"),
    ("missing dataset_root", "suite: x\ntasks:\n  - task: compression\n    params: {dataset: mnist}\n    methods: [{name: dense}]\n",
     "params.dataset_root: dataset 'mnist' reads its files from a folder"),
    ("dataset_root not a folder", "suite: x\ntasks:\n  - task: compression\n    params: {dataset: cifar10, dataset_root: /nonexistent/cifar}\n"
     "    methods: [{name: dense}]\n", "no such folder"),
    ("sparsity 1.5", "suite: x\ntasks:\n  - task: compression\n    methods: [{name: magnitude, params: {sparsity: 1.5}}]\n",
     "sparsity=1.5"),
    ("sparsity -0.1", "suite: x\ntasks:\n  - task: compression\n    methods: [{name: magnitude, params: {sparsity: -0.1}}]\n",
     "sparsity=-0.1"),
    ("sparsity nan", "suite: x\ntasks:\n  - task: compression\n    methods: [{name: magnitude, params: {sparsity: .nan}}]\n",
     "sparsity: expected finite numbers (got nan)"),
    ("scope bogus", "suite: x\ntasks:\n  - task: compression\n    methods: [{name: magnitude, params: {scope: bogus}}]\n",
     "scope='bogus'"),
    ("finetune_lr inf", "suite: x\ntasks:\n  - task: compression\n    params: {finetune_lr: .inf}\n    methods: [{name: dense}]\n",
     "params.finetune_lr"),
    ("latency batch 1e9", "suite: x\ntasks:\n  - task: compression\n    params: {latency_batch_size: 1000000000}\n"
     "    methods: [{name: dense}]\n", "params.latency_batch_size"),
    ("a million runs", "suite: x\ntasks:\n  - task: toy\n    grid: {n: [" + ", ".join(map(str, range(1, 1001))) + "]}\n"
     "    methods: [{name: mean, grid: {trim: [" + ", ".join(f"{i / 2500:.4f}" for i in range(1000)) + "]}}]\n",
     "expands to 1,000,000 runs, more than --max-runs 10,000"),
]


@pytest.mark.parametrize("case, text, words", BAD_SUITES, ids=[c for c, _, _ in BAD_SUITES])
def test_bad_suites_are_one_line_at_validate_and_run(case, text, words, tmp_path, store, cli_env):
    suite = write(tmp_path, text, "bad.yaml")
    before = digest(store)
    started = time.monotonic()
    assert_one_line_exit_2(cli("validate", suite, "--plugin", TOY, cwd=tmp_path, env=cli_env), words)
    assert time.monotonic() - started < 60  # a million runs are counted, not expanded
    assert_one_line_exit_2(cli("run", suite, "--plugin", TOY, "--store", store, cwd=tmp_path, env=cli_env), words)
    assert digest(store) == before


def test_cli_arguments_are_one_line(tmp_path, store, cli_env):
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    suite = write(tmp_path, SUITE)
    cases = [
        (("run", "--task", "toy", "--method", "mean", "--seeds", ",", "--plugin", TOY, "--store", store), "--seeds"),
        (("run", "--task", "toy", "--method", "mean", "--seeds", "1e30", "--plugin", TOY, "--store", store), "--seeds"),
        (("leaderboard", "--out", a_file, "--store", store), "is a file, not a folder"),
        (("figures", "dns", "--out", a_file, "--store", store), "is a file, not a folder"),
        (("run", suite, "--plugin", TOY, "--store", a_file / "results.sqlite"), "is a file, not a folder"),
    ]
    before = digest(store)
    for args, words in cases:
        assert_one_line_exit_2(cli(*args, cwd=tmp_path, env=cli_env), words)
    assert digest(store) == before


def _without_file_mode_override() -> None:
    """preexec_fn: as root, drop the capabilities that let root ignore file modes
    (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER) from the bounding set, so the
    program exec'd next honours a read-only file as any user does (it stays uid 0: it can
    still read the interpreter and packages under a 0700 /root, as nobody could not)."""
    import ctypes

    if os.geteuid() != 0:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2, 3):  # linux/capability.h; PR_CAPBSET_DROP = 24
        if libc.prctl(24, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), f"prctl(PR_CAPBSET_DROP, {cap}) failed")


def test_read_only_store_refuses_writing_and_still_reads(tmp_path, store, cli_env):
    """A store in a read-only folder, read-only itself: `run` refuses it in one line, exit
    2, untouched; `results` still reads it. Root runs it too (CI runs as root), without the
    capability to override file modes."""
    folder = store.parent
    os.chmod(store, 0o444)
    os.chmod(folder, 0o555)
    try:
        def ro_cli(*args):
            return subprocess.run(robench_cmd(*args), capture_output=True, text=True, cwd=tmp_path, env=cli_env,
                                  timeout=120, preexec_fn=_without_file_mode_override)

        probe = subprocess.run(  # the premise: such a process cannot write the store
            [sys.executable, "-c", f"open({str(store)!r}, 'ab')"], capture_output=True, text=True, timeout=60,
            preexec_fn=_without_file_mode_override)
        assert probe.returncode != 0 and "PermissionError" in probe.stderr, \
            f"a read-only store is writable here (uid {os.geteuid()}), the test proves nothing: {probe.stderr[-500:]}"
        before = snapshot(store)
        out = ro_cli("run", write(tmp_path, SUITE.replace("n: 30", "n: 31")), "--plugin", TOY, "--store", store)
        assert_one_line_exit_2(out, "read-only")
        assert snapshot(store) == before
        listed = ro_cli("results", "--store", store, "--format", "csv")
        assert listed.returncode == 0 and listed.stdout.count("\n") == 5, listed.stderr
    finally:
        os.chmod(folder, 0o755)
        os.chmod(store, 0o644)


def test_read_only_store_refusal_in_process(tmp_path, store, monkeypatch):
    """The same refusal, whoever runs the tests: SQLite says the database is read-only."""
    import robench.store as store_module

    real_connect = sqlite3.connect

    class ReadOnly:
        def __init__(self, conn):
            self._conn = conn

        def execute(self, sql, *args):
            if sql.startswith("PRAGMA journal_mode"):
                raise sqlite3.OperationalError("attempt to write a readonly database")
            return self._conn.execute(sql, *args)

        def __getattr__(self, name):
            return getattr(self._conn, name)

    monkeypatch.setattr(store_module.sqlite3, "connect",
                        lambda *a, **k: ReadOnly(real_connect(*a, **k)) if not k.get("uri") else real_connect(*a, **k))
    with pytest.raises(UserError, match="read-only"):
        store_module.Store(store)
    reader = store_module.Store(store, create=False)
    assert reader.read_only and len(reader.rows()) == 4
    reader.close()


@pytest.mark.parametrize("damage, words", [
    ("UPDATE meta SET value = '1.1' WHERE key = 'version'", "unknown schema version '1.1'"),
    ("ALTER TABLE runs DROP COLUMN provenance", "its runs table lacks provenance"),
])
def test_damaged_stores_are_one_line_and_left_untouched(damage, words, tmp_path, store, cli_env):
    with sqlite3.connect(store) as conn:
        conn.execute(damage)
    conn.close()
    before = digest(store)
    for args in (("results", "--store", store), ("run", write(tmp_path, SUITE), "--plugin", TOY, "--store", store)):
        assert_one_line_exit_2(cli(*args, cwd=tmp_path, env=cli_env), words)
    assert digest(store) == before


def test_markup_in_a_parameter_is_printed_as_text(tmp_path, cli_env):
    suite = write(tmp_path, SUITE.replace("      - name: median\n", "      - name: markup\n        params: {note: '[/red]'}\n"))
    store = tmp_path / "r.sqlite"
    out = cli("run", suite, "--plugin", TOY, "--store", store, cwd=tmp_path, env=cli_env)
    assert out.returncode == 0, out.stderr[-2000:]
    listed = cli("results", "--store", store, cwd=tmp_path, env=cli_env)  # the rich table
    assert listed.returncode == 0 and "markup" in listed.stdout, listed.stderr
    as_csv = cli("results", "--store", store, "--format", "csv", cwd=tmp_path, env=cli_env)
    assert as_csv.returncode == 0 and "[/red]" in as_csv.stdout, as_csv.stderr


def test_plugins_that_exit_or_register_for_no_task_are_one_line(tmp_path, cli_env):
    exits = tmp_path / "exits.py"
    exits.write_text("import sys\nsys.exit(0)\n")
    orphan = tmp_path / "orphan.py"
    orphan.write_text("from robench import register_method\nfrom robench.tasks.base import Method\n"
                      "@register_method('no-such-task', 'x')\nclass X(Method):\n    pass\n")
    assert_one_line_exit_2(cli("ls", "--plugin", exits, cwd=tmp_path, env=cli_env), "sys.exit(0)")
    assert_one_line_exit_2(cli("ls", "--plugin", orphan, cwd=tmp_path, env=cli_env), "unknown task 'no-such-task'")


# -- property-based: malformed suites and arguments ------------------------------------------
def _check_refused(result, *words):
    """A CliRunner result of bad input: exit 2, one line naming ``words``, never an exception."""
    assert not (result.exception and not isinstance(result.exception, SystemExit)), repr(result.exception)
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("robench: error: "), result.output
    for word in words:
        assert word in lines[0], (word, lines[0])


def test_fuzzed_suites_never_trace_back_and_run_refuses_them_untouched(tmp_path, store, toy_plugin, monkeypatch):
    """900 generated malformed suites: `validate` exits 2 with one line (or 0 for a valid
    suite), never a traceback; every suite `validate` refuses, `run` refuses too, on a store
    that holds runs, with the same kind of line, and the store is left byte-for-byte and
    row-for-row as it was."""
    pytest.importorskip("hypothesis")
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    from typer.testing import CliRunner

    from robench.cli import app

    monkeypatch.chdir(tmp_path)  # a default .robench/ could only land here
    runner = CliRunner()
    scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**30, 10**30),
                        st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12))
    values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                           st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                          max_leaves=8)
    keys = st.sampled_from(["suite", "seeds", "tasks", "task", "params", "grid", "methods", "name",
                            "device", "description", "n", "trim", "sparsity", "model"])
    suites = st.dictionaries(keys, values, max_size=5) | st.fixed_dictionaries(
        {"suite": st.text(max_size=10), "tasks": st.lists(st.fixed_dictionaries(
            {"task": st.sampled_from(["toy", "compression", "tooy"]),
             "methods": st.lists(st.dictionaries(keys, values, max_size=3), max_size=2)}), max_size=2)})
    counts = {"validate": 0, "run": 0}
    path = tmp_path / "fuzz.yaml"

    @settings(max_examples=900, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(suites)
    def fuzz_suites(data):
        import yaml

        path.write_text(yaml.safe_dump(data, allow_unicode=True) if isinstance(data, dict) else "x")
        checked = runner.invoke(app, ["validate", str(path), "--plugin", str(TOY)])
        counts["validate"] += 1
        if checked.exit_code == 0 and not checked.exception:
            return  # a valid suite: running it may rightly change the store
        _check_refused(checked)
        counts["run"] += 1
        before = snapshot(store)
        _check_refused(runner.invoke(app, ["run", str(path), "--plugin", str(TOY), "--store", str(store), "-q"]))
        assert snapshot(store) == before, data

    fuzz_suites()
    assert counts["validate"] == 900 and counts["run"] >= 500, counts


# The valid ad-hoc arguments of `run` (the fixture's store already holds these four runs),
# and for each one a strategy of values that are certainly wrong there.
_VALID = {"--task": "toy", "--method": "mean,median", "--seeds": "0,1", "--param": "n=30", "--workers": "1",
          "--executor": "serial", "--device": "cpu", "--threads": "1", "--max-runs": "100"}
_TOY_METHODS = {"mean", "median", "boom", "dies", "markup"}
_OPTIONS = {"task", "method", "seeds", "param", "workers", "executor", "scheduler", "device", "threads", "store",
            "plugin", "quiet", "max-runs", "help"}


def _is_int(text: str) -> bool:
    try:
        int(text)
        return True
    except ValueError:
        return False


def test_fuzzed_run_arguments_one_bad_among_valid_ones(tmp_path, store, toy_plugin, monkeypatch):
    """`robench run` with valid ad-hoc arguments (in a generated order) where exactly one is
    bad, which one varying: exit 2 with one line naming what is wrong, never a traceback,
    and the store (which holds runs) and any file the bad argument names left as they were."""
    pytest.importorskip("hypothesis")
    import re

    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    from typer.testing import CliRunner

    from robench.cli import app

    monkeypatch.chdir(tmp_path)  # a default .robench/ could only land here
    runner = CliRunner()
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    foreign = tmp_path / "foreign.sqlite"
    foreign.write_text("not a database")
    other_program = tmp_path / "other.sqlite"
    with sqlite3.connect(other_program) as conn:
        conn.execute("CREATE TABLE accounts (id INTEGER)")
    conn.close()
    (tmp_path / "a_dir").mkdir()
    plugins = {"syntax.py": "def f(:\n", "raises.py": "raise RuntimeError('broken plug-in')\n",
               "exits.py": "import sys\nsys.exit(0)\n",
               "orphan.py": "from robench import register_method\nfrom robench.tasks.base import Method\n"
                            "@register_method('no-such-task', 'x')\nclass X(Method):\n    pass\n"}
    for name, text in plugins.items():
        (tmp_path / name).write_text(text)
    touchable = [store, a_file, foreign, other_program]  # files that must stay as they were
    words = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=10)
    ascii_words = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_-.:/ 0123456789", max_size=10)
    bad_seed = st.one_of(st.integers(max_value=-1).map(str), st.integers(min_value=2**63).map(str),
                         st.sampled_from(["", " ", "1.5", "1e3", "0x1", "²", "one", "+-1", "1 2"]),
                         words.filter(lambda w: not (w.strip().isascii() and w.strip().isdigit())))
    not_positive = st.one_of(st.integers(max_value=0).map(str), words.filter(lambda w: not _is_int(w)))
    bad = {  # option -> (strategy of bad values, a word the error line must contain)
        "--task": (words.filter(lambda w: w.strip() not in ("toy",)), None),
        "--method": (words.filter(lambda w: any(p.strip() and p.strip() not in _TOY_METHODS for p in w.split(","))
                                  or not any(p.strip() for p in w.split(","))), None),
        "--seeds": (st.lists(st.sampled_from(["0", "1", "7"]), max_size=2).flatmap(
            lambda good: bad_seed.map(lambda b: ",".join([*good, b]))), "--seeds"),
        "--param": (st.one_of(
            st.sampled_from(["n", "=3", "n=abc", "n=[1, 2]", "n={a: 1}", "n=1.5", "n=null", "n=", "trim=0.7",
                             "trim=-0.1", "trim=.nan", "trim=.inf", "shared=maybe", "task.trim=0.1", "method.n=3"]),
            st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8).filter(
                lambda k: k not in ("n", "shared", "sleep", "trim")).map(lambda k: f"{k}=1")), None),
        "--workers": (not_positive, "--workers"),
        "--threads": (not_positive, "--threads"),
        "--executor": (words.filter(lambda w: w not in ("auto", "serial", "process", "dask")), "--executor"),
        "--device": (st.one_of(st.just("cuda:99"), words.filter(
            lambda w: w != "" and not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", w.strip().lower()))), "--device"),
        "--max-runs": (st.one_of(st.integers(max_value=3).map(str), words.filter(lambda w: not _is_int(w))),
                       "--max-runs"),
        "--scheduler": (ascii_words.filter(bool), "--scheduler"),  # goes with --executor dask only
        "--store": (st.sampled_from([a_file / "r.sqlite", tmp_path / "a_dir", foreign, other_program]).map(str),
                    "results store"),
        "--plugin": (st.sampled_from([*plugins, "missing.py", "a_dir"]).map(lambda n: str(tmp_path / n)),
                     "--plugin"),
        "unknown option": (st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=10).filter(
            lambda o: o not in _OPTIONS).map(lambda o: f"--{o}"), "No such option"),
        "suite file too": (ascii_words.filter(lambda w: w.strip() and not w.startswith("-")), "not both"),
    }
    which = {"n": {}}

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(st.sampled_from(sorted(bad)), st.data())
    def fuzz(option, data):
        value, word = bad[option][0], bad[option][1]
        value = data.draw(value, label=option)
        pairs = [[k, v] for k, v in _VALID.items()] + [["--plugin", str(TOY)], ["--store", str(store)]]
        if option in _VALID or option == "--store":
            next(p for p in pairs if p[0] == option)[1] = value
        elif option == "--plugin":  # a bad plug-in beside the good one
            pairs.append(["--plugin", value])
        elif option == "unknown option":
            pairs.append([value])
        elif option == "suite file too":
            pairs.append([value])
        else:
            pairs.append([option, value])
        order = data.draw(st.permutations(range(len(pairs))), label="order")
        args = ["run", "-q", *[a for i in order for a in pairs[i]]]
        before = {path: snapshot(path) for path in touchable}
        result = runner.invoke(app, args)
        _check_refused(result, *([word] if word else []))
        for path in touchable:
            assert snapshot(path) == before[path], (path, args)
        which["n"][option] = which["n"].get(option, 0) + 1

    valid = runner.invoke(app, ["run", "-q", *[a for kv in _VALID.items() for a in kv], "--plugin", str(TOY),
                                "--store", str(store)])
    assert valid.exit_code == 0, valid.output  # the arguments around the bad one are valid
    fuzz()
    assert len(which["n"]) == len(bad), which  # every argument was the bad one sometimes


def test_workers_0_is_refused_before_the_store_is_created(tmp_path, cli_env):
    store = tmp_path / "new" / "r.sqlite"
    out = cli("run", "--task", "toy", "--method", "mean", "--plugin", TOY, "--workers", "0", "--store", store,
              cwd=tmp_path, env=cli_env)
    assert_one_line_exit_2(out, "--workers 0")
    assert not store.exists() and not store.parent.exists()


# -- faults ----------------------------------------------------------------------------------
def test_a_dead_worker_fails_only_its_run_and_the_suite_goes_on(tmp_path, cli_env):
    suite = write(tmp_path, SUITE.replace("      - name: median\n", "      - name: dies\n      - name: median\n"))
    store = tmp_path / "r.sqlite"
    out = cli("run", suite, "--plugin", TOY, "--workers", "2", "--store", store, cwd=tmp_path, env=cli_env,
              timeout=300)
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr[-3000:]
    with sqlite3.connect(store) as conn:
        rows = {(r[0], r[1]): (r[2], r[3]) for r in conn.execute("SELECT method, seed, status, error FROM runs")}
    assert len(rows) == 6
    assert rows[("dies", 1)][0] == "failed" and "died (signal 9)" in rows[("dies", 1)][1]
    assert all(status == "done" for key, (status, _) in rows.items() if key != ("dies", 1))


def _children(pid: int) -> list[int]:
    import psutil

    try:
        return [c.pid for c in psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stopped_driver_leaves_no_process_behind(sig, tmp_path, cli_env):
    import psutil

    suite = write(tmp_path, SUITE.replace("n: 30", "n: 30, sleep: 20"))
    # as from a terminal: SIGINT at its default (a test run started in the background by a
    # non-interactive shell inherits SIGINT ignored, and so would the driver)
    driver = subprocess.Popen(robench_cmd("run", suite, "--plugin", TOY, "--workers", "2", "--store",
                                          tmp_path / "r.sqlite"), cwd=tmp_path, env=cli_env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 60
    while time.time() < deadline and len(_children(driver.pid)) < 2:
        time.sleep(0.2)
    time.sleep(3)  # the workers are inside their runs
    children = _children(driver.pid)
    assert children
    driver.send_signal(sig)
    try:
        driver.communicate(timeout=15)
    except subprocess.TimeoutExpired:  # where it hangs: the CLI prints its threads on SIGUSR1
        driver.send_signal(signal.SIGUSR1)
        time.sleep(2)
        driver.kill()
        _, err = driver.communicate()
        pytest.fail(f"the driver did not stop within 15 s of signal {sig}; its threads:\n{err[-6000:]}")
    assert driver.returncode == 130
    time.sleep(1)
    alive = [p for p in children if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    assert not alive, f"processes left running: {alive}"


def test_unwritable_artifacts_fail_that_run_and_the_suite_goes_on(tmp_path, toy_plugin, monkeypatch):
    real_rename = Path.rename
    calls = {"n": 0}

    def rename(self, target):
        calls["n"] += 1
        if calls["n"] == 1:
            raise PermissionError(13, "Permission denied")
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", rename)
    store = tmp_path / "r.sqlite"
    summary = api.run(write(tmp_path, SUITE), store=store, plugins=(TOY,), progress=False)
    assert summary.failed == 1 and summary.done == 3
    failed = api.results(store, status="failed")
    assert "could not store the run's artifacts" in failed.iloc[0]["error"]
    assert "\n" not in failed.iloc[0]["error"]


def test_partial_folders_of_killed_runs_are_removed(tmp_path, toy_plugin):
    store = tmp_path / "r.sqlite"
    api.run(write(tmp_path, SUITE), store=store, plugins=(TOY,), progress=False)
    leftover = tmp_path / "artifacts" / ".partial-0123456789abcdef-deadbeef"
    leftover.mkdir(parents=True)
    (leftover / "model.pt").write_text("half")
    api.run(write(tmp_path, SUITE), store=store, plugins=(TOY,), progress=False)
    assert not leftover.exists()


def test_store_creation_is_one_transaction(tmp_path, monkeypatch):
    """A failure between creating the tables and writing their meta rows leaves no tables
    (a killed creation used to leave a store every later command refused)."""
    import robench.store as store_module

    class Boom:
        def __str__(self):
            raise RuntimeError("killed here")

    monkeypatch.setattr(store_module, "SCHEMA_VERSION", Boom())
    path = tmp_path / "r.sqlite"
    with pytest.raises(RuntimeError, match="killed here"):
        store_module.Store(path)
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0
    monkeypatch.undo()
    store_module.Store(path).close()  # the next command creates the store normally


def _open_store(path: str) -> str:
    from robench.store import Store
    Store(path).close()
    return "ok"


def test_stores_created_concurrently_by_many_processes(tmp_path):
    # two drivers starting together on a fresh path both found no tables, and the second
    # one's meta rows collided with the first one's (seen on CI as "UNIQUE constraint failed")
    from concurrent.futures import ProcessPoolExecutor
    for attempt in range(5):
        path = str(tmp_path / f"s{attempt}.sqlite")
        with ProcessPoolExecutor(6) as pool:
            assert list(pool.map(_open_store, [path] * 12)) == ["ok"] * 12
        with sqlite3.connect(path) as conn:
            assert conn.execute("SELECT count(*) FROM meta").fetchone()[0] == 2


def _claim(args) -> bool:
    import os

    from robench.store import Store
    path, barrier_file = args
    with Store(path) as db:
        while not os.path.exists(barrier_file):  # then claim together
            pass
        return db.claim("run-x")


def test_a_run_is_claimed_by_exactly_one_of_many_drivers(tmp_path):
    # the check ("free?") and the take must be one write transaction, or two drivers both run it
    from concurrent.futures import ProcessPoolExecutor
    for attempt in range(4):
        path, go = str(tmp_path / f"c{attempt}.sqlite"), tmp_path / f"go{attempt}"
        from robench.store import Store
        Store(path).close()
        with ProcessPoolExecutor(8) as pool:
            futures = [pool.submit(_claim, (path, str(go))) for _ in range(8)]
            time.sleep(1.0)
            go.touch()
            assert sum(f.result() for f in futures) == 1


def test_two_drivers_on_one_store_share_the_work(tmp_path, cli_env):
    suite = write(tmp_path, SUITE.replace("n: 30", "n: 30, sleep: 1.5").replace("seeds: [0, 1]", "seeds: [0, 1, 2, 3]"))
    store = tmp_path / "r.sqlite"
    cmd = robench_cmd("run", suite, "--plugin", TOY, "--store", store)
    drivers = [subprocess.Popen(cmd, cwd=tmp_path, env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True) for _ in range(2)]
    outs = [d.communicate(timeout=180) for d in drivers]
    assert all(d.returncode == 0 for d in drivers), [o[1][-1500:] for o in outs]
    executed = (tmp_path / "cache" / "executed.log").read_text().split("\n")
    executed = [line for line in executed if line]
    assert len(executed) == 8 and len(set(executed)) == 8, executed  # each run computed once
    with sqlite3.connect(store) as conn:
        assert conn.execute("SELECT count(*) FROM runs WHERE status = 'done'").fetchone()[0] == 8


# -- cached files are verified ----------------------------------------------------------------
@pytest.mark.parametrize("damage", ["truncate", "overwrite"])
def test_a_damaged_cache_file_is_reported_recomputed_and_replaced(damage, tmp_path, capfd):
    from robench.cache import cached, verified

    path = tmp_path / "cache" / "entry.bin"
    payload = os.urandom(256 * 1024)
    computed = []

    def compute():
        computed.append(1)
        return payload

    def save(value, tmp):
        tmp.write_bytes(value)

    assert cached(path, compute, save, lambda p: p.read_bytes()) == (payload, False)
    assert verified(path)
    blob = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(blob[: len(blob) // 3])
    else:  # 64 KiB overwritten, same size
        path.write_bytes(blob[:4096] + b"\0" * 65536 + blob[4096 + 65536:])
    value, was_cached = cached(path, compute, save, lambda p: p.read_bytes())
    assert value == payload and not was_cached and len(computed) == 2
    assert verified(path)
    err = capfd.readouterr().err
    assert f"cache entry {path} failed its checksum (damaged); recomputing it" in err


def test_a_damaged_baseline_is_retrained_not_loaded(tmp_path, capfd):
    torch = pytest.importorskip("torch")
    from robench.training import TrainSpec, trained_baseline

    spec = TrainSpec(model="linear", dataset="mnist-5k", epochs=1, seed=0)
    first, info = trained_baseline(spec, tmp_path)
    Path(info["path"]).write_bytes(Path(info["path"]).read_bytes()[:1000])  # truncated
    again, info2 = trained_baseline(spec, tmp_path)
    assert not info2["cached"] and info2["test_accuracy"] == info["test_accuracy"]
    for a, b in zip(first.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)
    assert "failed its checksum" in capfd.readouterr().err


def test_cache_names_from_user_strings_stay_inside_the_cache(tmp_path):
    from robench.cache import safe_name
    from robench.training import TrainSpec, baseline_path

    rel = baseline_path(TrainSpec(model="../../x", dataset="/etc/passwd"))
    resolved = (tmp_path / rel).resolve()
    assert resolved.is_relative_to(tmp_path.resolve()) and resolved.parent == (tmp_path / "baselines").resolve()
    assert safe_name("..") == "_" and "/" not in safe_name("a/b")


# -- CI runs what it claims to run --------------------------------------------------------------
def test_browser_tests_skip_locally_but_fail_under_ci_without_a_browser(monkeypatch):
    from tests import browser

    monkeypatch.setattr(browser.shutil, "which", lambda name: None)  # no chromium here
    monkeypatch.delenv("CI", raising=False)
    assert "chromium is not installed" in browser.reason()  # a developer's machine: the tests skip
    with pytest.raises(pytest.skip.Exception):
        browser.require()
    for value in ("true", "1"):
        monkeypatch.setenv("CI", value)
        assert browser.reason() is None  # the tests' skipif marks do not skip...
        with pytest.raises(pytest.fail.Exception, match="chromium is not installed"):
            with browser.chromium():  # ...and opening the browser fails them
                pass


def test_ci_script_fails_when_chromium_cannot_be_installed(tmp_path):
    """.ci/run with `apt-get` failing and no chromium: it exits non-zero before the tests,
    instead of running them with the browser tests skipped."""
    import shutil

    repo = tmp_path / "repo"
    (repo / ".ci").mkdir(parents=True)
    shutil.copy(ROOT / ".ci" / "run", repo / ".ci" / "run")
    stubs, calls = tmp_path / "bin", tmp_path / "calls.log"
    stubs.mkdir()
    for name, status in (("python", 0), ("apt-get", 100)):  # pip installs succeed, apt-get fails
        (stubs / name).write_text(f'#!/bin/sh\necho "{name} $*" >> "{calls}"\nexit {status}\n')
        (stubs / name).chmod(0o755)
    for tool in ("dirname", "sh"):
        (stubs / tool).symlink_to(shutil.which(tool))
    out = subprocess.run([shutil.which("bash"), str(repo / ".ci" / "run")], env={"PATH": str(stubs)},
                         cwd=tmp_path, capture_output=True, text=True, timeout=60)
    log = calls.read_text()
    assert "apt-get install" in log or "apt-get update" in log, log
    assert out.returncode != 0, (out.stdout, out.stderr)
    assert "-m pytest" not in log, log
