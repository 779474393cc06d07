"""The leaderboard site and plots, built from hand-made results tables (no tasks, no torch)."""

from __future__ import annotations

import hashlib
import html
import math
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import markupsafe
import numpy as np
import pandas as pd
import pytest

from robench.report import scatter_tradeoff, summarize_configs, write_leaderboard
from tests import browser

EVIL = "<script>alert('x')</script>"
MNIST_5K = "dataset=mnist-5k, model=lenet-5"
MNIST_FULL = "dataset=mnist, model=lenet-300-100"
ROOMS = "dataset=rooms-synth, size=64"
TRACEBACK = ("Traceback (most recent call last):\n  File \"task.py\", line 42, in run\n"
             "RuntimeError: CUDA out of memory </pre><b>not bold</b>")

# What robench.results() carries of the compression task (CompressionTask.report_info()):
# the report draws the plots a task declares, and reads no task class.
COMPRESSION_PLOTS = [{"name": "accuracy_vs_storage", "x": "compression_ratio_bits", "y": "accuracy", "logx": True},
                     {"name": "accuracy_vs_compression", "x": "compression_ratio", "y": "accuracy", "logx": True}]
TASK_INFO = {"compression": {"primary_metric": "accuracy", "plots": COMPRESSION_PLOTS},
             "sparsity_robustness": {"primary_metric": "rho2", "sweep_params": ["sparsity"]}}

PROVENANCE = {"robench": "0.1.0", "python": "3.11.9", "torch": "2.4.1", "numpy": "1.26.4",
              "git_commit": "0123456789abcdef", "git_dirty": False, "cpu": "Test CPU @ 3.0GHz",
              "gpu": None, "threads": 4, "hostname": "bench-1"}


def _cid(*parts) -> str:
    return hashlib.sha1(repr(parts).encode()).hexdigest()[:16]


def _row(task, task_label, method, method_label, method_params, seed, metrics, *, primary,
         greater_is_better, status="done", error=None, artifacts=None, config_id=None):
    config_id = config_id or _cid(task, task_label, method_label)
    return {
        "id": _cid(config_id, seed), "config_id": config_id, "suites": ["smoke"], "task": task,
        "method": method, "method_label": method_label, "task_params": {"setting": task_label},
        "task_label": task_label, "method_params": method_params, "seed": seed, "status": status,
        "primary_metric": primary, "greater_is_better": greater_is_better,
        "primary_value": metrics.get(primary, math.nan) if status == "done" else math.nan,
        "metrics": metrics if status == "done" else {}, "error": error,
        "started_at": f"2024-05-01T10:{seed:02d}:00+00:00", "finished_at": f"2024-05-01T10:{seed:02d}:30+00:00",
        "duration_s": 30.0 + seed, "provenance": dict(PROVENANCE), "artifacts": artifacts or {},
        "task_version": "1", "method_version": "1", "task_info": TASK_INFO.get(task, {}),
    }


def _compression_metrics(rng, sparsity, accuracy):
    acc = float(np.clip(accuracy + rng.normal(0, 0.004), 0, 1))
    ratio = 1.0 / (1.0 - sparsity)
    latency_dense = 1.8 + rng.normal(0, 0.05)
    latency = latency_dense * (1 - 0.4 * sparsity) + rng.normal(0, 0.03)
    return {"accuracy": acc, "baseline_accuracy": 0.985, "accuracy_delta": acc - 0.985,
            "compression_ratio": ratio, "compression_ratio_bits": 0.8 * ratio, "sparsity": sparsity,
            "flops_ratio": ratio * 0.9,
            "latency_ms": latency, "latency_dense_ms": latency_dense,
            "speedup_measured": latency_dense / latency}


