"""Scoring of ``restoration_spectrum``: 8-bit quantization, per-level PSNR/SSIM, the
spectrum summary (mean, AUC, off-training mean, recovery) and the uint8 arrays of the
``restored.npz`` artifact.

Restorations and ground truth are (N, C, H, W) float tensors on any device; scores are
taken on the inputs' device (:mod:`robench.metrics.image`: RGB, full image, data range 1)
and arrays are copied to the CPU before numpy. A level's scores are the mean over every
test image of one value per image, so the images may come in batches of different sizes
(whole images, ``eval_size=full``: one batch per image).
"""

from __future__ import annotations

RECOVERY_MIN_GAP_DB = 0.1  # levels where the oracle beats the base by less are left out of recovery


def format_level(level: float) -> str:
    """10.0 → '10', 0.5 → '0.5' (metric names: ``psnr@10``)."""
    return f"{float(level):g}"


class SpectrumScores:
    """The scores of one run, level by level: the method's PSNR and SSIM, and the base's and
    oracle's PSNR (for ``recovery``), each the mean over the test images of one value per
    image. ``add`` takes the images of a level in one batch or several (whole images of
    different sizes: one call per image)."""

    def __init__(self, train_level: float, y_crop: int | None = None):
        self.train_level = float(train_level)
        self.y_crop = y_crop  # None: RGB only; k: also Y-channel scores with k border pixels cropped
        self.per_image: dict[float, dict[str, list]] = {}  # level -> score name -> (n,) tensors

    def add(self, level: float, truth, restored, base_out, oracle_out) -> None:
        """Score one batch of a level: ``truth`` (see :func:`scoring_truth`) and the quantized
        restorations, each a float64 (n, C, H, W) tensor of the same shape."""
        from robench.metrics.image import psnr, ssim

        values = {"psnr": psnr(restored, truth), "ssim": ssim(restored, truth),
                  "base": psnr(base_out, truth), "oracle": psnr(oracle_out, truth)}
        if self.y_crop is not None:
            kw = {"y_channel": True, "crop_border": self.y_crop}
            values["psnr_y"] = psnr(restored, truth, **kw)
            values["ssim_y"] = ssim(restored, truth, **kw)
        scores = self.per_image.setdefault(float(level), {})
        for name, value in values.items():
            scores.setdefault(name, []).append(value.detach().cpu())

    def level_mean(self, level: float, name: str) -> float:
        """The mean over every image added at ``level`` of score ``name`` (psnr, ssim, base,
        oracle, psnr_y, ssim_y)."""
        import torch
        return float(torch.cat(self.per_image[float(level)][name]).mean())

    def metrics(self) -> dict[str, float]:
        """``psnr@<level>``, ``ssim@<level>``, the spectrum summary and ``ssim_mean``."""
        import numpy as np

        levels = list(self.per_image)
        out: dict[str, float] = {}
        for level in levels:
            name = format_level(level)
            out[f"psnr@{name}"] = self.level_mean(level, "psnr")
            out[f"ssim@{name}"] = self.level_mean(level, "ssim")
            if self.y_crop is not None:
                out[f"psnr_y@{name}"] = self.level_mean(level, "psnr_y")
                out[f"ssim_y@{name}"] = self.level_mean(level, "ssim_y")
        out.update(spectrum_summary(levels, self.train_level,
                                    [out[f"psnr@{format_level(lv)}"] for lv in levels],
                                    [self.level_mean(lv, "base") for lv in levels],
                                    [self.level_mean(lv, "oracle") for lv in levels]))
        out["ssim_mean"] = float(np.mean([out[f"ssim@{format_level(lv)}"] for lv in levels]))
        if self.y_crop is not None:
            out["psnr_y_mean"] = float(np.mean([out[f"psnr_y@{format_level(lv)}"] for lv in levels]))
            out["ssim_y_mean"] = float(np.mean([out[f"ssim_y@{format_level(lv)}"] for lv in levels]))
        return out


