"""Scoring of ``restoration_spectrum``: 8-bit quantization, per-level PSNR/SSIM, the
spectrum summary (mean, AUC, off-training mean, recovery) and the uint8 arrays of the
``restored.npz`` artifact.

Restorations and ground truth are (N, C, H, W) float tensors on any device; scores are
taken on the inputs' device (:mod:`robench.metrics.image`: RGB, full image, data range 1)
and arrays are copied to the CPU before numpy.
"""

from __future__ import annotations

RECOVERY_MIN_GAP_DB = 0.1  # levels where the oracle beats the base by less are left out of recovery


def format_level(level: float) -> str:
    """10.0 → '10', 0.5 → '0.5' (metric names: ``psnr@10``)."""
    return f"{float(level):g}"


class SpectrumScores:
    """The scores of one run, level by level: the method's PSNR and SSIM, and the base's and
    oracle's PSNR (for ``recovery``), all against the same ground truth."""

    def __init__(self, truth, train_level: float, y_crop: int | None = None):
        self.truth = truth  # float64 (N, C, H, W), see scoring_truth
        self.train_level = float(train_level)
        self.y_crop = y_crop  # None: RGB only; k: also Y-channel scores with k border pixels cropped
        self.y_scores: list[tuple[float, float]] = []
        self.levels: list[float] = []
        self.per_level: dict[str, float] = {}
        self.method_psnr: list[float] = []
        self.ssims: list[float] = []
        self.base_psnr: list[float] = []
        self.oracle_psnr: list[float] = []

    def add(self, level: float, restored, base_out, oracle_out) -> None:
        """Score one level: each argument a quantized float64 (N, C, H, W) restoration."""
        psnr_value, ssim_value = image_scores(restored, self.truth)
        name = format_level(level)
        self.per_level[f"psnr@{name}"] = psnr_value
        self.per_level[f"ssim@{name}"] = ssim_value
        self.levels.append(float(level))
        self.method_psnr.append(psnr_value)
        self.ssims.append(ssim_value)
        self.base_psnr.append(image_scores(base_out, self.truth, ssim=False)[0])
        self.oracle_psnr.append(image_scores(oracle_out, self.truth, ssim=False)[0])
        if self.y_crop is not None:
            y_psnr, y_ssim = image_scores(restored, self.truth, y_channel=True, crop_border=self.y_crop)
            self.per_level[f"psnr_y@{name}"] = y_psnr
            self.per_level[f"ssim_y@{name}"] = y_ssim
            self.y_scores.append((y_psnr, y_ssim))

    def metrics(self) -> dict[str, float]:
        """``psnr@<level>``, ``ssim@<level>``, the spectrum summary and ``ssim_mean``."""
        import numpy as np

        out = dict(self.per_level)
        out.update(spectrum_summary(self.levels, self.train_level, self.method_psnr, self.base_psnr,
                                    self.oracle_psnr))
        out["ssim_mean"] = float(np.mean(self.ssims))
        if self.y_scores:
            out["psnr_y_mean"] = float(np.mean([s[0] for s in self.y_scores]))
            out["ssim_y_mean"] = float(np.mean([s[1] for s in self.y_scores]))
        return out


def quantize(x):
    """Clamp to [0, 1] and round to 8 bits: float64 (N, C, H, W) holding k/255."""
    import torch
    return torch.round(x.detach().to(torch.float64).clamp(0.0, 1.0) * 255.0) / 255.0


def image_scores(restored, truth, ssim: bool = True, y_channel: bool = False,
                 crop_border: int = 0) -> tuple[float, float]:
    """(mean PSNR, mean SSIM) over the batch; data range 1; float64 inputs. RGB and the full
    image by default; ``y_channel`` scores BT.601 luma with ``crop_border`` pixels removed
    from each side (the super-resolution convention of BasicSR and KAIR)."""
    from robench.metrics.image import psnr
    from robench.metrics.image import ssim as ssim_fn

    kw = {"y_channel": y_channel, "crop_border": crop_border}
    psnr_value = float(psnr(restored, truth, **kw).mean())
    ssim_value = float(ssim_fn(restored, truth, **kw).mean()) if ssim else float("nan")
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


def write_png_grid(path, degraded, restored, truth, n_images: int = 4, zoom: int = 4) -> None:
    """A PNG of the first ``n_images`` test images, one per row: degraded | restored |
    ground truth, each uint8 (N, H, W, C) array enlarged ``zoom`` times (nearest) to be seen."""
    import numpy as np
    from PIL import Image

    def as_uint8(x):
        x = np.asarray(x[:n_images])
        return x if x.dtype == np.uint8 else np.rint(np.clip(x, 0, 1) * 255).astype(np.uint8)

    columns = [as_uint8(a) for a in (degraded, restored, truth)]
    gap = np.full((columns[0].shape[1], 2, columns[0].shape[3]), 255, np.uint8)
    rows = [np.concatenate([c[i] if j == 0 else np.concatenate([gap, c[i]], axis=1) for j, c in enumerate(columns)],
                           axis=1) for i in range(len(columns[0]))]
    grid = np.concatenate(rows, axis=0).repeat(zoom, axis=0).repeat(zoom, axis=1)
    Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid).save(path, optimize=True)