def make_results(artifact_root: Path | None = None) -> pd.DataFrame:
    """Two tasks; compression with two settings, several configs x 3 seeds, one failed run,
    one label with <script>, one NaN metric; a lower-is-better task (pixel_error)."""
    rng = np.random.default_rng(0)
    rows = []
    configs = [("dense", "dense", {}, 0.0, 0.985)]
    for scope, drop in (("global", 0.0), ("layer", 0.01)):
        for s, acc in ((0.5, 0.984), (0.8, 0.981), (0.9, 0.975), (0.95, 0.95), (0.98, 0.86)):
            configs.append(("magnitude", f"magnitude(scope={scope}, sparsity={s})",
                            {"scope": scope, "sparsity": s}, s, acc - drop * s * 3))
    for s, acc in ((0.5, 0.97), (0.9, 0.62)):
        configs.append(("random", f"random(sparsity={s})", {"sparsity": s}, s, acc))
    configs.append(("evil", f"evil({EVIL})", {"note": EVIL}, 0.5, 0.9))
    for method, label, params, sparsity, acc in configs:
        for seed in range(3):
            artifacts = {}
            if artifact_root is not None and method == "dense":
                path = artifact_root / f"{method}-{seed}.pt"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(b"weights")
                artifacts = {"model": str(path.resolve())}
            metrics = _compression_metrics(rng, sparsity, acc)
            if label == "random(sparsity=0.5)" and seed == 1:
                metrics["latency_ms"] = math.nan  # a NaN metric
            if label == "magnitude(scope=global, sparsity=0.9)" and seed == 2:
                rows.append(_row("compression", MNIST_5K, method, label, params, seed, {}, primary="accuracy",
                                 greater_is_better=True, status="failed", error=TRACEBACK))
                continue
            rows.append(_row("compression", MNIST_5K, method, label, params, seed, metrics,
                             primary="accuracy", greater_is_better=True, artifacts=artifacts))
    # A second setting: never mixed with the first.
    for label, s, acc in (("dense", 0.0, 0.98), ("magnitude(scope=global, sparsity=0.9)", 0.9, 0.97)):
        for seed in range(2):
            rows.append(_row("compression", MNIST_FULL, label.split("(")[0], label, {"sparsity": s}, seed,
                             _compression_metrics(rng, s, acc), primary="accuracy", greater_is_better=True))
    # A lower-is-better task.
    for label, err in (("nearest", 0.21), ("bilinear", 0.12), ("learned(depth=4)", 0.05), ("identity", 0.4)):
        for seed in range(3):
            rows.append(_row("layout", ROOMS, label.split("(")[0], label, {}, seed,
                             {"pixel_error": err + rng.normal(0, 0.01), "corner_error": err * 0.7},
                             primary="pixel_error", greater_is_better=False))
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------- HTML helpers

class _Page(HTMLParser):
    """Collects ids, links, resource references and leaderboard table rows of one page."""

    def __init__(self):
        super().__init__()
        self.ids: set[str] = set()
        self.refs: list[tuple[str, str, str]] = []  # (tag, attribute, value)
        self.tables: list[dict] = []  # per sortable table: headers, rows of cell dicts
        self._cell = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        for name in ("href", "src"):
            if a.get(name) is not None:
                self.refs.append((tag, name, a[name]))
        if tag == "table" and "sortable" in (a.get("class") or ""):
            self.tables.append({"headers": [], "rows": [], "in_head": False, "class": a.get("class") or ""})
        elif self.tables:
            t = self.tables[-1]
            if tag == "thead":
                t["in_head"] = True
            elif tag == "tbody":
                t["in_head"] = False
            elif tag == "tr" and not t["in_head"] and t.get("open", True):
                t["rows"].append({"attrs": a, "cells": []})
            elif tag in ("td", "th"):
                self._cell = {"attrs": a, "text": "", "links": [], "head": t["in_head"]}
            elif tag == "a" and self._cell is not None:
                self._cell["links"].append(a.get("href"))

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self.tables:
            t = self.tables[-1]
            cell, self._cell = self._cell, None
            cell["text"] = " ".join(cell["text"].split())
            if cell["head"]:
                t["headers"].append(cell)
            elif t["rows"]:
                t["rows"][-1]["cells"].append(cell)
        elif tag == "table" and self.tables:
            self.tables[-1]["open"] = False

    def handle_data(self, data):
        if self._cell is not None:
            self._cell["text"] += data


def parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def section_table(path: Path, setting: str, every_metric: bool = False) -> dict:
    """The leaderboard table of one setting on a task page (``every_metric``: the "all
    metrics" table behind it)."""
    text = path.read_text(encoding="utf-8")
    start = text.index(f"<h2>{html.escape(setting)}</h2>")
    end = text.find("</section>", start)
    page = _Page()
    page.feed(text[start:end])
    tables = [t for t in page.tables if ("every-metric" in t["class"]) == every_metric]
    (table,) = tables
    return table


