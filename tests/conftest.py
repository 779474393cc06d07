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
