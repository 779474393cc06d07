"""ST-PIO (Zhao et al., CVPR 2017): room layout errors per method on the synthetic rooms,
beside the paper's published LSUN/Hedau numbers, a grid of predictions, and a report.

Reads only the results table and the ``predictions.npz`` artifacts of the
``room_layout`` runs (produced by ``suites/papers/stpio.yaml``); nothing is re-run.
Writes under ``out_dir``: ``results.csv`` (mean/std/n per method and metric),
``errors.png`` (our pixel error on test and test-hard, and the published numbers on their
own panel), ``predictions_grid.png`` (inputs with each method's layout overlaid), and
``report.md``.
"""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path

import numpy as np

from robench.report import papers
from robench.report.plots import PAPER, save_figure
from robench.report.table import column, metric_values, order_key, ordered, pm, select_runs, summarize, to_float

# Published LSUN (validation) / Hedau (test) pixel errors in percent (robench.report.papers:
# the ST-PIO paper's comparison tables), as (name, LSUN, Hedau).
PUBLISHED = [(name, papers.value("stpio", f"{key}.lsun"), papers.value("stpio", f"{key}.hedau"))
             for key, name in (("hedau2009", "Hedau et al. 2009"), ("mallya2015", "Mallya & Lazebnik 2015"),
                               ("delay2016", "DeLay 2016"), ("cfile2016", "CFILE 2016"),
                               ("stpio2017", "ST-PIO 2017"))]
METRICS = [("pixel_error", "pixel error, test"), ("corner_error", "corner error, test"),
           ("type_accuracy", "type accuracy, test"),
           ("pixel_error_hard", "pixel error, test-hard"),
           ("corner_error_hard", "corner error, test-hard"),
           ("type_accuracy_hard", "type accuracy, test-hard")]
METHOD_ORDER = ["prior", "geometric", "fcn", "st-pio"]
# surface label -> overlay colour (RGB 0-1); the task's labels 1-5 (its room_types.SURFACE_NAMES)
SURFACE_COLOURS = {1: (0.90, 0.30, 0.25), 2: (0.25, 0.55, 0.95), 3: (0.30, 0.80, 0.35),
                   4: (0.95, 0.75, 0.15), 5: (0.70, 0.40, 0.90)}
SURFACE_NAMES = {1: "frontal", 2: "left", 3: "right", 4: "floor", 5: "ceiling"}
GRID_TEST, GRID_HARD = 6, 4  # columns of the prediction grid from each split


def _runs(frame):
    """The done synthetic-rooms ``room_layout`` runs of one setting: those of the stpio
    suite if any, else all; of several settings, the one with the most training images.
    Returns (runs, that setting's task params)."""
    selection = select_runs(frame, "room_layout", suite="stpio",
                            where=lambda p: p.get("dataset") == "synthetic-rooms",
                            prefer=lambda label, p: (p.get("n_train", 0), p.get("n_test", 0), label))
    runs = selection.runs
    return runs, (dict(runs["task_params"].iloc[0]) if not runs.empty else None)


def summarize_methods(runs):
    """DataFrame: one row per method label, ``n`` seeds, ``<metric>_mean``/``_std`` and the mean run time."""
    names = [metric for metric, _ in METRICS]
    values = metric_values(runs, names).assign(method=runs["method_label"],
                                               duration_s=[to_float(v) for v in column(runs, "duration_s")])
    summary = summarize(values, "method", [*names, "duration_s"], sort=True)
    seeds = runs.groupby("method_label")["seed"].agg(lambda s: ",".join(str(v) for v in sorted(s)))
    table = summary[["method", "n"]].assign(seeds=summary["method"].map(seeds))
    for metric in names:
        table[f"{metric}_mean"] = summary[f"{metric}_mean"]
        table[f"{metric}_std"] = summary[f"{metric}_std"]
    table["duration_s_mean"] = summary["duration_s_mean"]
    return table.sort_values("method", key=lambda col: col.map(lambda label: order_key(label, METHOD_ORDER))
                             ).reset_index(drop=True)


def _pct(mean: float, std: float, accuracy: bool = False) -> str:
    return pm(mean, std, 100, 1 if accuracy else 2, missing="–")


