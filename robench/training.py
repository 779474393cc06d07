"""The one training loop, the classification fine-tuning protocol, and trained baselines.

:func:`train_loop` is the loop every task trains with (a loss function per batch and
optional step hooks); :func:`fit` is cross-entropy on it. A baseline (the dense model every
compression method starts from) is trained once per training spec and cached under
``<cache_dir>/baselines/`` through :func:`robench.cache.cached`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol


class StepHooks(Protocol):
    """Optional callbacks a method gives the training loop (all may be absent)."""
    def before_forward(self, model, step: int) -> None: ...
    def after_backward(self, model, step: int) -> None: ...
    def after_step(self, model, step: int) -> None: ...


@dataclass(frozen=True)
class TrainSpec:
    """Everything that determines a trained baseline; its hash names the cache file."""
    model: str
    dataset: str
    epochs: int = 10
    batch_size: int = 64
    lr: float = 0.05  # 0.01 underfits in 8 epochs (LeNet-300-100: 0.886 on mnist-5k)
    momentum: float = 0.9
    weight_decay: float = 5e-4
    seed: int = 0
    dataset_root: str | None = None
    # identities of a versioned or plug-in model/dataset (registry.Entry.identity): editing a
    # plug-in model retrains its baseline; empty for built-ins (their keys are unchanged)
    components: str = ""
    precision: str = "fp32"  # the forward passes of training (fp32: left out of the key, as before it existed)
    # a checkpoint the baseline is loaded from instead of trained (the key holds its content's
    # digest, not its path), and whether its network takes raw [0, 1] input ("none")
    weights: str = ""
    weights_normalization: str = "model"
    # "load": the checkpoint is the baseline; "new": it initializes all but the classifier head
    # (new, the model's own seeded initialization) and the baseline is fine-tuned for `epochs`
    weights_head: str = "load"

    def __post_init__(self):
        if self.weights_head not in ("load", "new") or (self.weights_head == "new" and not self.weights):
            from robench.errors import UserError
            raise UserError(f"baseline {self.model}: weights_head={self.weights_head!r}; expected 'load', or "
                            f"'new' with weights: PATH")

    def key(self) -> str:
        fields = asdict(self)
        for name, default in (("components", ""), ("precision", "fp32"), ("weights", ""),
                              ("weights_normalization", "model"), ("weights_head", "load")):
            if fields[name] == default:
                del fields[name]
        if self.weights:
            fields["weights"] = file_digest(self.weights)
        blob = json.dumps(fields, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    @classmethod
    def of_task(cls, params, seed: int) -> "TrainSpec":
        """The baseline of a classification task's run: its params' model, dataset,
        dataset_root and baseline_epochs (and precision, weights, weights_normalization and
        weights_head where it has them), at the run's seed (the same file for every task)."""
        from robench import registry

        registry.load_builtins()
        parts = []
        for kind, name in (("models", params.model), ("datasets", params.dataset)):
            if name in registry.REGISTRIES[kind]:
                identity = registry.REGISTRIES[kind].entry(name).identity()
                if identity:
                    parts.append(f"{kind[:-1]}:{name}={identity}")
        return cls(model=params.model, dataset=params.dataset, epochs=params.baseline_epochs, seed=seed,
                   dataset_root=params.dataset_root, components=",".join(parts),
                   precision=getattr(params, "precision", "fp32"), weights=getattr(params, "weights", None) or "",
                   weights_normalization=getattr(params, "weights_normalization", "model"),
                   weights_head=getattr(params, "weights_head", "load"))


