"""A tiny, torch-free task used to test the core (registry, suites, store, executors, CLI).

It is a real protocol on a tiny problem: estimate the mean of a seeded Gaussian sample;
the metric is the absolute error of the method's estimate. Nothing here is hard-coded.
"""

import time

from robench import register_method, register_task
from robench.tasks.base import Method, Task, TaskParams, TaskResult


class ToyParams(TaskParams):
    n: int = 50
    sleep: float = 0.0  # seconds per run, to test interruption


@register_task("toy")
class ToyTask(Task):
    """estimate a Gaussian mean from n seeded samples (core tests)"""
    version = "1"
    Params = ToyParams
    primary_metric = "abs_error"
    greater_is_better = False
    label_params = ("n",)

    def run(self, method, seed, ctx):
        import numpy as np

        rng = np.random.default_rng(seed)
        sample = rng.normal(loc=3.0, scale=1.0, size=self.params.n)
        time.sleep(self.params.sleep)
        estimate = method.estimate(sample)
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