def _markdown_table(table) -> str:
    head = "| method | seeds | " + " | ".join(name for _, name in METRICS) + " |"
    lines = [head, "|" + " --- |" * (len(METRICS) + 2)]
    for r in table.itertuples(index=False):
        r = r._asdict()
        cells = [_pct(r[f"{m}_mean"], r[f"{m}_std"], m.startswith("type")) for m, _ in METRICS]
        lines.append(f"| {r['method']} | {r['n']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _errors_plot(table, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    with sns.axes_style("whitegrid"):
        return _errors_axes(table, out, plt, sns)


def _errors_axes(table, out: Path, plt, sns) -> Path:
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4.4), width_ratios=[1.5, 1],
                                  layout="constrained")
    methods = list(table["method"])
    x = np.arange(len(methods))
    colours = sns.color_palette("colorblind", 2)
    top = 0.0
    for k, (metric, name) in enumerate([("pixel_error", "test (normal clutter, seen textures)"),
                                        ("pixel_error_hard", "test-hard (heavy clutter, unseen textures)")]):
        mean = 100 * table[f"{metric}_mean"].to_numpy()
        std = 100 * np.nan_to_num(table[f"{metric}_std"].to_numpy())
        ax.bar(x + (k - 0.5) * 0.38, mean, 0.38, yerr=std, capsize=3, label=name, color=colours[k])
        for xi, m, sd in zip(x + (k - 0.5) * 0.38, mean, std):
            if math.isfinite(m):
                ax.text(xi, m + sd + 0.4, f"{m:.1f}", ha="center", va="bottom", fontsize=7)
        top = max(top, float(np.nanmax(mean + std)) if np.isfinite(mean).any() else 0.0)
    ax.set_xticks(x, [m.replace("(", "\n(") for m in methods], fontsize=8)
    ax.set_ylabel("pixel error (%)")
    ax.set_ylim(0, 1.3 * top + 1)  # room for the value labels and the legend
    lo, hi = (int(table["n"].min()), int(table["n"].max())) if len(table) else (0, 0)
    seeds = f"{lo}" if lo == hi else f"{lo}–{hi}"
    ax.set_title(f"robench: synthetic rooms, mean ± std over {seeds} seeds")
    ax.legend(fontsize=8, loc="upper right")
    names = [p[0] for p in PUBLISHED]
    y = np.arange(len(names))
    ax2.barh(y - 0.2, [p[1] for p in PUBLISHED], 0.4, label="LSUN validation", color="0.45")
    ax2.barh(y + 0.2, [p[2] for p in PUBLISHED], 0.4, label="Hedau test", color="0.75")
    ax2.set_yticks(y, names, fontsize=8)
    ax2.invert_yaxis()
    ax2.set_xlabel("pixel error (%)")
    ax2.set_title("published, real LSUN / Hedau photos\n(a different dataset: not comparable)",
                  fontsize=10)
    ax2.legend(fontsize=8, loc="lower right")
    path = out / "errors.png"
    save_figure(fig, path.with_suffix(""), PAPER)
    return path


def _overlay(image: np.ndarray, seg: np.ndarray | None, keypoints=None, alpha: float = 0.45):
    """(H, W, 3) float: image with the layout's surfaces tinted and its boundaries white."""
    img = image.astype(np.float64) / 255.0
    if seg is None:
        return img
    colour = np.zeros_like(img)
    for label, rgb in SURFACE_COLOURS.items():
        colour[seg == label] = rgb
    out = (1 - alpha) * img + alpha * colour
    edge = np.zeros(seg.shape, dtype=bool)
    edge[1:, :] |= seg[1:, :] != seg[:-1, :]
    edge[:, 1:] |= seg[:, 1:] != seg[:, :-1]
    out[edge] = 1.0
    return out


