"""Datasets read through one interface: image folders and ImageNet streamed from files (never
materialized, deterministic per seed), CIFAR-100 and SVHN from tiny files in their real formats."""

from __future__ import annotations

import pickle
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from robench.data import ArraySplit, load_dataset
from robench.data import streamed
from robench.errors import UserError
from robench.training import accuracy, fit, make_sgd

CLASSES = ("n01440764", "n02102040", "n02979186")


def write_jpegs(folder: Path, n: int, seed: int, sizes=((40, 52), (64, 48), (37, 37))):
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        h, w = sizes[i % len(sizes)]
        pixels = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"img_{i:03d}.JPEG", quality=90)


def image_folder(root: Path, per_class=(4, 2), split_names=("train", "val")) -> Path:
    for c, name in enumerate(CLASSES):
        for split, n in zip(split_names, per_class):
            write_jpegs(root / split / name, n, seed=100 * c + len(split))
    return root


@pytest.fixture
def folder(tmp_path):
    return image_folder(tmp_path / "imagenette")


def tiny_net(classes=len(CLASSES)):
    torch.manual_seed(0)
    return nn.Sequential(nn.AvgPool2d(28), nn.Flatten(), nn.Linear(3 * 8 * 8, classes))


def test_imagefolder_streams_in_torchvision_order_with_the_standard_eval_transform(folder):
    from torchvision import datasets, transforms

    data = load_dataset("imagefolder", str(folder))
    assert data.streamed and data.num_classes == 3 and data.classes == CLASSES
    assert (len(data.train), len(data.test)) == (12, 6) and data.input_shape == (3, 224, 224)
    assert not hasattr(data, "train_x")  # nothing holds all the images
    reference = datasets.ImageFolder(str(folder / "val"), transform=transforms.Compose(
        [transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor()]))
    x, y = data.test.take(range(len(data.test)))
    assert y.tolist() == [label for _, label in reference.samples]
    for i in range(len(reference)):
        image, label = reference[i]
        assert torch.equal(x[i], image) and y[i].item() == label
    assert float(x.min()) >= 0 and float(x.max()) <= 1


def test_training_augmentation_is_the_random_resized_crop_and_flip_seeded_per_sample(folder):
    data = load_dataset("imagefolder", str(folder))
    order = torch.arange(len(data.train))
    (a, _), = data.train.batches(order, 64, "cpu", augment_seed=7)
    (b, _), = data.train.batches(order, 64, "cpu", augment_seed=7)
    (c, _), = data.train.batches(order, 64, "cpu", augment_seed=8)
    (plain, _), = data.train.batches(order, 64, "cpu")  # no seed: the evaluation transform
    evaluation, _ = data.train.take(order)
    assert torch.equal(a, b) and not torch.equal(a, c) and torch.equal(plain, evaluation)
    assert a.shape == (12, 3, 224, 224) and not torch.equal(a, plain)
    # a sample's crop depends on (seed, index) only, not on where it sits in the batch order
    (shuffled, _), = data.train.batches(order.flip(0), 64, "cpu", augment_seed=7)
    assert torch.equal(shuffled.flip(0), a)


def test_crop_box_fits_the_image_and_covers_the_requested_area():
    generator = torch.Generator().manual_seed(0)
    for height, width in ((40, 52), (300, 20), (17, 400), (224, 224)):
        for _ in range(50):
            top, left, h, w = streamed.random_resized_crop_box(height, width, (0.08, 1.0), (3 / 4, 4 / 3), generator)
            assert 0 <= top and top + h <= height and 0 <= left and left + w <= width and h > 0 and w > 0
            if (height, width) == (224, 224):
                assert 0.08 * 224 * 224 * 0.9 <= h * w <= 224 * 224 and 3 / 4 * 0.9 <= w / h <= 4 / 3 * 1.1


def test_two_runs_with_one_seed_see_the_same_batches_whatever_the_loader_workers(folder, monkeypatch):
    data = load_dataset("imagefolder", str(folder))

    def train(workers: int):
        monkeypatch.setenv("ROBENCH_DATA_WORKERS", str(workers))
        seen = []
        model = tiny_net()
        model.register_forward_pre_hook(lambda m, args: seen.append(args[0].clone()))
        fit(model, data.train, epochs=2, batch_size=5, optimizer=make_sgd(model, 0.01), seed=3)
        return seen, [p.detach().clone() for p in model.parameters()]

    seen0, weights0 = train(0)
    seen2, weights2 = train(2)
    assert len(seen0) == 2 * 3  # 12 images in batches of 5: 5, 5, 2 per epoch
    assert all(torch.equal(a, b) for a, b in zip(seen0, seen2))
    assert all(torch.equal(a, b) for a, b in zip(weights0, weights2))
    assert not torch.equal(seen0[0], seen0[3])  # another epoch: another order and other crops