def file_digest(path: str) -> str:
    """sha256 (16 hex) of the file at ``path``, computed once per (path, size, mtime) in a process."""
    import os

    try:
        stat = os.stat(os.path.expanduser(path))
    except OSError as exc:
        from robench.errors import UserError
        raise UserError(f"weights {path}: {exc.strerror or exc} (expected a checkpoint file)") from None
    return _digest(os.path.expanduser(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _digest(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def make_sgd(model, lr: float, momentum: float = 0.9, weight_decay: float = 5e-4):
    import torch
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)


def epoch_batches(n: int, batch_size: int, epochs: int, generator, *, min_size: int = 1):
    """Minibatch indices of ``epochs`` passes over ``n`` samples: one lazy iterable per epoch,
    each a fresh ``torch.randperm(n, generator=generator)`` cut into ``batch_size`` slices
    (slices shorter than ``min_size`` are skipped). The permutation of an epoch is drawn when
    that epoch starts, so other draws from ``generator`` in between (augmentation) keep their
    place in the stream."""
    import torch

    def one_epoch():
        order = torch.randperm(n, generator=generator, device=generator.device)
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            if len(idx) >= min_size:
                yield idx
    return (one_epoch() for _ in range(epochs))


def train_loop(model, optimizer, epochs: Iterable[Iterable[Any]], loss: Callable[[Any], Any], *,
               hooks: StepHooks | None = None, lr_schedule: Callable[[int], float] | None = None,
               on_epoch: Callable[[int, list], None] | None = None, scaler=None) -> int:
    """The one training loop: for each batch of each epoch, set the learning rate
    (``lr_schedule(step)``), ``hooks.before_forward``, zero the gradients, ``loss(batch)``
    (a scalar tensor; the caller puts the batch on its device), backward,
    ``hooks.after_backward``, ``optimizer.step()``, ``hooks.after_step``. ``on_epoch(epoch,
    losses)`` gets the epoch's detached loss tensors. The model is in train mode while it
    runs and in eval mode after. Returns the number of steps taken. ``scaler`` (a
    ``torch.amp.GradScaler``, fp16 training) scales the loss and unscales before
    ``after_backward``; a step it skips (inf/nan gradients) still counts."""
    before = getattr(hooks, "before_forward", None)
    after_backward = getattr(hooks, "after_backward", None)
    after_step = getattr(hooks, "after_step", None)
    step = 0
    model.train()
    for epoch, batches in enumerate(epochs):
        losses = []
        for batch in batches:
            if lr_schedule is not None:
                for group in optimizer.param_groups:
                    group["lr"] = lr_schedule(step)
            if before is not None:
                before(model, step)
            optimizer.zero_grad(set_to_none=True)
            value = loss(batch)
            if scaler is None:
                value.backward()
            else:
                scaler.scale(value).backward()
                scaler.unscale_(optimizer)
            if after_backward is not None:
                after_backward(model, step)
            if scaler is None:
                optimizer.step()
            else:
                scaler.step(optimizer)
                scaler.update()
            if after_step is not None:
                after_step(model, step)
            losses.append(value.detach())
            step += 1
        if on_epoch is not None:
            on_epoch(epoch, losses)
    model.eval()
    return step


def as_split(data, y=None):
    """A split (see ``robench.data``) from a split, or from tensors x (N, ...) and y (N,)."""
    if y is None:
        return data
    from robench.data import ArraySplit

    return ArraySplit(data, y)


def shuffled_epochs(split, batch_size: int, epochs: int, generator, device, *, min_size: int = 1):
    """``epochs`` passes over ``split`` as (x, y) batches on ``device``: one lazy iterable per
    epoch, each in the order of a fresh ``torch.randperm(len(split), generator=generator)``
    (drawn when the epoch starts, as :func:`epoch_batches`). A split that augments (streamed
    training images) also draws that epoch's augmentation seed from ``generator``, after the
    permutation; an in-memory split draws nothing more, so its batches are those of the index
    loop it replaces."""
    import torch

    augments = getattr(split, "augment", False)

    def one_epoch():
        order = torch.randperm(len(split), generator=generator, device=generator.device)
        seed = int(torch.randint(0, 2 ** 62, (1,), generator=generator).item()) if augments else None
        yield from split.batches(order, batch_size, device, min_size=min_size, augment_seed=seed)
    return (one_epoch() for _ in range(epochs))


PRECISIONS = {"fp32": None, "bf16": "bfloat16", "fp16": "float16"}


def autocast(precision: str, device):
    """The context a forward pass runs in at ``precision``: nothing for fp32, else
    ``torch.autocast`` to bfloat16/float16 on ``device``'s type (fp16 on a CPU is refused:
    its CPU kernels are slow and partial)."""
    import contextlib

    import torch

    if precision not in PRECISIONS:
        from robench.errors import UserError
        raise UserError(f"precision {precision!r}; expected one of {', '.join(PRECISIONS)}")
    if PRECISIONS[precision] is None:
        return contextlib.nullcontext()
    kind = torch.device(device).type
    if precision == "fp16" and kind == "cpu":
        from robench.errors import UserError
        raise UserError("precision fp16 needs a GPU (--device cuda); on the CPU use bf16 or fp32")
    return torch.autocast(kind, dtype=getattr(torch, PRECISIONS[precision]))


def fit(model, data, y=None, *, epochs: int, batch_size: int, optimizer, seed: int,
        hooks: StepHooks | None = None, on_epoch: Callable[[int], None] | None = None,
        lr_schedule: Callable[[int], float] | None = None, precision: str = "fp32") -> int:
    """Minibatch cross-entropy training in place; returns the number of steps taken.

    ``data`` is a split (``robench.data``: in memory or streamed), or x: float (N, ...) inputs
    with ``y``: int64 (N,) labels. Batches arrive on the model's device. The shuffling order
    depends on ``seed`` only (stream "batches"), so every method sees the same batches.
    ``lr_schedule(step)`` if given sets the learning rate before each step. ``precision``:
    the forward pass under :func:`autocast` (fp32: as is; bf16/fp16: mixed precision, with a
    gradient scaler for fp16).
    """
    import torch.nn.functional as F

    from robench import seeding

    split = as_split(data, y)
    device = _device_of(model)
    scaler = _grad_scaler(precision, device)

    def loss(batch):
        x, target = batch
        with autocast(precision, device):
            return F.cross_entropy(model(x), target)

    batches = shuffled_epochs(split, batch_size, epochs, seeding.stream(seed, "batches"), device)
    return train_loop(model, optimizer, batches, loss, hooks=hooks, lr_schedule=lr_schedule, scaler=scaler,
                      on_epoch=None if on_epoch is None else (lambda epoch, _: on_epoch(epoch)))


def _grad_scaler(precision: str, device):
    """fp16 training's loss scaler (bf16 and fp32 need none)."""
    if precision != "fp16":
        return None
    import torch

    return torch.amp.GradScaler(torch.device(device).type)


def _device_of(model):
    import torch

    first = next(iter(model.parameters()), None)
    return first.device if first is not None else torch.device("cpu")


def finetune_with_hooks(model, data, hooks, *, epochs: int, batch_size: int, lr: float, seed: int,
                        precision: str = "fp32"):
    """The compression protocol's fine-tuning, shared by every task that prunes:
    ``hooks.prepare(model, data, total_steps, seed)``, then SGD (momentum 0.9, weight decay
    5e-4) at ``lr`` cosine-decayed to 0 over ``epochs``, with ``hooks`` as the step hooks.
    Returns ``hooks.finalize(model)``. ``data`` is a dataset (``robench.data``: its ``train``
    split is read); ``precision`` as :func:`fit`.

    A method may split the budget into segments (INQ's retraining phases, a pipeline's
    stages) with ``hooks.lr_restarts(total_steps)``: the cosine schedule then restarts
    from ``lr`` at each of those steps and decays to 0 by the end of each segment. A
    method whose ``wants_finetuning()`` is False gets ``prepare(model, data, 0, seed)``
    and ``finalize`` only."""
    wants = getattr(hooks, "wants_finetuning", lambda: True)()
    total_steps = epochs * math.ceil(len(data.train) / batch_size) if wants else 0
    hooks.prepare(model, data, total_steps, seed)
    if total_steps:
        restarts = getattr(hooks, "lr_restarts", lambda n: [])(total_steps)
        schedule = cosine_segments(lr, total_steps, restarts)
        fit(model, data.train, epochs=epochs, batch_size=batch_size, optimizer=make_sgd(model, lr), seed=seed,
            hooks=hooks, lr_schedule=schedule, precision=precision)
    return hooks.finalize(model)


def cosine_segments(lr: float, total_steps: int, restarts=()):
    """``step → learning rate``: cosine decay from ``lr`` to 0 over each segment
    [b_i, b_{i+1}), the boundaries being 0, the sorted ``restarts`` inside (0, total_steps)
    and ``total_steps``."""
    import bisect

    bounds = [0, *sorted({int(s) for s in restarts if 0 < int(s) < total_steps}), total_steps]

    def schedule(step: int) -> float:
        i = bisect.bisect_right(bounds, step) - 1
        start, end = bounds[min(i, len(bounds) - 2)], bounds[min(i + 1, len(bounds) - 1)]
        return 0.5 * lr * (1.0 + math.cos(math.pi * (step - start) / max(end - start, 1)))
    return schedule


def accuracy(model, data, y=None, batch_size: int = 1000, precision: str = "fp32") -> float:
    """Top-1 accuracy in [0, 1] of ``model`` (eval mode, no grad) on a split, or on tensors
    (x, y); batches go to the model's device, the forward pass at ``precision``."""
    import torch

    split = as_split(data, y)
    model.eval()
    device = _device_of(model)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    with torch.no_grad(), autocast(precision, device):
        for x, target in split.batches(None, batch_size, device):
            correct += (model(x).argmax(1) == target).sum()
    return correct.item() / len(split)


def trained_baseline(spec: TrainSpec, cache_dir: str | Path, data=None, say=None, device="cpu"):
    """Return ``(model, info)``: the dense model trained by ``spec`` (on ``device``), or loaded
    from the checkpoint ``spec.weights`` (:func:`robench.models.weights.load_weights`), from
    the cache if present. With ``spec.weights_head == "new"`` the checkpoint initializes all
    but the classifier head (kept at the seeded build's initialization) and the model is then
    trained as any baseline (``spec.epochs``, the same recipe): fine-tuning.

    ``data`` (a :class:`robench.data.Splits`) avoids reloading the dataset when the caller
    has it. ``info`` holds the cache path, test accuracy and whether it was cached. The
    cached file is device-free; training and loading run on global generators seeded with
    ``spec.seed`` and restored afterwards (:func:`robench.seeding.scoped`), so the caller's
    random state is the same whether the cache was warm or not.
    """
    import torch

    from robench import seeding
    from robench.cache import cached
    from robench.data import load_dataset
    from robench.models import build_model, export_state_dict

    path = Path(cache_dir) / baseline_path(spec)
    data = data if data is not None else load_dataset(spec.dataset, spec.dataset_root)

    def build():  # initial weights from the CPU generator: the same on every device
        with torch.device("cpu"):
            model = build_model(spec.model, num_classes=data.num_classes)
        return model.to(device)

    def train():
        from robench.models.weights import load_weights

        new_head = spec.weights_head == "new"
        normalization = None if spec.weights_normalization == "model" else spec.weights_normalization
        if spec.weights and not new_head:  # the user's checkpoint is the baseline: loaded, not trained
            if say:
                say(f"baseline {spec.model}: weights from {spec.weights}")
            with seeding.scoped(spec.seed):
                model = build()
            return load_weights(model, os.path.expanduser(spec.weights), normalization=normalization)
        if say:
            start = f", body from {spec.weights}, new head" if new_head else ""
            say(f"training baseline {spec.model} on {spec.dataset} (seed {spec.seed}{start})")
        with seeding.scoped(spec.seed):
            model = build()
            if new_head:  # transfer learning: the checkpoint's body, the model's own head, then trained
                load_weights(model, os.path.expanduser(spec.weights), normalization=normalization, new_head=True)
            fit(model, data.train, epochs=spec.epochs, batch_size=spec.batch_size,
                optimizer=make_sgd(model, spec.lr, spec.momentum, spec.weight_decay), seed=spec.seed,
                precision=spec.precision)
        return model

    def load(p):
        with seeding.scoped(spec.seed):
            model = build()
        model.load_state_dict(torch.load(p, weights_only=True))
        return model

    model, was_cached = cached(path, train, export_state_dict, load)
    model.eval()
    info = {"path": str(path), "cached": was_cached, "key": spec.key(),
            "test_accuracy": accuracy(model, data.test, precision=spec.precision)}
    return model, info


def baseline_path(spec: TrainSpec) -> str:
    """Where the baseline ``spec`` is cached, relative to the cache folder."""
    from robench.cache import safe_name

    return f"baselines/{safe_name(spec.model)}-{safe_name(spec.dataset)}-{spec.key()}.pt"


def baseline_prerequisite(spec: TrainSpec):
    """``(key, build)`` of the trained baseline ``spec`` as a shared prerequisite of the runs
    that start from it (see ``Task.prerequisites``): trained once, before them."""
    return start_prerequisite(spec, None)


# -- robust bases: a classification task may start from a robustly trained model ---------
class RobustBase:
    """A task's ``base`` parameter: start from the vanilla baseline fine-tuned by a
    ``robust_training`` recipe (its protocol: ``epochs`` epochs, SGD momentum 0.9 at ``lr``,
    batch ``batch_size``), e.g. ``{recipe: deepdefense, params: {c: 10}}``. Validated at
    suite expansion: the recipe must be registered and its parameters valid."""

    FIELDS = {"recipe": str, "params": dict, "epochs": int, "lr": float, "batch_size": int}
    DEFAULTS = {"params": {}, "epochs": 5, "lr": 0.005, "batch_size": 64}

    @classmethod
    def canonical(cls, value: dict | None) -> dict | None:
        """The base with defaults filled in and the recipe's parameters canonical; raises
        ValueError (one line) for an unknown recipe, key or parameter."""
        if value is None:
            return None
        if not isinstance(value, dict) or "recipe" not in value:
            raise ValueError("base: expected {recipe: <robust_training recipe>, params: {...}, epochs: 5}")
        unknown = sorted(set(value) - set(cls.FIELDS) - {"version"})  # version: set here, below
        if unknown:
            raise ValueError(f"base: unknown key(s) {', '.join(unknown)} (expected {', '.join(cls.FIELDS)})")
        out = {**cls.DEFAULTS, **value}
        from robench import registry
        from robench.errors import UserError
        from robench.spec import canonical_method_params

        registry.load_builtins()
        try:
            recipe_cls = registry.methods.get(str(out["recipe"]), task="robust_training")
            out["params"] = canonical_method_params(recipe_cls, dict(out["params"] or {}), "base", "params")
            recipe_cls(**out["params"])
        except UserError as exc:
            raise ValueError(f"base: {exc}") from None
        for key, kind in cls.FIELDS.items():
            if kind in (int, float) and (isinstance(out[key], bool) or not isinstance(out[key], (int, float))
                                         or out[key] <= 0):
                raise ValueError(f"base: {key}={out[key]!r}; expected a positive number")
        out["epochs"], out["batch_size"], out["lr"] = int(out["epochs"]), int(out["batch_size"]), float(out["lr"])
        out["version"] = str(getattr(recipe_cls, "version", "1"))
        return out


def base_path(spec: TrainSpec, base: dict | None) -> str:
    """Where a run's starting model is cached, relative to the cache folder."""
    if base is None:
        return baseline_path(spec)
    from robench.cache import safe_name

    key = hashlib.sha256(json.dumps({"baseline": spec.key(), "base": base}, sort_keys=True).encode()).hexdigest()[:16]
    return f"robust-bases/{safe_name(spec.model)}-{safe_name(spec.dataset)}-{safe_name(base['recipe'])}-{key}.pt"


def starting_model(spec: TrainSpec, base: dict | None, cache_dir, data=None, say=None, device="cpu"):
    """``(model, info)``: what a classification run starts from — the dense baseline
    ``spec`` (:func:`trained_baseline`), or with a ``base`` (:class:`RobustBase`, canonical)
    that baseline fine-tuned by the robust_training recipe, computed once and cached like
    the baseline (the recipe trains on global generators seeded with ``spec.seed``,
    restored afterwards). ``info["test_accuracy"]`` is the starting model's."""
    import copy

    import torch

    from robench import registry, seeding
    from robench.cache import cached
    from robench.data import load_dataset
    from robench.models import build_model, export_state_dict

    data = data if data is not None else load_dataset(spec.dataset, spec.dataset_root)
    if base is None:
        return trained_baseline(spec, cache_dir, data=data, say=say, device=device)

    def train():
        vanilla, _ = trained_baseline(spec, cache_dir, data=data, say=say, device=device)
        recipe = registry.methods.get(base["recipe"], task="robust_training")(**base["params"])
        if say:
            say(f"robust base: {base['recipe']} on {spec.model} (seed {spec.seed}, {base['epochs']} epochs)")
        with seeding.scoped(spec.seed):
            return recipe.train(copy.deepcopy(vanilla), data, base["epochs"], spec.seed,
                                batch_size=base["batch_size"], lr=base["lr"])

    def load(path):
        with seeding.scoped(spec.seed), torch.device("cpu"):
            model = build_model(spec.model, num_classes=data.num_classes)
        model.load_state_dict(torch.load(path, weights_only=True))
        return model.to(device)

    path = Path(cache_dir) / base_path(spec, base)
    model, was_cached = cached(path, train, export_state_dict, load)
    model.eval()
    return model, {"path": str(path), "cached": was_cached, "base": base,
                   "test_accuracy": accuracy(model, data.test, precision=spec.precision)}


def start_prerequisite(spec: TrainSpec, base: dict | None):
    """``(key, build)`` of a run's starting model as a shared prerequisite (see
    ``Task.prerequisites``)."""
    import functools

    return base_path(spec, base), functools.partial(_build_start, spec, base)


def _build_start(spec: TrainSpec, base, cache_dir, device) -> list[Path]:
    _, info = starting_model(spec, base, cache_dir, device=device)
    return [Path(info["path"])]