def _grid(runs, out: Path) -> tuple[Path | None, list[str]]:
    """Prediction grid from the lowest seed of each method; (path, notes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    notes = []
    chosen = {}
    for label, group in runs.groupby("method_label"):
        for _, row in group.sort_values("seed").iterrows():
            path = dict(row["artifacts"]).get("predictions")
            if path and Path(path).is_file():
                chosen[label] = (int(row["seed"]), load_predictions(path))
                break
        else:
            notes.append(f"{label}: no predictions artifact found")
    if not chosen:
        return None, notes
    labels = ordered(chosen, METHOD_ORDER)
    first = chosen[labels[0]][1]
    columns = [("test", i) for i in range(min(GRID_TEST, len(first["test"]["preview_images"])))]
    if "test-hard" in first:
        columns += [("test-hard", i) for i in range(min(GRID_HARD, len(first["test-hard"]["preview_images"])))]
    rows = ["input", "ground truth"] + labels
    fig, axes = plt.subplots(len(rows), len(columns), figsize=(1.55 * len(columns) + 1.2, 1.6 * len(rows)),
                             squeeze=False)
    for c, (split, i) in enumerate(columns):
        image = first[split]["preview_images"][i]
        truth = first[split]["preview_truth"][i]
        axes[0, c].imshow(image)
        axes[0, c].set_title(f"{split} #{i}", fontsize=8)
        axes[1, c].imshow(_overlay(image, truth))
        for r, label in enumerate(labels, start=2):
            fields = chosen[label][1].get(split)
            ax = axes[r, c]
            if fields is None:
                ax.set_facecolor("0.9")
                continue
            seg = fields["segmentation"][i]
            ax.imshow(_overlay(image, seg))
            kp = fields["keypoints"][i, :int(fields["n_keypoints"][i])]
            scale = np.array([seg.shape[1] / truth.shape[1], seg.shape[0] / truth.shape[0]])
            if len(kp):
                pts = (kp + 0.5) * scale - 0.5
                ax.plot(pts[:, 0], pts[:, 1], "o", ms=3.5, color="black", mec="white", mew=0.8)
            ax.set_xlim(-0.5, seg.shape[1] - 0.5)
            ax.set_ylim(seg.shape[0] - 0.5, -0.5)
            ax.text(1, seg.shape[0] - 2, f"{100 * fields['pixel_error'][i]:.1f}%", fontsize=7,
                    color="white", bbox=dict(facecolor="black", alpha=0.6, pad=1, lw=0))
    for r, name in enumerate(rows):
        text = name if r < 2 else f"{name}\n(seed {chosen[name][0]})"
        axes[r, 0].set_ylabel(text.replace("(", "\n(", 1) if r >= 2 and "(" in name else text,
                              fontsize=8, rotation=0, ha="right", va="center")
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    handles = [Patch(color=rgb, label=SURFACE_NAMES[k]) for k, rgb in SURFACE_COLOURS.items()]
    fig.legend(handles=handles, loc="lower center", ncol=5, fontsize=8, frameon=False)
    fig.suptitle("Predicted layouts over the inputs (surfaces tinted, boundaries white, keypoints "
                 "black; number: the image's pixel error)", fontsize=9)
    fig.tight_layout(rect=(0, 0.03, 1, 0.97))
    path = out / "predictions_grid.png"
    save_figure(fig, path.with_suffix(""), PAPER)
    return path, notes


def load_predictions(path) -> dict[str, dict[str, np.ndarray]]:
    """A run's ``predictions.npz`` as {split name: {field: array}}: the task writes the split
    names in ``splits`` and each split's fields as ``<split, "-" as "_">_<field>``."""
    with np.load(path, allow_pickle=False) as data:
        arrays = dict(data)
    prefixes = {str(split): str(split).replace("-", "_") + "_" for split in arrays["splits"]}
    return {split: {name.removeprefix(prefix): a for name, a in arrays.items() if name.startswith(prefix)}
            for split, prefix in prefixes.items()}


def _wall_time(runs) -> tuple[float, float]:
    """(summed run time in s, span from the first start to the last finish in s)."""
    total = float(np.nansum(runs["duration_s"].astype(float))) if "duration_s" in runs else math.nan
    try:
        starts = [datetime.fromisoformat(str(s)) for s in runs["started_at"]]
        ends = [datetime.fromisoformat(str(s)) for s in runs["finished_at"]]
        span = (max(ends) - min(starts)).total_seconds()
    except (KeyError, TypeError, ValueError):
        span = math.nan
    return total, span


def _lookup(table, label: str, metric: str):
    sel = table[table["method"] == label]
    if sel.empty:
        return math.nan, math.nan
    return float(sel[f"{metric}_mean"].iloc[0]), float(sel[f"{metric}_std"].iloc[0])