def test_an_epoch_reads_each_file_once_and_never_holds_the_dataset(folder, monkeypatch):
    monkeypatch.setenv("ROBENCH_DATA_WORKERS", "0")  # decode here, where the reads are counted
    reads = Counter()
    original = streamed.read_image

    def counting(path):
        reads[path] += 1
        return original(path)
    monkeypatch.setattr(streamed, "read_image", counting)
    data = load_dataset("imagefolder", str(folder))
    model = tiny_net()
    per_epoch = []
    fit(model, data.train, epochs=3, batch_size=4, optimizer=make_sgd(model, 0.01), seed=0,
        on_epoch=lambda epoch: per_epoch.append(Counter(reads)))
    train_files = {path for path, _ in data.train.samples}
    previous = Counter()
    for counts in per_epoch:
        epoch = counts - previous
        assert set(epoch) == train_files and set(epoch.values()) == {1}
        previous = counts
    reads.clear()
    accuracy(model, data.test, batch_size=4)
    assert set(reads) == {path for path, _ in data.test.samples} and set(reads.values()) == {1}
    reads.clear()
    data.test.take([5, 0])  # a fixed subset reads only its files
    assert set(reads) == {data.test.samples[5][0], data.test.samples[0][0]}


def test_in_memory_batches_equal_the_index_loop_and_move_to_the_device_once():
    x, y = torch.rand(10, 1, 4, 4), torch.arange(10)
    split = ArraySplit(x, y)
    order = torch.randperm(10, generator=torch.Generator().manual_seed(0))
    batches = list(split.batches(order, 4, "cpu", min_size=3))
    assert [len(b[0]) for b in batches] == [4, 4]  # the last slice (2) is shorter than min_size
    assert torch.equal(batches[1][0], x[order[4:8]]) and torch.equal(batches[1][1], y[order[4:8]])
    assert split.on("cpu")[0] is x
    meta = split.on("meta")
    assert meta[0].device.type == "meta" and split.on("meta") is meta  # one copy per device


def test_a_folder_that_is_not_an_image_is_one_line(folder, monkeypatch):
    monkeypatch.setenv("ROBENCH_DATA_WORKERS", "0")
    bad = folder / "val" / CLASSES[0] / "broken.jpg"
    bad.write_bytes(b"not a jpeg")
    data = load_dataset("imagefolder", str(folder))
    index = [path for path, _ in data.test.samples].index(str(bad))
    with pytest.raises(UserError, match=r"broken\.jpg: cannot decode"):
        data.test.take([index])


@pytest.mark.parametrize("layout, message", [
    ("no-root", "is not a folder"),
    ("no-val", "neither .*val nor .*test exists"),
    ("unknown-class", "is not a class of the training split"),
    ("empty-class", "no image files"),
])
def test_imagefolder_layout_errors_say_what_was_expected(tmp_path, layout, message):
    root = tmp_path / "data"
    if layout != "no-root":
        image_folder(root, per_class=(1, 1))
    if layout == "no-val":
        import shutil
        shutil.rmtree(root / "val")
    if layout == "unknown-class":
        write_jpegs(root / "val" / "n99999999", 1, seed=1)
    if layout == "empty-class":
        import shutil
        shutil.rmtree(root / "train")
        (root / "train" / "n0").mkdir(parents=True)
    with pytest.raises(UserError, match=message) as info:
        load_dataset("imagefolder", str(root))
    assert "\n" not in str(info.value)


def _imagenet_train(root: Path):
    for c, wnid in enumerate(CLASSES):
        write_jpegs(root / "train" / wnid, 2, seed=c)


def _flat_val(root: Path, labels):
    write_jpegs(root / "val", len(labels), seed=9)
    for i, path in enumerate(sorted((root / "val").iterdir())):
        path.rename(root / "val" / f"ILSVRC2012_val_{i + 1:08d}.JPEG")


def test_imagenet_reads_the_kaggle_csv_labels(tmp_path):
    root = tmp_path / "ilsvrc"
    _imagenet_train(root)
    labels = [CLASSES[2], CLASSES[0], CLASSES[1], CLASSES[2]]
    _flat_val(root, labels)
    rows = [f"ILSVRC2012_val_{i + 1:08d},{wnid} 1 2 3 4" for i, wnid in enumerate(labels)]
    (root / "LOC_val_solution.csv").write_text("ImageId,PredictionString\n" + "\n".join(rows) + "\n")
    data = load_dataset("imagenet", str(root))
    assert data.num_classes == 3 and [label for _, label in data.test.samples] == [2, 0, 1, 2]


