"""Bundles made by a hostile contributor: each one is refused with one line, or imported and
shown as the claim it is (unverified or claimed-only). None runs code, writes outside the
store, blocks a local run, or reaches the site as verified.

The attacker here knows robench: ids are recomputed with robench's own hashing and the
manifest's checksums are recomputed, so every check a bundle passes by construction is
bypassed, and what is left is what the maintainer's side proves.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import tracemalloc
import zipfile
from pathlib import Path

import pytest

from tests.conftest import check_one_line_user_error

SUITE = """
suite: hostile
seeds: [0]
tasks:
  - task: room_layout
    params: {image_size: 64, n_train: 24, n_test: 8, n_test_hard: 6, epochs: 1, batch_size: 8}
    methods:
      - name: prior
  - task: compression
    params: {model: lenet-300-100, baseline_epochs: 1, finetune_epochs: 1, batch_size: 128,
             latency_batch_size: 8, latency_repeats: 2}
    methods:
      - name: magnitude
        params: {sparsity: 0.9}
"""


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A store with an honest room_layout and compression run, and its honest bundle."""
    from robench import api

    root = tmp_path_factory.mktemp("hostile")
    (root / "s.yaml").write_text(SUITE)
    store = root / "a" / "results.sqlite"
    assert api.run(root / "s.yaml", store=store, progress=False).done == 2
    bundle = root / "honest.zip"
    api.export(bundle, store)
    return store, bundle, root / "s.yaml"