def _ordering(table, metric: str) -> list[str]:
    """Sentences on the paper's ordering st-pio < fcn < geometric, prior for ``metric``."""
    values = {m: _lookup(table, m, metric) for m in METHOD_ORDER}
    missing = [m for m, (v, _) in values.items() if not math.isfinite(v)]
    if missing:
        return [f"cannot check: no {metric} for {', '.join(missing)}"]
    st, fcn = values["st-pio"][0], values["fcn"][0]
    classic = min(values["geometric"][0], values["prior"][0])
    out = []
    learned_win = max(st, fcn) < classic
    out.append(f"learned (fcn {100 * fcn:.2f}%, st-pio {100 * st:.2f}%) below geometric "
               f"({100 * values['geometric'][0]:.2f}%) and prior ({100 * values['prior'][0]:.2f}%): "
               f"**{'yes' if learned_win else 'no'}**")
    gap = st - fcn
    spread = math.sqrt(np.nansum([values["st-pio"][1] ** 2, values["fcn"][1] ** 2]))
    noise = " (within seed noise)" if math.isfinite(spread) and abs(gap) < spread else ""
    out.append(f"st-pio below fcn: **{'yes' if st < fcn else 'no'}{noise}** (st-pio − fcn = "
               f"{100 * gap:+.2f} points; seed std of that difference ≈ {100 * spread:.2f})")
    return out


def _compare(table, a: str, b: str, metric: str):
    """(a - b, seed std of the difference, 'within seed noise' note) or None."""
    (va, sa), (vb, sb) = _lookup(table, a, metric), _lookup(table, b, metric)
    if not (math.isfinite(va) and math.isfinite(vb)):
        return None
    spread = math.sqrt(np.nansum([sa ** 2, sb ** 2]))
    noise = " (within seed noise)" if math.isfinite(spread) and abs(va - vb) < spread else ""
    return va - vb, spread, noise


def _control_sentences(table) -> list[str]:
    """What the controls say about st-pio's two parts, in words, from the numbers."""
    out = []
    labels = list(table["method"])
    if "st-pio" in labels and "st-pio(refine=False)" in labels:
        for metric, name in (("pixel_error", "pixel error"), ("corner_error", "corner error"),
                             ("pixel_error_hard", "test-hard pixel error")):
            c = _compare(table, "st-pio", "st-pio(refine=False)", metric)
            if c:
                out.append(f"- physics-inspired refinement (st-pio vs st-pio(refine=False)), {name}: "
                           f"{100 * c[0]:+.2f} points{c[2]}")
    if "st-pio(refine=False)" in labels and "fcn" in labels:
        c = _compare(table, "st-pio(refine=False)", "fcn", "pixel_error")
        if c:
            out.append(f"- semantic transfer alone vs fcn trained from scratch for the same layout "
                       f"budget (st-pio(refine=False) − fcn), pixel error: {100 * c[0]:+.2f} points{c[2]}")
    for m in [m for m in labels if m.startswith("fcn(extra_epochs=")]:
        c = _compare(table, "st-pio", m, "pixel_error")
        if c:
            out.append(f"- st-pio vs `{m}`, which gets the same total training epochs as st-pio's "
                       f"pre-training + layout training (equal compute), pixel error: "
                       f"{100 * c[0]:+.2f} points{c[2]}"
                       + (" — at equal compute st-pio does **not** beat fcn" if c[0] >= 0 else ""))
    return out