def column(table: dict, name: str) -> int:
    """A column by its metric name (``data-metric``) or, for the others, its header text."""
    for i, h in enumerate(table["headers"]):
        if h["attrs"].get("data-metric") == name:
            return i
    for i, h in enumerate(table["headers"]):
        if h["text"].split(" ")[0].rstrip("↑↓▲▼↕") == name:
            return i
    raise KeyError(name)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("lb")
    df = make_results(artifact_root=root / "store" / "artifacts")
    index = write_leaderboard(df.assign(artifact_root=str(root / "store" / "artifacts")), root / "site")
    return df, index.parent


# ---------------------------------------------------------------------------- tests

def test_files_exist(site):
    df, out = site
    assert (out / "index.html").is_file()
    for task in df["task"].unique():
        assert (out / f"{task}.html").is_file()
    pages = list((out / "runs").glob("*.html"))
    assert len(pages) == df["config_id"].nunique()
    index = (out / "index.html").read_text()
    assert 'href="compression.html"' in index and 'href="layout.html"' in index
    assert "robench" in index and "Generated" in index


def test_index_names_each_settings_leader_and_counts(site):
    df, out = site
    text = (out / "index.html").read_text()
    card = text[text.index('id="task-compression"'):text.index('id="task-layout"')]
    comp = df[df["task"] == "compression"]
    assert f"{comp['config_id'].nunique()} configurations" in card
    assert f"{len(comp)} runs ({int((comp['status'] == 'done').sum())} done, " in card
    assert '<span class="stat bad">1 failed</span>' in card
    # Per setting: the best contender leads, the second is the runner-up. Compression ranks
    # on its trade-off (the highest storage compression within 1 point of dense's accuracy);
    # the reference (dense) is never a contender.
    for task, setting, higher in (("compression", MNIST_5K, True), ("compression", MNIST_FULL, True),
                                  ("layout", ROOMS, False)):
        done = df[(df["task"] == task) & (df["task_label"] == setting) & (df["status"] == "done")]
        primary = done["primary_metric"].iloc[0]

        def mean(name):
            return pd.Series([m[name] for m in done["metrics"]], index=done.index).groupby(done["method_label"]).mean()
        if task == "compression":
            acc, bits = mean("accuracy"), mean("compression_ratio_bits")
            inside = acc[(acc.index != "dense") & (acc >= acc["dense"] - 0.01)]
            expected = list(bits[inside.index].sort_values(ascending=False).index)
        else:
            expected = list(mean(primary).sort_values(ascending=not higher).index)
        block = text[text.index(f">{html.escape(setting)}</a></h3>"):]
        block = block[:block.index("</dl>")]
        named = [html.unescape(re.sub("<[^>]+>", "", m)) for m in
                 re.findall(r'<dt>(?:leader|runner-up|only entry)</dt>\s*<dd>.*?<a href="[^"]+">(.*?)</a>', block, re.S)]
        assert named == expected[:2], (setting, named)
        assert "dense" not in named
    assert "<svg class=\"mini\"" in card and "<script" not in card


def test_settings_are_separate_tables(site):
    _, out = site
    page = out / "compression.html"
    assert len([t for t in parse(page).tables if "every-metric" not in t["class"]]) == 2
    full = section_table(page, MNIST_FULL)
    assert len(full["rows"]) == 2
    small = section_table(page, MNIST_5K)
    assert len(small["rows"]) == 14


