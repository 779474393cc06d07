"""DeepDefense (arXiv 1803.00404) table: per model, each recipe's clean accuracy, ρ2 and FGS
accuracies (mean ± std over seeds), written as ``report.md`` + ``table.csv`` + a ρ2 vs
accuracy plot, from the ``robust_training`` runs in the results table only.

Uses the runs of the ``deepdefense`` suite when the store has any, else every done
``robust_training`` run; per model, the task setting with the most runs.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from robench.report import papers
from robench.report.plots import PAPER, save_figure
from robench.report.style import method_colors
from robench.report.table import metric_values, order_key, ordered, pm, select_runs, summarize

TASK = "robust_training"
SUITE = "deepdefense"
RECIPE_ORDER = ("vanilla", "deepdefense", "adv-fgs", "adv-pgd", "parseval")
COLUMNS = (("test_accuracy", "clean acc. (%)"), ("rho2", "ρ2 (×10⁻²)"),
           ("fgs_accuracy@0.2x", "FGS 0.2ε_ref (%)"), ("fgs_accuracy@0.5x", "FGS 0.5ε_ref (%)"),
           ("fgs_accuracy@1x", "FGS ε_ref (%)"), ("pgd_accuracy@1x", "PGD ε_ref (%)"),
           ("robust_accuracy@1x", "worst case ε_ref (%)"), ("train_cpu_seconds", "train CPU s"))
SLACK = 0.01  # the selection rule's accuracy slack: at most 1 point below vanilla


def _is_test(params) -> bool:
    return params.get("eval_split", "test") == "test"


def summarize_recipes(runs):
    """One row per (model, recipe): n seeds, the mean eps_ref and mean/std of every column metric."""
    names = [metric for metric, _ in COLUMNS]
    values = metric_values(runs, ["eps_ref", *names]).assign(model=runs["model"], recipe=runs["method_label"])
    summary = summarize(values, ["model", "recipe"], sort=True)
    table = summary[["model", "recipe", "n"]].assign(eps_ref=summary["eps_ref_mean"])
    for metric in names:
        table[f"{metric}_mean"] = summary[f"{metric}_mean"]
        table[f"{metric}_std"] = summary[f"{metric}_std"]
    table["_k"] = table["recipe"].map(lambda label: order_key(label, RECIPE_ORDER))
    return table.sort_values(["model", "_k"]).drop(columns="_k").reset_index(drop=True)


def _cell(metric: str, mean: float, std: float) -> str:
    if metric == "train_cpu_seconds":
        return pm(mean, std, 1.0, 0, missing="–")
    return pm(mean, std, 100.0, 2 if metric == "rho2" else 1, missing="–")


def markdown_table(table, model: str) -> str:
    sub = table[table["model"] == model]
    lines = ["| recipe | seeds | " + " | ".join(name for _, name in COLUMNS) + " |",
             "|" + " --- |" * (len(COLUMNS) + 2)]
    for r in sub.to_dict("records"):
        cells = [_cell(m, r[f"{m}_mean"], r[f"{m}_std"]) for m, _ in COLUMNS]
        lines.append(f"| {r['recipe']} | {r['n']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def verdict(table, model: str, runs=None) -> str:
    """One sentence per DeepDefense configuration: did it beat vanilla on ρ2 at comparable
    clean accuracy, and was it ahead of the other (non-DeepDefense) recipes?"""
    sub = table[table["model"] == model].set_index("recipe")
    base = {label: label.split("(")[0] for label in sub.index}  # "deepdefense(candidates=4)" → "deepdefense"
    pick = {name: [label for label, b in base.items() if b == name] for name in ("vanilla", "deepdefense")}
    if not pick["vanilla"] or not pick["deepdefense"]:
        return f"{model}: no vanilla/deepdefense pair in the store, no verdict."
    v_label = pick["vanilla"][0]
    others = sub.drop(index=[v_label, *pick["deepdefense"]])
    return "\n\n".join(_verdict_one(sub.loc[v_label], sub.loc[d_label], d_label, others, model,
                                     several=len(pick["deepdefense"]) > 1)
                        for d_label in pick["deepdefense"])


def _verdict_one(v, d, d_label: str, others, model: str, several: bool) -> str:
    gain = d["rho2_mean"] / v["rho2_mean"] if v["rho2_mean"] > 0 else math.nan
    acc_drop = 100 * (v["test_accuracy_mean"] - d["test_accuracy_mean"])
    spread = 100 * max(np.nan_to_num(v["rho2_std"]), np.nan_to_num(d["rho2_std"]))
    higher = d["rho2_mean"] - v["rho2_mean"] > max(2 * spread / 100, 1e-9)
    comparable = acc_drop <= 1.0
    held = "held" if higher and comparable else "did not hold"
    why = []
    if not higher:
        why.append("ρ2 is not clearly higher (difference within 2 std of the seeds)")
    if not comparable:
        why.append(f"clean accuracy dropped by {acc_drop:.1f} points (> 1)")
    beaten = [r for r in others.index if others.loc[r, "rho2_mean"] >= d["rho2_mean"]]
    versus = (" Against the other recipes (the paper's stronger claim), DeepDefense had the highest ρ2"
              if not beaten else
              " The paper's stronger claim, DeepDefense ahead of the other defenses too, did not hold here: "
              + ", ".join(f"{r} reached ρ2 = {100 * others.loc[r, 'rho2_mean']:.2f}×10⁻² at "
                          f"{100 * others.loc[r, 'test_accuracy_mean']:.1f}% clean accuracy" for r in beaten)) \
        if len(others) else ""
    which = f" ({d_label})" if several else ""
    return (f"**{model}{which}: the claim (higher ρ2 than vanilla at comparable clean accuracy) {held}.** "
            f"DeepDefense ρ2 = {100 * d['rho2_mean']:.2f}×10⁻² vs vanilla "
            f"{100 * v['rho2_mean']:.2f}×10⁻² ({gain:.2f}×), clean accuracy {100 * d['test_accuracy_mean']:.1f}% "
            f"vs {100 * v['test_accuracy_mean']:.1f}% ({d['n']} vs {v['n']} seeds)"
            + (f"; {'; '.join(why)}." if why else ".") + (versus + "." if versus else ""))


def selection_section(frame) -> list[str]:
    """The choice of DeepDefense's ``c`` on the validation split (runs with ``eval_split:
    validation``): per model, every configuration's mean validation ρ2 and accuracy, and the
    rule's pick — the DeepDefense configuration of highest mean validation ρ2 among those at
    most 1 point of validation accuracy below vanilla. Empty when the store has no such runs."""
    selection = select_runs(frame, TASK, suite=SUITE, group="model", where=lambda p: not _is_test(p))
    runs = selection.runs
    if runs.empty:
        return []
    values = metric_values(runs, ["rho2", "validation_accuracy"]).assign(model=runs["model"],
                                                                         recipe=runs["method_label"])
    summary = summarize(values, ["model", "recipe"], sort=True)
    lines = ["## Choosing c on a validation split", "",
             "These runs hold the last images of the training split out of every training (the vanilla "
             "model's included) and are evaluated on them; they never read the test split. Rule, fixed "
             "before looking: the DeepDefense configuration with the highest mean validation ρ2 among those "
             f"whose mean validation accuracy is at most {100 * SLACK:g} point below vanilla's.", ""]
    for model, sub in summary.groupby("model", sort=False):
        size = runs[runs["model"] == model]["task_params"].map(lambda p: p.get("validation_size")).iloc[0]
        lines += [f"**{model}** ({size} validation images, {int(sub['n'].max())} seeds):", "",
                  "| configuration | validation ρ2 (×10⁻²) | validation accuracy (%) |", "| --- | --- | --- |"]
        for r in sub.to_dict("records"):
            lines.append(f"| {r['recipe']} | {pm(r['rho2_mean'], r['rho2_std'], 100.0, 2)} | "
                         f"{pm(r['validation_accuracy_mean'], r['validation_accuracy_std'], 100.0, 1)} |")
        vanilla = sub[sub["recipe"] == "vanilla"]
        candidates = sub[sub["recipe"].str.startswith("deepdefense")]
        if vanilla.empty or candidates.empty:
            lines += ["", "No vanilla/DeepDefense pair here: no choice.", ""]
            continue
        floor = float(vanilla["validation_accuracy_mean"].iloc[0]) - SLACK
        allowed = candidates[candidates["validation_accuracy_mean"] >= floor - 1e-12]
        if allowed.empty:
            lines += ["", "No DeepDefense configuration met the accuracy condition: no choice.", ""]
            continue
        best = allowed.loc[allowed["rho2_mean"].idxmax()]
        lines += ["", f"Chosen: **{best['recipe']}**, validation ρ2 {100 * best['rho2_mean']:.2f}×10⁻²; "
                      "it is applied on the test split below.", ""]
    return lines


def stronger_attacks_sentence(table, model: str) -> str:
    """How the worst case over FGS, PGD, APGD-CE and APGD-T at ε_ref compares with PGD alone,
    and whether the recipes' order on robust accuracy changes."""
    sub = table[table["model"] == model]
    if sub["robust_accuracy@1x_mean"].isna().all() or sub["pgd_accuracy@1x_mean"].isna().all():
        return ""
    drop = 100 * (sub["pgd_accuracy@1x_mean"] - sub["robust_accuracy@1x_mean"])
    worst = sub.loc[drop.idxmax()]
    order_pgd = sub.sort_values("pgd_accuracy@1x_mean", ascending=False)["recipe"].tolist()
    order_all = sub.sort_values("robust_accuracy@1x_mean", ascending=False)["recipe"].tolist()
    return (f"Under the stronger attacks (worst case over FGS, PGD, APGD-CE and APGD-T at ε_ref) robust "
            f"accuracy is {drop.min():.1f}–{drop.max():.1f} points below PGD's alone (most for "
            f"{worst['recipe']}); the most robust recipe at ε_ref is {order_all[0]}"
            + (" under both" if order_all[0] == order_pgd[0] else f" (under PGD alone: {order_pgd[0]})")
            + (", and the order of the recipes is unchanged." if order_pgd == order_all else
               f"; the order changes: {' > '.join(order_all)} (PGD alone: {' > '.join(order_pgd)})."))


