"""Shared training loop and the cache of trained baselines.

A baseline (the dense model every compression method starts from) is trained once per
training spec and cached under ``<cache_dir>/baselines/<hash>.pt``; concurrent workers
wait on a file lock instead of training it twice.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Protocol


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

    def key(self) -> str:
        blob = json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def make_sgd(model, lr: float, momentum: float = 0.9, weight_decay: float = 5e-4):
    import torch
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)


def fit(model, x, y, *, epochs: int, batch_size: int, optimizer, seed: int,
        hooks: StepHooks | None = None, on_epoch: Callable[[int], None] | None = None,
        lr_schedule: Callable[[int], float] | None = None) -> int:
    """Minibatch cross-entropy training in place; returns the number of steps taken.

    x: float (N, ...) inputs, y: int64 (N,) labels. The shuffling order depends on
    ``seed`` only, so every method sees the same batches. ``lr_schedule(step)`` if given
    sets the learning rate before each step.
    """
    import torch
    import torch.nn.functional as F

    gen = torch.Generator().manual_seed(seed)
    n = len(x)
    step = 0
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(n, generator=gen)
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            if lr_schedule is not None:
                for group in optimizer.param_groups:
                    group["lr"] = lr_schedule(step)
            if hooks is not None and hasattr(hooks, "before_forward"):
                hooks.before_forward(model, step)
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x[idx]), y[idx])
            loss.backward()
            if hooks is not None and hasattr(hooks, "after_backward"):
                hooks.after_backward(model, step)
            optimizer.step()
            if hooks is not None and hasattr(hooks, "after_step"):
                hooks.after_step(model, step)
            step += 1
        if on_epoch is not None:
            on_epoch(epoch)
    model.eval()
    return step


def finetune_with_hooks(model, data, hooks, *, epochs: int, batch_size: int, lr: float, seed: int):
    """The compression protocol's fine-tuning, shared by every task that prunes:
    ``hooks.prepare(model, data, total_steps, seed)``, then SGD (momentum 0.9, weight decay
    5e-4) at ``lr`` cosine-decayed to 0 over ``epochs``, with ``hooks`` as the step hooks.
    Returns ``hooks.finalize(model)``. ``data`` is a :class:`robench.data.Splits`.

    A method may split the budget into segments (INQ's retraining phases, a pipeline's
    stages) with ``hooks.lr_restarts(total_steps)``: the cosine schedule then restarts
    from ``lr`` at each of those steps and decays to 0 by the end of each segment. A
    method whose ``wants_finetuning()`` is False gets ``prepare(model, data, 0, seed)``
    and ``finalize`` only."""
    import torch

    wants = getattr(hooks, "wants_finetuning", lambda: True)()
    total_steps = epochs * math.ceil(len(data.train_x) / batch_size) if wants else 0
    torch.manual_seed(seed)
    hooks.prepare(model, data, total_steps, seed)
    if total_steps:
        restarts = getattr(hooks, "lr_restarts", lambda n: [])(total_steps)
        schedule = cosine_segments(lr, total_steps, restarts)
        fit(model, data.train_x, data.train_y, epochs=epochs, batch_size=batch_size,
            optimizer=make_sgd(model, lr), seed=seed, hooks=hooks, lr_schedule=schedule)
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


def accuracy(model, x, y, batch_size: int = 1000) -> float:
    """Top-1 accuracy in [0, 1] of ``model`` (eval mode, no grad) on (x, y)."""
    import torch
    model.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            correct += (model(x[start:start + batch_size]).argmax(1) == y[start:start + batch_size]).sum().item()
    return correct / len(x)


def trained_baseline(spec: TrainSpec, cache_dir: str | Path, data=None, say=None):
    """Return ``(model, info)``: the dense model trained by ``spec``, from the cache if present.

    ``data`` (a :class:`robench.data.Splits`) avoids reloading the dataset when the caller
    has it. ``info`` holds the cache path, test accuracy and whether it was cached.
    """
    import torch

    from robench.data import load_dataset
    from robench.models import build_model

    folder = Path(cache_dir) / "baselines"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{spec.model}-{spec.dataset}-{spec.key()}.pt"
    data = data if data is not None else load_dataset(spec.dataset, spec.dataset_root)
    model = build_model(spec.model, num_classes=data.num_classes)
    with open(folder / f"{path.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one process trains, the others wait and load
        cached = path.exists()
        if cached:
            model.load_state_dict(torch.load(path, weights_only=True))
        else:
            if say:
                say(f"training baseline {spec.model} on {spec.dataset} (seed {spec.seed})")
            torch.manual_seed(spec.seed)
            model = build_model(spec.model, num_classes=data.num_classes)
            fit(model, data.train_x, data.train_y, epochs=spec.epochs, batch_size=spec.batch_size,
                optimizer=make_sgd(model, spec.lr, spec.momentum, spec.weight_decay), seed=spec.seed)
            tmp = path.with_suffix(".tmp")
            torch.save(model.state_dict(), tmp)
            tmp.replace(path)  # atomic: a killed run never leaves half a baseline
    model.eval()
    info = {"path": str(path), "cached": cached, "key": spec.key(),
            "test_accuracy": accuracy(model, data.test_x, data.test_y)}
    return model, info
