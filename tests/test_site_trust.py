"""What the leaderboard publishes of runs it did not compute (issue 21): a bundle's files
only of allowed types and only from the store's artifact folder, linked as downloads;
file names made safe from whatever a bundle's task info says; rankings of local runs and
verified claims only, each claim with its own verdict, page and badge; an imported run's
metrics split into re-scored and claimed. Synthetic results tables in the shape of
``robench.api.merged_results()`` (one row per run id and origin), a store written through
``robench.store.Store``, and the site in Chromium."""

from __future__ import annotations

import hashlib
import math
import os
import re
from pathlib import Path

import pandas as pd
import pytest

from robench.report import write_leaderboard
from tests import browser

SHA_A = hashlib.sha256(b"bundle A").hexdigest()
SHA_B = hashlib.sha256(b"bundle B").hexdigest()
SHA_C = hashlib.sha256(b"bundle C").hexdigest()
ROOMS = "dataset=synthetic-rooms, image_size=64"
ROOM_INFO = {"primary_metric": "pixel_error", "greater_is_better": False,
             "headline_metrics": ["pixel_error", "corner_error", "latency_ms"],
             "plots": [{"name": "errors_per_method", "kind": "dots", "metrics": ["pixel_error", "corner_error"]}]}
KERNELS_RUN = {"cpu_capability": "AVX512", "onednn_isa": "AVX512_CORE_AMX", "cuda_capability": None}
KERNELS_VERIFIER = {"cpu_capability": "AVX2", "onednn_isa": "AVX2", "cuda_capability": None}


def _id(*parts) -> str:
    return hashlib.sha1(repr(parts).encode()).hexdigest()[:16]


def run(method: str, seed: int, pixel_error: float, *, origin: str = "local", verification: dict | None = None,
        run_id: str | None = None, task: str = "room_layout", task_label: str = ROOMS, info: dict | None = None,
        artifacts: dict | None = None, artifact_root: str | None = None, status: str = "done",
        kernels: dict | None = None) -> dict:
    """One row of the merged results table: a run id with its origin and its own verdict."""
    config_id = _id(task, task_label, method)
    metrics = {"pixel_error": pixel_error, "corner_error": pixel_error * 0.9, "latency_ms": 2.5 + seed}
    row = {"id": run_id or _id(config_id, seed), "config_id": config_id, "task": task, "task_label": task_label,
           "method": method, "method_label": method, "task_params": {"dataset": "synthetic-rooms"},
           "method_params": {}, "seed": seed, "status": status, "primary_metric": "pixel_error",
           "greater_is_better": False, "metrics": metrics if status == "done" else {},
           "primary_value": pixel_error if status == "done" else math.nan, "error": None,
           "started_at": "2024-05-01T10:00:00+00:00", "finished_at": "2024-05-01T10:00:30+00:00",
           "duration_s": 30.0, "provenance": {"robench": "0.1.0", "hostname": "bench-1"},
           "artifacts": artifacts or {}, "task_version": "1", "method_version": "1",
           "task_info": ROOM_INFO if info is None else info, "suites": ["default"],
           "origin": origin, "verification": verification or {}}
    if kernels:
        row["provenance"]["kernels"] = kernels
    if artifact_root is not None:
        row["artifact_root"] = artifact_root
    return row


def claim(sha: str, status: str, **details) -> dict:
    """A claim's verification dict as the new frame carries it."""
    out = {"status": status, "source": f"bundle-{sha[:4]}.zip", "bundle_sha256": sha,
           "imported_at": "2024-06-01T09:00:00+00:00"}
    if status != "imported":
        out["checked_at"] = "2024-06-02T09:00:00+00:00"
    out.update(details)
    return out


def verified(sha: str, **details) -> dict:
    return claim(sha, "verified", rescored=["pixel_error", "corner_error"], claimed=["latency_ms"],
                 differences={}, kernels=KERNELS_VERIFIER, **details)


def site_of(rows: list[dict], out: Path, **kw) -> Path:
    write_leaderboard(pd.DataFrame(rows), out, plots=kw.pop("plots", False), **kw)
    return out


def board(page: Path) -> list[str]:
    """The configuration labels of the first ranked table of a task page, in rank order."""
    text = page.read_text(encoding="utf-8")
    table = text[text.index('<table class="sortable leaderboard">'):]
    table = table[:table.index("</table>")]
    return re.findall(r'<td class="config" data-sort="([^"]*)"', table)