def plot(table, out: Path, scale: dict | None = None) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scale = scale or {}
    models = list(dict.fromkeys(table["model"]))
    fig, axes = plt.subplots(1, len(models), figsize=(5.5 * len(models), 4.2), squeeze=False)
    recipes = ordered(table["recipe"], RECIPE_ORDER)
    palette = method_colors(recipes)  # a recipe's colour in every panel, figure and page
    markers = "osD^v"
    for ax, model in zip(axes[0], models):
        sub = table[table["model"] == model]
        seen: dict[str, int] = {}  # configurations of one recipe share its colour, told apart by marker
        for r in sub.to_dict("records"):
            base = r["recipe"].split("(")[0]
            k = seen[base] = seen.get(base, -1) + 1
            ax.errorbar(100 * r["test_accuracy_mean"], 100 * r["rho2_mean"],
                        xerr=100 * np.nan_to_num(r["test_accuracy_std"]), yerr=100 * np.nan_to_num(r["rho2_std"]),
                        fmt=markers[k % len(markers)], capsize=3, color=palette[r["recipe"]], label=r["recipe"])
        ax.set_xlabel("clean test accuracy (%)")
        ax.set_ylabel("ρ2 (×10⁻²)")
        ax.set_title(f"{model}: mean ± std over {int(sub['n'].max())} seeds\n"
                     f"{scale.get(model, '')}; the paper: full MNIST", fontsize=10)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path = out / "rho2_vs_accuracy.png"
    save_figure(fig, path.with_suffix(""), PAPER)
    return path


