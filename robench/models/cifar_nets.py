"""The CIFAR-10 architectures of the robustness and compression papers, as built-ins.

Each factory returns the network behind a CIFAR-10 mean/std :class:`~robench.models.normalize.Normalize`
(input: images in [0, 1]). ``in_channels`` is 1 or 3: both build the paper's 3-channel
network, and a grey image is repeated to three channels inside the model, so the parameter
counts stay the papers' and published checkpoints load. Every one takes 28x28 (MNIST-sized)
input as well as 32x32; the architectures are in :mod:`robench.models.cifar_archs`.

Parameter counts are at ``num_classes=10`` and asserted by tests/test_model_zoo.py.
"""

from __future__ import annotations

from robench.registry import register_model


def _wrapped(net):
    from robench.models.normalize import CIFAR10_MEAN, CIFAR10_STD, NormalizedModel
    return NormalizedModel(net, CIFAR10_MEAN, CIFAR10_STD)


@register_model("resnet20", description="ResNet-20 for CIFAR (He et al. 2016, option A shortcuts): 0.27M "
                                        "parameters (269,722); CIFAR-10 mean/std inside")
def resnet20(num_classes: int = 10, in_channels: int = 3):
    """ResNet-20 (3 stages of 3 basic blocks, 16/32/64 channels); input (N, 1 or 3, H, W) in [0, 1]."""
    from robench.models.cifar_archs import CifarResNet
    from robench.models.normalize import check_in_channels

    check_in_channels("model 'resnet20'", in_channels)
    return _wrapped(CifarResNet(20, num_classes))


@register_model("resnet56", description="ResNet-56 for CIFAR (He et al. 2016, option A shortcuts): 0.85M "
                                        "parameters (853,018); CIFAR-10 mean/std inside")
def resnet56(num_classes: int = 10, in_channels: int = 3):
    """ResNet-56 (3 stages of 9 basic blocks, 16/32/64 channels); input (N, 1 or 3, H, W) in [0, 1]."""
    from robench.models.cifar_archs import CifarResNet
    from robench.models.normalize import check_in_channels

    check_in_channels("model 'resnet56'", in_channels)
    return _wrapped(CifarResNet(56, num_classes))


@register_model("wrn-28-10", description="WideResNet-28-10 (Zagoruyko & Komodakis 2016; RobustBench's reference "
                                         "architecture and key names): 36.5M parameters (36,479,194); CIFAR-10 "
                                         "mean/std inside")
def wrn_28_10(num_classes: int = 10, in_channels: int = 3):
    """WRN-28-10 (3 groups of 4 pre-activation blocks, 160/320/640 channels, no dropout);
    input (N, 1 or 3, H, W) in [0, 1]. RobustBench's checkpoints of this architecture were
    mostly trained on raw [0, 1] input: load them with ``load_weights(..., normalization="none")``."""
    from robench.models.cifar_archs import WideResNet
    from robench.models.normalize import check_in_channels

    check_in_channels("model 'wrn-28-10'", in_channels)
    return _wrapped(WideResNet(28, 10, num_classes))


@register_model("vgg16-cifar", description="VGG-16 with BN for 32x32 (13 conv layers, classifier 512 → classes): "
                                           "14.7M parameters (14,728,266); CIFAR-10 mean/std inside")
def vgg16_cifar(num_classes: int = 10, in_channels: int = 3):
    """VGG-16-BN for CIFAR (kuangliu/pytorch-cifar's layout); input (N, 1 or 3, H, W) in [0, 1]."""
    from robench.models.cifar_archs import CifarVGG
    from robench.models.normalize import check_in_channels

    check_in_channels("model 'vgg16-cifar'", in_channels)
    return _wrapped(CifarVGG(num_classes=num_classes))


@register_model("nin", description="Network in Network for CIFAR-10 (Lin et al. 2014) as DeepDefense's, no BN: "
                                   "0.97M parameters (966,986); CIFAR-10 mean/std inside", version="2")
def nin(num_classes: int = 10, in_channels: int = 3):
    """NIN: three mlpconv blocks (192-160-96, 192-192-192, 192-192-classes), global average
    pool; input (N, 1 or 3, H ≥ 4, W ≥ 4) in [0, 1]. DeepDefense starts from MatConvNet's
    trained NIN (as a state dict with these layer names: :func:`robench.models.load_weights`).
    From scratch, at robench's baseline recipe (SGD lr 0.05, momentum 0.9), it learns only
    slowly (mnist-5k: 41 % after three epochs; MatConvNet warms up from lr 0.002), and only
    because its head starts at 0.1× He-normal (version 2; version 1 died in the first
    epoch): train ``nin-bn`` from scratch."""
    from robench.models.cifar_archs import NIN
    from robench.models.normalize import check_in_channels

    check_in_channels("model 'nin'", in_channels)
    return _wrapped(NIN(num_classes))


@register_model("nin-bn", description="Network in Network for CIFAR-10 with BatchNorm after each hidden conv, "
                                      "trainable from scratch: 0.97M parameters (969,802); CIFAR-10 mean/std inside")
def nin_bn(num_classes: int = 10, in_channels: int = 3):
    """``nin`` with a BatchNorm2d after every conv but the last (2,816 more parameters), so
    it trains at robench's baseline recipe; input (N, 1 or 3, H ≥ 4, W ≥ 4) in [0, 1]."""
    from robench.models.cifar_archs import NIN
    from robench.models.normalize import check_in_channels

    check_in_channels("model 'nin-bn'", in_channels)
    return _wrapped(NIN(num_classes, batch_norm=True))