def quantize(x):
    """Clamp to [0, 1] and round to 8 bits: float64 (N, C, H, W) holding k/255."""
    import torch
    return torch.round(x.detach().to(torch.float64).clamp(0.0, 1.0) * 255.0) / 255.0


def to_uint8_hwc(x):
    """(N, C, H, W) quantized float → (N, H, W, C) uint8."""
    import numpy as np
    return np.ascontiguousarray(np.rint(x.detach().cpu().numpy() * 255.0).astype(np.uint8).transpose(0, 2, 3, 1))


def is_8bit(x) -> bool:
    """Whether float32 images hold exactly k/255 values (every bundled image does)."""
    import torch
    return torch.equal((torch.round(x.detach().to(torch.float64) * 255.0) / 255.0).to(torch.float32),
                       x.detach().to(torch.float32))


def scoring_truth(x, eight_bit: bool | None = None):
    """The ground truth scores are taken against, float64: k/255 exactly for 8-bit images
    (so a uint8 export re-scores to the same number), else the float32 values as they are.
    ``eight_bit``: whether the test set is 8-bit (None: whether ``x`` is)."""
    import torch

    eight_bit = is_8bit(x) if eight_bit is None else eight_bit
    return quantize(x) if eight_bit else x.detach().to(torch.float64)


def ground_truth_array(x, eight_bit: bool | None = None):
    """uint8 (N, H, W, C) when the images are exactly 8-bit, else float32 in [0, 1].
    ``eight_bit``: whether the test set is 8-bit (None: whether ``x`` is)."""
    import numpy as np

    if is_8bit(x) if eight_bit is None else eight_bit:
        return to_uint8_hwc(quantize(x))
    return np.ascontiguousarray(x.detach().cpu().numpy().astype(np.float32).transpose(0, 2, 3, 1))


def padded_stack(arrays):
    """Images of different sizes, each (H_n, W_n, C), as one (N, max H, max W, C) array of
    their dtype, each at the top left and zero elsewhere (``restored.npz`` of whole images:
    its ``sizes`` array says which part of each is the image)."""
    import numpy as np

    height = max(a.shape[0] for a in arrays)
    width = max(a.shape[1] for a in arrays)
    out = np.zeros((len(arrays), height, width, arrays[0].shape[2]), dtype=arrays[0].dtype)
    for n, a in enumerate(arrays):
        out[n, :a.shape[0], :a.shape[1]] = a
    return out


class NpzWriter:
    """Writes a ``.npz`` (what ``np.savez_compressed`` writes: one deflated ``.npy`` per
    array) one array at a time, so a run over whole images never holds every level's
    restorations at once. Use as a context manager; ``np.load`` reads the file."""

    def __init__(self, path):
        import zipfile

        self._zip = zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True)

    def write(self, name: str, array) -> None:
        import numpy as np

        with self._zip.open(f"{name}.npy", "w", force_zip64=True) as stream:
            np.lib.format.write_array(stream, np.asanyarray(array), allow_pickle=False)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self._zip.close()


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
    ground truth, each enlarged ``zoom`` times (nearest) to be seen. Each argument is a
    uint8 (or float in [0, 1]) (N, H, W, C) array, or a sequence of (H, W, C) arrays of
    different sizes (whole images: rows narrower than the widest are padded white)."""
    import numpy as np
    from PIL import Image

    def as_uint8(x):
        x = np.asarray(x)
        return x if x.dtype == np.uint8 else np.rint(np.clip(x, 0, 1) * 255).astype(np.uint8)

    count = min(n_images, len(truth))
    rows = []
    for i in range(count):
        images = [as_uint8(column[i]) for column in (degraded, restored, truth)]
        gap = np.full((images[0].shape[0], 2, images[0].shape[2]), 255, np.uint8)
        rows.append(np.concatenate([images[0], gap, images[1], gap, images[2]], axis=1))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    grid = np.concatenate(rows, axis=0).repeat(zoom, axis=0).repeat(zoom, axis=1)
    Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid).save(path, optimize=True)