def make(frame, out_dir) -> list[Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = out / "report.md"
    selection = select_runs(frame, TASK, suite=SUITE, group="model", group_default="lenet-5",
                            where=_is_test)
    runs, notes = selection.runs, selection.notes
    if runs.empty:
        report.write_text("# DeepDefense\n\nNo finished `robust_training` runs in this store: "
                          "run `suites/papers/deepdefense.yaml` first.\n")
        return [report]
    table = summarize_recipes(runs)
    csv = out / "table.csv"
    table.to_csv(csv, index=False)
    scale = {model: f"{group['task_params'].iloc[0].get('dataset', 'mnist-5k')}, "
                    f"{group['task_params'].iloc[0].get('n_test', 200)} attacked test points"
             for model, group in runs.groupby("model")}
    written = [csv, plot(table, out, scale)]
    failed = frame[(frame["task"] == TASK) & (frame["status"] != "done")]
    lines = ["# DeepDefense (Yan et al., NeurIPS 2018) at robench scale", "",
             "## Scale we ran at", ""]
    for model, group in runs.groupby("model"):
        p = group["task_params"].iloc[0]
        seeds = sorted({int(s) for s in group["seed"]})
        lines.append(
            f"- **{model}** on `{p.get('dataset', 'mnist-5k')}`: vanilla model trained "
            f"{p.get('baseline_epochs', 10)} epochs, then every recipe fine-tunes it for {p.get('epochs', 5)} "
            f"epoch(s) (batch {p.get('batch_size', 64)}, lr {p.get('lr', 0.005)}"
            + (f", first {p['n_train']} training images" if p.get("n_train") else "")
            + f"); attacks on the first {p.get('n_test', 200)} test images (DeepFool {p.get('deepfool_steps', 50)} "
            f"steps, PGD {p.get('pgd_steps', 20)} steps; preset `{p.get('attack_preset', 'autoattack-fast')}` "
            f"at {', '.join(f'{f:g}' for f in p.get('preset_factors') or p.get('fgs_factors') or [])} × ε_ref); "
            f"seeds {', '.join(map(str, seeds))}; "
            f"ε_ref = {group['metrics'].map(lambda m: m.get('eps_ref', math.nan)).iloc[0]:.4f}")
    lines += [
        "- ε_ref = ρ2 of the seed-0 vanilla model × mean ‖x‖∞ of the attacked images (≈ ρ2 on MNIST); "
        "FGS/PGD budgets are 0.2, 0.5, 1 × ε_ref (see `robench/tasks/robust_training/task.py`)",
        "- clean accuracy is on the whole test split; ρ2 and attack accuracies on the attacked subset",
        "- the paper: full MNIST (60k/10k), reference models trained in MatConvNet, 5 fine-tuning "
        "epochs at lr 5e-4; our numbers are *not* comparable in absolute terms, only the ordering "
        "of recipes is", ""]
    lines += selection_section(frame)
    for model in dict.fromkeys(table["model"]):
        lines += [f"## {model}", "", markdown_table(table, model), "", verdict(table, model), "",
                  stronger_attacks_sentence(table, model), ""]
    lines += ["## Published numbers", "",
              f"The paper ({papers.PAPERS['deepdefense'].citation}) claims that DeepDefense gives clearly higher "
              "ρ2 than vanilla training, Parseval networks and adversarial training at the same or better clean "
              "accuracy on MNIST (MLP, LeNet), CIFAR-10 and ImageNet. Its per-model numbers are for full-size "
              "data and reference models we do not run, and robench has not checked them against its tables, so "
              "no published number is shown beside ours: the comparison is the ordering of the recipes.", ""]
    if notes or len(failed):
        lines += ["## Notes", ""] + [f"- {n}" for n in notes]
        if len(failed):
            lines.append(f"- {len(failed)} robust_training run(s) in the store did not finish "
                         f"(status {', '.join(sorted(set(failed['status'])))}); they are not in the table")
        lines.append("")
    lines.append("![ρ2 vs clean accuracy](rho2_vs_accuracy.png)")
    lines += ["", *papers.sources_section("deepdefense")]
    report.write_text("\n".join(lines) + "\n")
    return [report] + written
