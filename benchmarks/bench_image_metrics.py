"""Batched PSNR/SSIM (robench.metrics.image) vs a per-image scikit-image loop.

Run: python benchmarks/bench_image_metrics.py [--sizes 24,32,64,128,256,512] [--n auto]
     [--threads 1,all] [--repeats 5] [--device cpu|cuda] [--profile]

For each image side it prints the best-of-repeats wall time per image of both (the two
are timed alternately, so a busy machine slows both alike), the largest disagreement, and
the speed ratio (target: batched >= 10x faster). scikit-image runs one image at a time on
one thread (scipy.ndimage's filters are single-threaded); robench runs on ``--threads``
threads (torch.set_num_threads, which its CPU kernels follow; each count in the list is a
separate row; "all" = every core torch sees), or on the GPU with ``--device cuda`` (timed
with synchronisation; scikit-image stays on the CPU). The images are real RGB crops of
scikit-image's bundled photographs with Gaussian noise (sigma 0.05), float32 in [0, 1].
The restoration task scores 24x24 crops in the default suite, 32x32 in the dlnet paper
suite, and whole images (Set5/Set14/BSD100: 256 to 512 px a side) with eval_size=full.
A measurement, not a test: it asserts agreement (|dPSNR| <= 1e-6 dB, |dSSIM| <= 1e-6),
never a time. ``--profile`` prints where the batched time goes at the largest side
(torch.profiler, per torch operator: the GPU path's convolutions and PSNR; the compiled
CPU passes are not operators).

Before issue 23 (2-core machine, idle, 1 torch thread, 64 images; SSIM filtered by torch's
depthwise convolution, PSNR reduced over float32 squares):

      side  torch ms  skimage ms  ratio
        24      1.33       43.88  32.9x    (whole batch of 64)
       128     70.15      205.19   2.9x

Issue 23, first pass (2026-12-07, busy machine): PSNR reduced by float64 dot products
(scikit-image's value to rounding; was 1e-7 dB off) and SSIM filtered by batched products
with banded Gaussian matrices, s = x + y and d = x - y, s in float64: 3-4x on one thread,
4-6x on two (idle), short of 10x; its profile showed a dozen memory-bound eager passes
per map. Second pass: PSNR and SSIM on the CPU are compiled float64 passes
(robench.metrics.image_kernels, numba). PSNR's squared error is one vectorized sum per
image. SSIM reads each input row once, in strips of 96 output columns: its four moments
(x, y, x^2 + y^2, xy) are filtered along the row into a ring of the last 12 rows, two
output rows at a time are filtered down the columns from those 12, and the SSIM formula is
summed on the spot, so everything stays in cache; planes and bands of rows go to
torch.get_num_threads() threads. The values are scikit-image's float64 ones to rounding
(max |dSSIM| ~2e-14, was 5e-8). First version of the kernel (five moments, a ring of 11
rows, one output row at a time, the formula's division kept scalar by numba's Python
zero-division check): 5.5-7x on one thread at 256-512 px; this one 9.1-12x (11-18x on two).
benchmarks/RESULTS.md has the tables.
"""

from __future__ import annotations

import argparse
import os
import time

TASK_SIZES = {24: "default suite", 32: "dlnet paper suite", 256: "whole images", 512: "whole images"}
AGREEMENT_PSNR_DB = 1e-6
AGREEMENT_SSIM = 1e-6
SOURCES = ("skimage:astronaut", "skimage:immunohistochemistry", "skimage:hubble_deep_field", "skimage:retina",
           "skimage:coffee", "skimage:chelsea", "skimage:rocket")


def real_images(n: int, size: int, seed: int = 0):
    """n noisy pairs (clean, degraded) of RGB crops size x size, float32 (n, 3, size, size)."""
    import numpy as np
    import torch

    from robench.tasks.restoration_spectrum.data import _try_load

    images = [im for im in (_try_load(name) for name in SOURCES)
              if im is not None and min(im.shape[:2]) >= size]
    rng = np.random.default_rng(seed)
    crops = []
    for i in range(n):
        image = images[i % len(images)]
        top = rng.integers(image.shape[0] - size + 1)
        left = rng.integers(image.shape[1] - size + 1)
        crops.append(image[top:top + size, left:left + size])
    clean = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).contiguous()
    noise = torch.randn(clean.shape, generator=torch.Generator().manual_seed(seed))
    return clean, (clean + 0.05 * noise).clamp(0, 1)


