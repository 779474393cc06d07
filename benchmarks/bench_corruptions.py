"""Corruption generation (corruption_robustness): robench's batched generation against the
``imagecorruptions`` package called once per image, and MNIST-C generation speed.

Run: python benchmarks/bench_corruptions.py [--n 200] [--mnist 1000] [--severity 3] [--repeats 3]
     [--families a,b,...]

1. RGB, ImageNet-C's constants (the ones imagecorruptions 1.1.2 ships), on ``--n`` natural
   32×32 crops of scikit-image's bundled photographs: for each family imagecorruptions can
   run here (behind the ``pkg_resources`` shim of tests/test_corruptions.py; its glass blur,
   Gaussian blur and fog fail on current scikit-image/NumPy), the best-of-``--repeats`` wall
   time of ``robench...corruptions.corrupt`` on the whole batch (seeded per image) and of
   ``imagecorruptions.corrupt`` in a loop over the images (its global NumPy generator), and
   their ratio (> 1: robench is faster). The two are timed alternately, so a busy machine
   slows both alike. Then robench alone with CIFAR-10-C's constants (what a CIFAR-10 run
   generates).
2. MNIST-C: images per second of each family on ``--mnist`` MNIST-5k test digits at
   ``--severity``, and the time to generate the whole benchmark (15 families × 5 severities)
   for those digits once (what the first run of a setting pays; later runs read the cache).

A measurement, not a test: nothing is asserted about time. Results and the machine's load:
benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
import types
import warnings
from pathlib import Path


def import_imagecorruptions():
    """imagecorruptions behind a shim for the ``pkg_resources`` module it imports (gone from
    setuptools ≥ 81: its ``resource_filename`` is the only name it uses); None if absent."""
    spec = importlib.util.find_spec("imagecorruptions")
    if spec is None:
        return None
    root = Path(spec.origin).parent
    if "pkg_resources" not in sys.modules:
        try:
            import pkg_resources  # noqa: F401
        except ImportError:
            shim = types.ModuleType("pkg_resources")
            shim.resource_filename = lambda package, name: str(root / name)
            sys.modules["pkg_resources"] = shim
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import imagecorruptions
    return imagecorruptions


def photos(n: int):
    """``n`` natural 32×32 RGB crops, (N, 3, 32, 32) float in [0, 1], 8-bit exact."""
    import numpy as np
    from skimage import data, transform

    sources = [getattr(data, name)() for name in ("astronaut", "coffee", "chelsea", "rocket")]
    rng = np.random.default_rng(0)
    crops = []
    for i in range(n):
        image = sources[i % len(sources)]
        side = int(rng.integers(64, min(image.shape[:2])))
        top, left = rng.integers(0, image.shape[0] - side), rng.integers(0, image.shape[1] - side)
        crops.append(transform.resize(image[top:top + side, left:left + side], (32, 32), anti_aliasing=True))
    return np.round(np.stack(crops).transpose(0, 3, 1, 2) * 255) / 255


def best_of(repeats: int, fn) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=200, help="RGB crops")
    parser.add_argument("--mnist", type=int, default=1000, help="MNIST-5k test digits")
    parser.add_argument("--severity", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--families", default="", help="comma-separated subset (default: all)")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    import numpy as np

    from robench.tasks.corruption_robustness import corruptions as C

    chosen = set(filter(None, args.families.split(",")))
    ic = import_imagecorruptions()
    x = photos(args.n)
    u8 = np.round(x * 255).astype(np.uint8).transpose(0, 2, 3, 1)
    idx = np.arange(args.n)
    print(f"{args.n} RGB 32x32 crops, severity {args.severity}, best of {args.repeats}; load {os.getloadavg()[0]:.2f}")
    if ic is None:
        print("imagecorruptions is not installed: robench alone (pip install -e '.[test]')")
    print(f"{'family':<18} {'robench ms':>11} {'imagecorr. ms':>14} {'ratio':>7}   (ImageNet-C constants)")
    ratios = []
    for family in C.all_families("imagenet-c"):
        if chosen and family not in chosen:
            continue
        ours = best_of(args.repeats, lambda: C.corrupt(x, "imagenet-c", family, args.severity, 0, idx))
        theirs = None
        if ic is not None:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    np.random.seed(0)
                    theirs = best_of(args.repeats, lambda: [ic.corrupt(im, args.severity, family) for im in u8])
            except Exception as exc:  # noqa: BLE001 - the package's own breakage, reported
                theirs = f"fails ({type(exc).__name__})"
        if isinstance(theirs, float):
            ratios.append(theirs / ours)
            print(f"{family:<18} {1000 * ours:>11.1f} {1000 * theirs:>14.1f} {theirs / ours:>6.1f}x")
        else:
            print(f"{family:<18} {1000 * ours:>11.1f} {theirs or '—':>14}")
    if ratios:
        print(f"geometric mean ratio over {len(ratios)} families: "
              f"{float(np.exp(np.mean(np.log(ratios)))):.2f}x (min {min(ratios):.2f}x, max {max(ratios):.2f}x)")

    print(f"\n{'family':<18} {'robench ms':>11}   (CIFAR-10-C constants, {args.n} images)")
    total = 0.0
    for family in C.all_families("cifar-10-c"):
        if chosen and family not in chosen:
            continue
        if family == "frost" and importlib.util.find_spec("imagecorruptions") is None:
            continue
        t = best_of(args.repeats, lambda: C.corrupt(x, "cifar-10-c", family, args.severity, 0, idx))
        total += t
        print(f"{family:<18} {1000 * t:>11.1f}")
    print(f"all families: {total:.2f} s for {args.n} images ({args.n / max(total, 1e-9) * 19:.0f} corrupted images/s)")

    from robench.data import load_dataset

    digits = load_dataset("mnist-5k").test.take(np.arange(args.mnist))[0].numpy()
    idx = np.arange(args.mnist)
    print(f"\nMNIST-C on {args.mnist} MNIST-5k digits, severity {args.severity}, best of {args.repeats}")
    print(f"{'family':<15} {'ms':>8} {'images/s':>10}")
    for family in C.all_families("mnist-c"):
        if chosen and family not in chosen:
            continue
        t = best_of(args.repeats, lambda: C.corrupt(digits, "mnist-c", family, args.severity, 0, idx))
        print(f"{family:<15} {1000 * t:>8.1f} {args.mnist / t:>10.0f}")
    start = time.perf_counter()
    for family in C.all_families("mnist-c"):
        if chosen and family not in chosen:
            continue
        for severity in C.SEVERITIES:
            C.corrupt(digits, "mnist-c", family, severity, 0, idx)
    elapsed = time.perf_counter() - start
    print(f"the whole benchmark (every family x 5 severities) for {args.mnist} digits once: {elapsed:.1f} s; "
          f"load {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