def test_mean_std_match_pandas(site):
    df, out = site
    label = "magnitude(scope=layer, sparsity=0.9)"
    runs = df[(df["method_label"] == label) & (df["status"] == "done")]
    values = pd.DataFrame(list(runs["metrics"]))
    table = section_table(out / "compression.html", MNIST_5K)
    (row,) = [r for r in table["rows"] if r["cells"][1]["attrs"]["data-sort"] == label]
    for metric in ("accuracy", "compression_ratio", "latency_ms", "speedup_measured"):
        cell = row["cells"][column(table, metric)]
        assert float(cell["attrs"]["data-mean"]) == pytest.approx(values[metric].mean(), rel=1e-12)
        assert float(cell["attrs"]["data-std"]) == pytest.approx(values[metric].std(), rel=1e-12)
    acc = row["cells"][column(table, "accuracy")]  # shown in percent (its data-mean stays the stored value)
    assert acc["text"] == f"{100 * values['accuracy'].mean():.4g} ± {100 * values['accuracy'].std():.2g}"
    # The NaN metric of one seed is skipped, as pandas does.
    label = "random(sparsity=0.5)"
    runs = df[df["method_label"] == label]
    latency = pd.Series([m["latency_ms"] for m in runs["metrics"]])
    (row,) = [r for r in table["rows"] if r["cells"][1]["attrs"]["data-sort"] == label]
    cell = row["cells"][column(table, "latency_ms")]
    assert float(cell["attrs"]["data-mean"]) == pytest.approx(latency.mean())
    assert cell["attrs"]["data-n"] == "2"


def test_summarize_configs_agrees_with_groupby():
    df = make_results()
    df = df[(df["task"] == "compression") & (df["task_label"] == MNIST_5K)]
    info, stats = summarize_configs(df)
    done = df[df["status"] == "done"]
    acc = pd.Series([m["accuracy"] for m in done["metrics"]], index=done.index)
    expected = acc.groupby(done["config_id"]).agg(["mean", "std"])
    pd.testing.assert_series_equal(stats[("accuracy", "mean")].loc[expected.index], expected["mean"],
                                   check_names=False)
    pd.testing.assert_series_equal(stats[("accuracy", "std")].loc[expected.index], expected["std"],
                                   check_names=False)
    assert int(info["n_failed"].sum()) == 1
    assert list(stats.columns.get_level_values(0)[:1]) == ["accuracy"]  # primary first


def test_failed_run_listed_with_error(site):
    df, out = site
    failed = df[df["status"] == "failed"].iloc[0]
    table = section_table(out / "compression.html", MNIST_5K)
    (row,) = [r for r in table["rows"] if r["attrs"]["data-config-id"] == failed["config_id"]]
    failed_cell = row["cells"][column(table, "failed")]
    assert failed_cell["text"] == "1"
    assert row["cells"][column(table, "seeds")]["text"] == "2 / 3"
    page = out / row["cells"][1]["links"][0]
    text = page.read_text()
    assert str(markupsafe.escape(TRACEBACK)) in text
    assert "<b>not bold</b>" not in text
    assert '<pre class="error">' in text
    assert f'id="run-{failed["id"]}"' in text


def test_default_order_is_best_first_higher_is_better(site):
    _, out = site
    table = section_table(out / "compression.html", MNIST_5K)
    col = column(table, "accuracy")
    means = [float(r["cells"][col]["attrs"]["data-mean"]) for r in table["rows"]]
    assert means == sorted(means, reverse=True)
    assert table["headers"][col]["attrs"]["data-first-dir"] == "descending"


def test_default_order_is_best_first_lower_is_better(site):
    _, out = site
    table = section_table(out / "layout.html", ROOMS)
    assert column(table, "pixel_error") == 2  # the primary metric right after the configuration
    col = column(table, "pixel_error")
    labels = [r["cells"][1]["attrs"]["data-sort"] for r in table["rows"]]
    assert labels == ["learned(depth=4)", "bilinear", "nearest", "identity"]
    means = [float(r["cells"][col]["attrs"]["data-mean"]) for r in table["rows"]]
    assert means == sorted(means)
    assert table["headers"][col]["attrs"]["data-first-dir"] == "ascending"


def test_untrusted_text_is_escaped(site):
    _, out = site
    pages = list(out.rglob("*.html"))
    for page in pages:
        assert "<script>alert" not in page.read_text(), page
    task_page = (out / "compression.html").read_text()
    assert "evil(&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;)" in task_page
    evil = [p for p in pages if "evil(&lt;script&gt;" in p.read_text() and p.parent.name == "runs"]
    assert evil and "&lt;script&gt;alert" in evil[0].read_text()


def test_links_resolve(site):
    _, out = site
    checked = 0
    for page in out.rglob("*.html"):
        for tag, attr, value in parse(page).refs:
            parts = urlsplit(value)
            assert not parts.scheme, f"{page.name}: absolute URL {value}"
            target = page if not parts.path else (page.parent / unquote(parts.path)).resolve()
            assert target.exists(), f"{page.name}: {tag} {attr}={value} -> missing {target}"
            if parts.fragment:
                assert parts.fragment in parse(target).ids, f"{page.name}: missing anchor {value}"
            checked += 1
    assert checked > 50


