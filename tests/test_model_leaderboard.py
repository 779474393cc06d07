"""Issue 22, the report side: "how does my model rank?" answered on the site and by
`robench results --by model`, and none of the figures that misled a first user.

The done-when scenario runs for real (a plug-in model and a ``benchmark()`` module beside
``linear`` and ``lenet-300-100`` on compression and sparsity_robustness, tiny budgets); the
misleading figures are checked on hand-made results tables (no task runs)."""

from __future__ import annotations

import html
import json
import math
import re

import pandas as pd
import pytest

from tests import browser

TINY = {"compression": {"baseline_epochs": 1, "finetune_epochs": 1, "latency_repeats": 2, "latency_batch_size": 8},
        "sparsity_robustness": {"baseline_epochs": 1, "finetune_epochs": 1, "n_test": 16, "attack_preset": "smoke"}}
METHOD = {"compression": "dense", "sparsity_robustness": "magnitude"}
PLUGIN = '''
from torch import nn

import robench


@robench.register_model("tiny-mlp-issue22", description="a user's tiny MLP (plug-in file)")
def tiny_mlp(num_classes=10, **kw):
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, num_classes))
'''


# ---------------------------------------------------------------------------- the scenario

@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    """A store with four models on two tasks and the site built from it."""
    import torch
    from torch import nn

    import robench

    folder = tmp_path_factory.mktemp("models")
    plugin = folder / "my_models.py"
    plugin.write_text(PLUGIN)
    store = folder / "r.sqlite"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        module = nn.Sequential(nn.Flatten(), nn.Linear(784, 16), nn.ReLU(), nn.Linear(16, 10))
        for task, params in TINY.items():
            for model in ("tiny-mlp-issue22", "linear", "lenet-300-100"):
                summary = robench.run(task=task, methods=[METHOD[task]], seeds=[0], params={"model": model, **params},
                                      store=store, plugins=(str(plugin),), progress=False)
                assert summary.failed == 0, (task, model)
            robench.benchmark(module, task=task, store=store, progress=False, **params)
        site = robench.leaderboard(folder / "site", store=store, artifacts=False)
    finally:
        torch.set_num_threads(threads)
    frame = robench.results(store)
    assert set(frame["status"]) == {"done"} and len(frame) == 8
    return store, site.parent, frame


def _expected_order(frame, task):
    """Models of ``task`` best first by their (one-seed) primary value; yours: the two user models."""
    runs = frame[frame["task"] == task]
    values = {r["task_params"]["model"]: r["primary_value"] for r in runs.to_dict("records")}
    return sorted(values, key=lambda m: (-values[m], m))


def _board_models(text: str) -> list[str]:
    table = text[text.index('class="sortable leaderboard model-leaderboard"'):]
    table = table[:table.index("</table>")]
    return [html.unescape(m) for m in re.findall(r'<tr data-model="([^"]+)"', table)]


@pytest.mark.slow
def test_the_model_leaderboard_ranks_all_four_models_on_each_task(scenario):
    """Mutation caught: models left in per-model settings (no model table), a model missing,
    the order not by the primary metric, or the user's models not marked."""
    store, site, frame = scenario
    index = (site / "index.html").read_text(encoding="utf-8")
    for task in TINY:
        expected = _expected_order(frame, task)
        assert len(expected) == 4 and {"linear", "lenet-300-100", "tiny-mlp-issue22"} <= set(expected)
        page = (site / f"{task}.html").read_text(encoding="utf-8")
        assert _board_models(page) == expected, task
        # the user's two models (plug-in file, benchmark() module) are marked theirs; built-ins are not
        for model in expected:
            row = page[page.index(f'<tr data-model="{model}"'):]
            row = row[:row.index("</tr>")]
            assert ('class="badge yours"' in row) == (model not in ("linear", "lenet-300-100")), (task, model)
        card = index[index.index(f'id="task-{task}"'):]
        card = card[:card.index("</article>")]
        assert [html.unescape(m) for m in re.findall(r'<li data-model="([^"]+)"', card)] == expected, task
        # one seed each: no spread tells them apart, so nobody is called the leader among them
        assert card.count('class="badge tie"') >= 4


