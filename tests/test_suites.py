"""Every shipped suite validates, and the default suite contains each task's share."""

from pathlib import Path

import pytest

from robench.spec import expand, load_suite

ROOT = Path(__file__).resolve().parent.parent
# suites that name the user's files (${VAR}: CIFAR-10, ImageNet) validate in their own tests, with tiny files
SUITES = sorted(p for p in (ROOT / "suites").rglob("*.yaml") if "${" not in p.read_text())


@pytest.mark.parametrize("path", SUITES, ids=[str(p.relative_to(ROOT)) for p in SUITES])
def test_shipped_suite_is_valid(path):
    specs = expand(load_suite(path), source=str(path))
    assert specs and len({s.id for s in specs}) == len(specs)


def test_default_suite_holds_every_part():
    default = {s.id for s in expand(load_suite(ROOT / "suites" / "default.yaml"))}
    for part in sorted((ROOT / "suites" / "parts").glob("*.yaml")):
        ids = {s.id for s in expand(load_suite(part))}
        assert ids <= default, f"{part.name}: {len(ids - default)} runs missing from suites/default.yaml"
