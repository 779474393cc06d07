"""GPU measurements of issue 24 (printed as Markdown tables, never asserted), one script a
session with a GPU runs as it is:

1. packing: a suite (default: suites/default.yaml) cold, in a fresh store, on one GPU with
   ``--workers 1, 2, 4, 8``: wall time, runs/min, the ratio to ``--workers 1``, and the GPU's
   utilization and memory sampled every 0.5 s by a background thread (NVML through pynvml
   when importable, else ``nvidia-smi --query-gpu=utilization.gpu,memory.used``);
2. the attack layer (``evaluate_robustness``) against a raw torch loop doing the same passes
   (benchmarks/bench_attacks.py's), PGD and APGD-CE on LeNet-5 (MNIST-5k test images) and
   WRN-28-10 (random CIFAR-shaped images; skipped, saying so, where the model is not
   registered), untrained (timing only), labels the model's own predictions;
3. training steps/s of robench's ``train_loop`` in fp32 and in bf16 (``torch.autocast``
   around each step's forward pass and loss, the backward outside it, as torch advises);
4. the primary metrics of a few fp32 runs on the CPU and on the GPU: equal, or the
   largest difference.

    python benchmarks/bench_gpu.py                  # on a machine with a GPU: every section
    python benchmarks/bench_gpu.py --quick          # small sizes; without a GPU, on the CPU
    python benchmarks/bench_gpu.py --workers 1,8 --only packing,attacks

Without a GPU and without ``--quick`` it prints what it skipped and exits 0. With
``--quick`` on a machine without a GPU every section but 4 runs on the CPU at small sizes
(the smoke suite at ``--workers 1, 2``), so the script is known to work before a GPU
session spends its time on it. Targets on one H100/H200 (issue 24): the default suite in
<= 90 s with packing, >= 3x runs/min from ``--workers 1`` to the best packing, the attack
layer >= 0.9x the raw loop.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # bench_attacks' raw loops, bench_devices' suite runner

SECTIONS = ("packing", "attacks", "training", "equal")


# -- GPU utilization ---------------------------------------------------------------------------
class GpuSampler:
    """Samples one GPU's utilization (%) and used memory (MiB) every ``interval`` seconds in
    a background thread while it is entered: NVML (pynvml) when importable, else
    ``nvidia-smi``; neither: no samples (``source`` says "none")."""

    def __init__(self, index: int = 0, interval: float = 0.5):
        self.index, self.interval = index, interval
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self.source = "none"
        self._read = None
        try:
            import pynvml

            pynvml.nvmlInit()
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)

            def read():
                rates = pynvml.nvmlDeviceGetUtilizationRates(handle)
                return float(rates.gpu), pynvml.nvmlDeviceGetMemoryInfo(handle).used / 2**20
            self._read, self.source = read, "NVML"
        except Exception:  # noqa: BLE001 - no pynvml, or no NVML driver: try nvidia-smi
            if shutil.which("nvidia-smi"):
                def read():
                    out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu,memory.used",
                                          "--format=csv,noheader,nounits", "-i", str(index)],
                                         capture_output=True, text=True, timeout=10).stdout
                    util, used = (float(v) for v in out.strip().splitlines()[0].split(","))
                    return util, used
                self._read, self.source = read, "nvidia-smi"

    def _loop(self):
        while not self._stop.is_set():
            try:
                self.samples.append(self._read())
            except Exception:  # noqa: BLE001 - a failed sample is skipped
                pass
            self._stop.wait(self.interval)

    def __enter__(self):
        if self._read is not None:
            self._thread = threading.Thread(target=self._loop, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._read is not None:
            self._thread.join(timeout=15)

    def summary(self) -> str:
        if not self.samples:
            return "n/a"
        utils = [u for u, _ in self.samples]
        return f"{statistics.mean(utils):.0f} % mean, {max(m for _, m in self.samples):.0f} MiB max"


# -- 1. packing -------------------------------------------------------------------------------------
def packing(suite: str, device: str, workers_list: list[int], folder: Path) -> list[list[str]]:
    """The suite cold (fresh store and cache) at each worker count on ``device``."""
    from robench import api

    index = int(device.split(":")[1]) if ":" in device else 0
    rows, base = [], None
    for workers in workers_list:
        store = folder / f"packing-{workers}" / "r.sqlite"
        with GpuSampler(index) if device.startswith("cuda") else _Nothing() as sampler:
            start = time.perf_counter()
            summary = api.run(suite, store=store, device=device, workers=workers, progress=False)
            wall = time.perf_counter() - start
        runs = summary.done + summary.failed
        per_min = runs / wall * 60
        base = base or per_min
        frame = api.results(store)
        waited = sum(p.get("gpu_memory_wait_s", 0) for p in frame["provenance"]) if len(frame) else 0
        peak = max((p.get("gpu_peak_reserved_bytes", 0) for p in frame["provenance"]), default=0) if len(frame) else 0
        rows.append([f"`--workers {workers}`", f"{wall:.1f} s", f"{per_min:.1f}", f"{per_min / base:.2f}x",
                     f"{summary.done} done, {summary.failed} failed",
                     getattr(sampler, "summary", lambda: "n/a")() if device.startswith("cuda") else "n/a (CPU)",
                     f"{peak / 2**30:.2f} GiB" if peak else "—", f"{waited:.1f} s"])
        print(f"  packing: --workers {workers}: {wall:.1f} s, {per_min:.1f} runs/min", flush=True)
    return rows


class _Nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass


# -- 2. attacks -------------------------------------------------------------------------------------
def _synced(fn, device):
    import torch

    def run():
        fn()
        if str(device).startswith("cuda"):
            torch.cuda.synchronize()
    return run


def _best(variants: dict, repeats: int) -> dict:
    best = {name: math.inf for name in variants}
    for _ in range(repeats):  # interleaved, so load hits every variant alike
        for name, fn in variants.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def _model(name: str, device: str):
    """``(model, x, note)``: LeNet-5 on MNIST-5k test images or WRN-28-10 on random CIFAR-shaped
    ones; None when ``name`` is not a registered model."""
    import torch

    from robench import registry
    from robench.models import build_model

    registry.setup()
    if name not in registry.models:
        return None
    torch.manual_seed(0)
    model = build_model(name, num_classes=10).to(device).eval()
    if name == "lenet-5":
        from robench.data import load_dataset

        data = load_dataset("mnist-5k")
        return model, data.test_x, "MNIST-5k test images"
    return model, torch.rand(512, 3, 32, 32, generator=torch.Generator().manual_seed(0)), "random 3x32x32 images"


def attacks(device: str, quick: bool) -> tuple[list[list[str]], list[str]]:
    sizes = {  # model: (batch, PGD steps, APGD steps, repeats, eps)
        "lenet-5": (64, 5, 5, 2, 0.3) if quick else (1000, 40, 100, 5, 0.3),
        "wrn-28-10": (2, 1, 1, 1, 8 / 255) if quick else (128, 10, 10, 3, 8 / 255),
    }
    rows, skipped = [], []
    for name, size in sizes.items():
        built = _model(name, device)
        if built is None:
            skipped.append(f"attacks on {name}: the model {name!r} is not registered in this checkout")
            continue
        rows += _attack_rows(name, built, device, *size)
        built = None  # the model's memory goes back before the next one
        _empty_cache(device)
    return rows, skipped


def _attack_rows(name, built, device, batch, pgd_steps, apgd_steps, repeats, eps) -> list[list[str]]:
    import torch

    from bench_attacks import raw_apgd_linf, raw_pgd_linf
    from robench.attacks import apgd_ce, evaluate_robustness, frozen, pgd_linf

    model, images, note = built
    x = images[:batch].to(device).contiguous()
    with torch.no_grad():
        y = model(x).argmax(1)  # every point correctly classified: all attacked throughout
    rows = []
    for attack, steps, config, raw in (
            ("PGD-l∞", pgd_steps, pgd_linf((eps,), steps=pgd_steps, rel_stepsize=0.01 / 0.3),
             lambda: raw_pgd_linf(model, x, y, eps, pgd_steps, 0.01 / 0.3)),
            ("APGD-CE l∞", apgd_steps, apgd_ce("linf", (eps,), steps=apgd_steps),
             lambda: raw_apgd_linf(model, x, y, eps, apgd_steps))):
        evals = (steps if attack.startswith("PGD") else steps + 1) * len(x)
        variants = {"layer": _synced(lambda c=config: evaluate_robustness(model, x, y, [c], batch_size=len(x)),
                                     device),
                    "raw torch": _synced(lambda r=raw: _frozen_call(frozen, model, r), device)}
        for warm_up in variants.values():  # imports, kernels, the allocator
            warm_up()
        best = _best(variants, repeats)
        rate = {k: evals / v for k, v in best.items()}
        rows.append([name, attack, f"{len(x)} ({note})", str(steps), _num(rate["layer"]), _num(rate["raw torch"]),
                     f"{rate['layer'] / rate['raw torch']:.2f}"])
        print(f"  attacks: {name} {attack}: layer/raw {rate['layer'] / rate['raw torch']:.2f}", flush=True)
    return rows


def _empty_cache(device: str) -> None:
    import gc

    import torch

    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()


def _frozen_call(frozen, model, fn):
    with frozen(model):
        return fn()


# -- 3. training fp32 vs bf16 ---------------------------------------------------------------------
def training(device: str, quick: bool) -> tuple[list[list[str]], list[str]]:
    sizes = {"lenet-5": (64, 5) if quick else (128, 200), "wrn-28-10": (2, 1) if quick else (128, 30)}
    rows, skipped = [], []
    for name, (batch, steps) in sizes.items():
        built = _model(name, device)
        if built is None:
            skipped.append(f"training on {name}: the model {name!r} is not registered in this checkout")
            continue
        rows.append(_training_row(name, built, device, batch, steps))
        built = None
        _empty_cache(device)
    return rows, skipped


def _training_row(name, built, device, batch, steps) -> list[str]:
    import torch
    import torch.nn.functional as F

    from robench.training import make_sgd, train_loop

    model, images, _ = built
    device_type = "cuda" if device.startswith("cuda") else "cpu"
    x = images[:batch].to(device)
    y = torch.arange(len(x), device=device) % 10
    rate = {}
    for precision in ("fp32", "bf16"):
        optimizer = make_sgd(model, lr=0.01)

        def loss(batch_xy, precision=precision):
            xb, yb = batch_xy
            with torch.autocast(device_type, dtype=torch.bfloat16, enabled=precision == "bf16"):
                return F.cross_entropy(model(xb), yb)
        train_loop(model, optimizer, [[(x, y)] * 2], loss)  # warm-up
        _synced(lambda: None, device)()
        start = time.perf_counter()
        train_loop(model, optimizer, [[(x, y)] * steps], loss)
        _synced(lambda: None, device)()
        rate[precision] = steps / (time.perf_counter() - start)
    print(f"  training: {name}: bf16/fp32 {rate['bf16'] / rate['fp32']:.2f}", flush=True)
    return [name, str(batch), str(steps), _num(rate["fp32"]), _num(rate["bf16"]),
            f"{rate['bf16'] / rate['fp32']:.2f}"]


# -- 4. the same metrics on the CPU and the GPU ---------------------------------------------------------
def equal_metrics(suite: str, device: str, folder: Path) -> list[list[str]]:
    from bench_devices import run_suite

    values = {}
    for where in ("cpu", device):
        seconds, summary, values[where] = run_suite(suite, where, 1, folder / f"equal-{where.replace(':', '')}")
        print(f"  equal: {suite} on {where}: {seconds:.1f} s, {summary.done} done", flush=True)
    a, b = values["cpu"], values[device]
    rows = []
    for run_id in sorted(set(a) & set(b)):
        diff = abs(a[run_id] - b[run_id])
        rows.append([run_id[:10], f"{a[run_id]:.6g}", f"{b[run_id]:.6g}",
                     "equal" if diff == 0 or (math.isnan(a[run_id]) and math.isnan(b[run_id])) else f"{diff:.3g}"])
    return rows


# -- output -----------------------------------------------------------------------------------------
def _num(x: float) -> str:
    """A rate for a table: whole numbers from 100, one decimal from 1, else 3 significant digits."""
    return f"{x:.0f}" if x >= 100 else f"{x:.1f}" if x >= 1 else f"{x:.3g}"


def table(title: str, header: list[str], rows: list[list[str]]) -> None:
    print(f"\n### {title}\n")
    print("| " + " | ".join(header) + " |")
    print("| " + " | ".join("---" for _ in header) + " |")
    for row in rows:
        print("| " + " | ".join(row) + " |")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes; without a GPU, on the CPU")
    parser.add_argument("--device", default="cuda", help="the GPU to measure on (default: cuda)")
    parser.add_argument("--suite", default=None, help="packing suite [default: suites/default.yaml; "
                        "--quick: suites/smoke.yaml]")
    parser.add_argument("--workers", default=None, help="comma-separated worker counts [default: 1,2,4,8; "
                        "--quick: 1,2]")
    parser.add_argument("--equal-suite", default="suites/smoke.yaml", help="suite of the CPU-vs-GPU metrics check")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated sections: {', '.join(SECTIONS)}")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads of this process (attacks, "
                        "training) [default: torch's; 1 for --quick on the CPU, steadier on a shared machine]")
    args = parser.parse_args(argv)
    sections = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in sections if s not in SECTIONS]
    if unknown:
        parser.error(f"--only {args.only}: unknown section {unknown[0]!r} (expected {', '.join(SECTIONS)})")

    import torch

    gpu = torch.cuda.is_available()
    os.chdir(HERE.parent)  # suite paths are relative to the repository
    skipped: list[str] = []
    if not gpu and not args.quick:
        print(f"no CUDA device here (torch {torch.__version__}): skipped {', '.join(sections)}; "
              f"`--quick` runs them on the CPU at small sizes to check the script")
        return 0
    device = args.device if gpu else "cpu"
    threads = args.threads or (1 if device == "cpu" else None)  # this process's, after packing
    name = torch.cuda.get_device_name(torch.device(device)) if gpu else "none"
    workers_list = [int(w) for w in (args.workers or ("1,2" if args.quick else "1,2,4,8")).split(",")]
    suite = args.suite or ("suites/smoke.yaml" if args.quick else "suites/default.yaml")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"machine: {platform.node()}, {os.cpu_count()} CPU cores (load {load:.1f}), GPU {name}, "
          f"torch {torch.__version__}, device {device}{', --quick' if args.quick else ''}; attacks and training "
          f"on {threads or torch.get_num_threads()} thread(s)", flush=True)
    with tempfile.TemporaryDirectory(prefix="robench-gpu-") as tmp:
        folder = Path(tmp)
        if "packing" in sections:
            rows = packing(suite, device, workers_list, folder)
            table(f"Packing: `{suite}` cold on {device} ({name})",
                  ["workers", "wall", "runs/min", "vs --workers 1", "runs", "GPU utilization", "largest run peak",
                   "memory waits"], rows)
        if threads:  # packing ran as `robench run` does (threads per run: cores / workers)
            torch.set_num_threads(threads)
        if "attacks" in sections:
            rows, missed = attacks(device, args.quick)
            skipped += missed
            table(f"Attack layer vs raw torch loop on {device} (grad evals/s, best of repeats)",
                  ["model", "attack", "images", "steps", "layer", "raw torch", "layer / raw"], rows)
        if "training" in sections:
            rows, missed = training(device, args.quick)
            skipped += missed
            table(f"Training steps/s on {device}: fp32 vs bf16 (torch.autocast around each step's forward)",
                  ["model", "batch", "steps", "fp32", "bf16", "bf16 / fp32"], rows)
        if "equal" in sections:
            if gpu:
                table(f"Primary metrics, fp32, CPU vs {device} (`{args.equal_suite}`)",
                      ["run", "cpu", device, "difference"], equal_metrics(args.equal_suite, device, folder))
            else:
                skipped.append("equal: the CPU-vs-GPU metrics check needs a GPU")
    if not gpu:
        skipped.append("every GPU number: no CUDA device here, the rows above are CPU rows at --quick sizes")
    for line in skipped:
        print(f"skipped: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