@pytest.mark.slow
def test_results_by_model_prints_the_ranking(scenario):
    """Mutation caught: `results --by model` missing, or ranking other than the site's."""
    from typer.testing import CliRunner

    from robench.cli import app

    store, _, frame = scenario
    runner = CliRunner()
    text = runner.invoke(app, ["results", "--by", "model", "--store", str(store)])
    assert text.exit_code == 0, text.output
    for task in TINY:
        block = (text.output + "\n")[text.output.index(f"{task} — {METHOD[task]}"):]
        block = block[:block.index("\n\n")]
        listed = [m for line in block.splitlines()[3:] for m in [line.split()[2 if "(tie)" in line else 1]]]
        assert listed == _expected_order(frame, task), (task, block)
        assert block.count("yours") == 2
    data = json.loads(runner.invoke(app, ["results", "--by", "model", "--format", "json", "--store",
                                          str(store)]).output)
    assert {(r["task"], r["model"]) for r in data} == {(t, m) for t in TINY for m in _expected_order(frame, t)}
    csv = runner.invoke(app, ["results", "--by", "model", "--format", "csv", "--store", str(store)]).output
    assert csv.splitlines()[0].startswith("task,setting,configuration,rank,tie,model,yours")
    bad = runner.invoke(app, ["results", "--by", "seed", "--store", str(store)])
    assert bad.exit_code == 2 and "--by seed: expected model" in bad.output


@pytest.mark.slow
@pytest.mark.skipif(browser.reason() is not None, reason=str(browser.reason()))
def test_chromium_reads_the_model_ranking(scenario, tmp_path):
    """In the browser: the model table's rows and the index's model list, in rank order;
    no horizontal overflow at 390 px."""
    _, site, frame = scenario
    outside = []
    with browser.chromium() as chromium:
        for width in (1280, 390):
            page = chromium.new_page(viewport={"width": width, "height": 900})
            browser.offline(page, outside)
            for task in TINY:
                expected = _expected_order(frame, task)
                page.goto((site / f"{task}.html").as_uri())
                rows = page.locator("table.model-leaderboard").first.locator("tbody tr td.model a")
                assert rows.all_inner_texts() == expected, (width, task)
                assert page.locator("table.model-leaderboard tr.yours-row").count() == 2
                overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
                assert overflow <= 0, (width, task, overflow)
            page.goto((site / "index.html").as_uri())
            for task in TINY:
                listed = page.locator(f"#task-{task} ol.model-ranking li a").all_inner_texts()
                assert listed == _expected_order(frame, task), (width, task)
            page.close()
    assert not outside


# ---------------------------------------------------------------------------- misleading figures

def _row(task, method, seed, metrics, *, label=None, params=None, primary, info=None, model="lenet-5",
         components=None):
    label = label or method
    params = {"model": model, **(params or {})}
    setting = ", ".join(f"{k}={v}" for k, v in sorted(params.items()))
    cid = f"{task}|{setting}|{label}"
    return {"id": f"{cid}|{seed}", "config_id": cid, "task": task, "method": method, "method_label": label,
            "task_label": setting, "task_params": params, "method_params": {}, "seed": seed, "status": "done",
            "primary_metric": primary, "greater_is_better": True, "primary_value": metrics.get(primary, math.nan),
            "metrics": metrics, "provenance": {}, "artifacts": {}, "task_info": info or {"primary_metric": primary},
            "components": components or {}, "origin": "local", "verification": {}}


def _site(rows, tmp_path):
    from robench.report import write_leaderboard

    out = tmp_path / "site"
    write_leaderboard(pd.DataFrame(rows), out, plots=False, artifacts=False)
    return out