def members_of(bundle: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(bundle) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def forge(members: dict[str, bytes], path: Path, edit=None, respec: bool = True) -> Path:
    """A bundle of ``members`` whose runs were changed by ``edit(run)``, with run ids
    (``respec``) and the manifest's checksums recomputed as a knowing attacker would."""
    from robench.spec import RunSpec

    members = dict(members)
    runs = json.loads(members["runs.json"])
    for run in runs:
        old = run["id"]
        if edit is not None:
            edit(run)
        if respec:
            spec = RunSpec(**{k: run[k] for k in ("task", "task_params", "method", "method_params", "seed",
                                                  "task_version", "method_version", "components")})
            run["id"], run["config_id"] = spec.id, spec.config_id
        if run["id"] != old:
            run["artifacts"] = {k: run["id"] + v[len(old):] for k, v in run["artifacts"].items()}
            for name in [n for n in members if n.startswith(f"artifacts/{old}/")]:
                members[f"artifacts/{run['id']}/" + name[len(f"artifacts/{old}/"):]] = members.pop(name)
    members["runs.json"] = json.dumps(runs).encode()
    manifest = json.loads(members["manifest.json"])
    manifest["runs"] = [r["id"] for r in runs]
    manifest["files"] = {n: hashlib.sha256(d).hexdigest() for n, d in members.items() if n != "manifest.json"}
    members["manifest.json"] = json.dumps(manifest).encode()
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def only(task: str):
    """An edit that keeps the runs of ``task`` only."""
    def keep(members):
        runs = [r for r in json.loads(members["runs.json"]) if r["task"] == task]
        ids = {r["id"] for r in runs}
        out = {n: d for n, d in members.items() if not n.startswith("artifacts/") or n.split("/")[1] in ids}
        out["runs.json"] = json.dumps(runs).encode()
        return out
    return keep


def artifact(members: dict, task: str, name: str) -> str:
    run = next(r for r in json.loads(members["runs.json"]) if r["task"] == task)
    return f"artifacts/{run['artifacts'][name]}"


class Evil:
    """A pickle that, when loaded by pickle itself, writes ``marker``."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def store_state(store: Path) -> tuple:
    folder = store.parent
    return tuple(sorted((str(p.relative_to(folder)), p.read_bytes() if p.is_file() else b"")
                        for p in folder.rglob("*") if "-wal" not in p.name and "-shm" not in p.name))


def check_refused(path: Path, store: Path, *words, **kw):
    """Importing ``path`` into ``store`` is one line naming ``words``, and changes nothing."""
    from robench import api

    before = store_state(store) if store.exists() else None
    message = check_one_line_user_error(lambda: api.import_bundle(path, store, **kw), *words)
    assert "nothing was imported" in message
    assert (store_state(store) if store.exists() else None) == before
    return message


# ------------------------------------------------------------------ refused at import

@pytest.mark.parametrize("case, words", [
    ("sparsity out of range", ("method_params", "sparsity")),
    ("wrong type", ("task_params.n_test",)),
    ("unknown task", ("unknown task 'evil'",)),
    ("unknown method", ("unknown method 'evil'",)),
    ("unknown model", ("task_params.model", "unknown model")),
    ("old task version", ("version 0", "this robench has version")),
    ("claimed plug-in code for a built-in", ("model:lenet-300-100",)),
    ("suite name with a slash", ("suites",)),
])
def test_an_invalid_run_is_refused_even_with_a_recomputed_id(source, tmp_path, case, words):
    _, bundle, _ = source
    compression = dict(
        **{"sparsity out of range": lambda r: r["method_params"].update(sparsity=5.0),
           "wrong type": lambda r: r["task_params"].update(n_test="many"),
           "unknown task": lambda r: r.update(task="evil"),
           "unknown method": lambda r: r.update(method="evil"),
           "unknown model": lambda r: r["task_params"].update(model="evil-net"),
           "old task version": lambda r: r.update(task_version="0"),
           "claimed plug-in code for a built-in": lambda r: r["components"].update(
               {"model:lenet-300-100": "v1+src:0123456789ab"}),
           "suite name with a slash": lambda r: r.update(suites=["../x"])})[case]
    path = forge(members_of(bundle), tmp_path / "bad.zip",
                 lambda r: compression(r) if r["task"] == "compression" else None)
    check_refused(path, tmp_path / "b" / "results.sqlite", *words)


@pytest.mark.parametrize("case, words", [
    ("html artifact", ("x.html", "not a data file")),
    ("svg artifact", ("evil.svg", "not a data file")),
    ("file beside its folder", ("both a file and a folder",)),
    ("file that is no bundle's", ("notes.sh", "not a file of a bundle")),
])
def test_files_a_bundle_cannot_hold_are_refused(source, tmp_path, case, words):
    _, bundle, _ = source
    members = members_of(bundle)
    run = next(r for r in json.loads(members["runs.json"]) if r["task"] == "room_layout")
    rid = run["id"]
    if case == "html artifact":
        members[f"artifacts/{rid}/x.html"] = b"<script>alert(1)</script>"
        edit = lambda r: r["artifacts"].update(page=f"{rid}/x.html") if r["id"] == rid else None  # noqa: E731
    elif case == "svg artifact":
        members[f"artifacts/{rid}/evil.svg"] = b"<svg onload='alert(1)'/>"
        edit = lambda r: r["artifacts"].update(plot=f"{rid}/evil.svg") if r["id"] == rid else None  # noqa: E731
    elif case == "file beside its folder":
        members[f"artifacts/{rid}/x.json"] = b"{}"
        members[f"artifacts/{rid}/x.json/y.json"] = b"{}"
        edit = lambda r: r["artifacts"].update(a=f"{rid}/x.json", b=f"{rid}/x.json/y.json") \
            if r["id"] == rid else None  # noqa: E731
    else:
        members["notes.sh"] = b"rm -rf ~"
        edit = None
    check_refused(forge(members, tmp_path / "bad.zip", edit, respec=False), tmp_path / "b" / "results.sqlite", *words)


def test_size_limits_refuse_a_zip_bomb_before_reading_it(source, tmp_path):
    from robench.bundle import Limits

    _, bundle, _ = source
    members = members_of(bundle)
    members[artifact(members, "compression", "model")] = bytes(64 << 20)  # 64 MiB of zeros: ~64 KiB zipped
    path = forge(members, tmp_path / "bomb.zip", respec=False)
    assert path.stat().st_size < 1 << 20
    store = tmp_path / "b" / "results.sqlite"
    check_refused(path, store, "model.pt", "--max-file-bytes", limits=Limits(max_file_bytes=16 << 20))
    check_refused(path, store, "--max-bytes", limits=Limits(max_bytes=32 << 20))
    check_refused(path, store, "--max-files", limits=Limits(max_files=3))


def test_a_large_member_is_streamed_not_read_whole(source, tmp_path):
    """Within the limits a big artifact is extracted in blocks: memory stays far below its size."""
    from robench import api

    _, bundle, _ = source
    members = members_of(bundle)
    members[artifact(members, "compression", "model")] = bytes(64 << 20)
    path = forge(members, tmp_path / "big.zip", respec=False)
    tracemalloc.start()
    try:
        api.import_bundle(path, tmp_path / "b" / "results.sqlite")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, f"peak {peak / 2**20:.0f} MiB for a 64 MiB member"


# ------------------------------------------------------------------ imported as claims

def test_a_forged_claim_never_blocks_a_local_run(source, tmp_path):
    """A doctored claim of the exact configuration is imported, yet `robench run` computes
    the run, the site ranks the local result, and the local artifacts are untouched."""
    from robench import api

    _, bundle, suite = source
    doctored = forge(members_of(bundle), tmp_path / "fake.zip",
                     lambda r: r["metrics"].update({r["primary_metric"]: 0.999}), respec=False)
    store = tmp_path / "b" / "results.sqlite"
    assert len(api.import_bundle(doctored, store)["imported"]) == 2
    summary = api.run(suite, store=store, progress=False)
    assert summary.done == 2 and summary.skipped == 0
    frame = api.results(store)
    assert sorted(frame["origin"].map(lambda o: o.split(":")[0])) == ["bundle", "bundle", "local", "local"]
    ranked = api.trusted(frame)
    assert list(ranked["origin"]) == ["local", "local"]
    assert 0.999 not in set(ranked["primary_value"])
    local = frame[frame["origin"] == "local"].iloc[0]
    files = {p: Path(p).read_bytes() for p in local["artifacts"].values()}
    assert len(api.import_bundle(forge(members_of(bundle), tmp_path / "fake2.zip",
                                       lambda r: r["metrics"].update(x=1.0), respec=False), store)["imported"]) == 2
    assert {p: Path(p).read_bytes() for p in local["artifacts"].values()} == files  # a later import: untouched
    again = api.run(suite, store=store, progress=False)
    assert again.skipped == 2 and again.done == 0  # the local runs count as done, the claims never did


def test_derivable_fields_are_rederived_not_taken(source, tmp_path):
    """A dense-looking run labelled as another method, a primary metric renamed, the
    direction flipped, the primary value edited: the store holds what the spec says."""
    from robench import api

    _, bundle, _ = source

    def lie(run):
        if run["task"] == "compression":
            run.update(method_label="dns (sparsity=0.99)", task_label="resnet-50 on imagenet",
                       primary_metric="sparsity", greater_is_better=False, primary_value=0.999)
    store = tmp_path / "b" / "results.sqlite"
    api.import_bundle(forge(members_of(bundle), tmp_path / "lie.zip", lie, respec=False), store)
    row = api.results(store, task="compression").iloc[0]
    assert row["method_label"] == "magnitude(sparsity=0.9)"
    assert "resnet" not in row["task_label"]
    assert row["primary_metric"] == "accuracy" and bool(row["greater_is_better"])
    assert row["primary_value"] == row["metrics"]["accuracy"]


def test_task_info_from_a_bundle_is_ignored(source, tmp_path):
    """task_info.json claiming an unknown task and a plot named '../../x': the store records
    what the task's code here says, and the site writes nothing outside its folder."""
    from robench import api

    _, bundle, _ = source
    members = members_of(bundle)
    info = json.loads(members["task_info.json"])
    for task in info.values():
        task[1]["plots"] = [{"name": "../../escaped", "x": "sparsity", "y": "accuracy"}]
        task[1]["primary_metric"] = "latency_ms"
    info["no-such-task"] = ["1", {"plots": [{"name": "/tmp/x", "x": "a", "y": "b"}]}]
    members["task_info.json"] = json.dumps(info).encode()
    store = tmp_path / "b" / "results.sqlite"
    api.import_bundle(forge(members, tmp_path / "info.zip", respec=False), store)
    from robench.store import Store
    with Store(store, create=False) as db:
        recorded = db.task_info()
    assert set(recorded) == {"compression", "room_layout"}
    assert recorded["compression"]["primary_metric"] == "accuracy"
    assert all("../" not in p["name"] for t in recorded.values() for p in t["plots"])


def test_two_claims_of_one_run_keep_their_own_verdicts(source, tmp_path):
    """An honest and a doctored bundle claim the same run ids: both are stored; verify
    verifies one and not the other; the merged site of two stores keeps each verdict on its
    own claim (a fake never wears another claim's badge)."""
    from robench import api

    _, honest, _ = source
    fake = forge(members_of(honest), tmp_path / "fake.zip",
                 lambda r: r["metrics"].update({r["primary_metric"]: r["metrics"][r["primary_metric"]] + 0.05}),
                 respec=False)
    a, b = tmp_path / "a" / "results.sqlite", tmp_path / "b" / "results.sqlite"
    api.import_bundle(fake, a)
    api.import_bundle(honest, b)
    api.import_bundle(fake, b)
    verdicts = api.verify(b)
    by_origin = {}
    for v in verdicts:
        by_origin.setdefault(v.origin, set()).add(v.status)
    assert sorted(map(tuple, by_origin.values())) == [("unverified",), ("verified",)]
    api.verify(a)
    merged = api.merged_results([a, b])
    assert len(merged) == 4 and merged["id"].nunique() == 2
    for _, row in merged.iterrows():
        status = row["verification"]["status"]
        honest_claim = row["origin"] == f"bundle:{hashlib.sha256(honest.read_bytes()).hexdigest()}"
        assert status == ("verified" if honest_claim else "unverified"), (row["origin"], status)
    ranked = api.trusted(merged)
    assert len(ranked) == 2 and all(v["status"] == "verified" for v in ranked["verification"])


def test_claimed_metrics_are_listed_as_claimed_not_verified(source, tmp_path):
    """Edited wall-clock numbers cannot be re-scored: the claim verifies, but those metrics
    are listed as claimed; an edited baseline accuracy is re-scored and caught."""
    from robench import api

    _, bundle, _ = source
    store = tmp_path / "b" / "results.sqlite"
    fast = forge(members_of(bundle), tmp_path / "fast.zip",
                 lambda r: r["metrics"].update(latency_ms=0.001, speedup_measured=999.0)
                 if r["task"] == "compression" else None, respec=False)
    api.import_bundle(fast, store)
    (verdict,) = [v for v in api.verify(store) if v.task == "compression"]
    assert verdict.status == "verified"
    assert {"latency_ms", "speedup_measured"} <= set(verdict.claimed)
    assert not {"latency_ms", "speedup_measured"} & set(verdict.rescored)
    assert "accuracy" in verdict.rescored
    stored = api.results(store, task="compression").iloc[0]["verification"]
    assert "latency_ms" in stored["claimed"] and "accuracy" in stored["rescored"]


def test_an_edited_baseline_accuracy_is_caught(source, tmp_path):
    from robench import api

    _, bundle, _ = source
    store = tmp_path / "b" / "results.sqlite"
    better = forge(members_of(bundle), tmp_path / "b.zip",
                   lambda r: r["metrics"].update(baseline_accuracy=0.2, accuracy_delta=0.5)
                   if r["task"] == "compression" else None, respec=False)
    api.import_bundle(better, store)
    (verdict,) = [v for v in api.verify(store) if v.task == "compression"]
    assert verdict.status == "unverified" and {"baseline_accuracy", "accuracy_delta"} <= set(verdict.differences)


@pytest.mark.parametrize("case", ["malicious pickle", "wrong shapes", "not a model"])
def test_a_hostile_model_file_is_unverified_in_one_line_and_runs_nothing(source, tmp_path, case):
    import torch

    from robench import api

    _, bundle, _ = source
    members = members_of(bundle)
    marker = tmp_path / "pwned"
    name = artifact(members, "compression", "model")
    if case == "malicious pickle":
        members[name] = pickle.dumps(Evil(marker))
    elif case == "wrong shapes":
        buffer = io.BytesIO()
        torch.save({"net.0.weight": torch.zeros(3, 3)}, buffer)
        members[name] = buffer.getvalue()
    else:
        members[name] = b"\x00" * 1000
    store = tmp_path / "b" / "results.sqlite"
    api.import_bundle(forge(members, tmp_path / "m.zip", respec=False), store)
    verdicts = {v.task: v for v in api.verify(store)}
    bad = verdicts["compression"]
    assert bad.status == "unverified" and "\n" not in bad.note and bad.note
    assert "Traceback" not in bad.note
    assert verdicts["room_layout"].status == "verified"  # the other claim goes on
    assert not marker.exists()


def test_a_folder_parameter_of_a_claim_is_never_read(source, tmp_path):
    """A claim whose dataset_root names a folder of the attacker's choosing (holding a
    CIFAR batch that is a malicious pickle): verify never reads it; it asks for the
    maintainer's copy, and a folder the maintainer gives is read with a loader that
    unpickles nothing."""
    from robench import api

    _, bundle, _ = source
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil" / "cifar-10-batches-py"
    evil.mkdir(parents=True)
    for name in ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch",
                 "batches.meta"):
        (evil / name).write_bytes(pickle.dumps(Evil(marker)))

    def to_cifar(run):
        if run["task"] == "compression":
            run["task_params"].update(dataset="cifar10", dataset_root=str(evil.parent), model="lenet-5")
    store = tmp_path / "b" / "results.sqlite"
    api.import_bundle(forge(only("compression")(members_of(bundle)), tmp_path / "c.zip", to_cifar), store)
    (verdict,) = api.verify(store)
    assert verdict.status == "skipped" and "--data-root cifar10=PATH" in verdict.note
    assert not marker.exists()
    verdicts = api.verify(store, data_roots={"cifar10": str(evil.parent)})
    assert verdicts[0].status == "unverified" and "\n" not in verdicts[0].note
    assert not marker.exists()