def test_row_links_go_to_config_runs(site):
    df, out = site
    table = section_table(out / "compression.html", MNIST_5K)
    for row in table["rows"]:
        config_id = row["attrs"]["data-config-id"]
        target = out / row["cells"][1]["links"][0]
        ids = parse(target).ids
        for run_id in df.loc[df["config_id"] == config_id, "id"]:
            assert f"run-{run_id}" in ids


def test_runs_page_lists_everything(site):
    df, out = site
    run = df[(df["method"] == "dense") & (df["task_label"] == MNIST_5K)].iloc[0]
    table = section_table(out / "compression.html", MNIST_5K)
    (row,) = [r for r in table["rows"] if r["attrs"]["data-config-id"] == run["config_id"]]
    page = out / row["cells"][1]["links"][0]
    text = page.read_text()
    for key in PROVENANCE:
        assert f'<th scope="row">{key}</th>' in text
    for metric in run["metrics"]:
        assert f'<th scope="row" title="{metric}">' in text
    assert "30 s" in text  # duration
    # Artifacts are copied into the site and linked relatively.
    hrefs = [v for t, a, v in parse(page).refs if v.endswith(".pt")]
    assert hrefs and all(not v.startswith("/") for v in hrefs)
    copied = (page.parent / hrefs[0]).resolve()
    assert out.resolve() in copied.parents and copied.read_bytes() == Path(run["artifacts"]["model"]).read_bytes()


def test_no_external_resources(site):
    _, out = site
    pattern = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//|url\(\s*["']?\s*(?:https?:)?//|@import""",
                         re.IGNORECASE)
    for page in out.rglob("*.html"):
        assert not pattern.search(page.read_text()), page


def test_plots_embedded_and_valid(site):
    _, out = site
    text = (out / "compression.html").read_text()
    svgs = re.findall(r'<img src="([^"]+\.svg)" width="(\d+)" height="(\d+)"', text)
    assert len(svgs) == 2 * len(COMPRESSION_PLOTS)  # per compression setting
    for svg, width, height in svgs:
        root = ET.parse(out / svg).getroot()
        assert root.tag.endswith("svg") and int(width) > 300 and int(height) > 200
        png = Path(svg).with_suffix(".png").as_posix()
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f'href="{png}"' in text
    assert "dashed: the Pareto front" not in text  # this task_info declares no front (in its plots)
    # The layout task declares no plot, and its metric names call for none.
    assert "<img" not in (out / "layout.html").read_text()


def test_scatter_tradeoff_labels_setting_and_seeds(tmp_path):
    df = make_results()
    df = df[(df["task"] == "compression") & (df["task_label"] == MNIST_FULL)]
    plot = COMPRESSION_PLOTS[0]
    name = plot["name"]
    paths = scatter_tradeoff(df, plot["x"], plot["y"], tmp_path / name, title="accuracy vs compression",
                             logx=plot["logx"])
    assert [p.name for p in paths] == [f"{name}.png", f"{name}.svg"]
    svg = paths[1].read_text()
    ET.fromstring(svg)
    assert MNIST_FULL in svg and "2 seeds" in svg
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_scatter_tradeoff_skips_without_data(tmp_path):
    df = make_results()
    layout = df[df["task"] == "layout"]
    assert scatter_tradeoff(layout, "compression_ratio", "accuracy", tmp_path / "a", title="t") == []
    failed = df[df["status"] == "failed"]
    assert scatter_tradeoff(failed, "compression_ratio", "accuracy", tmp_path / "b", title="t") == []
    assert not list(tmp_path.iterdir())
    with pytest.raises(ValueError, match="settings"):
        scatter_tradeoff(df[df["task"] == "compression"], "compression_ratio", "accuracy", tmp_path / "c",
                         title="t")


