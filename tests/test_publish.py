"""A leaderboard worth publishing, on a store with every task (hand-made runs with the
tasks' real metric names and report info; nothing is trained): leaders on the index, a
plot on every task page, no local path anywhere, merged stores, compare, paper-ready
tables, figures' exit codes; and the site in Chromium at 1280 and 390 px."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from robench.report.labels import metric, robust_curves
from robench.report.paths import scrub_label, scrub_text, scrub_value
from robench.report.style import KNOWN, method_colors
from tests import browser

SEEDS = (0, 1, 2)
HOME = str(Path.home())


def _levels_metrics(quality: float, seed: int) -> dict:
    psnr = {4: 36.0 + quality, 8: 34.0 + quality, 12: 31.0 + quality * 0.5}
    out = {f"psnr@{k}": v + 0.05 * seed for k, v in psnr.items()}
    out.update({f"ssim@{k}": 0.9 - 0.01 * k + 0.001 * quality for k in psnr})
    out["psnr_mean"] = sum(out[f"psnr@{k}"] for k in psnr) / 3
    out["psnr_offtrain_mean"] = (out["psnr@4"] + out["psnr@12"]) / 2
    out.update({"psnr_auc": out["psnr_mean"] - 0.1, "ssim_mean": 0.85 + 0.001 * quality,
                "recovery": quality / 3, "psnr_base_offtrain_mean": 33.5, "psnr_oracle_offtrain_mean": 36.5})
    return out


def _robust_metrics(rho: float, acc: float, seed: int, sparsity: float | None = None) -> dict:
    j = 0.001 * seed
    out = {"rho2": rho + j, "test_accuracy": acc + j, "clean_accuracy": acc + j,
           "clean_accuracy_attacked": acc, "eps_ref": 0.0883436,
           "fgs_accuracy@1x": acc - 0.5 + 2 * rho, "pgd_accuracy@1x": acc - 0.6 + 2 * rho,
           "accuracy_under_fgsm_linf@0.0883436": acc - 0.5 + 2 * rho, "train_cpu_seconds": 3.0 + 10 * rho + seed,
           "sanity_deepfool_l2_complete": 1.0, "broken_first_by_pgd_linf@0.1": 0.25 + j,
           "broken_first_by_apgd_t_linf@0.1": 0.05, "broken_first_by_pgd_linf@0.05": 0.125}
    for eps in (0.05, 0.1, 0.2):
        out[f"robust_accuracy_linf@{eps:g}"] = max(0.0, acc - eps * (4 - 10 * rho)) + j
    for eps in (0.5, 1, 2):
        out[f"robust_accuracy_l2@{eps:g}"] = max(0.0, acc - eps * (0.4 - rho)) + j
    if sparsity is not None:
        out.update({"weight_sparsity": sparsity, "target_sparsity": sparsity})
    return out


def _compression_metrics(acc: float, ratio: float, seed: int) -> dict:
    a = acc + 0.001 * seed
    return {"accuracy": a, "baseline_accuracy": 0.97, "accuracy_delta": a - 0.97, "compression_ratio": ratio,
            "compression_ratio_bits": ratio * 0.8 if ratio > 1 else 6.0 if acc > 0.968 else 1.0,
            "bits_per_weight": 32 / max(ratio, 1), "sparsity": 1 - 1 / ratio, "flops_ratio": ratio * 0.9,
            "latency_ms": 1.0, "latency_dense_ms": 1.1, "speedup_measured": 1.1}


def every_task_runs(data_root: Path) -> list[tuple]:
    """(task, task_params, method, method_params, metrics_of(seed), suites) per configuration:
    every task, the leaders known: compression dns (storage within 1 point of dense), sparsity_robustness dns @ 0.5 (per
    model), robust_training deepdefense, room_layout st-pio, restoration_spectrum dlnet."""
    comp = {"model": "lenet-5", "dataset": "mnist-5k", "dataset_root": str(data_root / "myimgs")}
    runs = [("compression", comp, "dense", {}, lambda s: _compression_metrics(0.968, 1.0, s), ["default"]),
            ("compression", comp, "inq", {"bits": 5}, lambda s: _compression_metrics(0.971, 1.0, s), ["default"]),
            ("compression", comp, "magnitude", {"sparsity": 0.9}, lambda s: _compression_metrics(0.96, 10.0, s),
             ["default"]),
            ("compression", comp, "dns", {"c": [1, 3, 5.5, 2.5]}, lambda s: _compression_metrics(0.965, 90.0, s),
             ["default"])]
    for sparsity in (0.0, 0.5, 0.9):
        params = {"model": "lenet-300-100", "sparsity": sparsity, "dataset": "mnist-5k", "baseline_epochs": 8,
                  "finetune_epochs": 2, "finetune_lr": 0.02, "batch_size": 64, "n_test": 100,
                  "attack_preset": "mnist-default", "exclude_attacks": ["cw_l2"], "attacks": None}
        for method, bump in (("magnitude", 0.0), ("dns", 0.01)):
            rho = 0.10 + bump + (0.03 if sparsity == 0.5 else 0.01 * (sparsity > 0.6))
            runs.append(("sparsity_robustness", params, method, {},
                         lambda s, rho=rho, sp=sparsity: _robust_metrics(rho, 0.95 - sp / 10, s, sp),
                         ["sparse-robustness"]))
    rt = {"model": "mlp-500-150", "epochs": 1, "n_test": 100}
    for method, rho, acc in (("vanilla", 0.13, 0.947), ("deepdefense", 0.17, 0.94), ("adv-fgs", 0.158, 0.945)):
        runs.append(("robust_training", rt, method, {}, lambda s, r=rho, a=acc: _robust_metrics(r, a, s), ["default"]))
    rooms = {"dataset": "synthetic-rooms", "image_size": 64, "n_train": 600}
    for method, params, err in (("prior", {}, 0.36), ("fcn", {}, 0.16), ("st-pio", {"pretrain_epochs": 2}, 0.11)):
        runs.append(("room_layout", rooms, method, params, lambda s, e=err: {
            "pixel_error": e + 0.01 * s, "corner_error": e * 0.9, "type_accuracy": 1 - e,
            "pixel_error_hard": e + 0.2, "corner_error_hard": e + 0.1, "type_accuracy_hard": 0.5 - e / 2}, ["default"]))
    rest = {"family": "inpainting", "image_size": 24, "test_levels": [4.0, 8.0, 12.0], "train_level": 8}
    for method, quality in (("base", 0.0), ("dlnet", 2.0), ("oracle", 1.5)):
        runs.append(("restoration_spectrum", rest, method, {}, lambda s, q=quality: _levels_metrics(q, s), ["default"]))
    return runs


# compression: the highest storage compression within 1 point of dense's accuracy (not inq,
# the most accurate); dense is a reference, never the leader
LEADERS = {"compression": "dns(c=[1, 3, 5.5, 2.5])", "robust_training": "deepdefense", "room_layout": "st-pio(pretrain_epochs=2)",
           "restoration_spectrum": "dlnet", "sparsity_robustness": "dns @ sparsity=0.5"}
TRACEBACK = (f'Traceback (most recent call last):\n  File "{HOME}/venv/lib/python3.11/site-packages/robench/'
             'tasks/compression/task.py", line 9, in run\nRuntimeError: out of memory')


def build_store(folder: Path, runs=None, seeds=SEEDS, failed: bool = True) -> Path:
    """A results store under ``folder`` holding ``runs`` (default: :func:`every_task_runs`),
    each configuration once per seed, with an artifact file per run, the tasks' report
    info, and (``failed``) one failed run whose traceback names files under the home folder."""
    from robench import registry
    from robench.spec import RunSpec, _label
    from robench.store import Store

    registry.load_builtins()
    path = folder / "results.sqlite"
    runs = runs if runs is not None else every_task_runs(folder.parent / "data")
    with Store(path) as db:
        for task in dict.fromkeys(r[0] for r in runs):
            cls = registry.tasks.get(task)
            db.save_task_info(task, cls.version, cls.report_info())
        for i, (task, tparams, method, mparams, metrics_of, suites) in enumerate(runs):
            cls = registry.tasks.get(task)
            for seed in seeds:
                spec = RunSpec(task=task, task_params=tparams, method=method, method_params=mparams, seed=seed,
                               task_version=str(cls.version), method_version="1",
                               task_label=_label("", tparams, {}, ()), method_label=_label(method, mparams, {}, ()))
                tmp = db.artifact_root / f".tmp-{i}-{seed}"  # where the executor leaves a run's files
                tmp.mkdir(parents=True, exist_ok=True)
                (tmp / "model.pt").write_bytes(f"weights {i} {seed}".encode())
                bad = failed and i == 0 and seed == 2
                metrics = metrics_of(seed)
                db.save(spec, {"status": "failed" if bad else "done", "metrics": {} if bad else metrics,
                               "primary_metric": cls.primary_metric, "greater_is_better": cls.greater_is_better,
                               "primary_value": None if bad else metrics[cls.primary_metric],
                               "error": TRACEBACK if bad else None, "started_at": "2024-05-01T10:00:00+00:00",
                               "finished_at": "2024-05-01T10:00:30+00:00", "duration_s": 30.0 + seed,
                               "provenance": {"robench": "0.1.0", "hostname": "bench-1", "plugin": f"{HOME}/p.py"},
                               "artifact_tmp": str(tmp), "artifacts": {"model": "model.pt"}}, suite=suites[0])
    return path


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return build_store(tmp_path_factory.mktemp("pub") / "my store")


@pytest.fixture(scope="module")
def site(store, tmp_path_factory) -> Path:
    from robench import api

    return api.leaderboard(tmp_path_factory.mktemp("site") / "lb", store).parent


# ---------------------------------------------------------------------------- the site

def test_every_task_page_has_a_plot_and_readable_headline_columns(site):
    for task in LEADERS:
        text = (site / f"{task}.html").read_text()
        assert re.search(r'<img src="plots/[^"]+\.svg"', text), task
    rt = (site / "robust_training.html").read_text()
    header = rt[rt.index("<thead>"):rt.index("</thead>")]
    # primary first, then the headline metrics, labelled; every other metric one click away
    assert header.index('data-metric="rho2"') < header.index('data-metric="test_accuracy"')
    assert "robust acc. l∞ ε = 0.05" not in header and "accuracy_under_fgsm" not in header
    assert '<details class="all-metrics">' in rt and "acc. under FGSM l∞ ε = 0.088" in rt
    assert "robust_accuracy_vs_eps.svg" in rt  # robust accuracy against ε per recipe
    restoration = (site / "restoration_spectrum.html").read_text()
    assert "psnr_vs_level.svg" in restoration and "dotted: the training level" in restoration
    assert "Pareto front" in (site / "compression.html").read_text()
    sparsity = (site / "sparsity_robustness.html").read_text()
    assert "rho2_vs_sparsity.svg" in sparsity and "robust_accuracy_l2_at_1_vs_weight_sparsity.svg" in sparsity
    assert "errors_per_method.svg" in (site / "room_layout.html").read_text()


def test_run_pages_show_which_attack_broke_each_point_first(site):
    pages = [p.read_text() for p in (site / "runs").glob("*.html")]
    page = next(t for t in pages if "which attack broke each point first" in t)
    table = page[page.index('<table class="first-broken">'):]
    table = table[:table.index("</table>")]
    # one column per attack, in the attack layer's order; budgets increasing; shares in %
    assert re.findall(r'<th scope="col">([^<]+)</th>', table) == ["budget", "PGD", "APGD-T"]
    assert re.findall(r'<th scope="row">([^<]+)</th>', table) == ["ε = 0.05", "ε = 0.1"]
    assert re.findall(r'<td class="mono">([^<]+)</td>', table)[:4] == ["12.5", "—", "25", "5"]
    assert metric("broken_first_by_apgd_t_linf@0.1").header == "first broken by APGD-T l∞ ε = 0.1 (%)"
    assert metric("broken_first_by_pgd_linf@1x").header == "first broken by PGD l∞ ε = 1 × ε_ref (%)"
    assert sum("which attack broke" in t for t in pages) < len(pages)  # not on tasks without attacks


def test_no_local_path_anywhere_in_the_site(site, store):
    folders = {str(store.parent), str(store.parent.resolve()), str(store.parent.parent)}
    home = HOME.rstrip("/")
    # as file names and anchors would spell it (cut short): the store folder's first two components
    slugs = {re.sub(r"[^a-z0-9]+", "-", "/".join(Path(f).parts[1:3]).lower()).strip("-") for f in folders}
    checked = 0
    for path in site.rglob("*"):
        assert not any(slug in path.name.lower() for slug in slugs), path.name
        if path.suffix not in (".html", ".svg"):
            continue
        text = path.read_text(encoding="utf-8")
        for folder in folders | slugs:
            assert folder not in text, f"{path.name} holds {folder}"
        assert not re.search(re.escape(home) + r"(/|\b)", text), f"{path.name} holds the home folder {home}"
        checked += 1
    assert checked > 20
    text = (site / "compression.html").read_text()
    assert "dataset_root=myimgs" in text  # a folder parameter by its last component
    runs_page = next(p for p in (site / "runs").glob("*.html") if "out of memory" in p.read_text())
    assert "…/robench/tasks/compression/task.py" in runs_page.read_text()
    copied = sorted((site / "artifacts").rglob("model.pt"))
    assert len(copied) == len(SEEDS) * len(every_task_runs(Path())) - 1  # every done run's, copied into the site


def test_no_artifacts_lists_them_without_copying(store, tmp_path):
    from robench import api

    out = api.leaderboard(tmp_path / "lb", store, artifacts=False, plots=False).parent
    assert not (out / "artifacts").exists()
    page = next((out / "runs").glob("*.html")).read_text()
    assert "model.pt" in page and "left out of this site" in page and str(store.parent) not in page


def test_merged_stores_hold_each_run_once(store, tmp_path):
    from robench import api

    other = tmp_path / "other"
    shutil.copytree(store.parent, other)  # the same runs...
    extra = [("room_layout", {"dataset": "synthetic-rooms", "image_size": 64, "n_train": 600}, "geometric", {},
              lambda s: {"pixel_error": 0.2, "corner_error": 0.2, "type_accuracy": 0.5}, ["default"])]
    build_store(other, extra, failed=False)  # ...and one more configuration
    index = api.leaderboard(tmp_path / "lb", [store, other / "results.sqlite"], plots=False, artifacts=False)
    ids = re.findall(r'<section class="run [a-z]+" id="run-([0-9a-f]+)">',
                     "".join(p.read_text() for p in (index.parent / "runs").glob("*.html")))
    assert len(ids) == len(set(ids)) == len(SEEDS) * (len(every_task_runs(Path())) + 1)
    assert f"{len(ids)} runs" in index.read_text()


def test_compare_prints_and_renders_differences(store, tmp_path):
    from typer.testing import CliRunner

    from robench.cli import app

    other = tmp_path / "b"
    runs = [r for r in every_task_runs(tmp_path / "data") if r[0] == "room_layout"]
    worse = [(t, p, m, mp, (lambda s, f=f: {k: v + 0.05 for k, v in f(s).items()}), su) for t, p, m, mp, f, su in runs]
    build_store(other, worse, failed=False)
    page = tmp_path / "cmp" / "compare.html"
    result = CliRunner().invoke(app, ["compare", str(store), str(other / "results.sqlite"), "-o", str(page)])
    assert result.exit_code == 0, result.output
    assert "st-pio(pretrain_epochs=2)" in result.output and "+5.00" in result.output  # pixel error, points
    assert "only A" in result.output  # configurations of tasks B lacks
    text = page.read_text()
    assert 'data-metric="pixel_error"' in text and "+5.00" in text and str(tmp_path) not in text


@pytest.mark.parametrize("fmt, expect", [
    ("markdown", ["### room_layout — ", "| configuration | seeds | pixel error (%) |", "| st-pio(pretrain_epochs=2) | 3 | 12.00 ± 1.00 |"]),
    ("latex", [r"\begin{tabular}{lrrrrr}", r"pixel error (\%)", r"st-pio(pretrain\_epochs=2) & 3 & 12.00 $\pm$ 1.00 &"]),
    ("table", ["room_layout — dataset=synthetic-rooms", "12.00 ± 1.00"]),
    ("csv", ["task,setting,method,configuration,config_id,role,rank,metric,mean,std,n", "room_layout,"]),
])
def test_results_aggregate_formats(store, fmt, expect):
    from typer.testing import CliRunner

    from robench.cli import app

    result = CliRunner().invoke(app, ["results", "--aggregate", "--format", fmt, "--task", "room_layout",
                                      "--store", str(store)])
    assert result.exit_code == 0, result.output
    for text in expect:
        assert text in result.output, (fmt, text, result.output[:600])
    if fmt in ("markdown", "table"):  # best first: st-pio (lowest pixel error), then fcn, then prior
        out = result.output
        assert out.index("st-pio") < out.index("fcn") < out.index("prior")
    bad = CliRunner().invoke(app, ["results", "--format", "latex", "--store", str(store)])
    assert bad.exit_code == 2 and "need --aggregate" in bad.output


def test_aggregate_csv_is_tidy_mean_std(store):
    import io

    import pandas as pd

    from robench import api

    frame = api.results(store, task="room_layout")
    table = pd.read_csv(io.StringIO(api.aggregate(frame, "csv")))
    row = table[(table["configuration"] == "st-pio(pretrain_epochs=2)") & (table["metric"] == "pixel_error")].iloc[0]
    assert row["mean"] == pytest.approx(0.12) and row["std"] == pytest.approx(0.01) and row["n"] == 3


def test_figures_exit_1_without_their_suite_and_write_png_svg_pdf(store, tmp_path):
    from typer.testing import CliRunner

    from robench.cli import app

    result = CliRunner().invoke(app, ["figures", "dns", "--store", str(store), "-o", str(tmp_path)])
    assert result.exit_code == 1  # compression runs exist, but none of the dns suite
    assert result.output.strip().endswith("robench run suites/papers/dns.yaml")
    assert "Traceback" not in result.output
    assert not (tmp_path / "dns").exists() or not any((tmp_path / "dns").iterdir())
    result = CliRunner().invoke(app, ["figures", "sparse-robustness", "--store", str(store), "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    written = {Path(line).suffix for line in result.output.split()}
    assert {".png", ".svg", ".pdf", ".md", ".csv"} <= written


# ---------------------------------------------------------------------------- pieces

def test_metric_labels_read_well_with_units():
    assert metric("robust_accuracy_linf@0.0883436").header == "robust acc. l∞ ε = 0.088 (%)"
    assert metric("accuracy_under_pgd_l2@1").header == "acc. under PGD l2 ε = 1 (%)"
    assert metric("psnr@8").header == "PSNR at level 8 (dB)" and metric("psnr@8").scale == 1
    assert metric("pixel_error_hard").header == "pixel error, test-hard (%)"
    assert metric("accuracy").scale == 100 and metric("latency_ms").unit == "ms"
    assert metric("my_new_metric").header == "my new metric"
    assert robust_curves(["robust_accuracy_l2@2", "robust_accuracy_l2@0.5", "rho2"]) == \
        {"l2": [(0.5, "robust_accuracy_l2@0.5"), (2.0, "robust_accuracy_l2@2")]}


def test_paths_are_shown_by_their_last_component():
    assert scrub_label("dataset=folder, root=/home/ann/data/myimgs, n=3") == "dataset=folder, root=myimgs, n=3"
    assert scrub_value({"root": "/srv/x/imgs/", "n": 2, "l": ["~/a/b"]}) == {"root": "imgs", "n": 2, "l": ["b"]}
    text = scrub_text('File "/opt/venv/lib/site-packages/robench/x.py", see https://a.org/b/c, 3/4, a/b',
                      ["/opt/venv"])
    assert text == 'File "…/lib/site-packages/robench/x.py", see https://a.org/b/c, 3/4, a/b'.replace(
        "…/lib/site-packages/robench/x.py", "…/robench/x.py")


def test_one_colour_per_method_everywhere():
    labels = ["dns(c=[1, 3])", "dns-nosplice(c=1)", "magnitude (layer)", "magnitude", "sketch, refined", "my-plugin"]
    colours = method_colors(labels)
    assert colours["magnitude (layer)"] == colours["magnitude"] == KNOWN["magnitude"]
    assert colours["dns(c=[1, 3])"] == method_colors(["dns @ sparsity=0.5"])["dns @ sparsity=0.5"] == KNOWN["dns"]
    assert colours["my-plugin"] not in {KNOWN["dns"], KNOWN["dns-nosplice"], KNOWN["magnitude"], KNOWN["sketch"]}
    from robench import registry
    registry.load_builtins()
    for task in registry.tasks.names():  # the built-in methods of one task are told apart
        names = [e.name for e in registry.methods.entries() if e.task == task]
        assert len({KNOWN[n] for n in names if n in KNOWN}) == len([n for n in names if n in KNOWN]) or \
            task == "compression", task


def test_constant_axis_and_pareto_front():
    import pandas as pd

    from robench.report.plots import constant, pareto_front

    assert constant([1.0, 1.0, float("nan")]) and not constant([1.0, 2.0])
    points = pd.DataFrame({"x_mean": [1, 2, 3, 4], "y_mean": [0.9, 0.95, 0.8, 0.85]})
    assert list(pareto_front(points).index) == [1, 3]


def test_the_training_level_is_marked_even_when_the_params_leave_it_to_the_default():
    import pandas as pd

    from robench.report.site_plots import _marked_level

    curve = [(4.0, "psnr@4"), (8.0, "psnr@8"), (12.0, "psnr@12")]
    runs = pd.DataFrame({"task_params": [{"family": "inpainting"}], "metrics": [_levels_metrics(1.0, 0)]})
    assert _marked_level(runs, "train_level", curve) == 8.0  # the level psnr_offtrain_mean leaves out
    runs["task_params"] = [{"train_level": 12}]
    assert _marked_level(runs, "train_level", curve) == 12.0


def test_papers_sources_are_in_the_project():
    from robench.report import papers

    for (paper, key), number in papers.NUMBERS.items():
        assert paper in papers.PAPERS and re.match(r"(Table|Figure) \d+", number.source), key
    assert papers.value("dns", "lenet-5.ratio") == 108
    figures = Path(__file__).resolve().parent.parent / "robench" / "report"
    for source in figures.rglob("*.py"):
        text = source.read_text()
        assert "PAPERS.md" not in text and "/work/" not in text, source


# ---------------------------------------------------------------------------- in Chromium

@pytest.mark.skipif(browser.reason() is not None, reason=str(browser.reason()))
def test_site_in_chromium_at_1280_and_390(site, tmp_path):
    outside, errors = [], []
    with browser.chromium() as chromium:
        for width in (1280, 390):
            page = chromium.new_page(viewport={"width": width, "height": 860})
            page.on("console", lambda m: errors.append(f"{m.type}: {m.text}") if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            browser.offline(page, outside)
            page.goto((site / "index.html").as_uri())
            for task, leader in LEADERS.items():  # the index names each task's leader
                card = page.locator(f"#task-{task}")
                leaders = card.locator("dl.leader dd").first.locator("a").inner_text()
                assert leaders == leader, (width, task, leaders)
            page.fill("#filter", "room")
            assert page.locator("#task-room_layout").is_visible()
            assert not page.locator("#task-compression").is_visible()
            page.screenshot(path=str(tmp_path / f"index-{width}.png"), full_page=True)
            for task in LEADERS:
                page.goto((site / f"{task}.html").as_uri())
                page.wait_for_load_state("load")
                loaded = page.evaluate("Array.from(document.images).filter(i => i.complete && i.naturalWidth > 0).length")
                assert loaded >= 1, (width, task)
                overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
                assert overflow <= 0, (width, task, overflow)
                table = page.locator("table.leaderboard").first
                head = table.locator("thead th.primary")
                table.evaluate("t => t.parentElement.scrollLeft = t.parentElement.scrollWidth")  # scrolled right:
                box = head.bounding_box()  # the primary column is still in view (sticky)
                assert box and box["x"] >= 0 and box["x"] + box["width"] <= width + 1, (width, task, box)
                page.screenshot(path=str(tmp_path / f"{task}-{width}.png"), full_page=True)
            # sorting still works: the primary column, best first then reversed
            page.goto((site / "room_layout.html").as_uri())
            table = page.locator("table.leaderboard").first

            def labels():
                return table.locator("tbody tr td:nth-child(2) a").all_inner_texts()
            assert labels() == ["st-pio(pretrain_epochs=2)", "fcn", "prior"]
            button = table.locator("thead th[data-metric=pixel_error] button")
            button.click()
            assert labels() == ["st-pio(pretrain_epochs=2)", "fcn", "prior"]
            button.click()
            assert labels() == ["prior", "fcn", "st-pio(pretrain_epochs=2)"]
            page.close()
    assert not outside, outside
    assert not errors, errors
