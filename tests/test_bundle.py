"""Bundles and verification on real (tiny) runs: export from one store, import into
another, re-score from the artifacts; a tampered bundle is refused or flagged unverified,
and a bad one is one line that changes nothing."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import bundle_members as _members, edit_bundle_runs as _edit_runs, write_bundle as _write

from robench.errors import UserError

SUITE = """
suite: tiny-publish
seeds: [0]
tasks:
  - task: room_layout
    params: {image_size: 64, n_train: 24, n_test: 8, n_test_hard: 6, epochs: 1, batch_size: 8}
    methods:
      - name: prior
  - task: restoration_spectrum
    params: {family: super_resolution, image_size: 16, width: 4, n_train: 16, train_steps: 3, finetune_steps: 2,
             batch_size: 4, n_test_per_image: 2}
    methods:
      - name: bicubic
"""


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A store with one room_layout and one restoration_spectrum run (seconds), and its bundle."""
    from robench import api

    root = tmp_path_factory.mktemp("bundle")
    suite = root / "tiny.yaml"
    suite.write_text(SUITE)
    store = root / "a" / "results.sqlite"
    summary = api.run(suite, store=store, progress=False)
    assert summary.done == 2, summary
    bundle = root / "runs.zip"
    api.export(bundle, store, suite="tiny-publish")
    return store, bundle


def _npz(data: bytes, change) -> bytes:
    with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
        arrays = dict(arrays)
    change(arrays)
    out = io.BytesIO()
    np.savez_compressed(out, **arrays)
    return out.getvalue()


def test_export_import_verify_shows_the_same_metrics(source, tmp_path):
    from typer.testing import CliRunner

    from robench import api
    from robench.cli import app

    store, bundle = source
    target = tmp_path / "b" / "results.sqlite"
    result = CliRunner().invoke(app, ["import", str(bundle), "--store", str(target)])
    assert result.exit_code == 0 and "2 runs imported as claims" in result.output, result.output
    a, b = api.results(store).set_index("id"), api.results(target).set_index("id")
    assert set(b["origin"]) == {f"bundle:{hashlib.sha256(bundle.read_bytes()).hexdigest()}"}
    assert sorted(a.index) == sorted(b.index)
    for run_id in a.index:
        assert a.at[run_id, "metrics"] == b.at[run_id, "metrics"]
        assert a.at[run_id, "suites"] == b.at[run_id, "suites"] == ["tiny-publish"]
        assert Path(b.at[run_id, "artifacts"][next(iter(b.at[run_id, "artifacts"]))]).is_file()
    result = CliRunner().invoke(app, ["verify", "--store", str(target)])
    assert result.exit_code == 0, result.output
    assert result.output.count("verified    ") == 2 and "2 claims: 2 verified, 0 unverified" in result.output
    again = api.import_bundle(bundle, target)  # a second import adds nothing
    assert again["imported"] == [] and len(again["skipped"]) == 2
    site = api.leaderboard(tmp_path / "site", target).parent
    pages = "".join(p.read_text() for p in (site / "runs").glob("*.html"))
    assert pages.count('<span class="badge verified">verified</span>') == 2
    assert "equal to what the run claims" in pages


def test_an_edited_metric_is_refused_by_its_checksum(source, tmp_path):
    from typer.testing import CliRunner

    from robench.cli import app

    _, bundle = source
    members = _edit_runs(_members(bundle), lambda run: run["metrics"].update(
        {k: v * 0.5 for k, v in run["metrics"].items()}))
    bad = _write(members, tmp_path / "edited.zip", checksums=False)
    target = tmp_path / "b" / "results.sqlite"
    result = CliRunner().invoke(app, ["import", str(bad), "--store", str(target)])
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and "runs.json: checksum mismatch" in result.output
    assert "Traceback" not in result.output
    assert not target.exists()  # nothing was created


def test_an_edited_metric_with_new_checksums_is_flagged_unverified(source, tmp_path):
    from typer.testing import CliRunner

    from robench import api
    from robench.cli import app

    _, bundle = source

    def better(run):
        if run["task"] == "room_layout":
            run["metrics"]["pixel_error"] = 0.01  # a claim its predictions do not support
            run["primary_value"] = 0.01
    bad = _write(_edit_runs(_members(bundle), better), tmp_path / "edited.zip")
    target = tmp_path / "b" / "results.sqlite"
    api.import_bundle(bad, target)
    result = CliRunner().invoke(app, ["verify", "--store", str(target)])
    assert result.exit_code == 1
    assert "UNVERIFIED" in result.output and "pixel_error: claimed 0.01" in result.output
    assert "2 claims: 1 verified, 1 unverified" in result.output
    site = api.leaderboard(tmp_path / "site", target).parent
    page = (site / "room_layout.html").read_text()
    assert '<span class="badge unverified"' in page


