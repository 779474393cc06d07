"""Paper figures: one module per paper, each reading only the results table.

A figure module exposes ``make(frame, out_dir) -> list[Path]``: it writes plots (PNG, with
SVG and PDF beside each: :func:`robench.report.plots.save_figure`) and a Markdown report
(our numbers beside the paper's, from :mod:`robench.report.papers`, the scale we ran at,
and whether the paper's trend held) under ``out_dir/<name>/`` and returns the files it
wrote (a plot by its PNG). It never retrains or re-evaluates anything. Register a module in
``FIGURES`` as "module:function".
"""

from __future__ import annotations

from pathlib import Path

from robench.errors import UserError

# name -> ("module:function", the suite that produces its data, description)
FIGURES: dict[str, tuple[str, str, str]] = {
    "dlnet": ("robench.report.figures.dlnet:make", "suites/papers/dlnet.yaml", "DL-Net: PSNR vs level per method, image grid, report"),
    "deepdefense": ("robench.report.figures.deepdefense:make", "suites/papers/deepdefense.yaml", "DeepDefense: clean accuracy, rho2 and FGS accuracy per recipe and model (mean ± std), vs the paper's claim"),
    "stpio": ("robench.report.figures.stpio:make", "suites/papers/stpio.yaml", "ST-PIO room layout: error table vs published LSUN/Hedau, prediction grid, report"),
    "sparse-robustness": ("robench.report.figures.sparse_robustness:make", "suites/papers/sparse-robustness.yaml",
                          "Sparse DNNs: rho2 and robust accuracy vs sparsity per model (mean ± std), report"),
    "dns": ("robench.report.figures.dns:make", "suites/papers/dns.yaml",
            "DNS: accuracy vs compression ratio, DNS vs magnitude vs no-splice (mean ± std), latency, report"),
    "inq": ("robench.report.figures.inq:make", "suites/papers/inq.yaml",
            "INQ: accuracy vs bit-width, incremental vs one-shot vs uniform, DNS+INQ (mean ± std), report"),
    "sketching": ("robench.report.figures.sketching:make", "suites/papers/sketching.yaml",
                  "Network Sketching: approximation error and accuracy vs bases m, direct vs refined, report"),
    "compression-robustness": ("robench.report.figures.compression_robustness:make",
                               "suites/studies/compression-robustness.yaml",
                               "Compression meets robustness: robust accuracy and rho2 vs storage ratio per method "
                               "with the Pareto front, per model and base (vanilla, DeepDefense), report"),
    "compression-corruptions": ("robench.report.figures.compression_corruptions:make",
                                "suites/studies/compression-corruptions.yaml",
                                "What compression forgets: MNIST-C mCE vs storage ratio per method with the Pareto "
                                "front, drop on corrupted vs clean data (Hooker et al.), per model and base, report"),
}


class MissingRuns(UserError):
    """The figure set's suite has no runs in the store: the command that makes them is in
    ``command`` (the CLI exits 1 with it, not 2: nothing the user typed was wrong)."""

    def __init__(self, name: str):
        self.command = f"robench run {FIGURES[name][1]}"
        super().__init__(f"figures {name}: the store has no runs of its suite yet; make them with: {self.command}")


def suite_runs(frame, name: str) -> int:
    """How many runs of the figure set ``name``'s suite (or its paper-scale twin) the results
    table holds."""
    from robench.report.table import suite_and_full

    names = suite_and_full(Path(FIGURES[name][1]).stem)
    if frame is None or frame.empty or "suites" not in frame:
        return 0
    return int(frame["suites"].map(lambda s: bool(names & set(s if isinstance(s, (list, tuple)) else []))).sum())


def written_files(paths) -> list[Path]:
    """``paths`` and, beside each PNG, its SVG and PDF versions that exist."""
    out = []
    for path in map(Path, paths):
        out.append(path)
        if path.suffix == ".png":
            out += [p for p in (path.with_suffix(".svg"), path.with_suffix(".pdf")) if p.exists()]
    return list(dict.fromkeys(out))


def make_figures(name: str, frame, out_dir: str | Path) -> list[Path]:
    import difflib
    import importlib

    if name not in FIGURES:
        hint = difflib.get_close_matches(name, list(FIGURES), n=1)
        known = ", ".join(sorted(FIGURES)) or "none yet"
        raise UserError(f"unknown figure set {name!r}" + (f"; did you mean {hint[0]!r}?" if hint else f"; known: {known}"))
    target, suite, _ = FIGURES[name]
    module_name, func = target.split(":")
    out = Path(out_dir) / name
    out.mkdir(parents=True, exist_ok=True)
    return getattr(importlib.import_module(module_name), func)(frame, out)
