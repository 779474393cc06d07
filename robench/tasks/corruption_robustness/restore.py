"""Restore, then classify: a ``restoration_spectrum`` method undoes a corruption before the
classifier sees it (the task's ``preprocess`` parameter).

Which restoration undoes which corruption (:func:`corruptions.restoration_family`):

* impulse noise → ``interpolation``: the impulses are the missing pixels. They are found from
  the corrupted image alone (:func:`corruptions.impulse_mask`: a value at 0 or 1 that differs
  from its 3×3 median by more than 0.2); the observation is the image with those pixels
  dropped, filled with the image's mean for the network's input (the restoration task's
  ``fill="mean"``).
* blurs (and, on RGB data, pixelation) → ``super_resolution``: the corrupted image is the
  network's input, as a bicubic-upsampled low-resolution image would be; the observation
  ``y`` is that image downscaled by the family's training factor, A the same downscaling
  (so DL-Net's fidelity steps keep the low frequencies the blur left).
* every other corruption (other noise, weather, geometry, digital artifacts): no
  restoration family matches; those inputs reach the classifier as they are (identity), and
  so do the inputs of a family the method does not handle (``bicubic`` handles
  super-resolution only, ``biharmonic`` and ``base+paste`` interpolation only).

The restoration networks are the restoration task's (its architectures, training and
cache, :class:`~robench.tasks.restoration_spectrum.methods.base.RestorationProblem`),
trained on the classifier's own training images (grey images repeated over the three
channels the networks take), at the dataset's image size, for the run's seed: the base at
the family's training level, fine-tuned networks on its level spectrum. Restorations are
clamped to [0, 1], averaged back to one channel for grey data, and stored 8-bit. The
``oracle`` method is refused: it needs the true level of a degradation, which a corrupted
input does not have.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robench.errors import UserError
from robench.tasks.corruption_robustness import corruptions

RESTORATION_TASK = "restoration_spectrum"
N_TRAIN = 2000  # training images of the restoration networks (at most; the restoration task's default)
WIDTH = 16  # the restoration task's default network width
BATCH = 16  # its training minibatch
LR = 2e-3  # its Adam learning rate
REFUSED = {"oracle": "it needs the true level of a degradation, which a corrupted input does not have"}


@dataclass(frozen=True)
class Preprocess:
    """A restoration method as a classifier's preprocessing: its name, canonical parameters
    and the restoration networks' budgets."""
    method: str
    params: dict
    train_steps: int
    finetune_steps: int

    def build(self):
        from robench import registry

        registry.load_builtins()
        return registry.methods.get(self.method, task=RESTORATION_TASK)(**self.params)

    def handles(self, family: str) -> bool:
        """Whether the method restores the restoration ``family``."""
        try:
            self.build().check(family)
        except UserError:
            return False
        return True


def canonical(method: str | None, params: dict | None) -> tuple[str | None, dict | None]:
    """The ``preprocess`` method and its parameters, checked (a registered restoration
    method, valid parameters, not refused) and with defaults filled in; one-line ValueError."""
    if method is None:
        if params:
            raise ValueError("preprocess_params given without preprocess (a restoration_spectrum method)")
        return None, None
    from robench import registry
    from robench.spec import canonical_method_params

    registry.load_builtins()
    try:
        cls = registry.methods.get(str(method), task=RESTORATION_TASK)
        canonical_params = canonical_method_params(cls, dict(params or {}), "preprocess", "params")
        cls(**canonical_params)
    except UserError as exc:
        raise ValueError(f"preprocess: {exc}") from None
    if method in REFUSED:
        raise ValueError(f"preprocess: {method!r} cannot restore a corrupted input: {REFUSED[method]}")
    return str(method), canonical_params


