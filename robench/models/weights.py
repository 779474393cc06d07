"""Weights from a local checkpoint file, in the formats the field publishes them.

:func:`load_weights` reads, always with ``torch.load(path, weights_only=True,
map_location="cpu")`` (never downloading, never unpickling code):

* torchvision's: a plain state dict saved with ``torch.save`` (``resnet18-f37072fd.pth``);
* RobustBench's and most training scripts': ``{"state_dict": ...}`` or
  ``{"model_state_dict": ...}`` beside other entries (epoch, optimizer), keys possibly
  prefixed ``module.`` (DataParallel) or ``model.`` (a wrapper);
* robench's own :func:`robench.models.export_state_dict` files.

A model built by robench with its normalization inside (``tv:``/``timm:`` names, the CIFAR
built-ins: a :class:`~robench.models.normalize.NormalizedModel`) holds the network under
``net.`` and the normalizer's ``normalize.mean``/``normalize.std``; a checkpoint of the bare
network (torchvision's, RobustBench's) lacks both, and loads into ``net.`` with the model's
own normalizer kept. A file that does not fit the model is one line naming the file, the
first missing or unexpected key (or the first shape that differs) and what was expected.

Transfer learning (``new_head=True``): the checkpoint initializes all but the model's
classifier head (:func:`classifier_head`), which keeps the model's own initialization; an
ImageNet ResNet-18 (1000 outputs) thus starts a 10-class CIFAR-10 model.
"""

from __future__ import annotations

from pathlib import Path

from robench.errors import UserError

WRAPPER_KEYS = ("state_dict", "model_state_dict")  # where a checkpoint keeps the state dict
PREFIXES = ("module.", "model.")  # DataParallel's, a wrapper's: stripped when every key has one
# auxiliary classifiers torchvision's GoogLeNet/Inception-v3 checkpoints carry and robench builds without
AUX_HEADS = ("aux1.", "aux2.", "AuxLogits.")


def load_weights(model, path: str | Path, *, normalization=None, new_head: bool = False):
    """Load the checkpoint at ``path`` into ``model`` (in place) and return ``model``.

    ``normalization`` (models with their normalizer inside only): None keeps the model's
    mean/std, or the checkpoint's where it has them (a robench export); ``"none"`` makes the
    normalizer the identity, for networks trained on raw [0, 1] input (most of RobustBench's
    CIFAR-10 models); ``(mean, std)``, one value per channel, sets them. Raises a one-line
    UserError for a missing or unreadable file, a file that holds no state dict, and keys or
    shapes that do not fit ``model``.

    ``new_head=True``: the tensors of the model's classifier head (:func:`classifier_head`:
    its last ``nn.Linear``, else its last ``nn.Conv2d``) keep the model's own initialization;
    the checkpoint's tensors of the same names are ignored whatever their shape (or may be
    absent). Every other key must fit exactly, as without it.
    """
    import torch

    path = Path(path)
    target = model.state_dict()
    wrapped = _normalizer_keys(target)
    name, module = classifier_head(model)
    head = tuple(f"{name}.{k}" if name else k for k in module.state_dict()) if module is not None else ()
    if new_head and not head:
        raise UserError(f"weights {path}: new_head=True, but the model has no nn.Linear or nn.Conv2d layer "
                        f"(expected a classifier whose last such layer is its head)")
    if normalization is not None:  # checked first: a refused call leaves the model as it was
        if not wrapped:
            raise UserError(f"weights {path}: normalization={normalization!r} given, but the model has no "
                            f"normalizer inside (expected a tv:, timm: or CIFAR built-in model)")
        mean, std = _normalization_values(normalization, model, path)
    state = _read(path)
    mapped = _best_mapping(state, target, wrapped)
    if new_head:
        for key in head:
            mapped.pop(key, None)  # the model's own head: the checkpoint's is ignored
    _check_fit(path, mapped, target, wrapped, keep=head if new_head else (), head=head)
    model.load_state_dict(mapped, strict=False)  # missing: only the normalizer and BN counters (checked)
    if normalization is not None:
        with torch.no_grad():
            for key, value in ((wrapped[0], mean), (wrapped[1], std)):
                buffer = model.get_buffer(key)
                buffer.copy_(torch.as_tensor(value, dtype=buffer.dtype).reshape(buffer.shape))
    return model


def classifier_head(model):
    """``(name, module)`` of ``model``'s classifier head: its last ``nn.Linear`` in
    registration order (``named_modules``), or, when it has none, its last ``nn.Conv2d``
    (NIN's and SqueezeNet's 1×1 classifiers); ``("", None)`` when it has neither. The rule
    assumes the head is registered last, as in torchvision's, timm's and robench's models."""
    import torch.nn as nn

    found = ("", None)
    for kind in (nn.Linear, nn.Conv2d):
        for name, module in model.named_modules():
            if isinstance(module, kind):
                found = (name, module)
        if found[1] is not None:
            return found
    return found