def test_a_single_seed_difference_is_a_tie_not_a_leader(tmp_path):
    """Mutation caught (today's code): the index says 'leader' / 'runner-up' for base 26.7712
    vs bicubic 26.7706 dB on one seed."""
    info = {"primary_metric": "psnr_mean", "headline_metrics": ["psnr_offtrain_mean"]}
    rows = [_row("restoration_spectrum", "base", 0, {"psnr_mean": 26.7712}, primary="psnr_mean", info=info),
            _row("restoration_spectrum", "bicubic", 0, {"psnr_mean": 26.7706}, primary="psnr_mean", info=info)]
    index = (_site(rows, tmp_path) / "index.html").read_text(encoding="utf-8")
    assert "<dt>leader</dt>" not in index and "<dt>runner-up</dt>" not in index
    assert index.count("<dt>tie</dt>") == 2 and "one seed only" in index
    # three seeds each, means apart by more than their spread: a leader again
    rows = [_row("layout", m, s, {"err": v + 0.001 * s}, primary="err")
            for m, v in (("a", 0.9), ("b", 0.5)) for s in range(3)]
    index = (_site(rows, tmp_path / "b") / "index.html").read_text(encoding="utf-8")
    assert "<dt>leader</dt>" in index and "<dt>tie</dt>" not in index
    # within the spread: a tie (and a shared rank in the table)
    rows = [_row("layout", m, s, {"err": v + 0.1 * s}, primary="err") for m, v in (("a", 0.5), ("b", 0.45))
            for s in range(3)]
    out = _site(rows, tmp_path / "c")
    assert "<dt>leader</dt>" not in (out / "index.html").read_text(encoding="utf-8")
    assert (out / "layout.html").read_text(encoding="utf-8").count('class="badge tie"') == 2


def _compression(method, acc, bits, seed, label=None, speedup=0.391):
    return _row("compression", method, seed, {"accuracy": acc, "compression_ratio_bits": bits,
                                               "compression_ratio": bits, "accuracy_delta": acc - 0.90,
                                               "baseline_accuracy": 0.90, "speedup_measured": speedup},
                label=label, primary="accuracy",
                info={"primary_metric": "accuracy",
                      "headline_metrics": ["accuracy_delta", "compression_ratio_bits", "speedup_measured"]})


def test_compression_crowns_the_tradeoff_not_the_uncompressed_model(tmp_path):
    """Mutation caught (today's code): the index names dense (most accurate, uncompressed)
    the leader and sketch the runner-up; dense is ranked #1 in the table."""
    rows = []
    for seed in range(3):
        rows += [_compression("dense", 0.969 + 0.0001 * seed, 1.0, seed),
                 _compression("sketch", 0.965 + 0.0001 * seed, 8.0, seed),   # within 1 point: 8×
                 _compression("dns", 0.962 + 0.0001 * seed, 40.0, seed),     # within 1 point: 40× — the winner
                 _compression("random", 0.80 + 0.0001 * seed, 100.0, seed)]  # most compressed, far below
    out = _site(rows, tmp_path)
    index = (out / "index.html").read_text(encoding="utf-8")
    leader = index[index.index("<dt>leader</dt>"):index.index("<dt>runner-up</dt>")]
    assert ">dns</a>" in leader and "highest storage compression" in index
    page = (out / "compression.html").read_text(encoding="utf-8")
    table = page[page.index('<table class="sortable leaderboard">'):]
    table = table[:table.index("</table>")]
    order = re.findall(r'<td class="config" data-sort="([^"]+)"', table)
    assert order == ["dense", "dns", "sketch", "random"]  # the reference first, unranked
    dense = table[table.index('data-sort="dense"') - 400:table.index('data-sort="dense"')]
    assert ">ref</span>" in dense and "reference-row" in dense
    for method, on_front in (("dense", True), ("dns", True), ("sketch", True), ("random", True)):
        row = table[table.index(f'data-sort="{method}"') - 500:table.index(f'data-sort="{method}"')]
        assert (">front</span>" in row[row.rindex("<tr"):]) == on_front, method


def test_dense_has_no_measured_speedup(tmp_path):
    """Mutation caught (today's code): dense shows a measured speed-up of 0.391× (timing noise)."""
    from robench.report import formats

    rows = [_compression("dense", 0.97, 1.0, 0), _compression("dns", 0.96, 40.0, 0, speedup=2.5)]
    page = (_site(rows, tmp_path) / "compression.html").read_text(encoding="utf-8")
    table = page[page.index('<table class="sortable leaderboard">'):]
    dense = table[table.index('data-sort="dense"'):]
    dense = dense[:dense.index("</tr>")]
    assert "0.391" not in dense and "no speed-up to measure" in dense
    assert "2.5" in table[table.index('data-sort="dns"'):]
    text = formats.render(formats.aggregate(pd.DataFrame(rows)), "table")
    dense_line = next(line for line in text.splitlines() if line.startswith("dense"))
    assert "0.391" not in dense_line and "—" in dense_line
    run_pages = [p.read_text(encoding="utf-8") for p in (tmp_path / "site" / "runs").glob("*.html")]
    assert not any("0.391" in re.sub(r'title="[^"]*"', "", p) for p in run_pages)  # (hover: the stored value)
    assert any("— (uncompressed: no speed-up to measure)" in p for p in run_pages)


