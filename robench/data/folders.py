"""Image-folder datasets, streamed from the user's files (never downloaded): class folders
(ImageNette/ImageWoof layout) and ILSVRC-2012 (ImageNet) with its validation labels."""

from __future__ import annotations

import csv
import os
from pathlib import Path

from robench.data import Dataset
from robench.data.streamed import IMAGE_EXTENSIONS, IMAGENET_224, FolderSplit, class_folder_samples
from robench.errors import UserError
from robench.registry import register_dataset

EVAL_FOLDERS = ("val", "test")


@register_dataset("imagefolder", description="images in class folders under root= (root/train/<class>/*, "
                                             "root/val/<class>/* or test/: ImageNette/ImageWoof layout); "
                                             "imagenet-224 preprocessing; streamed", root="required")
def imagefolder(root: str | None = None) -> Dataset:
    """Classes are the training split's folder names, sorted (torchvision's ImageFolder order);
    training images get the random resized crop + flip of ``imagenet-224``, evaluation images
    resize 256 / center crop 224."""
    if root is None:
        raise UserError("dataset 'imagefolder' needs root=<folder holding train/<class>/ and val/<class>/>")
    base = _folder(root, "imagefolder")
    classes, train = class_folder_samples(base / "train", None, "dataset 'imagefolder' (train split)")
    test_folder = _eval_folder(base, "imagefolder")
    _, test = class_folder_samples(test_folder, classes, f"dataset 'imagefolder' ({test_folder.name} split)")
    return Dataset("imagefolder", FolderSplit(train, IMAGENET_224, augment=True),
                          FolderSplit(test, IMAGENET_224, augment=False), len(classes), tuple(classes))


@register_dataset("imagenet", description="ILSVRC-2012 under root= (train/<wnid>/*.JPEG; val/ as class folders, "
                                          "or flat with LOC_val_solution.csv or the devkit's labels); "
                                          "imagenet-224 preprocessing; streamed", root="required")
def imagenet(root: str | None = None) -> Dataset:
    """ImageNet's 1000 classes are the wnid folders of ``train/``, sorted. The 50000 validation
    images are read from ``val/<wnid>/`` (after the usual valprep script) or from a flat ``val/``
    labelled by ``LOC_val_solution.csv`` (Kaggle's copy) or by the devkit
    (``ILSVRC2012_devkit_t12/data/ILSVRC2012_validation_ground_truth.txt`` and ``meta.mat``)."""
    if root is None:
        raise UserError("dataset 'imagenet' needs root=<folder holding train/ and val/ of ILSVRC-2012>")
    base = _folder(root, "imagenet")
    classes, train = class_folder_samples(base / "train", None, "dataset 'imagenet' (train split)")
    val = base / "val"
    if not val.is_dir():
        raise UserError(f"dataset 'imagenet': {val} not found; expected the 50000 validation images there")
    if any(entry.is_dir() for entry in os.scandir(val)):
        _, test = class_folder_samples(val, classes, "dataset 'imagenet' (val split)")
    else:
        labels = _validation_labels(base)
        index = {wnid: i for i, wnid in enumerate(classes)}
        test = []
        for name in sorted(os.listdir(val)):
            if not name.lower().endswith(IMAGE_EXTENSIONS):
                continue
            stem = os.path.splitext(name)[0]
            if stem not in labels:
                raise UserError(f"dataset 'imagenet': {val / name} has no label in the validation labels")
            if labels[stem] not in index:
                raise UserError(f"dataset 'imagenet': {val / name} is labelled {labels[stem]}, which is not a "
                                f"class folder of {base / 'train'}")
            test.append((str(val / name), index[labels[stem]]))
        if not test:
            raise UserError(f"dataset 'imagenet': no image files in {val}")
    return Dataset("imagenet", FolderSplit(train, IMAGENET_224, augment=True),
                          FolderSplit(test, IMAGENET_224, augment=False), len(classes), tuple(classes))


def _folder(root, name: str) -> Path:
    base = Path(os.fspath(root))
    if not base.is_dir():
        raise UserError(f"dataset {name!r}: root {base} is not a folder")
    return base


def _eval_folder(base: Path, name: str) -> Path:
    for candidate in EVAL_FOLDERS:
        if (base / candidate).is_dir():
            return base / candidate
    raise UserError(f"dataset {name!r}: neither {base / 'val'} nor {base / 'test'} exists; expected the "
                    f"evaluation images in class folders there")


def _validation_labels(base: Path) -> dict[str, str]:
    """Image stem (``ILSVRC2012_val_00000001``) → wnid, from Kaggle's CSV or the devkit."""
    kaggle = base / "LOC_val_solution.csv"
    if kaggle.is_file():
        labels = {}
        with open(kaggle, newline="") as fh:
            for row in csv.DictReader(fh):
                try:
                    labels[row["ImageId"]] = row["PredictionString"].split()[0]
                except (KeyError, IndexError, AttributeError):
                    raise UserError(f"dataset 'imagenet': {kaggle}: expected columns ImageId,PredictionString "
                                    f"with a wnid first") from None
        return labels
    devkit = base / "ILSVRC2012_devkit_t12" / "data"
    truth, meta = devkit / "ILSVRC2012_validation_ground_truth.txt", devkit / "meta.mat"
    if truth.is_file() and meta.is_file():
        wnid_of = _devkit_wnids(meta)
        labels = {}
        for number, line in enumerate(truth.read_text().split(), start=1):
            try:
                labels[f"ILSVRC2012_val_{number:08d}"] = wnid_of[int(line)]
            except (ValueError, KeyError):
                raise UserError(f"dataset 'imagenet': {truth} line {number}: {line!r} is not an ILSVRC2012_ID "
                                f"of {meta}") from None
        return labels
    raise UserError(f"dataset 'imagenet': {base / 'val'} is flat and neither {kaggle} nor {truth} with "
                    f"{meta} exists; expected one of them, or val/<wnid>/ class folders")


def _devkit_wnids(meta: Path) -> dict[int, str]:
    """ILSVRC2012_ID → wnid of the 1000 leaf synsets in the devkit's ``meta.mat``."""
    from scipy.io import loadmat

    try:
        synsets = loadmat(str(meta), squeeze_me=True)["synsets"]
        return {int(s["ILSVRC2012_ID"]): str(s["WNID"]) for s in synsets if int(s["num_children"]) == 0}
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise UserError(f"dataset 'imagenet': cannot read {meta} ({type(exc).__name__}: {exc}); expected the "
                        f"ILSVRC2012 devkit's synsets") from None