def _read(path: Path) -> dict:
    """The checkpoint's state dict (name → tensor), unwrapped from ``{"state_dict": ...}``."""
    import pickle
    import zipfile

    import torch

    if not path.is_file():
        what = "is a folder" if path.is_dir() else "no such file"
        raise UserError(f"weights {path}: {what} (expected a checkpoint file saved with torch.save)")
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile,
            AttributeError, TypeError, UnicodeDecodeError) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise UserError(f"weights {path}: torch.load(weights_only=True) cannot read it ({type(exc).__name__}: "
                        f"{reason}); expected a state dict saved with torch.save") from None
    if isinstance(state, dict):
        for key in WRAPPER_KEYS:
            if isinstance(state.get(key), dict):
                state = state[key]
                break
    if not isinstance(state, dict) or not state:
        found = f"a {type(state).__name__}" if not isinstance(state, dict) else "an empty dict"
        raise UserError(f"weights {path}: holds {found}; expected a state dict (name → tensor) or "
                        f"{{'state_dict': ...}} / {{'model_state_dict': ...}}")
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            hint = f" (its keys: {', '.join(map(repr, list(state)[:4]))})" if not isinstance(value, torch.Tensor) else ""
            raise UserError(f"weights {path}: entry {key!r} is not a tensor ({type(value).__name__}){hint}; "
                            f"expected a state dict (name → tensor) or {{'state_dict': ...}} / "
                            f"{{'model_state_dict': ...}}")
    return dict(state)


def _normalizer_keys(target: dict) -> tuple[str, str] | tuple:
    """``("normalize.mean", "normalize.std")`` when the model keeps a normalizer in front of
    ``net.`` (a robench NormalizedModel), else ()."""
    from robench.models.normalize import NET_PREFIX, NORMALIZER_KEYS

    keys = set(target)
    if set(NORMALIZER_KEYS) <= keys and all(k in NORMALIZER_KEYS or k.startswith(NET_PREFIX) for k in keys):
        return NORMALIZER_KEYS
    return ()


def _candidates(state: dict):
    """The checkpoint's keys as saved, then with ``module.``/``model.`` stripped (each time
    every key carries one), outermost first."""
    yield state
    while True:
        prefix = next((p for p in PREFIXES if all(k.startswith(p) for k in state)), None)
        if prefix is None:
            return
        state = {k[len(prefix):]: v for k, v in state.items()}
        yield state


def _best_mapping(state: dict, target: dict, wrapped) -> dict:
    """The reading of the checkpoint's keys that names most of the model's: as saved or
    with prefixes stripped, and for a model with a normalizer, under ``net.`` when the
    checkpoint is of the bare network."""
    from robench.models.normalize import NET_PREFIX

    best, best_hits = state, -1
    for candidate in _candidates(state):
        readings = [candidate]
        if wrapped and not any(k.startswith(NET_PREFIX) for k in candidate):
            readings.append({NET_PREFIX + k: v for k, v in candidate.items()})
        for reading in readings:
            hits = sum(k in target for k in reading)
            if hits > best_hits:
                best, best_hits = reading, hits
    return best


def _check_fit(path: Path, mapped: dict, target: dict, wrapped, keep=(), head=()) -> None:
    """Raise the one-line error for the first key or shape of ``mapped`` that does not fit
    ``target``; ``keep``: keys of the model left as they are (a new head), never missing;
    ``head``: the classifier head's keys (a shape error there suggests a new head)."""
    from robench.models.normalize import NET_PREFIX

    def optional(key: str) -> bool:  # kept from the model when the checkpoint lacks them
        return key in wrapped or key in keep or key.endswith("num_batches_tracked")

    def aux_head(key: str) -> bool:
        bare = key[len(NET_PREFIX):] if wrapped and key.startswith(NET_PREFIX) else key
        return bare.startswith(AUX_HEADS)

    for key in [k for k in mapped if k not in target and aux_head(k)]:
        del mapped[key]  # the model was built without auxiliary classifiers
    missing = [k for k in target if k not in mapped and not optional(k)]
    unexpected = [k for k in mapped if k not in target]
    if missing:
        more = f" ({len(missing)} keys missing in all)" if len(missing) > 1 else ""
        extra = f"; the file has {unexpected[0]!r} instead" if unexpected else ""
        raise UserError(f"weights {path}: does not fit the model: missing key {missing[0]!r} (expected a tensor of "
                        f"shape {_shape(target[missing[0]])}){more}{extra}")
    if unexpected:
        more = f" ({len(unexpected)} unexpected keys in all)" if len(unexpected) > 1 else ""
        raise UserError(f"weights {path}: does not fit the model: unexpected key {unexpected[0]!r} (the model has "
                        f"no such parameter or buffer){more}")
    for key, value in mapped.items():
        if tuple(value.shape) != tuple(target[key].shape):
            hint = "; a new classifier head on the checkpoint's body: weights_head: new (new_head=True)" \
                if key in head else ""
            raise UserError(f"weights {path}: does not fit the model: {key!r} has shape {_shape(value)}, the model "
                            f"expects {_shape(target[key])} (a different num_classes, width or architecture?){hint}")


def _shape(tensor) -> str:
    return "(" + ", ".join(str(d) for d in tensor.shape) + ")"


def _normalization_values(normalization, model, path: Path):
    channels = int(model.get_buffer("normalize.mean").numel())
    if isinstance(normalization, str):
        if normalization != "none":
            raise UserError(f"weights {path}: normalization={normalization!r}; expected None, 'none' or "
                            f"(mean, std)")
        return [0.0] * channels, [1.0] * channels
    try:
        mean, std = ([float(v) for v in part] for part in normalization)
    except (TypeError, ValueError):
        raise UserError(f"weights {path}: normalization={normalization!r}; expected None, 'none' or "
                        f"(mean, std) with {channels} values each") from None
    if len(mean) != channels or len(std) != channels or min(std) <= 0:
        raise UserError(f"weights {path}: normalization={normalization!r}; expected {channels} means and "
                        f"{channels} positive stds")
    return mean, std
