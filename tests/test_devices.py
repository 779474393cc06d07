"""Every task honours the run's device: its tiny `robench check` (contract checks and one
end-to-end run) passes with the run's device `cpu` while the process's default device is
`meta`, so any model or tensor made outside the run's device would fail loudly. On a
machine with CUDA the same checks also run on the GPU."""

import pytest
import torch

from robench.check import check_method

# one method per task whose end-to-end check run trains and evaluates something real
CASES = [("compression", "magnitude"), ("sparsity_robustness", "magnitude"), ("robust_training", "vanilla"),
         ("restoration_spectrum", "base"), ("room_layout", "fcn")]


@pytest.fixture
def meta_default():
    torch.set_default_device("meta")
    try:
        yield
    finally:
        torch.set_default_device(None)


@pytest.mark.slow
@pytest.mark.parametrize("task, method", CASES, ids=[t for t, _ in CASES])
def test_check_follows_the_run_device_not_the_process_default(task, method, meta_default, one_thread):
    assert torch.empty(1).device.type == "meta"
    _, checks = check_method(method, task, device="cpu")
    failed = [f"{c.name}: {c.detail}" for c in checks if not c.ok]
    assert not failed, failed


@pytest.mark.slow
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
@pytest.mark.parametrize("task, method", CASES, ids=[t for t, _ in CASES])
def test_check_runs_on_cuda(task, method):
    _, checks = check_method(method, task, device="cuda")
    failed = [f"{c.name}: {c.detail}" for c in checks if not c.ok]
    assert not failed, failed
