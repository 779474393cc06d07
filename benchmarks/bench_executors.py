"""Executors side by side (printed, never asserted): the same suite share, from the same warm
baseline cache, run serially, on a process pool of 2 and on a Dask LocalCluster of 2.

Targets (2 cores): process pool >= 1.7x serial throughput; Dask >= 0.9x the process pool.
The Dask time includes starting the LocalCluster and its workers, as a user pays it; the
metrics of the three runs are checked to be equal (latency excepted) before printing.

Usage: python benchmarks/bench_executors.py [--runs-per-seed 6] [--seeds 2]
"""

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import robench
from robench import api

SUITE = """
suite: bench-executors
seeds: {seeds}
tasks:
  - task: compression
    params: {{model: lenet-300-100, dataset: mnist-5k, baseline_epochs: 3, finetune_epochs: 2, latency_repeats: 5}}
    methods:
      - name: magnitude
        grid: {{sparsity: {sparsities}}}
"""


def stable(metrics: dict) -> str:
    return json.dumps({k: v for k, v in metrics.items() if "latency" not in k and "speedup" not in k},
                      sort_keys=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs-per-seed", type=int, default=6)
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args()
    sparsities = [round(0.5 + 0.45 * i / max(1, args.runs_per_seed - 1), 3) for i in range(args.runs_per_seed)]
    with tempfile.TemporaryDirectory(prefix="robench-bench-") as tmp:
        tmp = Path(tmp)
        suite = tmp / "suite.yaml"
        suite.write_text(SUITE.format(seeds=list(range(args.seeds)), sparsities=sparsities))
        # warm the shared baselines once, so every executor measures the runs alone
        warm = tmp / "warm"
        api.run(suite=None, task="compression", methods=["dense"], seeds=list(range(args.seeds)),
                params={"model": "lenet-300-100", "baseline_epochs": 3, "finetune_epochs": 1,
                        "latency_repeats": 1}, store=warm / "r.sqlite", progress=False, device="cpu")
        times, metrics = {}, {}
        for name, kw in (("serial", dict(executor="serial", workers=1)),
                         ("process", dict(executor="process", workers=2)),
                         ("dask", dict(executor="dask", workers=2))):
            folder = tmp / name
            folder.mkdir()
            shutil.copytree(warm / "cache", folder / "cache")
            start = time.perf_counter()
            summary = api.run(suite, store=folder / "r.sqlite", progress=False, device="cpu", **kw)
            times[name] = time.perf_counter() - start
            assert summary.failed == 0, f"{name}: {summary.failed} runs failed"
            frame = robench.results(folder / "r.sqlite")
            metrics[name] = {r.id: stable(r.metrics) for r in frame.itertuples()}
        assert metrics["serial"] == metrics["process"] == metrics["dask"], "executors disagree on metrics"
    n = args.runs_per_seed * args.seeds
    print(f"{n} compression runs (LeNet-300-100, MNIST-5k, 2 fine-tuning epochs), warm baselines, same metrics:")
    for name, seconds in times.items():
        print(f"  {name:<8} {seconds:6.1f} s  ({n / seconds * 60:5.1f} runs/min)")
    print(f"process pool / serial throughput: {times['serial'] / times['process']:.2f}x (target >= 1.7x)")
    print(f"Dask LocalCluster / process pool throughput: {times['process'] / times['dask']:.2f}x (target >= 0.9x)")


if __name__ == "__main__":
    main()