def unranked(page: Path) -> str:
    text = page.read_text(encoding="utf-8")
    if "<h3>Unranked claims</h3>" not in text:
        return ""
    part = text[text.index("<h3>Unranked claims</h3>"):]
    return part[:part.index("</table>")]


# ---------------------------------------------------------------------------- artifacts

@pytest.fixture()
def hostile_store(tmp_path):
    """A store folder whose run folder holds what a hostile bundle may bring: a page, an SVG
    with a script, a symlink out of the store; and a file outside the store."""
    store = tmp_path / "store"
    run_id = "feedc0ffee000001"
    folder = store / "artifacts" / run_id
    folder.mkdir(parents=True)
    (folder / "model.pt").write_bytes(b"weights")
    (folder / "predictions.npz").write_bytes(b"npz")
    (folder / "x.html").write_text("<script>alert(1)</script>")
    (folder / "evil.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>')
    outside = tmp_path / "secret"
    outside.mkdir()
    (outside / "secret.pt").write_bytes(b"not the store's")
    os.symlink(outside / "secret.pt", folder / "link.pt")
    other = store / "artifacts" / "another-run"
    other.mkdir()
    (other / "theirs.pt").write_bytes(b"another run's")
    (other / "model.pt").write_bytes(b"another model")  # the same name as this run's, other bytes
    artifacts = {"model": str(folder / "model.pt"), "predictions": str(folder / "predictions.npz"),
                 "page": str(folder / "x.html"), "figure": str(folder / "evil.svg"),
                 "link": str(folder / "link.pt"), "passwd": "/etc/passwd",
                 "escape": str(folder / ".." / ".." / ".." / "secret" / "secret.pt"),
                 "theirs": str(other / "theirs.pt")}
    return store, run_id, artifacts


def _with_their_model(artifacts: dict) -> dict:
    return {**artifacts, "their model": artifacts["theirs"].replace("theirs.pt", "model.pt")}


def _artifact_rows(page_text: str) -> dict[str, str]:
    table = page_text[page_text.index('<table class="kv artifacts">'):]
    table = table[:table.index("</table>")]
    return dict(re.findall(r'<tr><th scope="row">([^<]+)</th><td class="mono">(.*?)</td></tr>', table))


def test_only_allowed_types_inside_the_store_are_published(hostile_store, tmp_path):
    """Mutations caught: no type allowlist (x.html, evil.svg copied); no inside-the-store check
    (/etc/passwd, ../secret copied); the check on the unresolved path (the symlink's target
    copied); two files of one name published as one."""
    store, run_id, artifacts = hostile_store
    rows = [run("fcn", 0, 0.2, run_id=run_id, artifacts=_with_their_model(artifacts),
                artifact_root=str(store / "artifacts"))]
    out = site_of(rows, tmp_path / "site")
    copied = {p.relative_to(out / "artifacts").as_posix(): p.read_bytes() for p in (out / "artifacts").rglob("*")
              if p.is_file()}
    # "theirs" lies inside the store's artifact folder (another run's): publishable by the rule
    assert sorted(copied.values()) == [b"another model", b"another run's", b"npz", b"weights"]
    assert copied[f"{run_id}/model.pt"] == b"weights" and f"{run_id}/theirs.pt" in copied
    page = next((out / "runs").glob("*.html")).read_text(encoding="utf-8")
    listed = _artifact_rows(page)
    assert listed["their model"] != listed["model"] and "model.pt</a>" in listed["their model"]
    assert listed["page"] == 'x.html <span class="hint">— not published (type not allowed)</span>'
    assert listed["figure"] == 'evil.svg <span class="hint">— not published (type not allowed)</span>'
    for name, shown in (("link", "link.pt"), ("passwd", "passwd"), ("escape", "secret.pt")):
        assert listed[name] == f'{shown} <span class="hint">— not published (outside the store)</span>', name
    assert re.fullmatch(r'<a href="\.\./artifacts/[^"]+/model\.pt" download>model\.pt</a>', listed["model"])
    assert not re.search(r'(src|href|data)="[^"]*\.(svg|html)"[^>]*>[^<]*(evil|x)\.', page)
    assert not re.search(r"<(iframe|object|embed)\b", page)
    assert "/etc/passwd" not in page and str(tmp_path) not in page


def test_without_artifact_root_only_a_run_folder_of_a_given_store_is_published(hostile_store, tmp_path):
    """The fallback when the table has no ``artifact_root``: ``<store>/artifacts/<run id>/`` of a
    store in ``private``, nothing else. Mutation caught: accepting any ``.../artifacts/`` folder
    (another run's file copied), or anything at all without ``private``."""
    store, run_id, artifacts = hostile_store
    rows = [run("fcn", 0, 0.2, run_id=run_id, artifacts=artifacts)]
    out = site_of(rows, tmp_path / "site", private=[store])
    copied = sorted(p.name for p in (out / "artifacts").rglob("*") if p.is_file())
    assert copied == ["model.pt", "predictions.npz"]
    listed = _artifact_rows(next((out / "runs").glob("*.html")).read_text(encoding="utf-8"))
    assert "outside the store" in listed["theirs"] and "outside the store" in listed["passwd"]
    bare = site_of(rows, tmp_path / "bare")  # no store given: nothing can be told inside one
    assert not (bare / "artifacts").exists() or not any((bare / "artifacts").rglob("*.*"))


def test_a_store_written_through_its_api_publishes_no_page_or_svg(tmp_path):
    """A run stored by ``Store.save`` with a page and an SVG among its artifacts: the site
    built from ``robench.results()`` copies neither. Mutation caught: no type allowlist."""
    from robench import api, registry
    from robench.spec import RunSpec, _label
    from robench.store import Store

    registry.load_builtins()
    cls = registry.tasks.get("room_layout")
    path = tmp_path / "store" / "results.sqlite"
    params = {"dataset": "synthetic-rooms", "image_size": 64, "n_train": 600}
    with Store(path) as db:
        db.save_task_info("room_layout", cls.version, cls.report_info())
        spec = RunSpec(task="room_layout", task_params=params, method="fcn", method_params={}, seed=0,
                       task_version=str(cls.version), method_version="1", task_label=_label("", params, {}, ()),
                       method_label="fcn")
        tmp = db.artifact_root / ".tmp-0"
        tmp.mkdir(parents=True)
        (tmp / "model.pt").write_bytes(b"weights")
        (tmp / "x.html").write_text("<script>alert(1)</script>")
        (tmp / "evil.svg").write_text("<svg><script>alert(1)</script></svg>")
        db.save(spec, {"status": "done", "metrics": {"pixel_error": 0.1}, "primary_metric": "pixel_error",
                       "greater_is_better": False, "primary_value": 0.1, "error": None, "duration_s": 1.0,
                       "started_at": "2024-05-01T10:00:00+00:00", "finished_at": "2024-05-01T10:00:01+00:00",
                       "provenance": {}, "artifact_tmp": str(tmp),
                       "artifacts": {"model": "model.pt", "page": "x.html", "figure": "evil.svg"}})
    frame = api.results(path)
    out = tmp_path / "site"
    write_leaderboard(frame.assign(artifact_root=str(path.parent / "artifacts")), out, plots=False)
    assert sorted(p.name for p in (out / "artifacts").rglob("*") if p.is_file()) == ["model.pt"]
    text = "".join(p.read_text(encoding="utf-8") for p in out.rglob("*.html"))
    assert "x.html</a>" not in text and "evil.svg</a>" not in text and "not published (type not allowed)" in text


# ---------------------------------------------------------------------------- bundle-supplied task info

def test_odd_task_info_and_names_render_with_safe_distinct_file_names(tmp_path):
    """A task no registry knows, names with "/", "..", case twins and a reserved page name; a
    task_info whose fields have the wrong types and whose plot names hold paths. Mutation
    caught: no cleaning of task_info (a crash on the plot name "a/b", or on sweep_params 5)."""
    info = {"primary_metric": 7, "greater_is_better": "yes", "headline_metrics": 5, "sweep_params": 5,
            "metrics_info": {"pixel_error": 3, "corner_error": ["corners", True]},
            "plots": ["not a plot", {"name": "../../escape", "kind": "dots", "metrics": ["pixel_error"]},
                      {"name": "a/b", "kind": "dots", "metrics": ["corner_error", "../x"]},
                      {"name": "same", "kind": "dots", "metrics": ["pixel_error"]},
                      {"name": "same", "kind": "dots", "metrics": ["corner_error"]}]}
    rows = []
    for task in ("no_such_task", "../../evil task", "Room", "room", "index"):
        for method, err in (("fcn", 0.2), ("prior", 0.3)):
            rows += [run(method, s, err + 0.01 * s, task=task, info=info) for s in (0, 1)]
    out = tmp_path / "site"
    write_leaderboard(pd.DataFrame(rows), out, plots=True)
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert all(out in p.parents for p in written)  # nothing written outside the site
    for p in written:
        assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.+-]*", p.name), p.name
    pages = sorted(p.name for p in out.glob("*.html"))
    assert len(pages) == 6 and "index.html" in pages  # 5 tasks + the index, none overwriting another
    assert len({p.lower() for p in pages}) == 6
    index = (out / "index.html").read_text(encoding="utf-8")
    assert index.count('class="card"') == 5
    plots = sorted(p.name for p in (out / "plots").rglob("*.png"))
    assert plots and not any(".." in p or "/" in p for p in plots)
    twins = [len([p for p in plots if p.endswith(end)]) for end in ("--same.png", "--same-2.png")]
    assert twins == [5, 5]  # two plots named "same" in each of the 5 tasks: both drawn, apart