def make(frame, out_dir) -> list[Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    runs, setting = _runs(frame)
    report = out / "report.md"
    if runs.empty:
        report.write_text("# ST-PIO room layout\n\nNo finished `room_layout` runs on "
                          "`synthetic-rooms` in this store: run `suites/papers/stpio.yaml` first.\n")
        return [report]
    table = summarize_methods(runs)
    written = []
    csv = out / "results.csv"
    table.to_csv(csv, index=False)
    written.append(csv)
    written.append(_errors_plot(table, out))
    grid, notes = _grid(runs, out)
    if grid is not None:
        written.append(grid)
    total, span = _wall_time(runs)
    p = setting
    seeds = sorted({int(s) for s in runs["seed"]})
    lines = [
        "# ST-PIO room layout (Zhao et al., CVPR 2017) at robench scale",
        "",
        "## Scale we ran at",
        "",
        f"- data: procedurally rendered cuboid rooms (`synthetic-rooms`, data seed "
        f"{p.get('data_seed')}), {p.get('image_size')}×{p.get('image_size')} px; "
        f"{p.get('n_train')} training images, {p.get('n_test')} test images (normal clutter, "
        f"training textures) and {p.get('n_test_hard')} test-hard images (heavy clutter, "
        "unseen textures and colours), balanced over the 11 LSUN room types",
        f"- training budget of every learned method: {p.get('epochs')} epoch(s), batch "
        f"{p.get('batch_size')}, on one CPU thread; st-pio's semantic pre-training adds its own "
        "epochs (cached and shared by its configurations), and `fcn(extra_epochs=…)` is the "
        "equal-compute control",
        f"- seeds: {', '.join(map(str, seeds))} ({len(runs)} runs); summed run time "
        f"{total / 60:.1f} min, wall-clock span of the runs {span / 60:.1f} min",
        "- the paper: LSUN (4000 train / 394 validation photos) and Hedau (209 / 105), "
        "VGG-scale networks pre-trained on SUN RGB-D; errors below are *not* comparable to "
        "its numbers, only the ordering of methods is",
        "",
        "## What runs here",
        "",
        "- `prior`: the most frequent training type with its mean keypoints, for every image.",
        "- `geometric` (Hedau et al. 2009 without its learned parts): Canny edges, Hough "
        "segments, three vanishing points, exhaustive search over box hypotheses made of "
        "vanishing-point rays, scored by orientation-consistent edge support. No training.",
        "- `fcn`: a small U-Net-shaped network (surfaces + layout edges + room type) trained "
        "from scratch; its output is the per-pixel argmax.",
        "- `st-pio`: the same network (1) pre-trained on *semantic* labels — the five layout "
        "surfaces plus a clutter class from the generator's clutter masks (the paper: SUN RGB-D "
        "semantic classes) — and transferred to the layout task (all weights copied, the "
        "clutter row of the classifier dropped), then trained like `fcn`; (2) its layout is "
        "then relaxed by physics-inspired optimization: keypoints are particles moving under "
        "the forces −∂E/∂k of an energy made of the network's surface probabilities (expected "
        "cross-entropy of the soft-rendered layout) and layout-edge map (attraction along the "
        "layout lines), with FIRE damped dynamics and border keypoints sliding on the image "
        "border, until equilibrium; the segmentation's room type and the type head's next "
        "guess are both relaxed and the lower-energy equilibrium is kept (the paper: forces on "
        "layout edges instead of sampling hypotheses). Output: the rendered layout.",
        "",
        "## Results on the synthetic test sets (percent, mean ± std over seeds)",
        "",
        _markdown_table(table),
        "",
        "Pixel error: 1 − Hungarian-matched pixels / all pixels (LSUN toolkit); corner "
        "error: matched keypoint distance / image diagonal, +1/3 per missing or extra keypoint, "
        "over the larger keypoint count; lower is better for both.",
        "",
        "![pixel errors](errors.png)",
        "",
        "## Published pixel errors (real photos — a different dataset)",
        "",
        "| method | LSUN validation | Hedau test |",
        "| --- | --- | --- |",
    ] + [f"| {name} | {lsun:.2f} | {hedau:.2f} |" for name, lsun, hedau in PUBLISHED] + [
        "",
        "## Did the paper's ordering hold? (st-pio < fcn < geometric / prior in error)",
        "",
        "On test:",
        "",
    ] + [f"- {s}" for s in _ordering(table, "pixel_error")] + [
        "",
        "On test-hard:",
        "",
    ] + [f"- {s}" for s in _ordering(table, "pixel_error_hard")]
    extra = _control_sentences(table)
    for label, what in (("st-pio(refine=False)", "semantic transfer alone (no physics-inspired refinement)"),
                        ("fcn(extra_epochs=", "fcn with st-pio's pre-training epochs added (equal compute)")):
        match = [m for m in table["method"] if m.startswith(label)]
        for m in match:
            v, s = _lookup(table, m, "pixel_error")
            vh, sh = _lookup(table, m, "pixel_error_hard")
            extra.append(f"- `{m}` — {what}: test {_pct(v, s)}, test-hard {_pct(vh, sh)}")
    if extra:
        lines += ["", "Controls (read them to see where st-pio's difference comes from):", ""] + extra
    lines += ["", "## Predictions", ""]
    if grid is not None:
        lines += ["![predictions](predictions_grid.png)", "",
                  "Columns: the first test and test-hard images; rows: input, ground truth, then each "
                  "method (its lowest seed)."]
    lines += [f"- {n}" for n in notes]
    lines += ["", "Regenerate with `robench figures stpio` (reads the results store only).", ""]
    lines += ["", *papers.sources_section("stpio")]
    report.write_text("\n".join(lines))
    written.append(report)
    return written
