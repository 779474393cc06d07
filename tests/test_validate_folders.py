"""Folder parameters are checked by `robench validate` (and `run` before it starts): a
missing folder is one line and exit 2, with nothing stored."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("param, value, words", [
    ("root", "MISSING", ["tasks[0].params.root", "no such folder"]),
    ("root", "FILE", ["tasks[0].params.root", "is a file"]),
    ("train_root", "MISSING", ["tasks[0].params.train_root", "no such folder"]),
])
def test_a_missing_folder_is_refused_before_running(tmp_path, param, value, words, cli_env):
    import subprocess

    from tests.conftest import robench_cmd

    path = tmp_path / "nope" if value == "MISSING" else tmp_path / "a-file"
    if value == "FILE":
        path.write_text("x")
    images = tmp_path / "images"
    images.mkdir()
    (images / "a.png").write_bytes(b"")  # only its name matters to validate
    other = "train_root" if param == "root" else "root"
    out = subprocess.run(robench_cmd("run", "--task", "restoration_spectrum", "--method", "bicubic",
                                     "--param", "dataset=folder", "--param", f"{param}={path}",
                                     "--param", f"{other}={images}", "--store", tmp_path / "r.sqlite"),
                         capture_output=True, text=True, env=cli_env, cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert out.stderr.count("\n") == 1 and all(w in out.stderr for w in words), out.stderr
    assert not (tmp_path / "r.sqlite").exists()


@pytest.mark.parametrize("task, params, words", [
    ("restoration_spectrum", ["dataset=folder", "root=EMPTY", "train_root=EMPTY"],
     ["tasks[0].params.root", "does not hold any png/jpg/jpeg/bmp image"]),
    ("room_layout", ["dataset=lsun", "root=EMPTY"], ["tasks[0].params.root", "does not hold training.mat"]),
    ("room_layout", ["dataset=hedau", "root=EMPTY"], ["tasks[0].params.root", "does not hold traintestind.mat"]),
])
def test_a_folder_without_the_files_the_task_reads_is_refused(tmp_path, task, params, words, cli_env):
    import subprocess

    from tests.conftest import robench_cmd

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("not data")
    method = "bicubic" if task == "restoration_spectrum" else "prior"
    args = [a for p in params for a in ("--param", p.replace("EMPTY", str(empty)))]
    out = subprocess.run(robench_cmd("run", "--task", task, "--method", method, *args, "--store", tmp_path / "r.sqlite"),
                         capture_output=True, text=True, env=cli_env, cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert out.stderr.count("\n") == 1 and all(w in out.stderr for w in words), out.stderr
    assert not (tmp_path / "r.sqlite").exists()