def test_one_settings_plots_failing_do_not_stop_the_others(tmp_path, monkeypatch):
    """Mutation caught: no try around a setting's plots (the whole build raises)."""
    from robench.report import site_plots

    real = site_plots.setting_plots

    def flaky(runs, info, out_base, *, task, **kw):
        if task == "broken_task":
            raise ValueError("Invalid name 'x/y'")
        return real(runs, info, out_base, task=task, **kw)

    monkeypatch.setattr(site_plots, "setting_plots", flaky)
    rows = [run(m, s, e + 0.01 * s, task=t) for t in ("broken_task", "room_layout")
            for m, e in (("fcn", 0.2), ("prior", 0.3)) for s in (0, 1)]
    out = site_of(rows, tmp_path / "site", plots=True)
    broken = (out / "broken_task.html").read_text(encoding="utf-8")
    assert "could not be drawn (ValueError: Invalid name" in broken and "<img" not in broken
    assert "<img" in (out / "room_layout.html").read_text(encoding="utf-8")


# ---------------------------------------------------------------------------- ranking and verdicts

def ranking_rows() -> list[dict]:
    """prior local (0.30); fcn a verified claim (0.20); st-pio claims too good to be true:
    imported (0.01), unverified (0.02), not re-scorable (0.03)."""
    rows = [run("prior", s, 0.30 + 0.01 * s) for s in (0, 1)]
    rows += [run("fcn", s, 0.20 + 0.01 * s, origin=f"bundle:{SHA_B}", verification=verified(SHA_B)) for s in (0, 1)]
    rows += [run("st-pio", 0, 0.01, origin=f"bundle:{SHA_A}", verification=claim(SHA_A, "imported")),
             run("st-pio-u", 0, 0.02, origin=f"bundle:{SHA_A}", verification=claim(
                 SHA_A, "unverified", rescored=["corner_error"],
                 differences={"pixel_error": {"claimed": 0.02, "rescored": 0.31, "tolerance": 1e-6}})),
             run("st-pio-s", 0, 0.03, origin=f"bundle:{SHA_A}", verification=claim(
                 SHA_A, "skipped", note="task 'room_layout' is not installed here"))]
    return rows


