"""The paper-scale suites (suites/papers-full/): each validates with the user's files named by
environment variables, and runs end to end on tiny files in the real formats (an ImageNet
folder of a few JPEGs per class, torchvision checkpoints, MNIST IDX files, CIFAR-10 batches,
face images, LSUN and Hedau files) with budget overrides; the figures code reads that store."""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import ROOT, check_one_line_user_error, head_favouring

SUITES = sorted((ROOT / "suites" / "papers-full").glob("*.yaml"))
FIGURES = {"dns": "dns", "inq": "inq", "sketching": "sketching", "sparse-robustness": "sparse-robustness",
           "deepdefense": "deepdefense", "dlnet": "dlnet", "stpio": "stpio"}

# what each task's runs are cut to here (the suites' own budgets are the paper-scale ones)
TINY = {
    "compression": dict(baseline_epochs=1, finetune_epochs=1, batch_size=4, latency_batch_size=2, latency_repeats=1),
    "sparsity_robustness": dict(baseline_epochs=1, finetune_epochs=1, batch_size=4, n_test=2, attack_batch_size=2,
                                attacks=None, attack_preset="smoke"),
    "robust_training": dict(baseline_epochs=8, epochs=1, batch_size=4, n_test=3, deepfool_steps=50, pgd_steps=2,
                            attack_preset=None, preset_factors=None, eval_batch_size=2),
    "restoration_spectrum": dict(image_size=16, width=8, n_train=8, train_steps=2, finetune_steps=2, batch_size=2),
    "room_layout": dict(image_size=32, epochs=1, n_train=4, n_test=2, batch_size=2),
}
CLASSES = ("n01440764", "n02102040", "n02979186")


def _jpegs(folder: Path, n: int, seed: int, size=(48, 40)):
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, size=(*size, 3), dtype=np.uint8)).save(folder / f"x{i}.JPEG")


def _idx(path: Path, array: np.ndarray, magic: int):
    path.write_bytes(struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape)
                     + array.astype(np.uint8).tobytes())


@pytest.fixture(scope="module")
def user_files(tmp_path_factory):
    """Tiny copies of every file the paper-scale suites read, in the real formats."""
    import torch

    from robench.models import build_model
    from robench.tasks.room_layout import synth
    from robench.tasks.room_layout.formats import write_hedau, write_lsun

    root = tmp_path_factory.mktemp("user-files")
    env = {}
    imagenet = root / "ilsvrc2012"
    for c, wnid in enumerate(CLASSES):
        _jpegs(imagenet / "train" / wnid, 2, seed=c)
    _jpegs(imagenet / "val" / CLASSES[0], 3, seed=10)
    env["ROBENCH_IMAGENET"] = str(imagenet)
    # untrained networks whose head favours class 0, the class of every validation image, by a
    # margin DeepFool can cross (robust_training needs some correctly classified points for its
    # eps_ref): their logits differ in scale (AlexNet's are ~0.01 at initialization)
    for name, variable, margin in (("tv:alexnet", "ROBENCH_ALEXNET_WEIGHTS", 0.005),
                                   ("tv:resnet18", "ROBENCH_RESNET18_WEIGHTS", 2.0)):
        torch.manual_seed(0)
        net = build_model(name, num_classes=len(CLASSES)).net  # the bare torchvision network, as its checkpoints
        head = net.fc if name == "tv:resnet18" else net.classifier[6]
        with torch.no_grad():
            head.bias[0] += margin
        path = root / f"{name[3:]}.pth"
        torch.save(net.state_dict(), path)
        env[variable] = str(path)
    mnist = root / "mnist" / "MNIST" / "raw"
    mnist.mkdir(parents=True)
    rng = np.random.default_rng(0)
    # two classes a few epochs can learn (dark and bright digits): robust_training needs a
    # classifier that gets some attacked points right
    for prefix, n in (("train", 12), ("t10k", 6)):
        labels = np.arange(n) % 2
        images = np.where(labels[:, None, None] == 1, 200, 30) + rng.integers(0, 40, size=(n, 28, 28))
        _idx(mnist / f"{prefix}-images-idx3-ubyte", images, 2051)
        _idx(mnist / f"{prefix}-labels-idx1-ubyte", labels, 2049)
    env["ROBENCH_MNIST"] = str(root / "mnist")
    cifar = root / "cifar10" / "cifar-10-batches-py"
    cifar.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        labels = [0, 1, 0, 1]
        data = np.where(np.array(labels)[:, None] == 1, 200, 30) + rng.integers(0, 40, size=(4, 3072))
        entry = {b"data": data.astype(np.uint8), b"labels": labels}
        (cifar / name).write_bytes(pickle.dumps(entry, protocol=3))
    (cifar / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"c%d" % i for i in range(10)]},
                                                      protocol=3))
    env["ROBENCH_CIFAR10"] = str(root / "cifar10")
    from PIL import Image
    for split, n, size in (("train", 3, (64, 64)), ("test", 2, (64, 80))):
        folder = root / "faces" / split
        folder.mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, size=(*size, 3), dtype=np.uint8)).save(folder / f"f{i}.png")
        env[f"ROBENCH_FACES_{split.upper()}"] = str(folder)
    write_lsun(root / "lsun", "train", synth.generate(4, 3, (40, 48), name_prefix="tr_"))
    write_lsun(root / "lsun", "val", synth.generate(2, 4, (40, 48), name_prefix="va_"))
    env["ROBENCH_LSUN"] = str(root / "lsun")
    write_hedau(root / "hedau", synth.generate(4, 3, (40, 40), name_prefix="a"),
                synth.generate(2, 4, (40, 40), name_prefix="b"))
    env["ROBENCH_HEDAU"] = str(root / "hedau")
    return env


