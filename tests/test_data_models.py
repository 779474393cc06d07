"""Datasets (embedded MNIST-5k, real MNIST IDX files), models and the baseline cache."""

import struct

import numpy as np
import pytest
import torch

from robench.data import load_dataset
from robench.errors import UserError
from robench.models import build_model
from robench.training import TrainSpec, trained_baseline


def write_idx(path, array):
    """Write an IDX file exactly as the MNIST distribution does (big-endian header, ubyte data)."""
    array = np.asarray(array, dtype=np.uint8)
    magic = 0x0800 | array.ndim
    with open(path, "wb") as fh:
        fh.write(struct.pack(">I", magic))
        fh.write(struct.pack(f">{array.ndim}I", *array.shape))
        fh.write(array.tobytes())


def test_mnist_5k_is_a_fixed_stratified_split():
    a = load_dataset("mnist-5k")
    b = load_dataset("mnist-5k")
    assert a.train_x.shape == (4000, 1, 28, 28) and a.test_x.shape == (1000, 1, 28, 28)
    assert a.train_x.dtype == torch.float32 and 0 <= a.train_x.min() and a.train_x.max() <= 1
    assert torch.equal(a.test_x, b.test_x) and torch.equal(a.train_y, b.train_y)
    assert a.train_y.bincount().tolist() == [400] * 10 and a.test_y.bincount().tolist() == [100] * 10
    # no image is in both splits
    train_rows = {r.numpy().tobytes() for r in a.train_x.flatten(1)}
    assert not any(r.numpy().tobytes() in train_rows for r in a.test_x.flatten(1))


def test_mnist_check_is_a_class_interleaved_head_of_mnist_5k():
    """`robench check --model`'s data: per digit the first 50 training and 10 test images of
    mnist-5k, interleaved so that any prefix (the attacked points are the first n_test)
    holds every digit; the same images and labels as mnist-5k's; no root taken."""
    small, full = load_dataset("mnist-check"), load_dataset("mnist-5k")
    assert small.train_x.shape == (500, 1, 28, 28) and small.test_x.shape == (100, 1, 28, 28)
    for xs, ys, ref_x, ref_y in ((small.train_x, small.train_y, full.train_x, full.train_y),
                                 (small.test_x, small.test_y, full.test_x, full.test_y)):
        assert ys[:10].tolist() == list(range(10)) and ys.tolist() == list(range(10)) * (len(ys) // 10)
        for digit in (0, 7):  # the first images of that digit in mnist-5k's order
            first = ref_x[ref_y == digit][:len(ys) // 10]
            assert torch.equal(xs[ys == digit], first)
    with pytest.raises(UserError, match="'mnist-check' is embedded and takes no root"):
        load_dataset("mnist-check", root="/data")


def test_real_mnist_loader_reads_idx_files(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    train_images = rng.integers(0, 256, size=(12, 28, 28))
    train_labels = rng.integers(0, 10, size=12)
    test_images = rng.integers(0, 256, size=(5, 28, 28))
    test_labels = rng.integers(0, 10, size=5)
    write_idx(raw / "train-images-idx3-ubyte", train_images)
    write_idx(raw / "train-labels-idx1-ubyte", train_labels)
    write_idx(raw / "t10k-images-idx3-ubyte", test_images)
    write_idx(raw / "t10k-labels-idx1-ubyte", test_labels)
    data = load_dataset("mnist", root=str(tmp_path))
    assert data.name == "mnist" and data.train_x.shape == (12, 1, 28, 28) and data.test_x.shape == (5, 1, 28, 28)
    np.testing.assert_allclose(data.train_x[:, 0].numpy(), train_images / 255.0, atol=1e-7)
    assert data.test_y.tolist() == test_labels.tolist()


def test_dataset_errors_are_clear(tmp_path):
    with pytest.raises(UserError, match="needs root="):
        load_dataset("mnist")
    with pytest.raises(UserError, match=r"dataset 'mnist' at .*expected .*train-images-idx3-ubyte"):
        load_dataset("mnist", root=str(tmp_path))
    with pytest.raises(UserError, match="did you mean 'mnist-5k'"):
        load_dataset("mnist-5j")


@pytest.mark.parametrize("name, params", [("lenet-5", 431_080), ("lenet-300-100", 266_610)])
def test_lenet_parameter_counts(name, params):
    model = build_model(name, num_classes=10)
    assert sum(p.numel() for p in model.parameters()) == params
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_baseline_is_trained_once_and_loaded_weights_only(tmp_path):
    spec = TrainSpec("lenet-300-100", "mnist-5k", epochs=1, seed=3)
    model, info = trained_baseline(spec, tmp_path)
    assert not info["cached"] and info["test_accuracy"] > 0.5
    again, info2 = trained_baseline(spec, tmp_path)
    assert info2["cached"] and info2["path"] == info["path"]
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)
    state = torch.load(info["path"], weights_only=True)
    assert set(state) == set(model.state_dict())
    other, info3 = trained_baseline(TrainSpec("lenet-300-100", "mnist-5k", epochs=1, seed=4), tmp_path)
    assert info3["path"] != info["path"] and not info3["cached"]