def test_only_local_runs_and_verified_claims_are_ranked(tmp_path, monkeypatch):
    """Mutation caught: ranking every row (st-pio's imported 0.01 leads) or plotting every row."""
    from robench.report import site_plots

    plotted = []
    real = site_plots.setting_plots
    monkeypatch.setattr(site_plots, "setting_plots", lambda runs, *a, **k: plotted.append(
        sorted(set(runs["method"]))) or real(runs, *a, **k))
    out = site_of(ranking_rows(), tmp_path / "site", plots=True)
    page = out / "room_layout.html"
    assert board(page) == ["fcn", "prior"]
    assert plotted == [["fcn", "prior"]]
    index = (out / "index.html").read_text(encoding="utf-8")
    leader = index[index.index("<dt>leader</dt>"):index.index("<dt>runner-up</dt>")]
    assert ">fcn</a>" in leader and 'class="badge verified"' in leader
    assert "3 unranked claims" in index
    claims = unranked(page)
    for method, badge, why in (("st-pio", "imported, not verified", "not re-scored yet (robench verify)"),
                               ("st-pio-u", "unverified", "it differs in pixel_error"),
                               ("st-pio-s", "not verifiable", "task &#39;room_layout&#39; is not installed here")):
        row = claims[claims.index(f">{method}</a>"):]
        row = row[:row.index("</tr>")]
        assert f">{badge}</span>" in row and why in row, (method, row)
        assert '<span class="claimed-mark">claimed</span>' in row
    # each claim still has its own page, linked from the list
    for href in re.findall(r'<td class="config"><a href="(runs/[^"]+)"', claims):
        assert (out / href).is_file()


