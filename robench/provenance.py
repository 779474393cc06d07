"""Where a number came from: package versions, git commit, hardware, threads, device, and
the kernel set (:func:`kernel_set`): the same weights give bit-identical metrics only on the
same kernel set and thread count; across kernel sets they agree within each task's
``rescore_tolerance``."""

from __future__ import annotations

import functools
import os
import platform
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path

_PACKAGES = ("robench", "torch", "torchvision", "numpy", "foolbox", "scikit-image", "pandas")


def _version(pkg: str) -> str | None:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return None


@functools.lru_cache(maxsize=1)
def _static() -> dict:
    info = {"python": platform.python_version(), "platform": platform.platform(),
            "hostname": socket.gethostname(), "cpu": _cpu_name(), "cpu_count": os.cpu_count()}
    for pkg in _PACKAGES:
        info[pkg] = _version(pkg)
    info.update(_git())
    return info


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git() -> dict:
    """The commit of the robench checkout running this (if it is one), and whether it is dirty."""
    here = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=5)
        if commit.returncode != 0:
            return {"git_commit": None}
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5)
        return {"git_commit": commit.stdout.strip(), "git_dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"git_commit": None}


def collect(device: str = "cpu") -> dict:
    """Provenance of a run, collected in the process that ran it on ``device``."""
    info = dict(_static())
    info["device"] = device
    torch = sys.modules.get("torch")
    if torch is not None:
        info["threads"] = torch.get_num_threads()
        info["gpu"] = None
        if device.startswith("cuda") and torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(torch.device(device))
            info["cuda"] = torch.version.cuda
        info["kernels"] = kernel_set(device)
    return info


def kernel_set(device: str = "cpu") -> dict:
    """The kernels this process computes with on ``device`` (the verifier records its own):
    ``cpu_capability``, ATen's CPU kernels (``"AVX2"``, ``"AVX512"``, ``"DEFAULT"`` under
    ``ATEN_CPU_CAPABILITY=default``, ...); ``onednn_isa``, the instruction set oneDNN (the
    CPU convolutions and matrix products behind it) dispatches to, as oneDNN itself reports it
    (``"Intel AVX2"``), else the cap ``ONEDNN_MAX_CPU_ISA``/``DNNL_MAX_CPU_ISA`` when set, else
    None; ``cuda_capability``, the compute capability (``"8.0"``) of a CUDA ``device``, None
    on the CPU."""
    import torch

    cuda = None
    if str(device).startswith("cuda") and torch.cuda.is_available():
        major, minor = torch.cuda.get_device_capability(torch.device(device))
        cuda = f"{major}.{minor}"
    return {"cpu_capability": torch.backends.cpu.get_cpu_capability(), "onednn_isa": _onednn_isa(),
            "cuda_capability": cuda}


def _onednn_max_isa_env() -> str | None:
    for name in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"):
        if os.environ.get(name):
            return os.environ[name]
    return None


@functools.lru_cache(maxsize=1)
def _onednn_isa() -> str | None:
    """What oneDNN dispatches to in this process. oneDNN has no query of it that torch
    exposes, but its verbose mode prints ``info,cpu,isa:<name>`` once per process, at the
    first primitive it creates with verbose on: one tiny convolution is run so, with file
    descriptor 1 sent to a temporary file (oneDNN prints with C stdio); whatever else the
    process wrote meanwhile is written back. Falls back to the ISA cap of the environment."""
    import ctypes
    import re
    import tempfile

    import torch

    if not torch.backends.mkldnn.is_available():
        return None
    text = ""
    try:
        libc = ctypes.CDLL(None)
        with tempfile.TemporaryFile() as tmp:
            sys.stdout.flush()
            libc.fflush(None)
            saved = os.dup(1)
            os.dup2(tmp.fileno(), 1)
            try:
                with torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON_CREATION):
                    torch.ops.aten.mkldnn_convolution(torch.zeros(1, 1, 4, 4, device="cpu"),
                                                      torch.zeros(1, 1, 3, 3, device="cpu"),
                                                      None, [0, 0], [1, 1], [1, 1], 1)
            finally:
                libc.fflush(None)
                os.dup2(saved, 1)
                os.close(saved)
            tmp.seek(0)
            text = tmp.read().decode("utf-8", "replace")
        other = "".join(line for line in text.splitlines(keepends=True) if not line.startswith("onednn_verbose"))
        if other:
            os.write(1, other.encode())
    except Exception:  # noqa: BLE001 - no probe on this build or platform: the cap, if any
        pass
    found = re.search(r"^onednn_verbose,(?:[^,\n]*,)*?info,cpu,isa:([^\n]+)$", text, re.MULTILINE)
    return found.group(1).strip() if found else _onednn_max_isa_env()
