"""Paper figures of the compression task (DNS, INQ, Network Sketching) from fake results
tables shaped like ``robench.api.results()``: the RunSpecs of the real paper suites with
made-up metrics, once with the paper's trend and once without it. The verdict sentences
must follow the data."""

from __future__ import annotations

import pytest

from robench.errors import UserError

MODELS = ("lenet-5", "lenet-300-100")
C_GRIDS = ([[0.25, 1, 2, 1], [0.5, 2, 4, 2], [1, 3, 5.5, 2.5], [1.5, 3.5, 6, 3], [2, 4, 6.5, 3.5]],  # dns.yaml
           [[1, 1, 0.5], [2, 2, 1], [3, 3, 2], [4.5, 4, 2], [5, 4.5, 2.5]])  # (the first: no-splice only)


def suite_frame(suite: str, metrics_of, tag: bool = True):
    """One row per RunSpec of suites/papers/<suite>.yaml, metrics from
    ``metrics_of(method, method_params, model, seed)``; the columns make() reads."""
    import pandas as pd

    from robench.spec import expand, load_suite

    rows = []
    for spec in expand(load_suite(f"suites/papers/{suite}.yaml")):
        base = {"accuracy": 0.97, "baseline_accuracy": 0.965, "compression_ratio": 1.0,
                "compression_ratio_bits": 1.0, "bits_per_weight": 32.0, "sparsity": 0.0, "flops_ratio": 1.0,
                "latency_ms": 10.0, "latency_dense_ms": 10.0, "speedup_measured": 1.0}
        base.update(metrics_of(spec.method, spec.method_params, spec.task_params["model"], spec.seed))
        rows.append({"id": f"r{len(rows)}", "task": spec.task, "task_params": spec.task_params,
                     "task_label": spec.task_label, "method": spec.method, "method_params": spec.method_params,
                     "method_label": spec.method_label, "seed": spec.seed, "status": "done", "metrics": base,
                     "artifacts": {}, "suites": [suite] if tag else []})
    return pd.DataFrame(rows)


def render(name: str, frame, tmp_path):
    from robench.report.figures import make_figures

    files = make_figures(name, frame, tmp_path)
    assert files and all(f.exists() and f.stat().st_size > 0 for f in files)
    assert {f.suffix for f in files} == {".csv", ".png", ".md"}
    for png in (f for f in files if f.suffix == ".png"):  # paper-ready: vector versions beside each PNG
        assert png.with_suffix(".svg").read_text().lstrip().startswith("<?xml")
        assert png.with_suffix(".pdf").read_bytes()[:5] == b"%PDF-"
    report = (tmp_path / name / "report.md").read_text()
    assert "PAPERS.md" not in report and "/work/" not in report and "## Sources" in report
    return report


def verdict(report: str, model: str, claim: int) -> str:
    """The verdict word(s) of '**<model>, claim <n> (...) — <verdict>.**'."""
    line = next(x for x in report.splitlines() if x.startswith(f"- **{model}, claim {claim} ("))
    return line.split(" — ", 1)[1].split(".**", 1)[0]


# ------------------------------------------------------------------ DNS

def dns_metrics(trend: bool):
    def metrics(method, params, model, seed):
        jitter = 0.001 * seed
        if method == "dense":
            return {"accuracy": 0.97 + jitter}
        if method == "magnitude":
            s = params["sparsity"]
            drop = {0.9: 0.001, 0.95: 0.002, 0.98: 0.005, 0.99: 0.02, 0.995: 0.08}[s]
            ratio = 0.95 / (1 - s)
            return {"accuracy": 0.97 - drop + jitter, "compression_ratio": ratio, "compression_ratio_bits": ratio * 0.8,
                    "sparsity": s, "latency_ms": 9.0, "speedup_measured": 10 / 9}
        index = next(i for grid in C_GRIDS for i, c in enumerate(grid) if [float(v) for v in c] == params["c"])
        ratio = [25.0, 50.0, 100.0, 150.0, 200.0][index] + seed
        if method == "dns":
            acc = (0.968 - 0.002 * index) if trend else 0.94
        else:  # dns-nosplice: a bit sparser and, with the trend, clearly less accurate
            ratio *= 1.05
            acc = (0.968 - 0.002 * index - 0.03) if trend else 0.955
        return {"accuracy": acc + jitter, "compression_ratio": ratio, "compression_ratio_bits": 0.8 * ratio,
                "sparsity": 1 - 1 / ratio, "latency_ms": 11.0, "speedup_measured": 10 / 11}
    return metrics