def test_include_unverified_ranks_claims_badged_as_such(tmp_path):
    """Mutation caught: ``include_unverified`` ignored (st-pio not ranked), or its claims
    ranked without the "claimed, not verified" badge."""
    out = site_of(ranking_rows(), tmp_path / "site", include_unverified=True)
    page = out / "room_layout.html"
    assert board(page) == ["st-pio", "st-pio-u", "st-pio-s", "fcn", "prior"]
    text = page.read_text(encoding="utf-8")
    table = text[text.index('<table class="sortable leaderboard">'):]
    for method in ("st-pio", "st-pio-u", "st-pio-s"):
        cell = table[table.index(f'data-sort="{method}"'):]
        assert cell[:cell.index("</td>")].count(">claimed, not verified</span>") == 1, method
    assert "<h3>Unranked claims</h3>" not in text
    index = (out / "index.html").read_text(encoding="utf-8")
    # st-pio leads on one seed: a tie with st-pio-u (one seed: no spread to tell them apart)
    assert "claimed, not verified" in index[index.index("<dt>tie</dt>"):]


def test_a_verdict_belongs_to_one_claim(tmp_path):
    """One run id claimed by bundle A (a fake 0.001, unverified) and bundle B (verified); one
    computed here and claimed by bundle C (never verified); one computed here and verified in
    bundle B's claim too: one page per claim, B's claim ranked with B's badge, A's and C's
    listed with their own, the local run counted once and without a badge. Mutations caught:
    a claim's page named by run id only (A's and B's pages collide), a duplicate counted twice
    (geometric 2 / 2 and badged), a local run not preferred to a verified claim."""
    x, y, z = "a1" * 8, "b2" * 8, "c3" * 8
    rows = [run("fcn", 0, 0.001, run_id=x, origin=f"bundle:{SHA_A}", verification=claim(
                SHA_A, "unverified", rescored=[], differences={"pixel_error": {
                    "claimed": 0.001, "rescored": 0.2, "tolerance": 1e-6}})),
            run("fcn", 0, 0.2, run_id=x, origin=f"bundle:{SHA_B}", verification=verified(SHA_B)),
            run("prior", 1, 0.3, run_id=y),
            run("prior", 1, 0.001, run_id=y, origin=f"bundle:{SHA_C}", verification=claim(SHA_C, "imported")),
            run("geometric", 2, 0.25, run_id=z, origin=f"bundle:{SHA_B}", verification=verified(SHA_B)),
            run("geometric", 2, 0.25, run_id=z)]
    out = site_of(rows, tmp_path / "site")
    page_a, page_b, page_c = (out / "runs" / f"{x}-{SHA_A[:12]}.html", out / "runs" / f"{x}-{SHA_B[:12]}.html",
                              out / "runs" / f"{y}-{SHA_C[:12]}.html")
    a, b, c = (p.read_text(encoding="utf-8") for p in (page_a, page_b, page_c))
    assert 'class="badge verified"' not in a and ">unverified</span>" in a
    assert b.count('<span class="badge verified">verified</span>') == 1 and SHA_B in b and SHA_A not in b
    assert 'class="badge verified"' not in c and ">imported, not verified</span>" in c
    assert "same run id is ranked from the run computed here" in c
    task = out / "room_layout.html"
    assert board(task) == ["fcn", "geometric", "prior"]
    text = task.read_text(encoding="utf-8")
    seeds = re.findall(r'<td class="num" data-sort="(\d+)">\d+ / (\d+)</td>', text)
    assert seeds[:3] == [("1", "1")] * 3  # each run id counted once
    claims = unranked(task)
    assert claims.count("<tr data-run-id=") == 3
    row_x = claims[claims.index(f'data-run-id="{x}"'):]
    row_x = row_x[:row_x.index("</tr>")]
    assert ">unverified</span>" in row_x and 'class="badge verified"' not in row_x
    row_z = claims[claims.index(f'data-run-id="{z}"'):]
    assert "ranked from the run computed here" in row_z[:row_z.index("</tr>")]
    geometric = text[text.index('data-sort="geometric"'):]
    assert "badge" not in geometric[:geometric.index("</td>")]  # the local run counts: no claim's badge
    # the configuration that counts B's claim is verified; the one counting the local run has no badge
    fcn = text[text.index('data-sort="fcn"'):]
    assert ">verified</span>" in fcn[:fcn.index("</td>")]
    prior = text[text.index('data-sort="prior"'):]
    assert "badge" not in prior[:prior.index("</td>")]


