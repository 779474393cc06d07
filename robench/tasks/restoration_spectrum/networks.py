"""The reference networks of ``restoration_spectrum``: their specs, their training, and
their cache.

A network is determined by a :class:`NetSpec` (family, level or spectrum, architecture
width, data, budget, seed, and — for fine-tuned networks — the spec it starts from and
the DL-Net module settings). It is trained once per spec and cached under
``<cache_dir>/restoration/<name>-<hash>.pt`` through :func:`robench.cache.cached` (a file
lock per network, atomic replace), as a device-free state dict
(:func:`robench.models.export_state_dict`) that loads with
``torch.load(..., weights_only=True)`` onto the run's device. The base network of a seed,
the oracle at its training level, and the starting point of base+paste, spectrum-ft and
dlnet are one spec, hence one file.

Training (:func:`train_network`, on :func:`robench.training.train_loop`): Adam,
cosine-decayed learning rate, MSE between the unclamped output and the ground truth,
minibatches drawn with replacement from the training patches (on the CPU, stream
"batches" of the spec's seed), each moved to the network's device and degraded there. A
single-level network sees only its level; a spectrum network draws one level per
minibatch uniformly from the spectrum's range (integers for inpainting and
super-resolution; stream "degradations"). Interpolation masks get the seed
``seed · 1_000_003 + step``. Weights are initialised on the CPU from the global
generators seeded with the spec's seed (:func:`robench.seeding.scoped`), so a network is
the same whichever device trains it, and the caller's random state is the same whether
the cache was warm or not.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from robench.seeding import PROTOCOL_SEED

NETS_VERSION = "3"  # bump when architectures.py or train_network change what a spec trains to
# (3: cache files hold a plain device-free state dict; the weights are those of version 2)
INTEGER_LEVEL_FAMILIES = ("inpainting", "super_resolution")
CACHE_FOLDER = "restoration"


@dataclass(frozen=True)
class NetSpec:
    """Everything that determines a trained network; ``key()`` hashes it.

    Exactly one of ``level`` (train at that level) and ``spectrum`` ((low, high): draw a
    level per minibatch) is set. ``init``: the spec whose weights this one starts from
    (None: random init). ``module_steps`` > 0 wraps the network in DL-Net's
    :class:`~robench.tasks.restoration_spectrum.architectures.FidelityRefinement` with that K.
    ``data_seed``: the protocol seed the training patches are drawn with.
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
    data_seed: int = PROTOCOL_SEED
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


def cache_path(spec: NetSpec, cache_dir: str | Path) -> Path:
    return Path(cache_dir) / CACHE_FOLDER / spec.file_name()


def build_model(spec: NetSpec):
    """The untrained module a spec describes (a RestorationNet, or DL-Net around one), built
    on the CPU from the global generators (seed them first)."""
    import torch

    from robench.tasks.restoration_spectrum.architectures import FidelityRefinement, build_net

    with torch.device("cpu"):  # the same initial weights on every device
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
    from robench.tasks.restoration_spectrum.architectures import FidelityRefinement

    if isinstance(model, FidelityRefinement):
        return model(obs.network_input, obs.y, obs.mask, obs.forward_operator)
    return model(obs.network_input)


def train_network(spec: NetSpec, patches, init_state: dict | None = None, device: str = "cpu"):
    """Train ``spec`` on ``patches`` (n, 3, S, S) in [0, 1], on the CPU; returns the model on
    ``device``, in eval mode."""
    import torch
    import torch.nn.functional as F

    from robench import seeding
    from robench.tasks.restoration_spectrum.degradations import degrade
    from robench.training import cosine_segments, train_loop

    with seeding.scoped(spec.seed):
        model = build_model(spec)
        if init_state is not None:
            target = model.net if spec.module_steps else model
            target.load_state_dict(init_state)
        model = model.to(device)
        optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=spec.lr)
        batches = seeding.stream(spec.seed, "batches")
        levels = seeding.rng(spec.seed, "degradations")

        def minibatches():  # lazy: each draw happens when its step starts
            for step in range(spec.steps):
                yield step, torch.randint(len(patches), (spec.batch_size,), generator=batches, device="cpu")

        def loss(batch):
            step, idx = batch
            x = patches[idx].to(device)
            level = spec.level if spec.spectrum is None else draw_level(spec.family, spec.spectrum, levels)
            obs = degrade(spec.family, x, level, seed=(spec.seed * 1_000_003 + step) % 2**63)
            return F.mse_loss(run_model(model, obs), x)

        train_loop(model, optimizer, [minibatches()], loss, lr_schedule=cosine_segments(spec.lr, spec.steps))
    return model


def trained_networks(specs: Iterable[NetSpec], cache_dir: str | Path, patches: Callable[[], Any],
                     say: Callable[[str], None] | None = None, device: str = "cpu") -> list:
    """The trained model of each spec (eval mode, on ``device``), from the cache or trained now.

    ``patches()`` returns the training patches; it is called only if something must be
    trained. Specs locked by another process are skipped and come back later, so two
    workers needing the same set train different members of it instead of waiting.
    """
    specs = list(specs)
    models: dict[int, Any] = {}
    pending = list(range(len(specs)))
    while pending:
        progressed = False
        for i in list(pending):
            model = _cached_network(specs[i], cache_dir, patches, say, device, blocking=False)
            if model is not None:
                models[i] = model
                pending.remove(i)
                progressed = True
        if not progressed:  # every remaining one is being trained elsewhere: wait for one
            i = pending.pop(0)
            models[i] = _cached_network(specs[i], cache_dir, patches, say, device, blocking=True)
    return [models[i] for i in range(len(specs))]


def trained_network(spec: NetSpec, cache_dir: str | Path, patches: Callable[[], Any],
                    say: Callable[[str], None] | None = None, device: str = "cpu"):
    """One trained model (see :func:`trained_networks`)."""
    return trained_networks([spec], cache_dir, patches, say, device)[0]


def _cached_network(spec, cache_dir, patches, say, device, *, blocking):
    """The model of ``spec`` through the cache; None if another process holds its lock
    (``blocking=False`` only)."""
    import torch

    from robench import seeding
    from robench.cache import cached
    from robench.models import export_state_dict

    def train():
        init_state = None
        if spec.init is not None:
            init_state = trained_network(spec.init, cache_dir, patches, say, device).state_dict()
        if say:
            say(f"training {spec.file_name()} ({spec.steps} steps)")
        return train_network(spec, patches(), init_state, device)

    def load(path):
        with seeding.scoped(spec.seed):  # building draws initial weights: leave the run's state alone
            model = build_model(spec)
        model.load_state_dict(torch.load(path, weights_only=True, map_location="cpu"))
        return model.to(device).eval()

    model, _ = cached(cache_path(spec, cache_dir), train, export_state_dict, load, blocking=blocking)
    return model