def test_the_delta_column_names_what_it_is_against():
    """Mutation caught (today's code): "Δ accuracy vs dense (pp)" — against the dense baseline
    before fine-tuning, so dense itself showed +6.5."""
    from robench.report import formats
    from robench.report.labels import metric

    assert metric("accuracy_delta").header == "Δ accuracy vs dense baseline before fine-tuning (pp)"
    text = formats.render(formats.aggregate(pd.DataFrame([_compression("dense", 0.965, 1.0, 0)])), "table")
    assert "Δ accuracy vs dense baseline before fine-tuning (pp)" in text


def _restoration(method, seed, *, y_channel=False, psnr=26.0, y=30.0, recovery=math.nan, train_level=None):
    metrics = {"psnr_mean": psnr, "ssim_mean": 0.8, "psnr_offtrain_mean": psnr - 0.5, "recovery": recovery,
               "psnr_auc": psnr, "psnr@4": psnr + 1, "psnr@8": psnr, "psnr@12": psnr - 2}
    metrics["psnr_offtrain_mean"] = (metrics["psnr@4"] + metrics["psnr@12"]) / 2  # the training level: 8
    if y_channel:
        metrics.update({"psnr_y_mean": y, "ssim_y_mean": 0.9, "psnr_y@4": y, "psnr_y@8": y, "psnr_y@12": y})
    info = {"primary_metric": "psnr_mean", "headline_metrics": ["psnr_offtrain_mean", "recovery", "psnr_auc",
                                                                 "ssim_mean"],
            "metrics_info": {"recovery": ["mean over off-training levels of (method − base)/(oracle − base)", True]},
            "plots": [{"name": "psnr_vs_level", "kind": "levels", "y": "psnr", "mark": "train_level"}]}
    params = {"family": "inpainting", "y_channel": y_channel, "train_level": train_level}
    return _row("restoration_spectrum", method, seed, metrics, params=params, primary="psnr_mean", info=info,
                model=None)


def test_requested_y_channel_metrics_lead_and_rank(tmp_path):
    """Mutation caught (today's code): with y_channel: true the table ranks by RGB PSNR and
    PSNR-Y/SSIM-Y hide under 'All metrics'."""
    rows = [_restoration(m, s, y_channel=True, psnr=p, y=y + 0.5 * s)
            for m, p, y in (("dlnet", 27.0, 29.0), ("bicubic", 25.0, 33.0)) for s in range(2)]
    page = (_site(rows, tmp_path) / "restoration_spectrum.html").read_text(encoding="utf-8")
    table = page[page.index('<table class="sortable leaderboard">'):]
    table = table[:table.index("</thead>")]
    headers = re.findall(r'data-metric="([^"]+)"', table)
    assert headers[:2] == ["psnr_y_mean", "ssim_y_mean"] and 'class="num metric primary" data-type="num" ' \
        'data-metric="psnr_y_mean"' in table
    body = page[page.index('<table class="sortable leaderboard">'):]
    order = re.findall(r'<td class="config" data-sort="([^"]+)"', body[:body.index("</table>")])
    assert order == ["bicubic", "dlnet"]  # by PSNR-Y, not by RGB PSNR
    assert "ranked by <strong>PSNR-Y, mean over levels</strong>" in page