def test_an_imported_run_page_splits_rescored_and_claimed_metrics(tmp_path):
    """Mutation caught: every metric of a verified claim shown as re-scored (latency too), or
    the table cell of a claimed metric without "claimed"."""
    rows = [run("fcn", 0, 0.2, origin=f"bundle:{SHA_B}", verification=verified(SHA_B), kernels=KERNELS_RUN),
            run("prior", 0, 0.3, kernels=KERNELS_RUN)]
    out = site_of(rows, tmp_path / "site")
    page = (out / "runs" / f"{rows[0]['id']}-{SHA_B[:12]}.html").read_text(encoding="utf-8")
    rescored = page[page.index("<h3>Re-scored by the maintainer"):page.index("<h3>Claimed by the bundle")]
    claimed = page[page.index("<h3>Claimed by the bundle, not re-scored"):page.index("<h2>Kernel sets</h2>")]
    assert 'title="pixel_error"' in rescored and 'title="corner_error"' in rescored
    assert "latency_ms" not in rescored and 'title="latency_ms"' in claimed and "pixel_error" not in claimed
    assert "a different kernel set" in page and "AVX512_CORE_AMX" in page and ">AVX2<" in page
    assert "bundle-" + SHA_B[:4] + ".zip" in page and SHA_B in page
    task = (out / "room_layout.html").read_text(encoding="utf-8")
    fcn = task[task.index('data-sort="fcn"'):]
    fcn = fcn[:fcn.index("</tr>")]
    cells = re.findall(r'<td class="num[^"]*" data-sort="[^"]*" data-mean=.*?</td>', fcn)
    assert [("claimed</span>" in c) for c in cells] == [False, False, True]  # pixel, corner, latency
    prior = task[task.index('data-sort="prior"'):]
    assert "claimed</span>" not in prior[:prior.index("</tr>")]  # computed here: nothing claimed
    local_page = next(p for p in (out / "runs").glob("*.html") if ">prior" in p.read_text(encoding="utf-8")
                      and "<h1>" in p.read_text(encoding="utf-8") and "claim" not in p.name)
    assert "kernel set</h4>" in local_page.read_text(encoding="utf-8")


def test_an_unverified_claim_shows_claimed_against_rescored(tmp_path):
    rows = ranking_rows()
    out = site_of(rows, tmp_path / "site")
    row = next(r for r in rows if r["method"] == "st-pio-u")
    page = (out / "runs" / f"{row['id']}-{SHA_A[:12]}.html").read_text(encoding="utf-8")
    diff = page[page.index('<table class="differences">'):]
    diff = diff[:diff.index("</table>")]
    assert re.search(r"pixel error.*?>0\.02<.*?>0\.31<.*?>1e-06<", diff, re.S)
    assert "1 value differs from what the run claims" in page
    assert 'title="corner_error"' in page[page.index("<h3>Re-scored by the maintainer"):]


def test_a_table_without_origins_reads_imported_runs_from_their_verification(tmp_path):
    """Tables of before the origin column: a verification dict marks an imported run.
    Mutation caught: every row without an origin taken as local (the imported claim ranked)."""
    rows = [run("prior", 0, 0.3), run("fcn", 0, 0.2, verification={"status": "verified", "checked": ["pixel_error"],
                                                                   "differences": {}, "source": "b.zip"}),
            run("st-pio", 0, 0.01, verification={"status": "imported", "source": "b.zip"})]
    for r in rows:
        del r["origin"]
    out = site_of(rows, tmp_path / "site")
    assert board(out / "room_layout.html") == ["fcn", "prior"]
    assert ">st-pio</a>" in unranked(out / "room_layout.html")