def test_dns_report_follows_the_data(tmp_path):
    report = render("dns", suite_frame("dns", dns_metrics(True)), tmp_path / "up")
    for model in MODELS:
        assert verdict(report, model, 1) == "held"
        assert verdict(report, model, 2) == "held"
    assert "108×" in report and "56×" in report and "(from the paper's Table 1, not verified by us)" in report
    assert "3 seed(s)" in report and "mnist-5k" in report
    assert "| lenet-5 | dns | c=[2, 4, 6.5, 3.5] | 3 |" in report  # the per-setting table, latency included
    assert "speedup" in report and "latency (ms)" in report

    report = render("dns", suite_frame("dns", dns_metrics(False)), tmp_path / "down")
    for model in MODELS:
        assert verdict(report, model, 1) == "did not hold"
        assert verdict(report, model, 2) == "did not hold"
    assert "No DNS setting has a mean accuracy within 1 point of dense" in report


def test_dns_falls_back_to_untagged_runs_and_says_so(tmp_path):
    frame = suite_frame("dns", dns_metrics(True), tag=False)
    report = render("dns", frame, tmp_path)
    assert "no run is tagged with the `dns` suite" in report


def test_figures_without_runs_give_one_clear_line(tmp_path):
    from typer.testing import CliRunner

    from robench.cli import app
    from robench.report.figures import make_figures
    from robench.store import Store

    with Store(tmp_path / "empty.sqlite"):
        pass
    # No store: bad input, exit 2. A store without the paper's runs: exit 1 and the command that makes them.
    for store, code, text in ((tmp_path / "missing.sqlite", 2, "robench: error:"),
                              (tmp_path / "empty.sqlite", 1, "robench run suites/papers/dns.yaml")):
        result = CliRunner().invoke(app, ["figures", "dns", "--store", str(store), "--out", str(tmp_path / "o")])
        assert result.exit_code == code, result.output
        assert len(result.output.strip().splitlines()) == 1 and text in result.output
        assert "Traceback" not in result.output
    assert not list((tmp_path / "o").rglob("*.png"))  # no empty panels
    other = suite_frame("dns", dns_metrics(True))
    other["task"] = "sparsity_robustness"  # runs in the store, none of this task
    for name in ("dns", "inq", "sketching"):
        with pytest.raises(UserError, match=f"run suites/papers/{name}.yaml first") as err:
            make_figures(name, other, tmp_path)
        assert "\n" not in str(err.value)
    only_dense = suite_frame("dns", dns_metrics(True))
    only_dense = only_dense[only_dense["method"] == "dense"]  # the DNS store read for sketching
    with pytest.raises(UserError, match="no done 'compression' runs of sketch, bwn, sign"):
        make_figures("sketching", only_dense, tmp_path)


# ------------------------------------------------------------------ INQ