def test_there_is_one_paper_scale_suite_per_paper_suite():
    assert {p.stem for p in SUITES} == {p.stem for p in (ROOT / "suites" / "papers").glob("*.yaml")}


@pytest.mark.parametrize("path", SUITES, ids=lambda p: p.stem)
def test_paper_scale_suite_validates_with_the_users_files(path, user_files, monkeypatch):
    import robench

    for name, value in user_files.items():
        monkeypatch.setenv(name, value)
    specs = robench.validate(path)  # names, parameters and the folders/files they point to
    header = path.read_text().split("\nsuite:")[0]
    assert "GPU-hour" in header and "Needs your files" in header
    assert all(spec.seed == 0 for spec in specs) and len(specs) >= 6


def test_an_unset_variable_is_one_line(monkeypatch):
    from robench.spec import load_suite

    monkeypatch.delenv("ROBENCH_IMAGENET", raising=False)
    check_one_line_user_error(lambda: load_suite(ROOT / "suites" / "papers-full" / "dns.yaml"),
                              "ROBENCH_IMAGENET is not set", "dataset_root")


# the one method of each task the end-to-end test runs (the suites' others share its code paths)
PICK = {"dns": "magnitude", "inq": "inq", "sketching": "sketch", "sparsity_robustness": "magnitude",
        "robust_training": "vanilla", "restoration_spectrum": "dlnet", "room_layout": "fcn"}


def favouring_weights(model: str, dataset: str, root: str, out: Path) -> str:
    """What the deepdefense suite's MNIST and CIFAR-10 tasks start from here instead of their
    trained vanilla models: the untrained ``model`` with a head favouring class 0 just enough
    for its test images (:func:`conftest.head_favouring`)."""
    from robench.data import load_dataset

    data = load_dataset(dataset, root)
    return head_favouring(model, data.num_classes, 0, out / f"{model}-{dataset}-favouring.pt",
                          images=data.test.x[data.test.y == 0])


def tiny_suite(path: Path, folder: Path) -> Path:
    """``path`` with every task's budget cut (TINY) and one method (PICK) at one grid point;
    deepdefense's vanilla models trained here are replaced by :func:`favouring_weights`."""
    import os

    data = yaml.safe_load(path.read_text())
    for entry in data["tasks"]:
        entry["params"] = {**entry["params"], **TINY[entry["task"]]}
        params = entry["params"]
        if path.stem == "deepdefense" and "weights" not in params:
            root = os.path.expandvars(params["dataset_root"])
            params["weights"] = favouring_weights(params["model"], params["dataset"], root, folder)
        wanted = PICK[path.stem] if entry["task"] == "compression" else PICK[entry["task"]]
        method = dict(next(m for m in entry["methods"] if m["name"] == wanted))
        if method.get("grid"):
            method["grid"] = {k: v[:1] for k, v in method["grid"].items()}
        entry["methods"] = [method]
    out = folder / path.name
    out.write_text(yaml.safe_dump(data))
    return out


# the cheapest suites end to end in every run (under 30 s each on the 2-core machine: dlnet, dns,
# stpio); all of them with `pytest -m paper_scale` (about 7 min there, the WRN-28-10 runs included)
IN_EVERY_RUN = {"dlnet", "dns", "stpio"}
END_TO_END = [pytest.param(p, marks=[] if p.stem in IN_EVERY_RUN else [pytest.mark.paper_scale]) for p in SUITES]


@pytest.mark.slow
@pytest.mark.parametrize("path", END_TO_END, ids=lambda p: p.stem)
def test_paper_scale_suite_runs_end_to_end_on_tiny_files(path, user_files, tmp_path, monkeypatch):
    import robench

    for name, value in user_files.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("ROBENCH_DATA_WORKERS", "0")
    store = tmp_path / "store.sqlite"
    summary = robench.run(tiny_suite(path, tmp_path), store=store, device="cpu", progress=False)
    frame = robench.results(store=store)
    failed = frame[frame["status"] != "ok"] if "status" in frame else frame.iloc[0:0]
    assert summary.failed == 0, [(r.get("task_label"), r.get("error")) for r in failed.to_dict("records")]
    assert len(frame) == summary.done and summary.done >= 1
    written = robench.figures(FIGURES[path.stem], store=store, out=tmp_path / "reports")
    assert written and all(Path(p).exists() for p in written)
    if path.stem == "dlnet":  # scored whole (eval_size: full): the report says so, not "crops"
        report = next(Path(p) for p in written if str(p).endswith(".md")).read_text()
        assert "whole test images" in report and "16×16 crops" not in report
