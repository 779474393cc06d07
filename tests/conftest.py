import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOY = ROOT / "tests" / "plugins" / "toy_task.py"


@pytest.fixture(scope="session")
def toy_plugin():
    """Register the toy task (once per test session) and return its path."""
    from robench import registry
    registry.setup((str(TOY),))
    return str(TOY)


@pytest.fixture
def cli_env():
    env = dict(os.environ)
    env.pop("COLUMNS", None)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def robench_cmd(*args):
    return [sys.executable, "-m", "robench.cli", *map(str, args)]


@pytest.fixture(scope="module")
def fast_classification_runs():
    """Train on one thread (much faster than two when other processes share the cores);
    datasets are loaded once per process by robench.data.load_dataset itself."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def mnist_mlp():
    """A small MLP trained for a few seconds on MNIST-5k, and 200 test images."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    from robench.data import load_dataset
    data = load_dataset("mnist-5k")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 10))
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(3):
        for idx in torch.randperm(4000, generator=gen).split(100):
            opt.zero_grad()
            F.cross_entropy(model(data.train_x[idx]), data.train_y[idx]).backward()
            opt.step()
    model.zero_grad(set_to_none=True)
    return model, data.test_x[:200], data.test_y[:200]


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models train much faster on one thread when other processes share the cores
    (opt in with ``pytestmark = pytest.mark.usefixtures("one_thread")``)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)



def check_one_line_user_error(fn, *words):
    """``fn()`` raises a one-line UserError whose message contains every one of ``words``;
    returns the message."""
    from robench.errors import UserError

    with pytest.raises(UserError) as info:
        fn()
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message, (word, message)
    return message


# -- bundles as an attacker edits them (test_bundle, test_corruption_task) ----------------------
def bundle_members(bundle: Path) -> dict[str, bytes]:
    import zipfile

    with zipfile.ZipFile(bundle) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def write_bundle(members: dict[str, bytes], path: Path, checksums: bool = True) -> Path:
    """A bundle of ``members``; ``checksums``: the manifest's checksums recomputed (an edit
    made to look like the original)."""
    import hashlib
    import json
    import zipfile

    members = dict(members)
    if checksums:
        manifest = json.loads(members["manifest.json"])
        manifest["files"] = {n: hashlib.sha256(d).hexdigest() for n, d in members.items() if n != "manifest.json"}
        members["manifest.json"] = json.dumps(manifest).encode()
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def edit_bundle_runs(members: dict[str, bytes], edit) -> dict[str, bytes]:
    import json

    runs = json.loads(members["runs.json"])
    for run in runs:
        edit(run)
    return {**members, "runs.json": json.dumps(runs).encode()}


def head_favouring(model: str, num_classes: int, label: int, path: Path, *, margin: float | None = None,
                   images=None) -> str:
    """A checkpoint of the untrained ``model`` (seed 0) whose head (its last Linear or Conv2d)
    favours ``label``: by ``margin``, or, given ``images`` (all of that label), by just enough
    that each is classified as ``label``, plus half the logits' spread. Either way a margin
    DeepFool can cross: what robust_training's eps_ref needs of a starting model, where tiny
    data and a few epochs leave a trained one predicting a single class (eps_ref = 0)."""
    import torch
    from torch import nn

    from robench.models import build_model

    torch.manual_seed(0)
    net = build_model(model, num_classes=num_classes).eval()
    head = [m for m in net.modules() if isinstance(m, (nn.Linear, nn.Conv2d))][-1]
    with torch.no_grad():
        if margin is None:
            logits = net(images)
            others = torch.cat([logits[:, :label], logits[:, label + 1:]], dim=1)
            gap = (others.max(1).values - logits[:, label]).max()
            margin = float(gap.clamp_min(0) + 0.5 * logits.std().clamp_min(1e-3))
        head.bias[label] += margin
    torch.save(net.state_dict(), path)
    return str(path)
