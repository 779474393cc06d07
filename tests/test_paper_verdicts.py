"""The DL-Net and ST-PIO reports' verdicts follow the data: fake results tables shaped like
``robench.api.results()`` (the RunSpecs of the real paper suites with made-up metrics), once
with the paper's trend and once without it; each verdict must flip with the data (as the
compression papers' in ``test_compression_figures.py``)."""

from __future__ import annotations

import math
import re

import numpy as np


def suite_frame(suite: str, metrics_of):
    """One done row per RunSpec of suites/papers/<suite>.yaml, tagged with the suite;
    metrics from ``metrics_of(spec)``."""
    import pandas as pd

    from robench.spec import expand, load_suite

    rows = []
    for spec in expand(load_suite(f"suites/papers/{suite}.yaml")):
        rows.append({"id": f"r{len(rows)}", "task": spec.task, "task_params": spec.task_params,
                     "task_label": spec.task_label, "method": spec.method, "method_params": spec.method_params,
                     "method_label": spec.method_label, "seed": spec.seed, "status": "done",
                     "metrics": metrics_of(spec), "artifacts": {}, "suites": [suite], "duration_s": 60.0,
                     "started_at": "2024-01-01T00:00:00+00:00", "finished_at": "2024-01-01T00:30:00+00:00"})
    return pd.DataFrame(rows)


def render(name: str, frame, out) -> str:
    from robench.report.figures import make_figures

    files = make_figures(name, frame, out)
    assert any(f.name == "report.md" for f in files)
    return (out / name / "report.md").read_text()


def bold(line: str) -> str:
    """The last **bold** words of a report line: its verdict."""
    return re.findall(r"\*\*(.+?)\*\*", line)[-1]


# ------------------------------------------------------------------ DL-Net

def dlnet_metrics(slope: float, recovered: float):
    """Per run: the oracle at 28 dB on every level; the base ``slope`` dB below it per level
    step away from the training level (slope < 0: the base beats the oracle off its level);
    DL-Net recovers the fraction ``recovered`` of that gap, spectrum-ft half as much. A seed
    shifts every method alike. ``recovery`` as the task defines it (levels where the oracle
    leads the base by < 0.1 dB left out)."""
    def metrics(spec):
        p = spec.task_params
        levels, train = [float(v) for v in p["test_levels"]], float(p["train_level"])
        centre = levels.index(train)
        gap = np.array([slope * abs(i - centre) for i in range(len(levels))])  # oracle − base
        oracle = np.full(len(levels), 28.0 + 0.05 * spec.seed)
        base = oracle - gap
        share = {"oracle": None, "base": 0.0, "base+paste": 0.05, "base-ft": 0.0,
                 "spectrum-ft": recovered / 2, "dlnet": recovered}
        if spec.method in ("biharmonic", "bicubic"):
            psnr = oracle - 4.0
        elif spec.method == "oracle":
            psnr = oracle
        else:
            psnr = base + share[spec.method] * gap
        off = np.array([lv != train for lv in levels])
        counted = off & (gap >= 0.1)
        recovery = float(np.mean((psnr - base)[counted] / gap[counted])) if counted.any() else math.nan
        out = {f"psnr@{lv:g}": float(v) for lv, v in zip(levels, psnr)}
        out.update({f"ssim@{lv:g}": 0.8 for lv in levels})
        out.update(psnr_mean=float(psnr.mean()), psnr_offtrain_mean=float(psnr[off].mean()),
                   psnr_auc=float(psnr.mean()), ssim_mean=0.8, recovery=recovery)
        return out
    return metrics


def dlnet_trend(report: str, family: str) -> dict[str, str]:
    """The family's lines under 'Did the trend hold?', keyed by what they start with."""
    section = report.split("## Did the trend hold?", 1)[1].split("\n## ", 1)[0]
    block = section.split(f"**{family}**", 1)[1].split("\n\n**", 1)[0]
    keys = {"- Base vs the level-specific oracle": "base", "- DL-Net recovery": "recovery",
            "- DL-Net vs spectrum-ft": "module"}
    return {keys[k]: line for line in block.splitlines() for k in keys if line.startswith(k)}


FAMILIES = ("inpainting", "interpolation", "super_resolution")


def test_dlnet_verdicts_follow_the_data(tmp_path):
    # the paper's trend: the gap grows away from the training level, DL-Net closes 80 % of it
    report = render("dlnet", suite_frame("dlnet", dlnet_metrics(slope=1.5, recovered=0.8)), tmp_path / "holds")
    for family in FAMILIES:
        lines = dlnet_trend(report, family)
        assert bold(lines["base"]) == "holds", lines["base"]
        assert "the gap grows with the distance from the training level on both sides" in lines["base"]
        assert bold(lines["recovery"]) == "holds" and "DL-Net recovery: 0.80 ± 0.00." in lines["recovery"]
        assert "the module adds to what seeing the whole spectrum gives" in lines["module"]
    assert "Caution" not in report

    # the same gap, but DL-Net recovers none of it (and does no better than spectrum-ft)
    report = render("dlnet", suite_frame("dlnet", dlnet_metrics(slope=1.5, recovered=0.0)), tmp_path / "no-recovery")
    for family in FAMILIES:
        lines = dlnet_trend(report, family)
        assert bold(lines["base"]) == "holds"
        assert bold(lines["recovery"]) == "does not hold" and "DL-Net recovery: 0.00 ± 0.00." in lines["recovery"]
        assert "spectrum fine-tuning alone does as well or better than the module" in lines["module"]

    # a recovery between 0.1 and 0.5: partly
    report = render("dlnet", suite_frame("dlnet", dlnet_metrics(slope=1.5, recovered=0.3)), tmp_path / "partly")
    assert {bold(dlnet_trend(report, f)["recovery"]) for f in FAMILIES} == {"partly holds"}


