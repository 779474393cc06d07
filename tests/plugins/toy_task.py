"""A tiny, torch-free task used to test the core (registry, suites, store, executors, CLI).

It is a real protocol on a tiny problem: estimate the mean of a seeded Gaussian sample;
the metric is the absolute error of the method's estimate. Nothing here is hard-coded.
"""

import functools
import time

from robench import register_method, register_task
from robench.tasks.base import Method, Task, TaskParams, TaskResult


class ToyParams(TaskParams):
    n: int = 50
    sleep: float = 0.0  # seconds per run, to test interruption
    shared: bool = False  # runs of a seed first need a shared "baseline" (a cached prerequisite)


def shared_baseline(seed, cache_dir, device="cpu"):
    """The seed's shared prerequisite: a cached file, computed once; each computation is
    logged in cache_dir/computed.log (tests count them)."""
    from pathlib import Path

    from robench.cache import cached

    cache_dir = Path(cache_dir)
    path = cache_dir / "toy" / f"baseline-{seed}.txt"

    def compute():
        time.sleep(0.5)  # long enough that concurrent runs would overlap
        with open(cache_dir / "computed.log", "a") as log:
            log.write(f"{seed}\n")
        return f"{seed * 0.01!r}"
    cached(path, compute, lambda value, tmp: tmp.write_text(value), lambda p: p.read_text())
    return [path]


def _build_baseline(seed, cache_dir, device):
    return shared_baseline(seed, cache_dir, device)


@register_task("toy")
class ToyTask(Task):
    """estimate a Gaussian mean from n seeded samples (core tests)"""
    version = "1"
    Params = ToyParams
    primary_metric = "abs_error"
    greater_is_better = False
    label_params = ("n",)

    def prerequisites(self, method, seed):
        if not self.params.shared:
            return []
        return [(f"toy/baseline-{seed}.txt", functools.partial(_build_baseline, seed))]

    def run(self, method, seed, ctx):
        import numpy as np

        if type(method).__name__ == "Dies" and seed == 1:
            import os
            import signal
            os.kill(os.getpid(), signal.SIGKILL)
        rng = np.random.default_rng(seed)
        sample = rng.normal(loc=3.0, scale=1.0, size=self.params.n)
        if self.params.shared:
            offset = float(shared_baseline(seed, ctx.cache_dir)[0].read_text())
            sample = sample + offset
        time.sleep(self.params.sleep)
        estimate = method.estimate(sample)
        with open(ctx.cache_dir / "executed.log", "a") as log:  # tests count computations
            log.write(f"{type(method).__name__} {seed}\n")
        (ctx.artifact_dir / "estimate.txt").write_text(f"{estimate!r}\n")
        return TaskResult({"abs_error": abs(estimate - 3.0), "estimate": estimate},
                          {"estimate": "estimate.txt"})


@register_method("toy", "mean")
class Mean(Method):
    """the sample mean"""
    def __init__(self, trim: float = 0.0):
        if not 0 <= trim < 0.5:
            raise ValueError(f"trim must be in [0, 0.5), got {trim}")
        self.trim = trim

    def estimate(self, sample):
        import numpy as np
        k = int(len(sample) * self.trim)
        s = np.sort(sample)
        return float(s[k:len(s) - k].mean())


@register_method("toy", "median")
class Median(Method):
    """the sample median"""
    def estimate(self, sample):
        import numpy as np
        return float(np.median(sample))


@register_method("toy", "boom")
class Boom(Method):
    """always raises (a broken plug-in)"""
    def estimate(self, sample):
        raise RuntimeError("boom: this plug-in is broken")


@register_method("toy", "dies")
class Dies(Method):
    """kills its own worker process when it runs with seed 1 (a worker that dies mid-run)"""
    def estimate(self, sample):
        return float(sample.mean())


@register_method("toy", "markup")
class Markup(Method):
    """a parameter value that looks like rich markup"""
    def __init__(self, note: str = "[/red]"):
        self.note = note

    def estimate(self, sample):
        return float(sample.mean())
