"""Training specs, the training loop, and the file-locked cache of trained restoration networks.

A network is determined by a :class:`NetSpec` (family, level or spectrum, architecture
width, data, budget, seed, and — for fine-tuned networks — the spec it starts from and
the DL-Net module settings). It is trained once per spec and cached under
``<cache_dir>/restoration/<name>-<hash>.pt``; concurrent workers coordinate with one
``fcntl`` lock per file, the file is written atomically, and it is loaded with
``torch.load(..., weights_only=True)``. The base network of a seed, the oracle at its
training level, and the starting point of base+paste, spectrum-ft and dlnet are one
spec, hence one file.

Training (``train_network``): Adam, cosine-decayed learning rate, MSE between the
unclamped output and the ground truth, minibatches drawn with replacement from the
training patches by ``torch.Generator(seed)``. A single-level network sees only its
level; a spectrum network draws one level per minibatch uniformly from the spectrum's
range (integers for inpainting and super-resolution). Interpolation masks get the
seed ``seed · 1_000_003 + step``.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

NETS_VERSION = "2"  # bump when nets.py or train_network change what a spec trains to
INTEGER_LEVEL_FAMILIES = ("inpainting", "super_resolution")


@dataclass(frozen=True)
class NetSpec:
    """Everything that determines a trained network; ``key()`` hashes it.

    Exactly one of ``level`` (train at that level) and ``spectrum`` ((low, high): draw a
    level per minibatch) is set. ``init``: the spec whose weights this one starts from
    (None: random init). ``module_steps`` > 0 wraps the network in DL-Net's
    :class:`~robench.tasks.restoration.nets.FidelityRefinement` with that K.
    """
    family: str
    image_size: int
    width: int
    data: str  # "bundled" or "folder:<absolute path>"
    n_train: int
    steps: int
    batch_size: int
    lr: float
    seed: int
    level: float | None = None
    spectrum: tuple[float, float] | None = None
    init: "NetSpec | None" = None
    module_steps: int = 0
    step_size: float = 1.0
    learn_step: bool = True
    data_seed: int = 0
    version: str = NETS_VERSION

    def key(self) -> str:
        blob = json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def file_name(self) -> str:
        what = f"level{self.level:g}" if self.level is not None else \
            f"spectrum{self.spectrum[0]:g}-{self.spectrum[1]:g}"
        if self.module_steps:
            what += f"-dlnet{self.module_steps}"
        return f"{self.family}-{what}-seed{self.seed}-{self.key()}.pt"


def build_model(spec: NetSpec):
    """The untrained module a spec describes (a RestorationNet, or DL-Net around one)."""
    from robench.tasks.restoration.nets import FidelityRefinement, build_net

    net = build_net(spec.family, spec.width)
    if spec.module_steps:
        return FidelityRefinement(net, spec.module_steps, spec.step_size, spec.learn_step)
    return net


def draw_level(family: str, spectrum: tuple[float, float], rng) -> float:
    low, high = spectrum
    if family in INTEGER_LEVEL_FAMILIES:
        return float(rng.integers(int(low), int(high) + 1))
    return float(rng.uniform(low, high))


def run_model(model, obs):
    """Apply a plain network or a DL-Net to an Observation: (N, 3, H, W), unclamped."""
    from robench.tasks.restoration.nets import FidelityRefinement

    if isinstance(model, FidelityRefinement):
        return model(obs.network_input, obs.y, obs.mask, obs.forward_operator)
    return model(obs.network_input)


def train_network(spec: NetSpec, patches, init_state: dict | None = None) -> tuple[Any, dict]:
    """Train ``spec`` on ``patches`` (n, 3, S, S) in [0, 1]; returns (model in eval mode, info)."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    from robench.tasks.restoration.degradations import degrade

    torch.manual_seed(spec.seed)
    model = build_model(spec)
    if init_state is not None:
        target = model.net if spec.module_steps else model
        target.load_state_dict(init_state)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=spec.lr)
    gen = torch.Generator().manual_seed(spec.seed)
    rng = np.random.default_rng(spec.seed)
    started = time.process_time()
    losses = []
    model.train()
    for step in range(spec.steps):
        for group in optimizer.param_groups:
            group["lr"] = 0.5 * spec.lr * (1.0 + math.cos(math.pi * step / spec.steps))
        x = patches[torch.randint(len(patches), (spec.batch_size,), generator=gen)]
        level = spec.level if spec.spectrum is None else draw_level(spec.family, spec.spectrum, rng)
        obs = degrade(spec.family, x, level, seed=(spec.seed * 1_000_003 + step) % 2**63)
        loss = F.mse_loss(run_model(model, obs), x)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    model.eval()
    tail = losses[-max(1, len(losses) // 10):]
    return model, {"train_cpu_s": time.process_time() - started,
                   "final_loss": float(sum(tail) / len(tail))}


def trained_networks(specs: Iterable[NetSpec], cache_dir: str | Path,
                     patches: Callable[[], Any], say: Callable[[str], None] | None = None) -> list:
    """The trained model of each spec (eval mode), from the cache or trained now.

    ``patches()`` returns the training patches; it is called only if something must be
    trained. Specs locked by another process are skipped and come back later, so two
    workers needing the same set train different members of it instead of waiting.
    """
    specs = list(specs)
    folder = Path(cache_dir) / "restoration"
    folder.mkdir(parents=True, exist_ok=True)
    models: dict[int, Any] = {}
    pending = list(range(len(specs)))
    while pending:
        progressed = False
        for i in list(pending):
            model = _load_or_train(specs[i], folder, cache_dir, patches, say, blocking=False)
            if model is not None:
                models[i] = model
                pending.remove(i)
                progressed = True
        if not progressed:  # every remaining one is being trained elsewhere: wait for one
            i = pending.pop(0)
            models[i] = _load_or_train(specs[i], folder, cache_dir, patches, say, blocking=True)
    return [models[i] for i in range(len(specs))]


def trained_network(spec: NetSpec, cache_dir: str | Path, patches: Callable[[], Any],
                    say: Callable[[str], None] | None = None):
    """One trained model (see :func:`trained_networks`)."""
    return trained_networks([spec], cache_dir, patches, say)[0]


def cache_path(spec: NetSpec, cache_dir: str | Path) -> Path:
    return Path(cache_dir) / "restoration" / spec.file_name()


def _load(spec: NetSpec, path: Path):
    import torch

    model = build_model(spec)
    model.load_state_dict(torch.load(path, weights_only=True)["state"])
    model.eval()
    return model


def _load_or_train(spec, folder, cache_dir, patches, say, blocking):
    import torch

    path = folder / spec.file_name()
    if path.exists():  # written atomically: complete whenever it exists
        return _load(spec, path)
    with open(folder / f"{path.name}.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            return None
        if path.exists():
            return _load(spec, path)
        init_state = None
        if spec.init is not None:
            base = trained_network(spec.init, cache_dir, patches, say)
            init_state = base.state_dict()
        if say:
            say(f"training {spec.file_name()} ({spec.steps} steps)")
        model, info = train_network(spec, patches(), init_state)
        tmp = path.with_suffix(".tmp")
        torch.save({"state": model.state_dict(), "spec": json.dumps(asdict(spec), sort_keys=True),
                    "train_cpu_s": info["train_cpu_s"], "final_loss": info["final_loss"]}, tmp)
        tmp.replace(path)  # atomic: a killed run never leaves half a network
        return model
