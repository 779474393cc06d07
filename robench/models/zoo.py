"""torchvision and timm architectures by name: ``tv:NAME`` and ``timm:NAME`` model entries.

The model registry calls :func:`resolve` the first time a name with one of these prefixes
is looked up (``registry.MODEL_PREFIXES``); it returns one entry like a built-in's: a name,
a version that includes the library's version (an upgrade of the library changes the run
ids), and a factory ``factory(num_classes=1000, in_channels=3) -> nn.Module``.

What the factory builds, whatever the library:

* never pretrained: torchvision builders get ``weights=None``, timm ``pretrained=False``
  (load a checkpoint from a file with :func:`robench.models.weights.load_weights`);
* the classifier sized to ``num_classes`` (the builder's own ``num_classes`` argument);
* a :class:`~robench.models.normalize.NormalizedModel`: input (N, 1 or 3, H, W) in [0, 1],
  ImageNet mean/std (timm: the model's ``pretrained_cfg`` mean/std) applied inside, a grey
  image repeated to three channels (``in_channels`` is 1 or 3 and builds the same network,
  so ImageNet checkpoints load);
* GoogLeNet and Inception-v3 without their auxiliary heads (``aux_logits=False``), so the
  model returns a logits tensor in train mode too, with ``init_weights=True`` (torchvision's
  initialization, without its FutureWarning) and ``transform_input=True`` (as torchvision's
  own checkpoints of them expect).

Smallest input side each torchvision family takes (measured with torchvision 0.29): 28 px
(MNIST) and up for ResNet/ResNeXt/Wide-ResNet, RegNet, MobileNet, MnasNet, ShuffleNet,
EfficientNet, SqueezeNet (21), GoogLeNet (15) and Swin (4); 29 for DenseNet; 32 for VGG and
ConvNeXt; 63 for AlexNet; 75 for Inception-v3; exactly 224 for ViT and MaxViT (their fixed
``image_size``). The MNIST-shaped ``robench check --model`` needs 28.
"""

from __future__ import annotations

import difflib
import functools

from robench.errors import UserError
from robench.registry import Entry

ZOO_VERSION = "1"  # bump when what the factories build changes (wrapper, defaults)
# builders whose auxiliary classifiers are dropped; their keyword arguments
_AUX_HEAD_ARGS = {"googlenet": {"aux_logits": False, "init_weights": True, "transform_input": True},
                  "inception_v3": {"aux_logits": False, "init_weights": True, "transform_input": True}}
TIMM_MISSING = "pip install timm (or robench's extra: pip install 'robench[timm]')"


def resolve(name: str) -> Entry:
    """The model entry of ``name`` (``tv:ARCH`` or ``timm:ARCH``). An unknown architecture is
    a one-line UserError with a did-you-mean answer; ``timm:`` without timm installed says
    how to install it."""
    prefix, _, arch = name.partition(":")
    if prefix == "tv":
        return _torchvision_entry(name, arch)
    if prefix == "timm":
        return _timm_entry(name, arch)
    raise UserError(f"unknown model {name!r}: no architecture library {prefix!r} (expected tv: or timm:)")


def torchvision_names() -> list[str]:
    """torchvision's classification builders (``torchvision.models.list_models``), sorted."""
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))


def bare_name_hint(name: str) -> str | None:
    """``tv:NAME`` when ``name`` is a torchvision classification architecture (a user who
    wrote ``resnet18`` meant torchvision's, not the CIFAR ``resnet20``), else None."""
    try:
        return f"tv:{name}" if name in torchvision_names() else None
    except ImportError:
        return None


def _unknown(name: str, arch: str, choices: list[str], library: str) -> UserError:
    hint = difflib.get_close_matches(arch, choices, n=1, cutoff=0.5)
    prefix = name.partition(":")[0]
    return UserError(f"unknown model {name!r}: {arch!r} is not one of {library}"
                     + (f"; did you mean '{prefix}:{hint[0]}'?" if hint else ""))


def _library_version(module) -> str:
    return str(module.__version__).split("+")[0]  # the code, not the build (+cu130, +cpu)


def _torchvision_entry(name: str, arch: str) -> Entry:
    import torchvision

    if arch not in torchvision_names():
        raise _unknown(name, arch, torchvision_names(), "torchvision's classification architectures")
    version = _library_version(torchvision)
    return Entry("models", name, f"torchvision {version} {arch}, untrained (weights=None), classifier sized to the "
                                 f"task; ImageNet mean/std inside", target=f"{__name__}:build_torchvision",
                 obj=functools.partial(build_torchvision, arch), source="torchvision",
                 meta={"version": f"{ZOO_VERSION}+torchvision-{version}"})


def _timm_entry(name: str, arch: str) -> Entry:
    try:
        import timm
    except ImportError:
        raise UserError(f"model {name!r}: timm is not installed; {TIMM_MISSING}") from None
    # only names of timm's own registry: a hub name ("hf-hub:...") would be fetched from the network
    if ":" in arch or not timm.is_model(arch):
        raise _unknown(name, arch, timm.list_models(), "timm's architectures")
    version = _library_version(timm)
    return Entry("models", name, f"timm {version} {arch}, untrained (pretrained=False), classifier sized to the "
                                 f"task; its pretrained_cfg mean/std inside", target=f"{__name__}:build_timm",
                 obj=functools.partial(build_timm, arch), source="timm",
                 meta={"version": f"{ZOO_VERSION}+timm-{version}"})


def build_torchvision(arch: str, num_classes: int = 1000, in_channels: int = 3):
    """torchvision's ``arch`` with ``weights=None`` and a ``num_classes`` classifier, behind
    ImageNet normalization. Input (N, 1 or 3, H, W) in [0, 1]; output (N, num_classes) logits."""
    import torchvision

    from robench.models.normalize import IMAGENET_MEAN, IMAGENET_STD, NormalizedModel, check_in_channels

    check_in_channels(f"model 'tv:{arch}'", in_channels)
    net = torchvision.models.get_model(arch, weights=None, num_classes=int(num_classes),
                                       **_AUX_HEAD_ARGS.get(arch, {}))
    return NormalizedModel(net, IMAGENET_MEAN, IMAGENET_STD)


def build_timm(arch: str, num_classes: int = 1000, in_channels: int = 3):
    """timm's ``arch`` with ``pretrained=False`` and a ``num_classes`` classifier, behind its
    ``pretrained_cfg`` normalization (ImageNet's where it names none). Input (N, 1 or 3, H, W)
    in [0, 1]; output (N, num_classes) logits."""
    try:
        import timm
    except ImportError:
        raise UserError(f"model 'timm:{arch}': timm is not installed; {TIMM_MISSING}") from None

    from robench.models.normalize import IMAGENET_MEAN, IMAGENET_STD, NormalizedModel, check_in_channels

    check_in_channels(f"model 'timm:{arch}'", in_channels)
    net = timm.create_model(arch, pretrained=False, num_classes=int(num_classes), in_chans=3)
    cfg = getattr(net, "pretrained_cfg", None) or {}
    mean, std = cfg.get("mean") or IMAGENET_MEAN, cfg.get("std") or IMAGENET_STD
    if len(mean) != 3 or len(std) != 3:
        mean, std = IMAGENET_MEAN, IMAGENET_STD
    return NormalizedModel(net, tuple(mean), tuple(std))
