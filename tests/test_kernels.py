"""The kernel set in provenance, and the tolerance of a re-score on another kernel set.

A run's metrics are bit-exact on the same kernel set and thread count; another machine
computes with other kernels (ATen's SIMD width, oneDNN's ISA, MKL's code path), so a
re-score there agrees only within ``Task.rescore_tolerance``. Measured on this 2-core AVX2
machine, one thread, natively against subprocesses under ``ATEN_CPU_CAPABILITY=default``
(alone, and with ``ONEDNN_MAX_CPU_ISA=SSE41 MKL_ENABLE_INSTRUCTIONS=SSE4_2``):

* Re-scoring the same weights (tiny runs of every task, the baselines from the same cache):
  no accuracy, robust accuracy, broken-first share, sanity flag, sparsity or storage metric
  moved (compression LeNet-5 on 1000 test points, sparsity_robustness and robust_training
  LeNet-300-100 on 100 attacked points, smoke attacks); ``cw_l2_median`` moved by 3.2e-8,
  SSIM by at most 6.5e-9 (float64), PSNR and room-layout scores not at all.
* Metrics of a model the maintainer trains itself (a cold cache), another rounding of a
  whole training: LeNet-5 baselines on mnist-5k (10 epochs, seeds 0 and 1: 0.960 / 0.961
  natively, 0.967 / 0.967 and 0.965 / 0.972 under the other kernels; 2 epochs: 1 and 9
  points of 1000); the seed-0 LeNet-5 vanilla model behind robust_training's eps_ref
  (0.1739 natively, 0.1757 and 0.1676), and the robust accuracies of one model at those
  budgets (1x: 0.200, 0.190, 0.235 of 200 points); restoration's default base network
  (800 steps): off-training PSNR mean 34.90 dB natively, 34.33 and 33.83 dB (single levels
  up to 3.1 dB apart).

Hence (robench/tasks/base.py): FLIPS = 2 points of n for an accuracy of the same weights,
ATTACK_FLIPS = 3 for a share of the attacked points, attack norms 1e-4 (3000x what was
seen, under 1e-3 of a typical rho2), a retrained baseline's accuracy 0.03 and a retrained
vanilla model's rho2 (eps_ref) 0.02 (four times the RMS of the differences seen),
restoration's reference means 3.5 dB, and ``recovery`` left out of the re-score.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from robench import provenance, registry

registry.load_builtins()  # before the task modules register themselves (else: duplicate names)
from robench.seeding import seed_everything  # noqa: E402
from robench.tasks.base import RunContext, execute  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SETTING = dict(model="lenet-300-100", baseline_epochs=1, finetune_epochs=1, batch_size=128,
               attack_preset="smoke", n_test=40)
# another machine's kernels, as far as one machine can show them: ATen's scalar kernels,
# oneDNN and MKL capped at SSE4
OTHER_KERNELS = {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2"}

RESCORE = """
import json, sys
from pathlib import Path
import torch
torch.set_num_threads(1)
from robench import provenance, registry
registry.load_builtins()
from robench.seeding import seed_everything
from robench.tasks.base import RunContext
task = registry.tasks.get("sparsity_robustness")(**json.loads(sys.argv[1]))
method = registry.methods.get("magnitude", task="sparsity_robustness")(sparsity=0.5)
folder, cache = Path(sys.argv[2]), Path(sys.argv[3])
seed_everything(0)
metrics = task.rescore(folder, 0, RunContext(folder, cache), method=method)
print(json.dumps({"metrics": metrics, "kernels": provenance.kernel_set()}))
"""


def env(**extra):
    out = dict(os.environ)
    for name in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS"):
        out.pop(name, None)
    out["PYTHONPATH"] = str(ROOT) + os.pathsep + out.get("PYTHONPATH", "")
    out.update(extra)
    return out


def test_provenance_records_the_kernel_set():
    info = provenance.collect("cpu")
    kernels = info["kernels"]
    assert set(kernels) == {"cpu_capability", "onednn_isa", "cuda_capability"}
    assert kernels == provenance.kernel_set("cpu")
    assert kernels["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert kernels["cuda_capability"] is None  # a CPU run
    if torch.backends.mkldnn.is_available():
        assert isinstance(kernels["onednn_isa"], str) and kernels["onednn_isa"]
    json.dumps(info)  # stored as JSON


def test_the_kernel_set_is_what_the_kernels_use_and_the_probe_keeps_stdout():
    """Under capped kernels the kernel set says so (oneDNN's own report, not a guess from the
    CPU), and finding it out loses nothing the process printed."""
    code = """
