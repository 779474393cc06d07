"""Core performance ratios (printed, never asserted).

1. re-running a completed suite / its cold run (the store must make it near-free);
2. `robench ls` start-up / a bare `python -c pass` (no torch import on the way);
3. the compression task's evaluation pass / a raw torch loop doing the same forwards.

Usage: python benchmarks/bench_core.py [--suite suites/smoke.yaml]
"""

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def timed(cmd, **kw):
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, **kw)
    return time.perf_counter() - start


def bench_rerun(suite: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "r.sqlite"
        cmd = [sys.executable, "-m", "robench.cli", "run", str(ROOT / suite), "--store", str(store), "-q"]
        cold = timed(cmd, cwd=ROOT)
        warm = min(timed(cmd, cwd=ROOT) for _ in range(3))
    print(f"re-run of {suite}: cold {cold:.1f} s, re-run {warm:.2f} s → ratio {warm / cold:.3%} (target < 5%)")


def bench_startup() -> None:
    bare = statistics.median(timed([sys.executable, "-c", "pass"]) for _ in range(5))
    ls = statistics.median(timed([sys.executable, "-m", "robench.cli", "ls"], cwd=ROOT) for _ in range(5))
    torch = statistics.median(timed([sys.executable, "-c", "import torch"]) for _ in range(3))
    print(f"`robench ls`: {ls * 1000:.0f} ms; bare python {bare * 1000:.0f} ms (ratio {ls / bare:.1f}x); "
          f"`import torch` alone {torch * 1000:.0f} ms")


def bench_eval() -> None:
    import torch

    from robench.data import load_dataset
    from robench.models import build_model
    from robench.training import accuracy

    torch.set_num_threads(2)
    data = load_dataset("mnist-5k")
    model = build_model("lenet-5").eval()

    def raw():
        correct = 0
        with torch.no_grad():
            for i in range(0, len(data.test_x), 1000):
                correct += (model(data.test_x[i:i + 1000]).argmax(1) == data.test_y[i:i + 1000]).sum().item()
        return correct / len(data.test_x)

    def ours():
        return accuracy(model, data.test_x, data.test_y)

    assert raw() == ours()
    timings = {}
    for name, fn in (("raw", raw), ("ours", ours)) * 2:  # interleaved, twice, to share noise
        start = time.perf_counter()
        for _ in range(10):
            fn()
        timings.setdefault(name, []).append(time.perf_counter() - start)
    r, o = min(timings["raw"]), min(timings["ours"])
    print(f"compression evaluation (LeNet-5, 1000 MNIST-5k test images): ours {o / 10 * 1000:.1f} ms, "
          f"raw torch loop {r / 10 * 1000:.1f} ms → ratio {o / r:.2f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default="suites/smoke.yaml")
    args = parser.parse_args()
    bench_startup()
    bench_eval()
    bench_rerun(args.suite)
