"""Wall time of whole suites per device (printed, never asserted): each suite runs cold, in a
fresh store, once per device asked for; the metrics of a suite on two devices are compared
(how many runs agree to 1e-6, and the largest difference of the primary metric).

Usage: python benchmarks/bench_devices.py [--suite suites/smoke.yaml ...] [--devices cpu,cuda]
                                         [--workers 1] [--cpu-suites suites/smoke.yaml]
``--cpu-suites`` limits the CPU runs to those suites (a paper suite may be too long to run
twice); the README's table lists what was measured where.
"""

import argparse
import math
import os
import platform
import tempfile
import time
from pathlib import Path

import robench
from robench import api


def run_suite(suite: str, device: str, workers: int, folder: Path):
    start = time.perf_counter()
    summary = api.run(suite, store=folder / "r.sqlite", device=device, workers=workers, progress=False)
    seconds = time.perf_counter() - start
    frame = robench.results(folder / "r.sqlite")
    values = {r.id: r.primary_value for r in frame.itertuples() if r.status == "done"}
    return seconds, summary, values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", action="append", default=None)
    parser.add_argument("--devices", default="cpu,cuda")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--cpu-suites", default=None, help="comma-separated: run only these on the CPU")
    args = parser.parse_args()
    suites = args.suite or ["suites/smoke.yaml"]
    devices = [d.strip() for d in args.devices.split(",") if d.strip()]
    cpu_only = None if args.cpu_suites is None else {s.strip() for s in args.cpu_suites.split(",")}

    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    print(f"machine: {platform.node()}, {os.cpu_count()} CPU cores, GPU {gpu}, torch {torch.__version__}, "
          f"--workers {args.workers}")
    with tempfile.TemporaryDirectory(prefix="robench-devices-") as tmp:
        for suite in suites:
            results = {}
            for device in devices:
                if device.startswith("cuda") and not torch.cuda.is_available():
                    print(f"  {suite}: {device} skipped (no CUDA device)")
                    continue
                if device == "cpu" and cpu_only is not None and suite not in cpu_only:
                    continue
                folder = Path(tmp) / f"{Path(suite).stem}-{device.replace(':', '')}"
                seconds, summary, values = run_suite(suite, device, args.workers, folder)
                results[device] = values
                print(f"  {suite} on {device}: {seconds:7.1f} s, {summary.done} done, {summary.failed} failed",
                      flush=True)
            if len(results) == 2:
                a, b = results.values()
                common = set(a) & set(b)
                diffs = [abs(a[k] - b[k]) for k in common if not (math.isnan(a[k]) and math.isnan(b[k]))]
                close = sum(d <= 1e-6 for d in diffs)
                print(f"  {suite}: primary metric equal (1e-6) on {close} of {len(common)} runs across devices; "
                      f"largest difference {max(diffs, default=0):.3g}")


if __name__ == "__main__":
    main()