def test_a_plugin_model_run_can_be_imported_and_verified_with_its_plugin(tmp_path):
    """A run whose id includes a plug-in model's identity imports (its components travel
    in the bundle); verify needs the plug-in, and a different plug-in source is refused."""
    import subprocess
    import sys

    plugin = tmp_path / "mine.py"
    plugin.write_text("from torch import nn\nfrom robench import register_model\n\n"
                      "@register_model('hostile-test-mlp')\n"
                      "def mlp(num_classes=10, in_channels=1, **kw):\n"
                      "    return nn.Sequential(nn.Flatten(), nn.Linear(784, 16), nn.ReLU(), nn.Linear(16, num_classes))\n")
    store_a, store_b = tmp_path / "a" / "results.sqlite", tmp_path / "b" / "results.sqlite"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}

    def robench(*args):
        return subprocess.run([sys.executable, "-m", "robench.cli", *map(str, args)], capture_output=True,
                              text=True, env=env, timeout=600)
    ran = robench("run", "--task", "compression", "--method", "dense", "--plugin", plugin, "--store", store_a,
                  "--param", "model=hostile-test-mlp", "--param", "baseline_epochs=1", "--param",
                  "finetune_epochs=1", "--param", "latency_repeats=2", "--param", "latency_batch_size=8")
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert robench("export", "-o", tmp_path / "p.zip", "--store", store_a).returncode == 0
    imported = robench("import", tmp_path / "p.zip", "--store", store_b)
    assert imported.returncode == 0, imported.stderr
    verified = robench("verify", "--store", store_b)
    assert verified.returncode == 0 and "skipped" in verified.stdout and "--plugin" in verified.stdout
    verified = robench("verify", "--store", store_b, "--plugin", plugin)
    assert verified.returncode == 0 and "verified " in verified.stdout, verified.stdout + verified.stderr
    plugin.write_text(plugin.read_text().replace("16", "32"))  # other code under the same name
    other = robench("import", tmp_path / "p.zip", "--store", tmp_path / "c" / "results.sqlite", "--plugin", plugin)
    assert other.returncode == 2 and other.stderr.count("\n") == 1 and "expected the same code" in other.stderr