def test_run_pages_label_every_metric_and_say_why_one_is_missing(tmp_path):
    """Mutation caught (today's code): run pages show `psnr y@2` raw without a unit, `recovery`
    as a bare "—", and train_level "—" while the plot marks level 8."""
    from robench.report.labels import metric

    rows = [_restoration("dlnet", 0, y_channel=True)]
    out = _site(rows, tmp_path)
    run_page = next((out / "runs").glob("*.html")).read_text(encoding="utf-8")
    for name in rows[0]["metrics"]:
        m = metric(name)
        assert m.label != name.replace("_", " "), name  # a readable label for every metric
        assert html.escape(m.label) in run_page, name
    assert metric("psnr_y@2").header == "PSNR-Y at level 2 (dB)"
    assert "30 dB" in run_page  # psnr_y@4 with its unit
    assert "— (no off-training level where the oracle beats the base by 0.1 dB or more)" in run_page
    assert "default (level 8)" in run_page
    # a reason the task declares wins; an unknown NaN says it is not defined
    rows[0]["task_info"]["metrics_info"]["recovery"].append("the task's own reason")
    rows[0]["metrics"]["mystery"] = math.nan
    out = _site(rows, tmp_path / "b")
    run_page = next((out / "runs").glob("*.html")).read_text(encoding="utf-8")
    assert "— (the task&#39;s own reason)" in run_page and "— (not defined for this run)" in run_page
    task_page = (out / "restoration_spectrum.html").read_text(encoding="utf-8")
    assert "the task&#39;s own reason" in task_page  # the table cell says why too


def test_an_upper_bound_below_a_contender_is_flagged(tmp_path):
    """Mutation caught (today's code): oracle (an upper bound) ranks below dlnet with nothing
    said; oracle also ranked as a contender."""
    rows = [_restoration(m, s, psnr=p + 0.01 * s) for m, p in (("oracle", 26.0), ("dlnet", 27.0), ("base", 25.0))
            for s in range(3)]
    out = _site(rows, tmp_path)
    page = (out / "restoration_spectrum.html").read_text(encoding="utf-8")
    assert page.count('class="notice reference-flag"') == 1
    assert "The reference oracle, an upper bound, scores below dlnet" in page
    index = (out / "index.html").read_text(encoding="utf-8")
    leader = index[index.index("<dt>leader</dt>"):index.index("<dt>runner-up</dt>")]
    assert ">dlnet</a>" in leader and ">oracle</a>" not in index[index.index("<dt>leader</dt>"):index.index("</dl>")]
    # the right side: no flag
    rows = [_restoration(m, s, psnr=p + 0.01 * s) for m, p in (("oracle", 28.0), ("dlnet", 27.0), ("base", 25.0))
            for s in range(3)]
    assert 'class="notice reference-flag"' not in (_site(rows, tmp_path / "b") / "restoration_spectrum.html").read_text()


def test_model_boards_mark_yours_and_group_by_protocol():
    """The protocol is the setting without the model: two budgets are two boards; a model
    whose components carry a plug-in source hash is the user's."""
    from robench.report.formats import model_ranking

    rows = []
    for epochs in (1, 2):
        for model, acc in (("linear", 0.8), ("mine", 0.9), ("lenet-5", 0.95)):
            comps = {f"model:{model}": "v1+src:ab12cd34"} if model == "mine" else {f"model:{model}": "v1"}
            rows.append(_row("compression", "dense", 0, {"accuracy": acc + epochs / 100}, model=model,
                             params={"epochs": epochs}, primary="accuracy", components=comps))
    tidy = model_ranking(pd.DataFrame(rows))
    assert len(tidy.groupby(["setting", "configuration"])) == 2
    for _, board in tidy.groupby("setting"):
        assert list(board["model"]) == ["lenet-5", "mine", "linear"]
        assert list(board["yours"]) == [False, True, False]


def test_aggregate_puts_references_first_and_ranks_on_the_tradeoff():
    """`results --aggregate` orders a setting as the leaderboard does: the reference (dense)
    first, marked and unranked; then the contenders by the task's trade-off (the highest
    storage compression within 1 point of dense), not by accuracy alone."""
    from robench.report import formats

    rows = [_compression(m, acc, bits, seed) for seed in (0, 1) for m, acc, bits in
            (("dense", 0.970, 1.0), ("inq", 0.968, 6.0), ("sketch", 0.965, 10.0), ("random", 0.60, 8.0))]
    tidy = formats.aggregate(pd.DataFrame(rows))
    accuracy = tidy[tidy["metric"] == "accuracy"]
    assert list(accuracy["configuration"]) == ["dense", "sketch", "inq", "random"]
    assert list(accuracy["role"]) == ["reference", "contender", "contender", "contender"]
    assert accuracy["rank"].isna().iloc[0] and list(accuracy["rank"].iloc[1:]) == [1, 2, 3]
    text = formats.render(tidy, "table")
    assert next(line for line in text.splitlines() if line.startswith("dense")).startswith("dense (reference)")
