"""Batched torch PSNR/SSIM (robench.metrics.image) vs a per-image scikit-image loop.

Run: python benchmarks/bench_image_metrics.py [--n 64] [--size 64] [--repeats 5]

Prints the best-of-repeats wall time of each, the largest disagreement, and the speed
ratio (target: batched ≥ 10× faster). A measurement, not a test: it asserts agreement
only, never a time.
"""

from __future__ import annotations

import argparse
import time


def best_time(fn, repeats: int) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    import numpy as np
    import torch
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    from robench.metrics.image import psnr, ssim
    from robench.tasks.restoration.data import training_patches

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=64, help="images in the batch")
    parser.add_argument("--size", type=int, default=64, help="image side, pixels")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the machine is shared)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    clean = training_patches(args.n, args.size, seed=0)  # real RGB patches, float32 in [0, 1]
    noise = torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))
    degraded = (clean + 0.05 * noise).clamp(0, 1)
    clean_np = clean.permute(0, 2, 3, 1).numpy().astype(np.float64)
    degraded_np = degraded.permute(0, 2, 3, 1).numpy().astype(np.float64)

    def batched():
        return psnr(clean, degraded), ssim(clean, degraded)

    def per_image():
        p = [peak_signal_noise_ratio(a, b, data_range=1.0) for a, b in zip(clean_np, degraded_np)]
        s = [structural_similarity(a, b, data_range=1.0, channel_axis=-1, gaussian_weights=True,
                                   sigma=1.5, use_sample_covariance=False)
             for a, b in zip(clean_np, degraded_np)]
        return np.array(p), np.array(s)

    batched()  # warm-up (first-call dispatch)
    t_torch, (p_t, s_t) = best_time(batched, args.repeats)
    t_skimage, (p_s, s_s) = best_time(per_image, args.repeats)
    psnr_gap = float(np.abs(p_t.numpy() - p_s).max())
    ssim_gap = float(np.abs(s_t.numpy() - s_s).max())
    assert psnr_gap < 1e-3 and ssim_gap < 1e-4, (psnr_gap, ssim_gap)

    print(f"batch: {args.n} RGB images {args.size}x{args.size}, torch threads={args.threads}")
    print(f"torch batched PSNR+SSIM : {1e3 * t_torch:8.2f} ms")
    print(f"skimage per-image loop  : {1e3 * t_skimage:8.2f} ms")
    print(f"max |ΔPSNR| = {psnr_gap:.2e} dB, max |ΔSSIM| = {ssim_gap:.2e}")
    print(f"speed ratio (skimage / torch): {t_skimage / t_torch:.1f}x (target >= 10x)")


if __name__ == "__main__":
    main()
