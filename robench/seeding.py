"""Seeds: the executor seeds a run once; everything else draws a named stream.

* :func:`seed_everything` — called once per run by the executor (and by ``robench
  check``): Python's, NumPy's and torch's global generators get the run's seed.
* :func:`stream` / :func:`rng` — a private ``torch.Generator`` / ``numpy`` Generator for one
  named purpose ("points", "batches", ...), seeded by :func:`stream_seed`, so drawing from
  it never shifts another stream.
* :data:`PROTOCOL_SEED` — the seed of what the protocol fixes for every run (the attacked
  test points, the test degradations, the generated rooms): ``stream(PROTOCOL_SEED, name)``.
* :func:`scoped` — run a block (training a cached network) on the global generators seeded
  for it, and give the caller its global state back afterwards, so whether a cache was
  warm never changes what the run draws next.

A stream's seed is ``seed + offset(name)``. The offsets of the streams robench had before
they were named are kept in :data:`STREAM_OFFSETS` (most are 0: changing one would change
published metrics, so a change needs the task's ``version`` bumped); any other name gets
a stable offset from its CRC-32.
"""

from __future__ import annotations

import contextlib
import random
import zlib

PROTOCOL_SEED = 0

STREAM_OFFSETS: dict[str, int] = {
    "points": 0,            # sparsity_robustness: the attacked test points (PROTOCOL_SEED)
    "batches": 0,           # minibatch order of the shared training loop
    "init": 0,              # weights of a network built for a run or a cache
    "method": 0,            # a method's own draws (random masks, DNS updates, INQ partition)
    "attack": 0,            # the attack layer's random starts
    "degradations": 0,      # restoration: test/training observations (PROTOCOL_SEED for test)
    "data": 0,              # restoration training patches and test crops, rooms (PROTOCOL_SEED)
    "adversarial-starts": 7919,  # adv-fgs/adv-pgd random starts while training
    "semantic-pretraining": 7919,  # st-pio's semantic network: not fcn's initial weights
}


def stream_seed(seed: int, name: str) -> int:
    """The seed of stream ``name`` of run seed ``seed`` (a non-negative int < 2**63)."""
    offset = STREAM_OFFSETS.get(name)
    if offset is None:
        offset = zlib.crc32(name.encode("utf-8"))
    return (int(seed) + offset) % 2**63


def stream(seed: int, name: str, device: str = "cpu"):
    """A ``torch.Generator`` on ``device`` (CPU by default: index sampling stays on the CPU)."""
    import torch

    return torch.Generator(device=device).manual_seed(stream_seed(seed, name))


def rng(seed: int, name: str):
    """A ``numpy.random.Generator`` for stream ``name``."""
    import numpy as np

    return np.random.default_rng(stream_seed(seed, name))


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators (all devices) with ``seed``."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@contextlib.contextmanager
def scoped(seed: int):
    """Seed the global generators with ``seed`` for the block, then restore their state."""
    import numpy as np
    import torch

    py_state, np_state = random.getstate(), np.random.get_state()
    # every CUDA generator too, also when the block is the first to touch CUDA
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        seed_everything(seed)
        try:
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)


@contextlib.contextmanager
def deterministic(device: str):
    """On CUDA, deterministic kernels for the block (a run): backward passes otherwise add in
    the order atomics land, and two trainings end with weights a hair apart (seen on an
    H200). The CPU's kernels are deterministic already and are left exactly as they are."""
    import os
    import warnings

    import torch

    if not str(device).startswith("cuda"):
        yield
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS
    mode = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        with warnings.catch_warnings():
            # a few ops (nll_loss2d's forward) have no deterministic CUDA kernel: they warn
            warnings.filterwarnings("ignore", message=".*does not have a deterministic implementation")
            yield
    finally:
        torch.use_deterministic_algorithms(mode, warn_only=warn_only)