@pytest.mark.parametrize("include_unverified", [False, True])
def test_every_link_of_a_site_with_claims_resolves(tmp_path, include_unverified):
    """Claim pages, the unranked lists and the configuration pages link to files and anchors
    that exist. Mutation caught: the "Unranked claims" anchor or a claim page's name spelled
    differently where it is linked and where it is written."""
    from urllib.parse import unquote, urlsplit

    rows = ranking_rows() + [run("fcn", 0, 0.2, run_id=ranking_rows()[2]["id"], origin=f"bundle:{SHA_C}",
                                 verification=claim(SHA_C, "imported"))]
    out = site_of(rows, tmp_path / "site", include_unverified=include_unverified)
    ids = {p: set(re.findall(r'\bid="([^"]+)"', p.read_text(encoding="utf-8"))) for p in out.rglob("*.html")}
    checked = 0
    for page in ids:
        for value in re.findall(r'\b(?:href|src)="([^"]+)"', page.read_text(encoding="utf-8")):
            parts = urlsplit(value)
            assert not parts.scheme, (page.name, value)
            target = page if not parts.path else (page.parent / unquote(parts.path)).resolve()
            assert target.is_file(), (page.name, value)
            if parts.fragment:
                assert parts.fragment in ids[target], (page.name, value)
            checked += 1
    assert checked > 40 and len(list((out / "runs").glob("*-*.html"))) == 6  # a page per claim


# ---------------------------------------------------------------------------- in Chromium

@pytest.mark.skipif(browser.reason() is not None, reason=str(browser.reason()))
def test_hostile_bundle_in_chromium(hostile_store, tmp_path):
    """The claim pages of a hostile bundle: no link, image or frame to an .html or .svg
    artifact, every artifact link a download; the "verified" badge on the verified claim only."""
    store, run_id, artifacts = hostile_store
    root = str(store / "artifacts")
    rows = [run("fcn", 0, 0.001, run_id=run_id, origin=f"bundle:{SHA_A}", artifacts=artifacts, artifact_root=root,
                verification=claim(SHA_A, "unverified", rescored=[], differences={
                    "pixel_error": {"claimed": 0.001, "rescored": 0.2, "tolerance": 1e-6}})),
            run("fcn", 0, 0.2, run_id=run_id, origin=f"bundle:{SHA_B}", artifacts=artifacts, artifact_root=root,
                verification=verified(SHA_B)),
            run("prior", 0, 0.3)]
    out = site_of(rows, tmp_path / "site")
    hostile = """Array.from(document.querySelectorAll('[href],[src],[data]')).map(e =>
        e.getAttribute('href') || e.getAttribute('src') || e.getAttribute('data'))
        .filter(u => /artifacts\\//.test(u) && /\\.(html?|svg)$/i.test(u))"""
    outside, errors = [], []
    with browser.chromium() as chromium:
        page = chromium.new_page(viewport={"width": 1280, "height": 900})
        page.on("pageerror", lambda e: errors.append(str(e)))
        browser.offline(page, outside)
        page.goto((out / "runs" / f"{run_id}-{SHA_A[:12]}.html").as_uri())
        assert page.evaluate(hostile) == []
        assert page.locator("iframe, object, embed").count() == 0
        links = page.locator("table.artifacts a")
        names = links.all_inner_texts()
        assert sorted(names) == ["model.pt", "predictions.npz", "theirs.pt"], names
        assert all(links.nth(i).get_attribute("download") is not None for i in range(links.count()))
        assert page.locator(".badge.verified").count() == 0
        assert page.locator("h1 .badge").inner_text() == "unverified"
        page.goto((out / "runs" / f"{run_id}-{SHA_B[:12]}.html").as_uri())
        assert page.evaluate(hostile) == []
        assert page.locator(".badge.verified").count() == 1 and page.locator("h1 .badge.verified").count() == 1
        page.goto((out / "room_layout.html").as_uri())
        row = page.locator(f'table.unranked tr[data-run-id="{run_id}"]')
        assert row.count() == 1 and row.locator(".badge").first.inner_text() == "unverified"
        assert row.locator(".badge.verified").count() == 0
        fcn = page.locator("table.leaderboard").first.locator("tbody tr", has_text="fcn")
        assert fcn.locator(".badge.verified").count() == 1
        assert page.evaluate(hostile) == []
        page.close()
    assert not outside and not errors, (outside, errors)
