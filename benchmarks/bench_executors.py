"""Executors side by side (printed, never asserted): the same suite share, from the same warm
baseline cache, run serially, on a process pool of 2 and on a Dask LocalCluster of 2.

Targets (2 cores): process pool >= 1.7x serial throughput; Dask >= 0.9x the process pool.
Serial is measured twice: with one thread per run (what each pool worker gets) and with
both cores (what `--workers 1` uses by default).
The Dask time includes starting the LocalCluster and its workers, as a user pays it; the
metrics of the three runs are checked to be equal (latency excepted) before printing.

Usage: python benchmarks/bench_executors.py [--runs-per-seed 6] [--seeds 3]
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
    params: {{model: lenet-5, dataset: mnist-5k, baseline_epochs: 3, finetune_epochs: 3, latency_repeats: 5}}
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
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    sparsities = [round(0.5 + 0.45 * i / max(1, args.runs_per_seed - 1), 3) for i in range(args.runs_per_seed)]
    with tempfile.TemporaryDirectory(prefix="robench-bench-") as tmp:
        tmp = Path(tmp)
        suite = tmp / "suite.yaml"
        suite.write_text(SUITE.format(seeds=list(range(args.seeds)), sparsities=sparsities))
        # warm the shared baselines once, so every executor measures the runs alone
        warm = tmp / "warm"
        api.run(suite=None, task="compression", methods=["dense"], seeds=list(range(args.seeds)),
                params={"model": "lenet-5", "baseline_epochs": 3, "finetune_epochs": 1,
                        "latency_repeats": 1}, store=warm / "r.sqlite", progress=False, device="cpu")
        times, metrics = {}, {}
        for name, kw in (("serial", dict(executor="serial", workers=1)),
                         ("serial-1", dict(executor="serial", workers=1, threads=1)),
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
        assert len({json.dumps(m, sort_keys=True) for m in metrics.values()}) == 1, "executors disagree on metrics"
    n = args.runs_per_seed * args.seeds
    print(f"{n} compression runs (LeNet-5, MNIST-5k, 3 fine-tuning epochs), warm baselines, same metrics:")
    labels = {"serial": "serial, 2 threads (the default for --workers 1 here)",
              "serial-1": "serial, 1 thread (each pool worker's share)",
              "process": "process pool, 2 workers x 1 thread", "dask": "Dask LocalCluster, 2 workers x 1 thread"}
    for name, seconds in times.items():
        print(f"  {labels[name]:<52} {seconds:6.1f} s  ({n / seconds * 60:5.1f} runs/min)")
    print(f"process pool / serial throughput: {times['serial-1'] / times['process']:.2f}x at equal threads per run "
          f"(target >= 1.7x); {times['serial'] / times['process']:.2f}x against serial on both cores")
    print(f"Dask LocalCluster / process pool throughput: {times['process'] / times['dask']:.2f}x (target >= 0.9x)")


if __name__ == "__main__":
    main()