import os, torch
from robench import provenance
enter = torch.backends.mkldnn.verbose.__enter__
def noisy_enter(self):  # the process writes while the probe holds file descriptor 1
    os.write(1, b"inside\\n")
    return enter(self)
torch.backends.mkldnn.verbose.__enter__ = noisy_enter
print("before", flush=True)
k = provenance.kernel_set()
print("after")
print(k["cpu_capability"], "|", k["onednn_isa"])
"""
    out = subprocess.run([sys.executable, "-c", code], env=env(**OTHER_KERNELS), capture_output=True, text=True,
                         timeout=120, check=True).stdout.splitlines()
    assert out == ["before", "inside", "after", "DEFAULT | Intel SSE4.1"], out
    if torch.cuda.is_available():
        major, minor = torch.cuda.get_device_capability(0)
        assert provenance.kernel_set("cuda:0")["cuda_capability"] == f"{major}.{minor}"


def agrees(task, metric: str, claimed: float, rescored: float) -> bool:
    """The verifier's rule: within the task's tolerance, or a relative 1e-6."""
    return abs(claimed - rescored) <= max(task.rescore_tolerance(metric), 1e-6 * abs(claimed))


@pytest.mark.slow  # ~25 s: a run, then a process that imports torch and attacks under scalar kernels
@pytest.mark.skipif(torch.backends.cpu.get_cpu_capability() == "DEFAULT",
                    reason="this machine's native kernels are ATen's default ones already")
def test_a_rescore_on_other_kernels_is_within_the_tolerance(tmp_path, fast_classification_runs):
    """A run's saved model re-scored in a process with other kernels: every metric within
    ``rescore_tolerance``, and a claim off by 2 tolerances and one point is caught."""
    task = registry.tasks.get("sparsity_robustness")(**SETTING)
    method = registry.methods.get("magnitude", task="sparsity_robustness")(sparsity=0.5)
    folder, cache = tmp_path / "run", tmp_path / "cache"
    seed_everything(0)
    claimed = execute(task, method, 0, RunContext(folder, cache)).metrics
    done = subprocess.run([sys.executable, "-c", RESCORE, json.dumps(SETTING), str(folder), str(cache)],
                          env=env(**OTHER_KERNELS), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["kernels"] != provenance.kernel_set("cpu")  # other kernels indeed
    rescored = out["metrics"]
    assert set(rescored) == set(claimed)
    outside = {k: (claimed[k], v, task.rescore_tolerance(k)) for k, v in rescored.items()
               if not agrees(task, k, claimed[k], v)}
    assert outside == {}
    # the tolerances are tight enough to catch an edited claim
    n = SETTING["n_test"]
    for metric in ("clean_accuracy", "clean_accuracy_attacked", "robust_accuracy_linf@0.1", "test_accuracy",
                   "baseline_accuracy"):
        doctored = claimed[metric] + 2 * task.rescore_tolerance(metric) + 1 / n
        assert not agrees(task, metric, doctored, rescored[metric]), metric
    for metric in ("compression_ratio_bits", "weight_sparsity"):  # exact
        assert task.rescore_tolerance(metric) == 0
        assert not agrees(task, metric, claimed[metric] * (1 + 1e-5), rescored[metric])
    assert not agrees(task, "rho2", claimed["rho2"] + 2 * task.rescore_tolerance("rho2") + 1e-3, rescored["rho2"])