def inq_metrics(trend: bool):
    inq = {5: 0.969, 4: 0.967, 3: 0.96, 2: 0.95}
    oneshot = {5: 0.965, 4: 0.955, 3: 0.90, 2: 0.70}
    uniform = {8: 0.97, 5: 0.969, 4: 0.965, 3: 0.95, 2: 0.90}

    def metrics(method, params, model, seed):
        jitter = 0.001 * seed
        if method == "dense":
            return {"accuracy": 0.97 + jitter}
        if method == "dns+inq":
            return {"accuracy": 0.965 + jitter, "compression_ratio": 80.0, "compression_ratio_bits": 60.0, "bits": 5.0}
        bits = params["bits"]
        if method == "uniform":
            extra = ({"latency_int8_dynamic_ms": 5.0, "latency_float_ms": 6.0, "accuracy_int8_dynamic": 0.969}
                     if bits == 8 else {})
            return {"accuracy": uniform[bits] + jitter, "compression_ratio_bits": 32 / bits, **extra}
        if method == "inq-oneshot":
            acc = oneshot[bits] if trend else inq[bits] + 0.01 - (0.03 if bits == 5 else 0)
            return {"accuracy": acc + jitter, "bits": float(bits), "compression_ratio_bits": 32 / bits}
        acc = inq[bits] if trend else inq[bits] - (0.03 if bits == 5 else 0)
        if params["partition"] == "random":
            acc += -0.01 if trend else 0.01
        return {"accuracy": acc + jitter, "bits": float(bits), "compression_ratio_bits": 32 / bits}
    return metrics


def test_inq_report_follows_the_data(tmp_path):
    report = render("inq", suite_frame("inq", inq_metrics(True)), tmp_path / "up")
    for model in MODELS:
        assert [verdict(report, model, n) for n in (1, 2, 3)] == ["held"] * 3
    assert "31.73" in report and "42.61" in report and "53×" in report
    assert "max(2 · pooled std, 0.5 points)" in report  # the noise rule is stated
    assert "60.0" in report  # DNS+INQ storage ratio
    assert "int8 dynamic" in report

    report = render("inq", suite_frame("inq", inq_metrics(False)), tmp_path / "down")
    for model in MODELS:
        assert [verdict(report, model, n) for n in (1, 2, 3)] == ["did not hold"] * 3


# ------------------------------------------------------------------ Network Sketching

def sketch_metrics(trend: bool):
    error = {"direct": [0.36, 0.13, 0.05, 0.02, 0.008], "refined": [0.36, 0.12, 0.04, 0.012, 0.004]}
    accuracy = {"direct": [0.5, 0.85, 0.94, 0.955, 0.965], "refined": [0.5, 0.88, 0.962, 0.967, 0.969]}
    if not trend:  # error and accuracy get worse with m; refined worse than direct
        error = {"direct": [0.36, 0.4, 0.45, 0.5, 0.55], "refined": [0.36, 0.5, 0.6, 0.7, 0.8]}
        accuracy = {"direct": [0.5, 0.45, 0.4, 0.35, 0.3], "refined": [0.5, 0.4, 0.35, 0.3, 0.25]}

    def metrics(method, params, model, seed):
        jitter = 0.001 * seed
        if method == "dense":
            return {"accuracy": 0.97 + jitter}
        if method in ("bwn", "sign"):
            return {"accuracy": (0.5 if method == "bwn" else 0.3) + jitter, "sketch_error": 0.36,
                    "additions_saved": 0.4, "latency_ms": 20.0, "speedup_measured": 0.5}
        m, variant = params["m"], params["variant"]
        acc = accuracy[variant][m - 1] + (0.02 if params["finetune"] else 0)
        return {"accuracy": acc + jitter, "sketch_error": error[variant][m - 1] * (1 + 0.01 * seed),
                "additions_saved": 0.3 + 0.05 * m, "latency_ms": 20.0 + m, "speedup_measured": 10 / (20 + m),
                "compression_ratio_bits": 32 / m}
    return metrics


def test_sketching_report_follows_the_data(tmp_path):
    report = render("sketching", suite_frame("sketching", sketch_metrics(True)), tmp_path / "up")
    for model in MODELS:
        assert [verdict(report, model, n) for n in (1, 2, 3, 4)] == ["held"] * 4
    assert "m = 3 (refined)" in report  # where refined comes within 1 point of float
    assert "slower than the float model in every configuration" in report
    assert "ImageNet" in report and "by large margins" in report
    assert "refined m=1 with the a_j fine-tuned" in report

    report = render("sketching", suite_frame("sketching", sketch_metrics(False)), tmp_path / "down")
    for model in MODELS:
        assert [verdict(report, model, n) for n in (1, 2, 3, 4)] == ["did not hold"] * 4