def test_a_store_of_the_first_publishing_format_is_migrated(source, tmp_path):
    """Runs imported by an earlier robench sat in `runs`, listed in `imports`, with verdicts
    that compared fewer metrics: on open they move to the claims (by their bundle), the
    old verdicts are dropped, and `robench run` no longer counts them as done."""
    import shutil
    import sqlite3

    from robench import api

    store, bundle, suite = source
    old = tmp_path / "old" / "results.sqlite"
    old.parent.mkdir()
    shutil.copyfile(store, old)
    shutil.copytree(store.parent / "artifacts", old.parent / "artifacts")
    conn = sqlite3.connect(old)
    ids = [r[0] for r in conn.execute("SELECT id FROM runs")]
    with conn:
        conn.execute("DROP TABLE IF EXISTS imported_runs")
        conn.execute("DROP TABLE IF EXISTS verdicts")
        conn.execute("ALTER TABLE runs DROP COLUMN components")
        conn.execute("CREATE TABLE imports (run_id TEXT PRIMARY KEY, source TEXT NOT NULL, "
                     "bundle_sha256 TEXT NOT NULL, imported_at TEXT NOT NULL)")
        conn.execute("CREATE TABLE verifications (run_id TEXT PRIMARY KEY, status TEXT NOT NULL, "
                     "checked_at TEXT NOT NULL, details TEXT NOT NULL)")
        conn.executemany("INSERT INTO imports VALUES (?, 'x.zip', 'ab' || ?, '2026-01-01')", [(i, i) for i in ids])
        conn.executemany("INSERT INTO verifications VALUES (?, 'verified', '2026-01-01', '{}')", [(i,) for i in ids])
    conn.close()
    frame = api.results(old)
    assert len(frame) == 2 and all(o.startswith("bundle:ab") for o in frame["origin"])
    assert all(v["status"] == "imported" for v in frame["verification"])  # old verdicts dropped
    assert api.trusted(frame).empty
    assert {v.status for v in api.verify(old)} == {"verified"}  # artifacts found where the old import put them
    assert api.run(suite, store=old, progress=False).done == 2


@pytest.mark.parametrize("args, words", [
    (["verify", "--data-root", "cifar10"], ["--data-root cifar10", "NAME=PATH"]),
    (["verify", "--data-root", "cifar10=/no/such/folder"], ["no such folder /no/such/folder"]),
    (["import", "x.zip", "--max-bytes", "lots"], ["--max-bytes lots", "a size in bytes"]),
])
def test_bad_import_and_verify_options_are_one_line(tmp_path, args, words):
    from typer.testing import CliRunner

    from robench.cli import app

    store = tmp_path / "s.sqlite"
    result = CliRunner().invoke(app, [*args, "--store", str(store)])
    assert result.exit_code == 2, result.output
    assert result.output.count("\n") == 1 and all(w in result.output for w in words), result.output
    assert not store.exists()
