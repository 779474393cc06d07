"""Classic restorations with no training: biharmonic inpainting (scikit-image) for
inpainting/interpolation, bicubic upsampling for super-resolution."""

from __future__ import annotations

from robench.registry import register_method
from robench.tasks.restoration_spectrum.methods.base import RestorationMethod


@register_method("restoration_spectrum", "biharmonic")
class Biharmonic(RestorationMethod):
    """scikit-image inpaint_biharmonic on the missing pixels (inpainting, interpolation)"""
    version = "1"
    families = ("inpainting", "interpolation")

    def restore(self, obs):
        import numpy as np
        import torch
        from skimage.restoration import inpaint_biharmonic

        images = obs.y.detach().cpu().permute(0, 2, 3, 1).numpy().astype(np.float64)
        missing = obs.mask.detach().cpu()[:, 0].numpy() == 0
        out = np.stack([inpaint_biharmonic(image, hole, channel_axis=-1)
                        for image, hole in zip(images, missing)])
        return torch.from_numpy(out).permute(0, 3, 1, 2).to(device=obs.y.device, dtype=obs.y.dtype)


@register_method("restoration_spectrum", "bicubic")
class Bicubic(RestorationMethod):
    """bicubic upsampling of the low-resolution image (super-resolution)"""
    version = "1"
    families = ("super_resolution",)

    def restore(self, obs):
        return obs.network_input.clone()  # bicubic (a = -0.75) back to (H, W), clamped