def test_imagenet_reads_the_devkit_labels(tmp_path):
    from scipy.io import savemat

    root = tmp_path / "ilsvrc"
    _imagenet_train(root)
    _flat_val(root, range(3))
    # the devkit numbers synsets by ILSVRC2012_ID (leaves first; parents have children)
    ids = {CLASSES[1]: 1, CLASSES[0]: 2, CLASSES[2]: 3}
    synsets = np.zeros(4, dtype=[("ILSVRC2012_ID", "O"), ("WNID", "O"), ("num_children", "O")])
    for i, (wnid, number) in enumerate(ids.items()):
        synsets[i] = (number, wnid, 0)
    synsets[3] = (1001, "n00001740", 3)
    devkit = root / "ILSVRC2012_devkit_t12" / "data"
    devkit.mkdir(parents=True)
    savemat(devkit / "meta.mat", {"synsets": synsets})
    (devkit / "ILSVRC2012_validation_ground_truth.txt").write_text("3\n1\n2\n")
    data = load_dataset("imagenet", str(root))
    assert [label for _, label in data.test.samples] == [CLASSES.index(w) for w in (CLASSES[2], CLASSES[1],
                                                                                      CLASSES[0])]


def test_imagenet_class_folder_val_and_missing_labels(tmp_path):
    root = tmp_path / "ilsvrc"
    _imagenet_train(root)
    write_jpegs(root / "val" / CLASSES[1], 2, seed=5)
    data = load_dataset("imagenet", str(root))
    assert [label for _, label in data.test.samples] == [1, 1]
    flat = tmp_path / "flat"
    _imagenet_train(flat)
    _flat_val(flat, range(2))
    with pytest.raises(UserError, match="LOC_val_solution.csv"):
        load_dataset("imagenet", str(flat))


def write_cifar100(root: Path, n_train=6, n_test=4):
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, n in (("train", n_train), ("test", n_test)):
        entry = {b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
                 b"fine_labels": [int(v) for v in rng.integers(0, 100, size=n)],
                 b"coarse_labels": [0] * n}
        (folder / name).write_bytes(pickle.dumps(entry, protocol=3))
    (folder / "meta").write_bytes(pickle.dumps({b"fine_label_names": [b"c%d" % i for i in range(100)]}, protocol=3))
    return folder


def test_cifar100_reads_the_fine_labels(tmp_path):
    folder = write_cifar100(tmp_path)
    data = load_dataset("cifar100", str(tmp_path))
    expected = pickle.loads((folder / "test").read_bytes(), encoding="bytes")
    assert data.num_classes == 100 and data.test_x.shape == (4, 3, 32, 32)
    assert data.test_y.tolist() == expected[b"fine_labels"]
    assert torch.equal(data.test_x[1].mul(255).round().to(torch.uint8).flatten(),
                       torch.from_numpy(expected[b"data"][1]))
    (folder / "meta").write_bytes(pickle.dumps({b"fine_label_names": [b"x"] * 10}, protocol=3))
    with pytest.raises(UserError, match="fine_label_names.*100"):
        load_dataset("cifar100", str(tmp_path / "cifar-100-python"))  # another root: not the cached load


def test_svhn_reads_the_mat_files_and_maps_label_10_to_digit_0(tmp_path):
    from scipy.io import savemat

    rng = np.random.default_rng(1)
    images = {}
    for split, labels in (("train", [10, 1, 5]), ("test", [3, 10])):
        x = rng.integers(0, 256, size=(32, 32, 3, len(labels)), dtype=np.uint8)
        images[split] = x
        savemat(tmp_path / f"{split}_32x32.mat", {"X": x, "y": np.array(labels, dtype=np.uint8)[:, None]})
    data = load_dataset("svhn", str(tmp_path))
    assert data.train_y.tolist() == [0, 1, 5] and data.test_y.tolist() == [3, 0]
    assert data.train_x.shape == (3, 3, 32, 32)
    # HWC·N → NCHW: pixel (row 4, col 7) of image 2, green channel
    assert data.train_x[2, 1, 4, 7].item() == pytest.approx(images["train"][4, 7, 1, 2] / 255)
    bad = tmp_path / "bad"
    bad.mkdir()
    savemat(bad / "train_32x32.mat", {"X": np.zeros((28, 28, 1, 2), np.uint8), "y": np.ones((2, 1))})
    with pytest.raises(UserError, match="expected SVHN format 2"):
        load_dataset("svhn", str(bad))
