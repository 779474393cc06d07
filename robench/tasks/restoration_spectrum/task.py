"""Task ``restoration_spectrum``: how well does a restoration method hold up across the
whole spectrum of degradation levels, when its network was trained at one level?

Protocol of one run (method M, seed s; one run evaluates every test level):

1. ``M.check(family)``: a method that does not apply (biharmonic on super-resolution,
   bicubic on inpainting, base+paste on super-resolution) fails here, before any work.
2. Data. ``bundled``: ``n_train`` training patches ``training_patches(n_train,
   image_size, seed=0)`` (fixed: the seed varies the networks, not the data) and the
   test crops ``test_set(image_size, n_test_per_image, seed=0)`` (images training never
   sees). ``folder``: test crops from ``image_folder(root, image_size, mode=folder_mode)``
   (Set5, Set14, BSD100, CelebA, ...); training patches from ``train_root`` (every tile,
   drawn ``n_train`` times with flips) or, without it, the bundled patches.
3. Reference networks, shared through the cache (``cache.py``): the base network (trained
   at ``train_level`` for ``train_steps`` minibatches, seed s) and the oracle networks
   (same architecture and budget, trained from scratch at each test level; at the
   training level that is the base itself). Every method run computes the base's and the
   oracle's PSNR itself from these cached networks, so that each run can report
   ``recovery``; for the ``base`` and ``oracle`` methods those numbers are their own.
4. ``M.fit(problem)``; then at each test level the test crops are degraded with
   ``degrade(family, x, level, seed=0)`` (the same observations for every method and
   seed) and restored with ``M.restore(obs)`` under ``torch.no_grad()``.
5. Scoring: the restoration is clamped to [0, 1] and quantized to 8 bits (what a saved
   image holds), then PSNR and SSIM (``robench.metrics.image``: RGB, full image, data
   range 1) are averaged over the test crops.

Metrics: ``psnr@<level>``, ``ssim@<level>`` per level; ``psnr_mean`` (PRIMARY: mean over
test levels), ``ssim_mean``, ``psnr_auc`` (trapezoid area under PSNR vs level with the
level axis rescaled to [0, 1], so it is in dB), ``psnr_offtrain_mean`` (mean over levels
≠ train_level), ``recovery`` (mean over off-training levels of (M − base)/(oracle − base)
PSNR, over the levels where the oracle beats the base by at least
``RECOVERY_MIN_GAP_DB``; NaN if none), and the base's and oracle's off-training means.

Artifact ``restored.npz``: ``levels`` (L,) float64; ``ground_truth`` (N, H, W, 3) uint8
(float32 in [0, 1] if the ground truth is not 8-bit exact); ``restored_<i>`` and
``degraded_<i>`` (the network input) (N, H, W, 3) uint8 for level ``levels[i]``.
``skimage.metrics.peak_signal_noise_ratio(ground_truth[n], restored_<i>[n],
data_range=255)`` averaged over n reproduces ``psnr@<level>``.

Default levels come from ``FAMILIES`` (meant for 64×64 images); inpainting hole sides
are rescaled to ``image_size`` (rounded), the other families' levels are size-free.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from robench.errors import UserError
from robench.registry import register_task
from robench.tasks.base import RunContext, Task, TaskParams, TaskResult
from robench.tasks.restoration.methods.base import RestorationMethod

TEST_DEGRADATION_SEED = 0
RECOVERY_MIN_GAP_DB = 0.1  # levels where the oracle beats the base by less are left out of recovery
ARTIFACT = "restored.npz"


def format_level(level: float) -> str:
    """10.0 → '10', 0.5 → '0.5' (metric names: ``psnr@10``)."""
    return f"{float(level):g}"


class RestorationParams(TaskParams):
    """Parameters of ``restoration_spectrum`` (defaults: a run of a trained method ≈ 1–2 min
    of one CPU core once the shared networks are cached)."""
    family: Literal["inpainting", "interpolation", "super_resolution"] = "inpainting"
    train_level: float | None = Field(None, description="level the base network is trained at "
                                      "(default: FAMILIES, rescaled for inpainting)")
    test_levels: tuple[float, ...] | None = Field(None, description="levels every method is scored at "
                                                  "(default: FAMILIES, rescaled for inpainting)")
    image_size: int = Field(32, ge=16, le=256, multiple_of=4, description="side of the square crops, pixels")
    width: int = Field(16, gt=0, le=256, description="channels of the networks' full-resolution layers")
    n_train: int = Field(2000, gt=0, description="training patches")
    train_steps: int = Field(800, gt=0, description="minibatches of the base and oracle networks")
    finetune_steps: int = Field(200, gt=0, description="minibatches of spectrum-ft, base-ft and dlnet fine-tuning")
    batch_size: int = Field(16, gt=0)
    lr: float = Field(2e-3, gt=0, description="Adam learning rate (cosine-decayed; × 0.2 for fine-tuning)")
    n_test_per_image: int = Field(16, gt=0, description="bundled test crops per held-out image (3 images)")
    dataset: Literal["bundled", "folder"] = "bundled"
    root: str | None = Field(None, description="folder of test images (dataset=folder)")
    train_root: str | None = Field(None, description="folder of training images (dataset=folder; "
                                   "default: the bundled training patches)")
    folder_mode: Literal["center", "tile"] = Field("center", description="test crops per folder image")

    @model_validator(mode="after")
    def _check(self):
        if self.dataset == "folder" and not self.root:
            raise ValueError("dataset=folder needs root= (a folder of test images)")
        if self.dataset == "bundled" and (self.root or self.train_root):
            raise ValueError("root/train_root are for dataset=folder; dataset=bundled uses embedded images")
        train_level, test_levels = resolve_levels(self)
        if not test_levels:
            raise ValueError("test_levels is empty; expected at least one level")
        if len(set(test_levels)) != len(test_levels):
            raise ValueError(f"test_levels {list(test_levels)} repeat a level")
        for level in (train_level, *test_levels):
            problem = level_problem(self.family, level, self.image_size)
            if problem:
                raise ValueError(problem)
        return self


def resolve_levels(params) -> tuple[float, tuple[float, ...]]:
    """(train_level, sorted test levels) with the family defaults filled in."""
    from robench.tasks.restoration.degradations import FAMILIES

    family = FAMILIES[params.family]
    scale = params.image_size / family.image_size if params.family == "inpainting" else 1.0

    def default(level):
        return float(max(1, round(level * scale))) if params.family == "inpainting" else float(level)

    train = float(params.train_level) if params.train_level is not None else default(family.train_level)
    if params.test_levels is not None:
        tests = tuple(float(v) for v in params.test_levels)
    else:
        tests = tuple(dict.fromkeys(default(v) for v in family.test_levels))
    return train, tuple(sorted(tests))


def level_problem(family: str, level: float, image_size: int) -> str:
    """Why ``level`` is invalid for ``family`` at ``image_size`` ('' if it is valid)."""
    if not math.isfinite(level):
        return f"{family}: level {level!r} is not a finite number"
    if family == "interpolation":
        return "" if 0 < level < 1 else f"interpolation: drop fraction {level:g}; expected a number in (0, 1)"
    if level != int(level):
        return f"{family}: level {level:g}; expected an integer"
    if family == "inpainting" and not 1 <= level < image_size:
        return f"inpainting: hole side {level:g} px; expected an integer in [1, {image_size - 1}]"
    if family == "super_resolution" and not 1 <= level <= image_size // 2:
        return f"super_resolution: scale factor {level:g}; expected an integer in [1, {image_size // 2}]"
    return ""


@register_task("restoration_spectrum")
class RestorationSpectrumTask(Task):
    """Restoration across degradation levels (DL-Net): PSNR/SSIM over a level spectrum."""
    name = "restoration_spectrum"
    version = "2"
    Params = RestorationParams
    method_base = RestorationMethod
    primary_metric = "psnr_mean"
    greater_is_better = True
    label_params = ("family",)
    check_params = dict(image_size=16, width=4, n_train=16, train_steps=3, finetune_steps=2, batch_size=4,
                        n_test_per_image=2)
    metrics_info = {
        "psnr_mean": ("PSNR (dB, RGB, full image, 8-bit output) averaged over the test levels", True),
        "ssim_mean": ("SSIM averaged over the test levels", True),
        "psnr_auc": ("area under PSNR vs level, level axis rescaled to [0, 1] (trapezoid rule), dB", True),
        "psnr_offtrain_mean": ("PSNR averaged over the test levels other than train_level", True),
        "recovery": ("mean over off-training levels of (method − base)/(oracle − base) PSNR; "
                     "0 = base, 1 = level-specific oracle", True),
        "psnr_base_offtrain_mean": ("the base network's psnr_offtrain_mean (same seed, cached)", True),
        "psnr_oracle_offtrain_mean": ("the oracle networks' psnr_offtrain_mean (same seed, cached)", True),
    }

    def run(self, method: RestorationMethod, seed: int, ctx: RunContext) -> TaskResult:
        import numpy as np
        import torch

        from robench.tasks.restoration.cache import NetSpec
        from robench.tasks.restoration.methods.base import RestorationProblem

        if not isinstance(method, RestorationMethod):
            raise UserError(f"task 'restoration_spectrum' needs a RestorationMethod; got {type(method).__name__}")
        p = self.params
        method.check(p.family)
        train_level, test_levels = resolve_levels(p)
        test_x = self.test_images()
        truth = scoring_truth(test_x)
        data = "bundled" if not p.train_root else f"folder:{Path(p.train_root).resolve()}"
        base_spec = NetSpec(family=p.family, image_size=p.image_size, width=p.width, data=data,
                            n_train=p.n_train, steps=p.train_steps, batch_size=p.batch_size, lr=p.lr,
                            seed=int(seed), level=train_level)
        problem = RestorationProblem(
            family=p.family, train_level=train_level, test_levels=test_levels, image_size=p.image_size,
            seed=int(seed), base_spec=base_spec, finetune_steps=p.finetune_steps,
            cache_dir=Path(ctx.cache_dir), patches=functools.lru_cache(maxsize=1)(self.training_images),
            say=ctx.say)

        ctx.say(f"reference networks for {p.family} seed {seed}")
        reference_levels = tuple(dict.fromkeys((train_level, *test_levels)))
        reference = dict(zip(reference_levels, problem.networks_at(reference_levels)))
        method.fit(problem)

        metrics: dict[str, float] = {}
        method_psnr, base_psnr, oracle_psnr, ssims = [], [], [], []
        arrays: dict[str, np.ndarray] = {"levels": np.asarray(test_levels, dtype=np.float64)}
        for i, level in enumerate(test_levels):
            obs = self._degrade(test_x, level)
            with torch.no_grad():
                out = method.restore(obs)
                restored = self._score_ready(out, obs, method)
                base_out = quantize(reference[train_level](obs.network_input))
                oracle_out = quantize(reference[level](obs.network_input))
            psnr_value, ssim_value = image_scores(restored, truth)
            name = format_level(level)
            metrics[f"psnr@{name}"] = psnr_value
            metrics[f"ssim@{name}"] = ssim_value
            method_psnr.append(psnr_value)
            ssims.append(ssim_value)
            base_psnr.append(image_scores(base_out, truth, ssim=False)[0])
            oracle_psnr.append(image_scores(oracle_out, truth, ssim=False)[0])
            arrays[f"restored_{i}"] = to_uint8_hwc(restored)
            arrays[f"degraded_{i}"] = to_uint8_hwc(quantize(obs.network_input))

        metrics.update(spectrum_summary(test_levels, train_level, method_psnr, base_psnr, oracle_psnr))
        metrics["ssim_mean"] = float(np.mean(ssims))
        arrays["ground_truth"] = ground_truth_array(test_x)
        folder = Path(ctx.artifact_dir)
        folder.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(folder / ARTIFACT, **arrays)
        return TaskResult(metrics=metrics, artifacts={"restored": ARTIFACT})

    # -- data ------------------------------------------------------------------------
    def test_images(self):
        from robench.tasks.restoration import data

        p = self.params
        if p.dataset == "folder":
            return data.image_folder(p.root, p.image_size, mode=p.folder_mode)
        return data.test_set(p.image_size, p.n_test_per_image, seed=0)

    def training_images(self):
        import numpy as np
        import torch

        from robench.tasks.restoration import data

        p = self.params
        if not p.train_root:
            return data.training_patches(p.n_train, p.image_size, seed=0)
        tiles = data.image_folder(p.train_root, p.image_size, mode="tile", recursive=True)
        rng = np.random.default_rng(0)
        picks = torch.from_numpy(rng.integers(len(tiles), size=p.n_train))
        patches = tiles[picks]
        flips = torch.from_numpy(rng.random(p.n_train) < 0.5)
        patches[flips] = patches[flips].flip(-1)
        return patches.contiguous()

    def _degrade(self, x, level):
        from robench.tasks.restoration.degradations import degrade
        return degrade(self.params.family, x, level, seed=TEST_DEGRADATION_SEED)

    @staticmethod
    def _score_ready(out, obs, method):
        import torch

        name = method.registered_name or type(method).__name__
        expected = tuple(obs.network_input.shape)
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != expected:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise RuntimeError(f"method {name!r} restored {got}; expected a tensor {expected}")
        if not bool(torch.isfinite(out).all()):
            raise RuntimeError(f"method {name!r} returned non-finite values at level {obs.level}")
        return quantize(out)


# -- scoring helpers (pure) ---------------------------------------------------------------
def quantize(x):
    """Clamp to [0, 1] and round to 8 bits: float64 (N, C, H, W) holding k/255."""
    import torch
    return torch.round(x.detach().to(torch.float64).clamp(0.0, 1.0) * 255.0) / 255.0


def image_scores(restored, truth, ssim: bool = True) -> tuple[float, float]:
    """(mean PSNR, mean SSIM) over the batch; RGB, full image, data range 1; float64 inputs."""
    from robench.metrics.image import psnr
    from robench.metrics.image import ssim as ssim_fn

    psnr_value = float(psnr(restored, truth).mean())
    ssim_value = float(ssim_fn(restored, truth).mean()) if ssim else float("nan")
    return psnr_value, ssim_value


def to_uint8_hwc(x):
    """(N, C, H, W) quantized float → (N, H, W, C) uint8."""
    import numpy as np
    return np.ascontiguousarray(np.rint(x.detach().cpu().numpy() * 255.0).astype(np.uint8).transpose(0, 2, 3, 1))


def is_8bit(x) -> bool:
    """Whether float32 images hold exactly k/255 values (every bundled image does)."""
    import torch
    return torch.equal((torch.round(x.detach().to(torch.float64) * 255.0) / 255.0).to(torch.float32),
                       x.detach().to(torch.float32))


def scoring_truth(x):
    """The ground truth scores are taken against, float64: k/255 exactly for 8-bit images
    (so a uint8 export re-scores to the same number), else the float32 values as they are."""
    import torch
    return quantize(x) if is_8bit(x) else x.detach().to(torch.float64)


def ground_truth_array(x):
    """uint8 (N, H, W, C) when the images are exactly 8-bit, else float32 in [0, 1]."""
    import numpy as np

    if is_8bit(x):
        return to_uint8_hwc(quantize(x))
    return np.ascontiguousarray(x.detach().cpu().numpy().astype(np.float32).transpose(0, 2, 3, 1))


def spectrum_summary(levels, train_level, method_psnr, base_psnr, oracle_psnr) -> dict[str, float]:
    """psnr_mean, psnr_auc, psnr_offtrain_mean, recovery and the reference off-training means."""
    import numpy as np
    from scipy.integrate import trapezoid

    levels = np.asarray(levels, dtype=np.float64)
    m, b, o = (np.asarray(v, dtype=np.float64) for v in (method_psnr, base_psnr, oracle_psnr))
    if len(levels) > 1:
        t = (levels - levels.min()) / (levels.max() - levels.min())
        auc = float(trapezoid(m, t))
    else:
        auc = float(m[0])
    off = levels != float(train_level)
    nan = float("nan")
    gap = o[off] - b[off]
    usable = gap >= RECOVERY_MIN_GAP_DB
    recovery = float(np.mean((m[off][usable] - b[off][usable]) / gap[usable])) if usable.any() else nan
    return {
        "psnr_mean": float(m.mean()),
        "psnr_auc": auc,
        "psnr_offtrain_mean": float(m[off].mean()) if off.any() else nan,
        "recovery": recovery,
        "psnr_base_offtrain_mean": float(b[off].mean()) if off.any() else nan,
        "psnr_oracle_offtrain_mean": float(o[off].mean()) if off.any() else nan,
    }