def measure(n: int, size: int, repeats: int, device: str) -> dict:
    """Best wall times per image (torch, skimage) and the largest disagreements."""
    import numpy as np
    import torch
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    from robench.metrics.image import psnr, ssim

    clean, degraded = real_images(n, size)
    clean_np = clean.permute(0, 2, 3, 1).numpy().astype(np.float64)
    degraded_np = degraded.permute(0, 2, 3, 1).numpy().astype(np.float64)
    clean_t, degraded_t = clean.to(device), degraded.to(device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

    def batched():
        out = psnr(clean_t, degraded_t), ssim(clean_t, degraded_t)
        sync()
        return out

    def per_image():
        p = [peak_signal_noise_ratio(a, b, data_range=1.0) for a, b in zip(clean_np, degraded_np)]
        s = [structural_similarity(a, b, data_range=1.0, channel_axis=-1, gaussian_weights=True,
                                   sigma=1.5, use_sample_covariance=False)
             for a, b in zip(clean_np, degraded_np)]
        return np.array(p), np.array(s)

    batched()  # warm-up (first-call dispatch, CUDA context)
    best = {"torch": float("inf"), "skimage": float("inf")}
    results = {}
    for _ in range(repeats):  # alternate, so that load from other processes hits both
        for name, fn in (("torch", batched), ("skimage", per_image)):
            start = time.perf_counter()
            results[name] = fn()
            best[name] = min(best[name], time.perf_counter() - start)
    (p_t, s_t), (p_s, s_s) = results["torch"], results["skimage"]
    psnr_gap = float(np.abs(p_t.cpu().numpy() - p_s).max())
    ssim_gap = float(np.abs(s_t.cpu().numpy() - s_s).max())
    assert psnr_gap <= AGREEMENT_PSNR_DB and ssim_gap <= AGREEMENT_SSIM, (size, psnr_gap, ssim_gap)
    return {"torch": best["torch"] / n, "skimage": best["skimage"] / n, "psnr_gap": psnr_gap,
            "ssim_gap": ssim_gap}


def profile(n: int, size: int, device: str) -> None:
    """Per-operator time of one batched PSNR+SSIM call (torch.profiler), top rows."""
    import torch
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    from robench.metrics.image import psnr, ssim

    clean, degraded = (t.to(device) for t in real_images(n, size))
    psnr(clean, degraded), ssim(clean, degraded)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.startswith("cuda") else [])
    with torch_profile(activities=activities, record_shapes=True) as prof:
        for _ in range(3):
            psnr(clean, degraded), ssim(clean, degraded)
    sort = "self_cuda_time_total" if device.startswith("cuda") else "self_cpu_time_total"
    print(f"\nprofile: {n} images of {size}x{size}, 3 calls of psnr + ssim")
    print(prof.key_averages(group_by_input_shape=True).table(sort_by=sort, row_limit=14,
                                                             max_name_column_width=22,
                                                             max_shapes_column_width=60))


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", default="auto", help="images per batch (auto: 64 up to 64 px, fewer above, "
                                                    "about 1 MPixel per batch)")
    parser.add_argument("--sizes", default="24,32,64,128,256,512", help="comma-separated image sides, pixels")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", default="1,all", help="torch thread counts, one row each ('all': "
                                                           f"{torch.get_num_threads()} here)")
    parser.add_argument("--device", default="cpu", help="where torch computes (cpu, cuda, cuda:1)")
    parser.add_argument("--profile", action="store_true", help="also profile the largest side")
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device here")
    all_threads = torch.get_num_threads()
    threads = [all_threads if t.strip() == "all" else int(t) for t in args.threads.split(",") if t.strip()]
    if args.device != "cpu":
        threads = threads[:1]
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    where = torch.cuda.get_device_name(torch.device(args.device)) if args.device.startswith("cuda") else "cpu"
    print(f"torch {torch.__version__} on {where}; {os.cpu_count()} cores; load {os.getloadavg()[0]:.2f}; "
          f"scikit-image: one image at a time, 1 thread")
    print(f"{'side':>5} {'n':>3} {'threads':>7} {'robench ms/img':>14} {'skimage ms/img':>14} {'ratio':>7} "
          f"{'max|dPSNR| dB':>13} {'max|dSSIM|':>10}")
    for count in threads:
        torch.set_num_threads(count)
        for size in sizes:
            n = int(args.n) if args.n != "auto" else max(4, min(64, (1 << 20) // (size * size)))
            r = measure(n, size, args.repeats, args.device)
            label = f"{count}" if args.device == "cpu" else args.device
            note = f"  <- {TASK_SIZES[size]}" if size in TASK_SIZES else ""
            print(f"{size:>5} {n:>3} {label:>7} {1e3 * r['torch']:>14.3f} {1e3 * r['skimage']:>14.2f} "
                  f"{r['skimage'] / r['torch']:>6.1f}x {r['psnr_gap']:>13.1e} {r['ssim_gap']:>10.1e}{note}",
                  flush=True)
    print(f"load at the end: {os.getloadavg()[0]:.2f}")
    if args.profile:
        torch.set_num_threads(threads[0])
        size = max(sizes)
        profile(max(1, min(8, (1 << 20) // (size * size))), size, args.device)


if __name__ == "__main__":
    main()
