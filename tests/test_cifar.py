"""CIFAR-10 (real python-pickle batches, tiny) and the CIFAR ConvNet."""

import io
import os
import pickle
import re
import struct
import subprocess

import numpy as np
import pytest
import torch

from robench.data import load_dataset
from robench.errors import UserError
from robench.models import build_model
from conftest import robench_cmd

N_TRAIN_PER_BATCH, N_TEST = 3, 4
LABEL_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


class Py2Pickler(pickle._Pickler):
    """Pickle as the CIFAR-10 release was written (Python 2, protocol 2): byte strings are
    Python 2 ``str`` opcodes and numpy arrays reference ``numpy.core.multiarray``. Loaded with
    ``encoding="bytes"`` the dict keys come back as b"data", b"labels" like the real files."""
    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_str(self, obj):
        n = len(obj)
        self.write(pickle.SHORT_BINSTRING + bytes([n]) + obj if n < 256
                   else pickle.BINSTRING + struct.pack("<i", n) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str

    def save_global(self, obj, name=None):
        module = obj.__module__.replace("numpy._core", "numpy.core")
        self.write(pickle.GLOBAL + f"{module}\n{name or obj.__qualname__}\n".encode())
        self.memoize(obj)


def dump_py2(path, obj):
    buf = io.BytesIO()
    Py2Pickler(buf, protocol=2).dump(obj)
    path.write_bytes(buf.getvalue())


def write_cifar(folder, seed=0):
    """Write data_batch_1..5, test_batch and batches.meta; returns {file name: (data, labels)}."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    batches = {}
    for name, n in [(f"data_batch_{i}", N_TRAIN_PER_BATCH) for i in range(1, 6)] + [("test_batch", N_TEST)]:
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n).tolist()
        dump_py2(folder / name, {b"batch_label": name.encode(), b"labels": labels, b"data": data,
                                 b"filenames": [f"img_{name}_{k}.png".encode() for k in range(n)]})
        batches[name] = (data, labels)
    dump_py2(folder / "batches.meta", {b"num_cases_per_batch": N_TRAIN_PER_BATCH, b"num_vis": 3072,
                                       b"label_names": [s.encode() for s in LABEL_NAMES]})
    return batches


@pytest.fixture
def cifar_root(tmp_path):
    return tmp_path, write_cifar(tmp_path / "cifar-10-batches-py")


def expected_images(data):
    """Independent of torchvision: pixel (c, i, j) of image k is data[k, c*1024 + i*32 + j] / 255."""
    n = len(data)
    out = np.empty((n, 3, 32, 32), dtype=np.float64)
    for k in range(n):
        for c in range(3):
            for i in range(32):
                for j in range(32):
                    out[k, c, i, j] = data[k, c * 1024 + i * 32 + j] / 255.0
    return out


def test_fixture_files_look_like_the_real_release(cifar_root):
    root, _ = cifar_root
    with open(root / "cifar-10-batches-py" / "data_batch_1", "rb") as fh:  # the CIFAR page's unpickle()
        entry = pickle.load(fh, encoding="bytes")
    assert set(entry) == {b"batch_label", b"labels", b"data", b"filenames"}
    assert entry[b"data"].dtype == np.uint8 and entry[b"data"].shape == (N_TRAIN_PER_BATCH, 3072)


def test_cifar10_loader_reads_python_batches(cifar_root):
    root, batches = cifar_root
    data = load_dataset("cifar10", str(root))
    assert data.name == "cifar10" and data.num_classes == 10
    assert data.train_x.shape == (5 * N_TRAIN_PER_BATCH, 3, 32, 32) and data.test_x.shape == (N_TEST, 3, 32, 32)
    assert data.input_shape == (3, 32, 32)
    for x, y in [(data.train_x, data.train_y), (data.test_x, data.test_y)]:
        assert x.dtype == torch.float32 and y.dtype == torch.int64 and x.is_contiguous()
        assert 0.0 <= x.min() and x.max() <= 1.0
    train_data = np.concatenate([batches[f"data_batch_{i}"][0] for i in range(1, 6)])
    train_labels = sum((batches[f"data_batch_{i}"][1] for i in range(1, 6)), [])
    # bit-identical to uint8 -> float32 / 255 (what the torchvision-based loader returned): the
    # float64 quotient rounded once to float32 is the correctly rounded float32 quotient
    np.testing.assert_array_equal(data.train_x.numpy(), expected_images(train_data).astype(np.float32))
    np.testing.assert_array_equal(data.test_x.numpy(), expected_images(batches["test_batch"][0]).astype(np.float32))
    assert data.train_y.tolist() == train_labels and data.test_y.tolist() == batches["test_batch"][1]


def test_cifar10_root_may_be_the_batches_folder_itself(cifar_root, tmp_path):
    root, _ = cifar_root
    outer = load_dataset("cifar10", str(root))
    inner = load_dataset("cifar10", str(root / "cifar-10-batches-py"))
    assert torch.equal(outer.train_x, inner.train_x) and torch.equal(outer.test_y, inner.test_y)
    (tmp_path / "elsewhere").mkdir()
    renamed = (root / "cifar-10-batches-py").rename(tmp_path / "elsewhere" / "my-cifar")
    assert torch.equal(load_dataset("cifar10", str(renamed)).test_x, outer.test_x)


def test_cifar10_needs_root():
    with pytest.raises(UserError, match=r"dataset 'cifar10' needs root=.*no embedded copy") as info:
        load_dataset("cifar10")
    assert "\n" not in str(info.value)


def test_cifar10_missing_files_are_named(cifar_root, tmp_path):
    root, _ = cifar_root
    with pytest.raises(UserError, match=re.escape(str(tmp_path / "missing")) + r" is not a folder"):
        load_dataset("cifar10", str(tmp_path / "missing"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError) as info:
        load_dataset("cifar10", str(empty))
    message = str(info.value)
    assert str(empty / "cifar-10-batches-py" / "data_batch_1") + " not found" in message
    assert "https://www.cs.toronto.edu/~kriz/cifar.html" in message and f"extract it under {empty}" in message
    assert "\n" not in message
    (root / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(UserError, match=re.escape(str(root / "cifar-10-batches-py" / "data_batch_3")) +
                       r" not found \(missing: data_batch_3\)"):
        load_dataset("cifar10", str(root))


@pytest.mark.parametrize("name, content", [
    ("data_batch_2", b"not a pickle at all"),
    ("test_batch", None),  # truncated: half of a valid file
    ("batches.meta", pickle.dumps({"num_vis": 3072})),  # no label_names
])
def test_cifar10_corrupt_files_are_user_errors(cifar_root, name, content):
    root, _ = cifar_root
    path = root / "cifar-10-batches-py" / name
    path.write_bytes(content if content is not None else path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(UserError, match=rf"dataset 'cifar10': cannot read {re.escape(str(path))} .*expected") as info:
        load_dataset("cifar10", str(root))
    assert "\n" not in str(info.value)


class Payload:
    """What an attacker puts in a batch file: unpickling it calls ``call(*args)``."""

    def __init__(self, call, *args):
        self.call, self.args = call, args

    def __reduce__(self):
        return self.call, self.args


@pytest.mark.parametrize("name", ["data_batch_1", "test_batch", "batches.meta"])
@pytest.mark.parametrize("how", ["os.system", "builtins.open", "inside a real-format batch"])
def test_cifar10_malicious_batch_never_runs_code(cifar_root, tmp_path, name, how):
    """A bundle's dataset_root can point at attacker-written batches: pickle.load of them runs
    whatever they name. The loader refuses every global but numpy's array constructors, so the
    payload is a one-line UserError and the marker file it would write never appears."""
    root, batches = cifar_root
    path = root / "cifar-10-batches-py" / name
    marker = tmp_path / "MARKER"
    if how == "os.system":
        path.write_bytes(pickle.dumps(Payload(os.system, f"touch {marker}")))
    elif how == "builtins.open":
        path.write_bytes(pickle.dumps(Payload(open, str(marker), "w")))
    else:  # Python 2 protocol 2 like the release, the payload as the value of b"data"
        _, labels = batches.get(name, batches["test_batch"])
        dump_py2(path, {b"labels": labels, b"data": Payload(os.system, f"touch {marker}".encode()),
                        b"label_names": [s.encode() for s in LABEL_NAMES]})
    with pytest.raises(UserError) as info:
        load_dataset("cifar10", str(root))
    assert not marker.exists(), "unpickling the batch ran the attacker's code"
    assert re.match(rf"dataset 'cifar10': cannot read {re.escape(str(path))} \(UnpicklingError: global \S+ is "
                    r"not part of the CIFAR format \(refused\)\); expected the CIFAR-10 python version",
                    str(info.value)), str(info.value)
    assert "\n" not in str(info.value)


def test_cifar10_wrong_row_size_or_labels_are_user_errors(cifar_root):
    root, batches = cifar_root
    folder = root / "cifar-10-batches-py"
    data, labels = batches["test_batch"]
    dump_py2(folder / "test_batch", {b"labels": labels, b"data": data.astype(np.int64)})
    with pytest.raises(UserError, match=r"expected uint8 rows of 3072 bytes"):
        load_dataset("cifar10", str(root))
    dump_py2(folder / "test_batch", {b"labels": [0, 10, 1, 2], b"data": data})
    with pytest.raises(UserError, match=r"range 0\.\.10; expected 0\.\.9"):
        load_dataset("cifar10", str(root))


def test_cli_missing_cifar_root_is_reported_without_traceback(tmp_path, cli_env):
    # A dataset_root that does not exist is known before anything runs: one line at expansion,
    # exit 2, nothing stored; it names the dataset and the path in plain words.
    out = subprocess.run(robench_cmd("run", "--task", "compression", "--method", "dense",
                                     "--param", "dataset=cifar10", "--param", "model=cifar-convnet",
                                     "--param", f"dataset_root={tmp_path / 'missing'}",
                                     "--store", tmp_path / "r.sqlite"),
                         capture_output=True, text=True, env=cli_env, cwd=tmp_path, timeout=120)
    text = " ".join((out.stdout + out.stderr).split())  # rich wraps long lines
    assert out.returncode == 2, text
    assert "Traceback" not in text
    assert "dataset 'cifar10': no such folder" in text and "missing" in text, text
    assert not (tmp_path / "r.sqlite").exists()


def test_cifar_convnet_shapes_and_parameter_count():
    from robench import registry

    model = build_model("cifar-convnet", num_classes=10)
    assert model(torch.zeros(5, 3, 32, 32)).shape == (5, 10)
    assert build_model("cifar-convnet", num_classes=7)(torch.zeros(2, 3, 32, 32)).shape == (2, 7)
    count = sum(p.numel() for p in model.parameters())
    description = registry.models.entry("cifar-convnet").doc
    stated = re.search(r"\(([\d,]+) parameters\)", description).group(1)
    assert count == int(stated.replace(",", "")) == 145_578
    kinds = [type(m).__name__ for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert kinds == ["Conv2d", "Conv2d", "Conv2d", "Linear", "Linear"]


def test_cifar_convnet_learns_on_tiny_cifar(cifar_root):
    root, _ = cifar_root
    data = load_dataset("cifar10", str(root))
    torch.manual_seed(0)
    model = build_model("cifar-convnet", num_classes=data.num_classes)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()
    losses = []
    for step in range(5):
        optimizer.zero_grad()
        loss = loss_fn(model(data.train_x), data.train_y)
        loss.backward()
        if step == 0:
            assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
        optimizer.step()
        losses.append(loss.item())
    assert all(np.isfinite(losses)) and min(losses[1:]) < losses[0], losses


def write_separable_cifar(folder):
    """Batches a ConvNet learns in a few steps: class 0 dark, class 1 bright (labels alternate).
    The random batches of write_cifar cannot be learned, and robust_training refuses a vanilla
    model that misclassifies every attacked image (eps_ref = 0)."""
    rng = np.random.default_rng(0)
    start = 0
    for name, n in [(f"data_batch_{i}", N_TRAIN_PER_BATCH) for i in range(1, 6)] + [("test_batch", N_TEST)]:
        labels = [(start + k) % 2 for k in range(n)]
        start += n
        data = np.stack([rng.integers(192, 256, 3072) if label else rng.integers(0, 64, 3072) for label in labels])
        dump_py2(folder / name, {b"batch_label": name.encode(), b"labels": labels, b"data": data.astype(np.uint8)})


@pytest.mark.parametrize("task_name,method_name", [("compression", "dns+inq"), ("robust_training", "deepdefense")])
def test_tasks_run_on_cifar10_with_the_convnet(cifar_root, tmp_path, task_name, method_name):
    """Users with CIFAR-10: the compression and robust_training tasks run to the end on the real
    loader with the CIFAR ConvNet (tiny learnable files here, so only the plumbing is checked)."""
    import math

    from robench import registry
    from robench.tasks.base import RunContext

    root, _ = cifar_root
    write_separable_cifar(root / "cifar-10-batches-py")
    registry.load_builtins()
    task_cls = registry.tasks.get(task_name)
    # 20 full-batch epochs fit the 15 training images (1 epoch predicts one class for all)
    params = {**task_cls.check_params, "model": "cifar-convnet", "dataset": "cifar10", "dataset_root": str(root),
              "baseline_epochs": 20}
    if task_name == "robust_training":
        params.update(n_train=None, n_test=N_TEST, eval_batch_size=N_TEST)
    method = registry.methods.get(method_name, task=task_name)()
    (tmp_path / "a").mkdir()
    result = task_cls(**params).run(method, 0, RunContext(tmp_path / "a", tmp_path / "cache"))
    primary = result.metrics[task_cls.primary_metric]
    assert math.isfinite(primary)
    if task_name == "robust_training":  # the reference budget came from a vanilla model that classifies
        assert result.metrics["eps_ref"] > 0 and result.metrics["eps_ref_rho2_vanilla"] > 0
    assert result.artifacts and all((tmp_path / "a" / rel).exists() for rel in result.artifacts.values())