def test_dlnet_base_verdict_flips_when_the_base_does_not_drop_off_its_level(tmp_path):
    # the base beats the oracle away from its training level: no spectrum gap to recover
    report = render("dlnet", suite_frame("dlnet", dlnet_metrics(slope=-0.3, recovered=0.8)), tmp_path / "no-gap")
    for family in FAMILIES:
        lines = dlnet_trend(report, family)
        assert bold(lines["base"]) == "does not hold", lines["base"]
        assert "The oracle rarely beats the base away from the training level" in lines["base"]
        assert "recovery" not in lines  # nothing to recover: the task's recovery is NaN

    # the oracle ahead at every off level but not growing steadily with the distance: mostly
    def bumpy(spec):
        metrics = dlnet_metrics(slope=1.5, recovered=0.8)(spec)
        levels = sorted(float(v) for v in spec.task_params["test_levels"])
        if spec.method == "base":  # the base 3 dB lower at the level above the training level only
            near = [lv for lv in levels if lv > float(spec.task_params["train_level"])][0]
            metrics[f"psnr@{near:g}"] -= 3.0
        return metrics
    report = render("dlnet", suite_frame("dlnet", bumpy), tmp_path / "bumpy")
    assert {bold(dlnet_trend(report, f)["base"]) for f in ("inpainting", "interpolation")} == {"mostly holds"}


# ------------------------------------------------------------------ ST-PIO

STPIO_HOLDS = {"st-pio": 0.10, "st-pio(refine=False)": 0.12, "fcn(extra_epochs=8)": 0.13, "fcn": 0.14,
               "geometric": 0.25, "prior": 0.35}
STPIO_FAILS = {"st-pio": 0.20, "st-pio(refine=False)": 0.19, "fcn(extra_epochs=8)": 0.13, "fcn": 0.14,
               "geometric": 0.12, "prior": 0.35}


def stpio_metrics(errors: dict[str, float], seed_step: float = 0.002, hard_shift: float = 0.05):
    """Pixel (and corner) error per method label; test-hard ``hard_shift`` higher; seed s
    adds ``seed_step``·s to every method, or alternately ± for st-pio when ``seed_step`` is
    negative (a seed spread larger than the st-pio − fcn gap)."""
    def metrics(spec):
        e = errors[spec.method_label]
        if seed_step < 0 and spec.method_label == "st-pio":
            e += -seed_step * (spec.seed - 1) * 10  # −10, 0, +10 steps: a large seed std
        else:
            e += abs(seed_step) * spec.seed
        return {"pixel_error": e, "corner_error": e / 2, "type_accuracy": 0.9,
                "pixel_error_hard": e + hard_shift, "corner_error_hard": (e + hard_shift) / 2,
                "type_accuracy_hard": 0.8}
    return metrics


def stpio_ordering(report: str, split: str) -> dict[str, str]:
    """The two ordering verdicts ('learned', 'st-pio') on ``split`` (test or test-hard)."""
    section = report.split("## Did the paper's ordering hold?", 1)[1]
    test, rest = section.split("On test-hard:", 1)
    block = test if split == "test" else rest.split("\n\n", 2)[1]
    lines = [line for line in block.splitlines() if line.startswith("- ")]
    return {"learned": next(x for x in lines if x.startswith("- learned")),
            "st-pio": next(x for x in lines if x.startswith("- st-pio below fcn"))}


def test_stpio_ordering_verdicts_follow_the_data(tmp_path):
    report = render("stpio", suite_frame("stpio", stpio_metrics(STPIO_HOLDS)), tmp_path / "holds")
    for split in ("test", "test-hard"):
        lines = stpio_ordering(report, split)
        assert bold(lines["learned"]) == "yes", lines["learned"]
        assert bold(lines["st-pio"]) == "yes", lines["st-pio"]
    assert "st-pio below fcn: **yes** (st-pio − fcn = -4.00 points" in report
    assert "does **not** beat fcn" not in report  # the equal-compute control: st-pio ahead

    report = render("stpio", suite_frame("stpio", stpio_metrics(STPIO_FAILS)), tmp_path / "fails")
    for split in ("test", "test-hard"):
        lines = stpio_ordering(report, split)
        assert bold(lines["learned"]) == "no", lines["learned"]
        assert bold(lines["st-pio"]) == "no", lines["st-pio"]
    assert "at equal compute st-pio does **not** beat fcn" in report


def test_stpio_a_gap_within_the_seed_spread_is_said_to_be(tmp_path):
    errors = dict(STPIO_HOLDS, **{"st-pio": 0.139})  # 0.1 point below fcn, seeds ±2 points apart
    report = render("stpio", suite_frame("stpio", stpio_metrics(errors, seed_step=-0.002)), tmp_path / "noise")
    assert bold(stpio_ordering(report, "test")["st-pio"]) == "yes (within seed noise)"
    report = render("stpio", suite_frame("stpio", stpio_metrics(errors, seed_step=0.0)), tmp_path / "clean")
    assert bold(stpio_ordering(report, "test")["st-pio"]) == "yes"  # the same gap, no seed spread