def restorer(preprocess: Preprocess, family: str, image_size: int, train_images, data_name: str, seed: int,
             cache_dir, say=None, device: str = "cpu", n_train: int = N_TRAIN):
    """``(method, base NetSpec)``: the method ``preprocess`` fitted for the restoration
    ``family`` on ``train_images()`` ((n_train, C, S, S) float in [0, 1], C = 1 or 3, called
    only if a network must be trained), its networks trained for seed ``seed`` (or loaded
    from the restoration task's cache)."""
    from robench.tasks.restoration_spectrum.degradations import FAMILIES
    from robench.tasks.restoration_spectrum.methods.base import RestorationProblem
    from robench.tasks.restoration_spectrum.networks import NetSpec

    degradation = FAMILIES[family]
    patches = functools.lru_cache(maxsize=1)(lambda: as_rgb(train_images()))
    spec = NetSpec(family=family, image_size=int(image_size), width=WIDTH, data=f"classifier:{data_name}",
                   n_train=int(n_train), steps=preprocess.train_steps, batch_size=BATCH, lr=LR, seed=int(seed),
                   level=float(degradation.train_level))
    problem = RestorationProblem(family=family, train_level=float(degradation.train_level),
                                 test_levels=tuple(float(v) for v in degradation.test_levels),
                                 image_size=int(image_size), seed=int(seed), base_spec=spec,
                                 finetune_steps=preprocess.finetune_steps, cache_dir=Path(cache_dir),
                                 patches=patches, say=say, device=device)
    return preprocess.build().fit(problem), spec


def as_rgb(images):
    """(N, 1, H, W) grey → (N, 3, H, W) by repetition; RGB unchanged (torch)."""
    return images.repeat(1, 3, 1, 1) if images.shape[1] == 1 else images


def observation(family: str, images):
    """The restoration ``family``'s observation of corrupted ``images`` ((N, 3, H, W) float
    tensor in [0, 1]), built from the images alone (see the module docstring)."""
    import torch

    from robench.tasks.restoration_spectrum.degradations import FAMILIES, Observation, apply_mask, bicubic_downscale

    level = FAMILIES[family].train_level
    if family == "super_resolution":
        h, w = images.shape[-2:]
        forward = functools.partial(bicubic_downscale, size=(h // int(level), w // int(level)))
        return Observation(family=family, level=level, seed=0, y=forward(images), mask=None, network_input=images,
                           forward_operator=forward)
    if family == "interpolation":
        missing = torch.from_numpy(corruptions.impulse_mask(images)).to(images.device)
        mask = (~missing).to(images.dtype)
        y = apply_mask(images, mask)
        mean = y.sum(dim=(2, 3), keepdim=True) / mask.sum(dim=(2, 3), keepdim=True).clamp_min(1.0)
        return Observation(family=family, level=level, seed=0, y=y, mask=mask, network_input=y + mean * (1 - mask),
                           forward_operator=functools.partial(apply_mask, mask=mask))
    raise UserError(f"restore: no observation model for restoration family {family!r}")


def restore(method, family: str, images_u8, device: str = "cpu", batch_size: int = 250):
    """Restore corrupted uint8 images (N, C, H, W) (numpy) with the fitted ``method`` of the
    restoration ``family``; returns uint8 (N, C, H, W): clamped to [0, 1], grey data averaged
    back to one channel, rounded to 8 bits."""
    import numpy as np
    import torch

    out = np.empty_like(images_u8)
    channels = images_u8.shape[1]
    for start in range(0, len(images_u8), batch_size):
        batch = torch.from_numpy(images_u8[start:start + batch_size].astype(np.float32) / 255.0).to(device)
        obs = observation(family, as_rgb(batch))
        with torch.no_grad():
            restored = method.restore(obs)
        if not isinstance(restored, torch.Tensor) or tuple(restored.shape) != tuple(obs.network_input.shape):
            raise UserError(f"preprocess: the restoration method returned "
                            f"{tuple(restored.shape) if isinstance(restored, torch.Tensor) else type(restored)}; "
                            f"expected {tuple(obs.network_input.shape)}")
        restored = restored.detach().float().clamp(0, 1)
        if channels == 1:
            restored = restored.mean(dim=1, keepdim=True)
        out[start:start + batch_size] = torch.round(restored * 255).to(torch.uint8).cpu().numpy()
    return out


def network_identity(spec: Any) -> str:
    """What the restored images depend on besides the method: the base network's spec key."""
    return spec.key()