def test_a_swapped_artifact_is_flagged_unverified(source, tmp_path):
    from robench import api

    _, bundle = source
    members = _members(bundle)
    name = next(n for n in members if n.endswith("restored.npz"))
    members[name] = _npz(members[name], lambda a: a.update(restored_0=a["restored_0"][::-1].copy()))  # images swapped
    target = tmp_path / "b" / "results.sqlite"
    api.import_bundle(_write(members, tmp_path / "swapped.zip"), target)
    verdicts = {v.task: v for v in api.verify(target)}
    assert verdicts["room_layout"].status == "verified"
    bad = verdicts["restoration_spectrum"]
    assert bad.status == "unverified" and {"psnr_mean", "ssim_mean"} <= set(bad.differences)
    assert api.merged_results([target]).set_index("task").at["restoration_spectrum", "verification"]["status"] \
        == "unverified"


@pytest.mark.parametrize("case, message", [
    ("not a zip", "not a zip file"),
    ("no manifest", "no manifest.json"),
    ("newer", "written by a newer robench"),
    ("params edited", "its id is not the hash of its spec"),
    ("extra file", "is not listed in manifest.json"),
    ("artifact missing", "is listed in manifest.json but missing"),
    ("unsafe name", "unsafe file name"),
])
def test_a_bad_bundle_is_one_line_and_changes_nothing(source, tmp_path, case, message):
    from robench import api

    store, bundle = source
    members = _members(bundle)
    path = tmp_path / "bad.zip"
    if case == "not a zip":
        path.write_bytes(b"PK not really")
    elif case == "no manifest":
        _write({k: v for k, v in members.items() if k != "manifest.json"}, path, checksums=False)
    elif case == "newer":
        manifest = json.loads(members["manifest.json"])
        manifest["version"] = 99
        _write({**members, "manifest.json": json.dumps(manifest).encode()}, path, checksums=False)
    elif case == "params edited":
        _write(_edit_runs(members, lambda run: run["task_params"].update(image_size=24)
                          if run["task"] == "restoration_spectrum" else None), path)
    elif case == "extra file":
        members = {**members, "notes.txt": b"hello"}
        _write(members, path, checksums=False)
    elif case == "artifact missing":
        _write({k: v for k, v in members.items() if not k.endswith(".npz") or "restored" not in k}, path,
               checksums=False)
    elif case == "unsafe name":
        _write({**members, "../evil.txt": b"x"}, path)
    target = store  # the source store itself: it must not change
    before = (target.read_bytes(), sorted(p.name for p in (target.parent / "artifacts").iterdir()))
    with pytest.raises(UserError, match=message) as err:
        api.import_bundle(path, target)
    assert "\n" not in str(err.value)
    assert "nothing was imported" in str(err.value)
    assert (target.read_bytes(), sorted(p.name for p in (target.parent / "artifacts").iterdir())) == before


def test_export_selects_runs_and_says_what_is_wrong(source, tmp_path):
    from robench import api

    store, _ = source
    with pytest.raises(UserError, match="no run of suite 'nope'"):
        api.export(tmp_path / "x.zip", store, suite="nope")
    with pytest.raises(UserError, match="with an id starting 'zzz'"):
        api.export(tmp_path / "x.zip", store, run_ids=["zzz"])
    run_id = api.results(store, task="room_layout")["id"].iloc[0]
    summary = api.export(tmp_path / "one.zip", store, run_ids=[run_id[:6]])
    assert summary["runs"] == 1 and not (tmp_path / "x.zip").exists()
    names = set(_members(tmp_path / "one.zip"))
    assert {"manifest.json", "runs.json", "task_info.json", f"artifacts/{run_id}/predictions.npz"} == names


@pytest.mark.slow
def test_a_compression_run_reverifies_from_its_model(tmp_path):
    """compression re-scores model.pt (accuracy, compression, sparsity, storage)."""
    from robench import api

    suite = tmp_path / "c.yaml"
    suite.write_text("suite: c\nseeds: [0]\ntasks:\n  - task: compression\n    params: {model: lenet-300-100, "
                     "baseline_epochs: 1, finetune_epochs: 1, batch_size: 128, latency_batch_size: 8, "
                     "latency_repeats: 2}\n    methods:\n      - name: magnitude\n        params: {sparsity: 0.9}\n")
    store = tmp_path / "a" / "results.sqlite"
    assert api.run(suite, store=store, progress=False).done == 1
    api.export(tmp_path / "c.zip", store)
    api.import_bundle(tmp_path / "c.zip", tmp_path / "b" / "results.sqlite")
    (verdict,) = api.verify(tmp_path / "b" / "results.sqlite")
    assert verdict.status == "verified", verdict
    assert {"accuracy", "compression_ratio", "compression_ratio_bits", "sparsity"} <= set(verdict.rescored)