def test_setting_with_only_failed_runs_and_missing_metric(tmp_path):
    df = make_results()
    only_failed = df[df["status"] == "failed"].assign(task_label="dataset=broken")
    no_ratio = df[(df["task"] == "compression") & (df["task_label"] == MNIST_FULL)].copy()
    no_ratio["metrics"] = [{k: v for k, v in m.items() if not k.startswith("compression_ratio")}
                           for m in no_ratio["metrics"]]
    no_ratio["task_label"] = "dataset=no-ratio"
    out = write_leaderboard(pd.concat([only_failed, no_ratio], ignore_index=True), tmp_path).parent
    text = (out / "compression.html").read_text()
    assert "<img" not in text
    table = section_table(out / "compression.html", "dataset=broken")
    (row,) = table["rows"]
    assert row["cells"][column(table, "seeds")]["text"] == "0 / 1"
    assert row["cells"][column(table, "accuracy")]["text"] == "—"


def test_empty_results(tmp_path):
    index = write_leaderboard(pd.DataFrame(columns=["id", "task", "status"]), tmp_path)
    assert "No results yet" in index.read_text()


def test_import_is_cheap():
    import subprocess
    import sys

    code = ("import sys, robench.report; "
            "print(sorted(m for m in ('pandas', 'matplotlib', 'seaborn', 'jinja2', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------------------- in a real browser

@pytest.mark.skipif(browser.reason() is not None, reason=str(browser.reason()))
def test_header_click_sorts_in_browser(site):
    _, out = site
    with browser.chromium() as chromium:
        page = chromium.new_page()
        browser.offline(page, [])
        page.goto((out / "layout.html").as_uri())
        table = page.locator("table.sortable").first

        def labels():
            return table.locator("tbody tr td:nth-child(2) a").all_inner_texts()

        assert labels() == ["learned(depth=4)", "bilinear", "nearest", "identity"]
        table.locator("thead th", has_text="configuration").locator("button").click()
        assert labels() == ["bilinear", "identity", "learned(depth=4)", "nearest"]
        primary = table.locator("thead th[data-metric=pixel_error]").locator("button")
        primary.click()  # best first (lower is better)
        assert labels() == ["learned(depth=4)", "bilinear", "nearest", "identity"]
        primary.click()  # then reversed
        assert labels() == ["identity", "nearest", "bilinear", "learned(depth=4)"]
        assert table.locator("thead th[data-metric=pixel_error]").get_attribute("aria-sort") == "descending"


def test_a_sweep_parameter_becomes_rows_of_one_table(tmp_path):
    """sparsity_robustness declares sparsity a sweep axis (its task_info): one table, a row per sparsity."""
    rows = []
    for sparsity in (0.5, 0.9):
        for seed in (0, 1):
            row = _row("sparsity_robustness", f"model=lenet-5, sparsity={sparsity:g}", "magnitude", "magnitude",
                       {}, seed, {"rho2": 0.1 + sparsity / 10 + seed / 100}, primary="rho2", greater_is_better=True)
            row["task_params"] = {"model": "lenet-5", "sparsity": sparsity}
            rows.append(row)
    out = tmp_path / "site"
    write_leaderboard(pd.DataFrame(rows), out, plots=False)
    page = out / "sparsity_robustness.html"
    (table,) = parse(page).tables
    labels = [r["cells"][1]["text"] for r in table["rows"]]
    assert len(labels) == 2 and all(t.count(" @ sparsity=") == 1 for t in labels)
    assert any("magnitude @ sparsity=0.5" in t for t in labels) and any("magnitude @ sparsity=0.9" in t for t in labels)
    assert "<h2>model=lenet-5</h2>" in page.read_text(encoding="utf-8")


def test_sparse_robustness_report_reads_what_the_apgd_attacks_changed():
    from robench.report.figures.sparse_robustness import _stronger_attack_lines, without_apgd

    metrics = {"robust_accuracy_linf@0.1": 0.40, "broken_first_by_apgd_ce_linf@0.1": 0.03,
               "broken_first_by_apgd_t_linf@0.1": 0.02, "broken_first_by_pgd_linf@0.1": 0.30,
               "broken_first_by_apgd_ce_linf@0.2": 0.5, "robust_accuracy_l2@1": 0.5}
    # the APGD attacks come last: the points they broke first were robust without them
    assert without_apgd(metrics, "linf", "0.1") == pytest.approx(0.45)
    assert math.isnan(without_apgd(metrics, "l2", "1"))  # no APGD at that budget
    # an inverted U without APGD that APGD flattens at the peak: the verdict says it did not survive
    rows = []
    for seed in range(3):
        for sparsity, old, new in ((0.0, 0.25, 0.24), (0.9, 0.45, 0.25), (0.99, 0.26, 0.25)):
            rows.append({"model": "lenet-300-100", "method": "magnitude", "seed": seed, "sparsity": sparsity,
                         "robust_linf": new + 0.001 * seed, "robust_linf_without_apgd": old + 0.001 * seed})
    text = "\n".join(_stronger_attack_lines(pd.DataFrame(rows), n_test=200))
    assert "| lenet-300-100 | magnitude | robust_linf | inverted U |" in text
    assert "0.251 → 0.451 (at 0.9) → 0.261" in text and "| 0.200 at 0.9 |" in text
    assert "of the 1 inverted-U curve(s) under the earlier attacks, 0 keep the inverted U" in text


def test_references_are_lines_on_the_plots_not_points(tmp_path):
    """dense (compression's reference) is a dashed line labelled as the reference on the
    trade-off scatter, never a point among the contenders nor on the Pareto front."""
    from robench.report.plots import scatter_tradeoff, tradeoff_points

    df = make_results()
    setting = df[(df["task"] == "compression")]
    setting = setting[setting["task_label"] == setting["task_label"].iloc[0]]
    assert "dense" in set(setting["method"])
    x = "compression_ratio" if "metrics.compression_ratio" in setting else "sparsity"
    paths = scatter_tradeoff(setting, x, "accuracy", tmp_path / "with", title="t", front=True,
                             references=("dense",), formats=("svg",))
    svg = paths[0].read_text()
    assert "dense (reference)" in svg
    plain = scatter_tradeoff(setting, x, "accuracy", tmp_path / "without", title="t", front=True, formats=("svg",))
    assert "dense (reference)" not in plain[0].read_text()
    n = len(tradeoff_points(setting, x, "accuracy"))
    assert f"{n - 1} configurations" in svg  # the reference is not counted among the configurations


LATENCY = ("latency_ms", "latency_dense_ms", "speedup_measured")


def test_compression_runs_without_latency_render(tmp_path):
    """Runs made with `latency: false` have no latency metrics at all: the leaderboard, the
    aggregate tables and the compression papers' figures render without those columns."""
    from robench.report.formats import aggregate, render
    from tests.test_compression_figures import dns_metrics, render as render_figures, suite_frame

    info = {"primary_metric": "accuracy", "plots": COMPRESSION_PLOTS, "reference_methods": ["dense"],
            "headline_metrics": ["accuracy_delta", "compression_ratio_bits", "speedup_measured"],
            "tradeoff": {"x": "compression_ratio_bits", "y": "accuracy", "within": 0.01}}
    df = make_results()
    df = df[(df["task"] == "compression") & (df["status"] == "done")].copy()
    df["metrics"] = [{k: v for k, v in m.items() if k not in LATENCY} for m in df["metrics"]]
    df["task_info"] = [info] * len(df)
    out = write_leaderboard(df, tmp_path / "site", plots=False).parent
    page = (out / "compression.html").read_text(encoding="utf-8")
    table = section_table(out / "compression.html", MNIST_5K)
    headers = [h["text"] for h in table["headers"]]
    assert any("accuracy" in h for h in headers) and not any("speed" in h or "latency" in h for h in headers)
    assert "Traceback" not in page
    tidy = aggregate(df)
    assert not tidy.empty and not set(tidy["metric"]) & set(LATENCY)
    text = render(tidy, "markdown")
    assert "magnitude(scope=global, sparsity=0.9)" in text and "latency" not in text

    frame = suite_frame("dns", dns_metrics(True))
    frame["metrics"] = [{k: v for k, v in m.items() if k not in LATENCY} for m in frame["metrics"]]
    frame["task_params"] = [{**p, "latency": False} for p in frame["task_params"]]
    report = render_figures("dns", frame, tmp_path / "figures")
    assert "latency not measured (`latency: false`)" in report and "Latency was not measured" in report
    assert "| lenet-5 | dns | c=[2, 4, 6.5, 3.5] | 3 |" in report and "latency (ms)" not in report
    assert "speedup" not in report and "| 3 | — |" not in report  # no empty latency columns
