"""The robust_training task (DeepDefense): the unrolled differentiable DeepFool, the
regularizer's gradient, Parseval's retraction, tiny end-to-end runs, the worst case over
the AutoAttack attacks on an adversarially trained model, selection on a validation split
that never reads the test split, and re-scoring a run from its artifacts."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from robench import registry
from robench.errors import UserError

registry.load_builtins()  # before the task modules register themselves (else: duplicate names)
from robench.tasks.base import RunContext
from robench.tasks.robust_training.methods._deepfool import deepdefense_regularizer, deepfool_l2
from robench.tasks.robust_training.methods.deepdefense import DeepDefense
from robench.tasks.robust_training.methods.parseval import Parseval, parseval_retraction
from robench.tasks.robust_training.methods.vanilla import Vanilla
from robench.tasks.robust_training.task import RobustTrainingTask

TINY = dict(model="mlp-500-150", baseline_epochs=1, epochs=1, n_train=256, n_test=24, deepfool_steps=30,
            pgd_steps=3, batch_size=64, attack_preset="smoke")


def tiny_net(act=nn.ReLU, classes=5, dtype=torch.float32, scale=1.0, seed=0):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Flatten(), nn.Linear(36, 24), act(), nn.Linear(24, 16), act(), nn.Linear(16, classes))
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(scale)
    return net.to(dtype)


def test_unrolled_deepfool_matches_foolbox():
    import foolbox as fb

    net = tiny_net(scale=2.0).eval()
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(64, 1, 6, 6, generator=gen) * 0.8 + 0.1
    y = net(x).argmax(1)
    y[:8] = (y[:8] + 1) % 5  # a few misclassified points: foolbox leaves them alone
    for steps in (1, 3, 8):
        ours = deepfool_l2(net, x, y, steps=steps, candidates=4, bounds=(0.0, 1.0), create_graph=False)
        for p in net.parameters():
            p.requires_grad_(False)
        attack = fb.attacks.L2DeepFoolAttack(steps=steps, candidates=4, overshoot=0.02, loss="logits")
        adv, _, _ = attack(fb.PyTorchModel(net, bounds=(0, 1)), x, y, epsilons=None)
        for p in net.parameters():
            p.requires_grad_(True)
        ok = ours.correct
        assert ok.sum() >= 40
        theirs = (adv - x)[ok]
        diff = (ours.perturbation[ok] - theirs).flatten(1).norm(dim=1)
        assert float(diff.max()) <= 1e-4 * max(1.0, float(theirs.flatten(1).norm(dim=1).max()))
        # rho as the attack layer defines it (per-sample ratio)
        ratio = theirs.flatten(1).norm(dim=1) / x[ok].flatten(1).norm(dim=1)
        assert torch.allclose(ours.rho[ok], ratio, atol=1e-5)
    assert ours.fooled[ok].float().mean() > 0.9  # 8 steps: (almost) every correct point is broken


def test_misclassified_points_are_moved_to_their_label():
    net = tiny_net(scale=2.0).eval()
    x = torch.rand(32, 1, 6, 6, generator=torch.Generator().manual_seed(2)) * 0.8 + 0.1
    y = (net(x).argmax(1) + 2) % 5  # all wrong
    out = deepfool_l2(net, x, y, steps=20, bounds=None, create_graph=False)
    assert not out.correct.any()
    with torch.no_grad():
        moved = net(x + out.perturbation).argmax(1)
    assert (moved[out.fooled] == y[out.fooled]).all() and out.fooled.float().mean() > 0.6


def _flat_grad(net, loss):
    grads = torch.autograd.grad(loss, list(net.parameters()))
    return torch.cat([g.flatten() for g in grads])


def test_regularizer_gradient_matches_finite_differences_through_all_iterations():
    net = tiny_net(act=nn.Tanh, classes=4, dtype=torch.float64, scale=1.5, seed=3)
    x = torch.rand(12, 1, 6, 6, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    with torch.no_grad():
        y = net(x).argmax(1)
    y[:3] = (y[:3] + 1) % 4  # both branches of the regularizer: exp(-c rho) and exp(d rho)
    kw = dict(lam=15.0, c=25.0, d=5.0, steps=4, candidates=4, bounds=None)

    loss, res = deepdefense_regularizer(net, x, y, **kw)
    assert res.correct.sum() == 9
    full = _flat_grad(net, loss)
    detached = _flat_grad(net, deepdefense_regularizer(net, x, y, detach_between_steps=True, **kw)[0])

    params = list(net.parameters())
    flat = torch.cat([p.detach().flatten() for p in params])
    rng = np.random.default_rng(0)
    coords = rng.choice(flat.numel(), size=12, replace=False)
    h = 1e-6
    numeric = []
    for i in coords:
        vals = []
        for sign in (1, -1):
            torch.nn.utils.vector_to_parameters(flat.clone().index_add_(0, torch.tensor([i]), torch.tensor([sign * h], dtype=flat.dtype)), params)
            with torch.enable_grad():
                vals.append(float(deepdefense_regularizer(net, x, y, **kw)[0].detach()))
        numeric.append((vals[0] - vals[1]) / (2 * h))
    torch.nn.utils.vector_to_parameters(flat, params)
    numeric = torch.tensor(numeric, dtype=torch.float64)
    assert torch.allclose(full[coords], numeric, rtol=1e-4, atol=1e-7), (full[coords], numeric)
    # the gradient flows through every DeepFool iteration: cutting it between steps changes it
    gap = (detached[coords] - numeric).norm() / numeric.norm()
    assert gap > 1e-2


def test_parseval_retraction_keeps_w_wt_near_identity():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(5)

    def drift(beta: float, shape) -> float:
        w = torch.randn(shape, generator=torch.Generator().manual_seed(6))
        w = w / w.view(shape[0], -1).norm(dim=1).view(-1, *[1] * (len(shape) - 1))  # unit rows
        for _ in range(300):
            w += 0.01 * torch.randn(shape, generator=gen)  # stand-in for SGD updates
            if beta:
                parseval_retraction(w, beta)
        m = w.view(shape[0], -1)
        m = m if m.shape[0] <= m.shape[1] else m.t()
        return float((m @ m.t() - torch.eye(m.shape[0])).norm() / math.sqrt(m.shape[0]))

    for shape in ((20, 60), (8, 3, 5, 5), (60, 20)):
        with_r, without = drift(0.05, shape), drift(0.0, shape)
        assert with_r < 0.2 and with_r < 0.2 * without, (shape, with_r, without)


def test_parseval_recipe_retracts_every_layer():
    net = tiny_net()
    before = [m.weight.detach().clone() for m in net if isinstance(m, nn.Linear)]
    Parseval(beta=0.01).after_step(net)
    after = [m.weight.detach() for m in net if isinstance(m, nn.Linear)]
    assert all(not torch.equal(a, b) for a, b in zip(before, after))


# -- end to end ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    torch.set_num_threads(1)
    cache = tmp_path_factory.mktemp("cache")
    task = RobustTrainingTask(**TINY)
    out = {}
    for name, method in (("vanilla", Vanilla()), ("deepdefense", DeepDefense())):
        folder = tmp_path_factory.mktemp(name)
        out[name] = (task.run(method, 0, RunContext(artifact_dir=folder, cache_dir=cache)), folder)
    return task, out


def test_end_to_end_metrics(runs):
    task, out = runs
    for name, (result, folder) in out.items():
        m = result.metrics
        assert 0 <= m["rho2"] < 1 and m["rho2"] > 0
        assert 0 <= m["clean_accuracy_attacked"] <= 1 and 0.5 < m["test_accuracy"] <= 1
        assert m["clean_accuracy"] == m["test_accuracy"]  # the whole test split; the attacked images apart
        for f in ("0.2x", "0.5x", "1x"):
            assert 0 <= m[f"pgd_accuracy@{f}"] <= m[f"fgs_accuracy@{f}"] + 0.2
            assert m[f"fgs_accuracy@{f}"] <= m["clean_accuracy_attacked"]
        assert m["fgs_accuracy@0.2x"] >= m["fgs_accuracy@1x"]
        for f in ("0.2x", "0.5x", "1x"):  # the worst case over FGS, PGD, APGD-CE and APGD-T, point by point
            each = [m[f"{a}_accuracy@{f}"] for a in ("fgs", "pgd", "apgd_ce", "apgd_t")]
            assert m[f"robust_accuracy@{f}"] <= min(each)
            shares = [m[f"broken_first_by_{a}@{f}"] for a in ("fgsm_linf", "pgd_linf", "apgd_ce_linf", "apgd_t_linf")]
            assert sum(shares) == pytest.approx(m["clean_accuracy_attacked"] - m[f"robust_accuracy@{f}"])
        assert m["sanity_worst_case_le_every_attack_linf"] == 1.0
        assert m["eps_ref"] == pytest.approx(m["eps_ref_rho2_vanilla"], rel=1e-2)  # MNIST: ||x||inf ≈ 1
        assert m["train_seconds"] > 0 and m["train_cpu_seconds"] > 0
        sanity = {k: v for k, v in m.items() if k.startswith("sanity_")}
        assert sanity and set(sanity.values()) <= {0.0, 1.0}
        assert set(result.artifacts) == {"model", "robustness", "eval"}
        assert all((folder / p).exists() for p in result.artifacts.values())
    # eps_ref is one number for every recipe (cached from the seed-0 vanilla model)
    assert out["vanilla"][0].metrics["eps_ref"] == out["deepdefense"][0].metrics["eps_ref"]
    assert out["vanilla"][0].metrics["rho2"] != out["deepdefense"][0].metrics["rho2"]


def test_independent_foolbox_deepfool_reproduces_stored_rho2(runs):
    import foolbox as fb

    from robench.data import load_dataset
    from robench.models import build_model

    _, out = runs
    result, folder = out["deepdefense"]
    info = json.loads((folder / "eval.json").read_text())
    model = build_model(info["model"])
    model.load_state_dict(torch.load(folder / "model.pt", weights_only=True))
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    data = load_dataset(info["dataset"])
    lo, hi = info["test_indices"]
    x, y = data.test_x[lo:hi], data.test_y[lo:hi]
    assert info["split"] == "test" and [a["name"] for a in info["attacks"]] == [
        "deepfool_l2", "fgsm_linf", "pgd_linf", "apgd_ce_linf", "apgd_t_linf"]
    attack = fb.attacks.L2DeepFoolAttack(steps=info["deepfool_steps"], candidates=10, overshoot=0.02, loss="logits")
    adv, _, hit = attack(fb.PyTorchModel(model, bounds=(0, 1)), x, y, epsilons=None)
    correct = model(x).argmax(1) == y
    ratio = (adv - x).flatten(1).norm(dim=1) / x.flatten(1).norm(dim=1)
    ratio = torch.where(correct, ratio, torch.zeros_like(ratio))
    keep = ~correct | hit
    assert float(ratio[keep].double().mean()) == pytest.approx(result.metrics["rho2"], rel=1e-4)
    assert float(correct.double().mean()) == pytest.approx(result.metrics["clean_accuracy_attacked"])


def test_bad_params_are_rejected():
    with pytest.raises(UserError, match=r"^task 'robust_training': params\.fgs_factors"):
        RobustTrainingTask(fgs_factors=(1.0, 0.5))
    with pytest.raises(UserError, match=r"^task 'robust_training': params\.nonsense: unknown key"):
        RobustTrainingTask(nonsense=1)
    with pytest.raises(UserError, match=r"^task 'robust_training': params\.attack_preset: unknown attack preset "
                                        r"'autoattack-fats'; did you mean 'autoattack-fast'\?"):
        RobustTrainingTask(attack_preset="autoattack-fats")
    with pytest.raises(UserError, match=r"params\.validation_size: must be at least n_test=300"):
        RobustTrainingTask(eval_split="validation", n_test=300, validation_size=200)
    with pytest.raises(UserError, match=r"params\.eval_split: Input should be 'test' or 'validation'"):
        RobustTrainingTask(eval_split="val")
    with pytest.raises(UserError, match=r"params\.preset_factors: must be a non-empty subset of fgs_factors"):
        RobustTrainingTask(preset_factors=(0.3,))


def test_the_preset_attacks_run_at_the_budgets_asked_for():
    eps = (0.02, 0.05, 0.1)
    full = {c.name: c.epsilons for c in RobustTrainingTask().attacks(eps)}
    assert full == {"deepfool_l2": None, "fgsm_linf": eps, "pgd_linf": eps, "apgd_ce_linf": eps, "apgd_t_linf": eps}
    at_1x = {c.name: c.epsilons for c in RobustTrainingTask(preset_factors=(1.0,)).attacks(eps)}
    assert at_1x["apgd_ce_linf"] == at_1x["apgd_t_linf"] == (0.1,) and at_1x["pgd_linf"] == eps
    # a preset's attacks named like the task's own (mnist-default's FGSM, PGD) are the task's; l2 ones are left out
    names = [c.name for c in RobustTrainingTask(attack_preset="mnist-default").attacks(eps)]
    assert names == ["deepfool_l2", "fgsm_linf", "pgd_linf", "apgd_ce_linf", "apgd_t_linf"]
    assert [c.name for c in RobustTrainingTask(attack_preset=None).attacks(eps)] == ["deepfool_l2", "fgsm_linf", "pgd_linf"]


def test_a_suite_with_an_unknown_preset_fails_validation_in_one_line(tmp_path):
    from robench.api import validate

    suite = tmp_path / "s.yaml"
    suite.write_text("suite: s\ntasks:\n  - task: robust_training\n    params: {attack_preset: mnist-defualt}\n"
                     "    methods: [{name: vanilla}]\n")
    with pytest.raises(UserError, match=r"s\.yaml: tasks\[0\]\.params\.attack_preset: unknown attack preset "
                                        r"'mnist-defualt'; did you mean 'mnist-default'\?") as info:
        validate(suite)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("name, params, match", [
    ("deepdefense", {"steps": 0}, r"^method 'deepdefense': steps=0; expected an integer >= 1$"),
    ("deepdefense", {"candidates": 1}, r"^method 'deepdefense': candidates=1; expected an integer >= 2$"),
    ("deepdefense", {"lam": -1.0}, r"^method 'deepdefense': lam=-1\.0; expected a number >= 0$"),
    ("adv-fgs", {"clean_weight": 1.5}, r"^method 'adv-fgs': clean_weight=1\.5; expected a number in \[0, 1\]$"),
    ("adv-pgd", {"eps": -0.1}, r"^method 'adv-pgd': eps=-0\.1; expected a number >= 0$"),
    ("adv-pgd", {"steps": 2.5}, r"^method 'adv-pgd': steps=2\.5; expected an integer >= 1$"),
    ("parseval", {"beta": -1e-3}, r"^method 'parseval': beta=-0\.001; expected a number >= 0$"),
])
def test_bad_recipe_params_are_rejected_at_construction(name, params, match):
    with pytest.raises(UserError, match=match):
        registry.methods.get(name, task="robust_training")(**params)


def test_a_recipe_of_another_base_is_refused_at_registration():
    from robench.tasks.base import Method

    class NotARecipe(Method):
        pass
    with pytest.raises(UserError, match="does not subclass .*RobustTrainingRecipe"):
        registry.register_method("robust_training", "rt-test-not-a-recipe")(NotARecipe)
    assert ("rt-test-not-a-recipe", "robust_training") not in registry.methods


def test_deepdefense_figure_table_and_verdict(tmp_path):
    import pandas as pd

    from robench.report.figures.deepdefense import make

    rows = []
    for recipe, rho, acc in (("vanilla", 0.12, 0.95), ("deepdefense", 0.20, 0.95), ("adv-fgs", 0.15, 0.94),
                             ("deepdefense(c=10)", 0.14, 0.92)):
        for seed in range(3):
            metrics = {"rho2": rho + 0.001 * seed, "test_accuracy": acc, "fgs_accuracy@0.2x": 0.9,
                       "fgs_accuracy@0.5x": 0.7, "fgs_accuracy@1x": 0.3, "pgd_accuracy@1x": 0.2,
                       "train_cpu_seconds": 10.0, "eps_ref": 0.12}
            rows.append({"task": "robust_training", "status": "done", "suites": ["deepdefense"],
                         "task_params": {"model": "mlp-500-150", "epochs": 5}, "task_label": "model=mlp-500-150",
                         "method_label": recipe, "seed": seed, "metrics": metrics})
    files = make(pd.DataFrame(rows), tmp_path)
    report = (tmp_path / "report.md").read_text()
    assert "| deepdefense | 3 | 95.0 ± 0.0 | 20.10 ± 0.10" in report
    # one verdict per DeepDefense configuration; DeepDefense variants are not each other's "other recipes"
    assert "mlp-500-150 (deepdefense): the claim (higher ρ2 than vanilla at comparable clean accuracy) held" in report
    assert "highest ρ2" in report
    assert ("mlp-500-150 (deepdefense(c=10)): the claim (higher ρ2 than vanilla at comparable clean accuracy) "
            "did not hold") in report
    assert "clean accuracy dropped by 3.0 points" in report and "adv-fgs reached ρ2 = 15.10" in report
    table = pd.read_csv(tmp_path / "table.csv")
    assert list(table["recipe"]) == ["vanilla", "deepdefense", "deepdefense(c=10)", "adv-fgs"]
    assert all(p.exists() for p in files)


def test_deepdefense_report_selects_c_on_validation_runs_only(tmp_path):
    import pandas as pd

    from robench.report.figures.deepdefense import make

    rows = []

    def add(recipe, split, rho, acc, pgd, worst):
        for seed in range(3):
            metrics = {"rho2": rho, "pgd_accuracy@1x": pgd, "robust_accuracy@1x": worst, "eps_ref": 0.12}
            metrics.update({"validation_accuracy": acc} if split == "validation" else {"test_accuracy": acc})
            params = {"model": "mlp-500-150", "epochs": 5, "eval_split": split, "validation_size": 1000}
            rows.append({"task": "robust_training", "status": "done", "suites": ["deepdefense"], "seed": seed,
                         "task_params": params, "task_label": f"split={split}", "method_label": recipe,
                         "metrics": metrics})
    # validation: c=50 has the highest rho2 but costs 2 points of accuracy; c=10 is the pick
    for recipe, rho, acc in (("vanilla", 0.11, 0.93), ("deepdefense", 0.14, 0.94), ("deepdefense(c=10)", 0.16, 0.935),
                             ("deepdefense(c=50)", 0.19, 0.91)):
        add(recipe, "validation", rho, acc, 0.3, 0.3)
    # test split (more runs than the validation setting would need to win the selection)
    for recipe, rho, pgd, worst in (("vanilla", 0.12, 0.15, 0.14), ("deepdefense(c=10)", 0.18, 0.53, 0.40),
                                    ("adv-pgd", 0.17, 0.60, 0.57), ("adv-fgs", 0.165, 0.45, 0.43),
                                    ("parseval", 0.125, 0.18, 0.16)):
        add(recipe, "test", rho, 0.95, pgd, worst)
    make(pd.DataFrame(rows), tmp_path)
    report = (tmp_path / "report.md").read_text()
    section = report[report.index("## Choosing c"):report.index("## mlp-500-150")]
    assert "| deepdefense(c=50) | 19.00 ± 0.00 | 91.0 ± 0.0 |" in section
    assert "Chosen: **deepdefense(c=10)**" in section
    results = report[report.index("## mlp-500-150"):]
    assert "| deepdefense(c=50) |" not in results and "| deepdefense |" not in results  # no validation row
    assert "worst case ε_ref (%)" in results and "| 57.0 ± 0.0 |" in results
    assert "13.0 points below PGD's alone (most for deepdefense(c=10))" in results
    # adv-fgs overtakes DeepDefense under the worst case: the report says so
    assert "is adv-pgd under both; the order changes: adv-pgd > adv-fgs > deepdefense(c=10) > parseval" in results


def test_regularizer_gradient_is_finite_when_samples_finish_early():
    # misclassified samples that are corrected after one step have an all-zero input
    # gradient in the later iterations; the backward pass must not turn that into NaN
    net = tiny_net(scale=2.0)
    x = torch.rand(48, 1, 6, 6, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        y = net(x).argmax(1)
    y[::3] = (y[::3] + 1) % 5
    loss, res = deepdefense_regularizer(net, x, y, steps=6, bounds=None)
    grads = torch.autograd.grad(loss, list(net.parameters()))
    assert (~res.correct).any() and res.fooled[~res.correct].any()
    assert all(torch.isfinite(g).all() for g in grads)


# -- stronger attacks, validation selection, re-scoring ----------------------------------------

def _by_attack(seen):
    out = {}
    for name, eps, *_ in seen:
        out.setdefault(name, set()).add(eps)
    return out


def test_default_preset_on_an_adversarially_trained_model_is_no_weaker_than_pgd40(tmp_path_factory):
    """adv-pgd fine-tuning, then the task's default attacks (FGS, PGD, APGD-CE, APGD-T with
    AutoAttack's settings): the worst case is ≤ an independent 40-step PGD on the same
    points at every budget, and every adversarial example lies in its ε-ball and the box."""
    from robench.attacks import evaluate_robustness
    from robench.data import load_dataset
    from robench.models import build_model

    torch.set_num_threads(1)
    params = {**TINY, "n_test": 40, "attack_preset": "autoattack-fast", "preset_factors": (0.5, 1.0)}
    task = RobustTrainingTask(**params)
    folder = tmp_path_factory.mktemp("adv-pgd")
    method = registry.methods.get("adv-pgd", task="robust_training")()
    result = task.run(method, 0, RunContext(artifact_dir=folder, cache_dir=tmp_path_factory.mktemp("cache")))
    m = result.metrics
    info = json.loads((folder / "eval.json").read_text())
    model = build_model(info["model"])
    model.load_state_dict(torch.load(folder / "model.pt", weights_only=True))
    model.eval()
    data = load_dataset("mnist-5k")
    x, y = data.test_x[:40], data.test_y[:40]
    seen = []
    evaluate_robustness(model, x, y, task.attacks(tuple(info["epsilons"])), seed=0,
                        on_adversarial=lambda name, eps, xb, adv, hit: seen.append((name, eps, xb, adv)))
    assert {(name, len(seen_eps)) for name, seen_eps in _by_attack(seen).items()} == {
        ("fgsm_linf", 3), ("pgd_linf", 3), ("apgd_ce_linf", 2), ("apgd_t_linf", 2)}
    for name, eps, xb, adv in seen:
        assert float((adv - xb).abs().max()) <= eps * (1 + 1e-5) + 1e-6, name
        assert float(adv.min()) >= 0.0 and float(adv.max()) <= 1.0, name
    for p in model.parameters():
        p.requires_grad_(False)
    for f, eps in zip(("0.2x", "0.5x", "1x"), info["epsilons"]):
        gen = torch.Generator().manual_seed(1)
        adv = (x + (torch.rand(x.shape, generator=gen) * 2 - 1) * eps).clamp(0, 1)
        for _ in range(40):  # Madry et al.: 40 signed steps of 2.5·ε/40 from a random start
            adv.requires_grad_(True)
            grad, = torch.autograd.grad(torch.nn.functional.cross_entropy(model(adv), y), adv)
            adv = torch.min(torch.max(adv.detach() + 2.5 * eps / 40 * grad.sign(), x - eps), x + eps).clamp(0, 1)
        with torch.no_grad():
            pgd40 = float(((model(x).argmax(1) == y) & (model(adv).argmax(1) == y)).double().mean())
        assert m[f"robust_accuracy@{f}"] <= pgd40, (f, m[f"robust_accuracy@{f}"], pgd40)
        if f == "0.2x":  # not among preset_factors: FGS and PGD only
            assert "apgd_t_accuracy@0.2x" not in m
            assert m["robust_accuracy@0.2x"] <= min(m["fgs_accuracy@0.2x"], m["pgd_accuracy@0.2x"])
        else:
            assert m[f"robust_accuracy@{f}"] <= min(m[f"apgd_ce_accuracy@{f}"], m[f"apgd_t_accuracy@{f}"])
    assert m["robust_accuracy@1x"] < m["clean_accuracy_attacked"]  # the attacks do something


def test_rescore_reproduces_the_stored_metrics(runs):
    task, out = runs
    result, folder = out["deepdefense"]
    rescored = task.rescore(folder, 0, RunContext(artifact_dir=folder, cache_dir=folder))
    # left out: the wall-clock metrics, and the duplicates named by the exact ε (their names
    # depend on ε_ref, which the re-score recomputes from the maintainer's vanilla model)
    left_out = {"train_seconds", "train_cpu_seconds", "eval_seconds"}
    by_eps = {k for k in result.metrics if "@" in k and not k.endswith("x")}
    assert by_eps and set(rescored) == set(result.metrics) - left_out - by_eps
    assert all(rescored[k] == result.metrics[k] for k in rescored), \
        {k: (rescored[k], result.metrics[k]) for k in rescored if rescored[k] != result.metrics[k]}
    with pytest.raises(UserError, match="cannot read the run's artifacts"):
        task.rescore(folder / "missing", 0, RunContext(artifact_dir=folder, cache_dir=folder))


def test_validation_runs_never_read_the_test_split(tmp_path_factory):
    from robench.data import Splits, load_dataset
    from robench.registry import register_dataset

    def read(self):
        raise AssertionError("the test split was read")

    class NoTestSplit(Splits):
        test_x = test_y = property(read, lambda self, value: None)  # reading either one fails the test

    @register_dataset("rt-test-no-test-split")
    def _no_test(root=None):
        d = load_dataset("mnist-5k")
        return NoTestSplit("rt-test-no-test-split", d.train_x, d.train_y, None, None, 10)

    torch.set_num_threads(1)
    cache = tmp_path_factory.mktemp("cache")
    task = RobustTrainingTask(**{**TINY, "dataset": "rt-test-no-test-split", "eval_split": "validation",
                                 "validation_size": 500})
    folder = tmp_path_factory.mktemp("validation")
    result = task.run(Vanilla(), 0, RunContext(artifact_dir=folder, cache_dir=cache))
    m = result.metrics
    assert "test_accuracy" not in m and "baseline_test_accuracy" not in m
    assert 0.5 < m["validation_accuracy"] <= 1 and 0.5 < m["baseline_validation_accuracy"] <= 1
    assert m["rho2"] > 0 and m["eps_ref"] > 0
    info = json.loads((folder / "eval.json").read_text())
    assert info["split"] == "validation" and info["train_indices"] == [3500, 3500 + TINY["n_test"]]
    # the baseline never saw the held-out images: its own cache file, trained on 3500 images
    (key, build), = task.prerequisites(Vanilla(), 0)
    assert (cache / key).exists() and "held_out" not in RobustTrainingTask(**TINY)._spec(0).__dict__
    assert RobustTrainingTask(**TINY).prerequisites(Vanilla(), 0)[0][0] != key
    assert build(cache, "cpu") == [cache / key]
    # and the attacked images are the first validation images (training images 3500, ...)
    report = np.load(folder / "robustness.npz")
    assert np.array_equal(report["labels"], load_dataset("mnist-5k").train_y[3500:3500 + TINY["n_test"]].numpy())


def test_the_deepdefense_suite_selects_on_validation_and_compares_on_test():
    from pathlib import Path

    from robench.api import validate

    specs = validate(Path(__file__).resolve().parent.parent / "suites" / "papers" / "deepdefense.yaml")
    assert len(specs) == 54
    selection = [s for s in specs if s.task_params["eval_split"] == "validation"]
    assert {s.method_params["c"] for s in selection if s.method == "deepdefense"} == {2.0, 5.0, 10.0, 25.0, 50.0}
    assert {s.task_params["model"] for s in selection} == {"mlp-500-150"}
    assert all(s.task_params["validation_size"] == 1000 for s in selection)
    test = [s for s in specs if s.task_params["eval_split"] == "test"]
    assert len(test) == 36 and {s.task_params["model"] for s in test} == {"mlp-500-150", "lenet-5"}
    assert all(s.task_params["preset_factors"] == [1.0] and s.task_params["attack_preset"] == "autoattack-fast"
               for s in specs)


def test_rescore_attacks_at_the_claimed_eps_ref_only_within_its_tolerance(runs, monkeypatch):
    """A claim from another kernel set carries an ε_ref a retrained vanilla model moved a
    little: the re-score attacks at the claim's budgets when its ε_ref is within tolerance
    of the maintainer's (so the per-budget metrics compare), else at the maintainer's."""
    task, out = runs
    result, folder = out["deepdefense"]
    seen = []
    score = task.score
    monkeypatch.setattr(task, "score", lambda model, data, eps, seed: seen.append(eps) or score(model, data, eps, seed))
    ctx = RunContext(artifact_dir=folder, cache_dir=folder)
    own = task.rescore(folder, 0, ctx)["eps_ref"]
    tol = task.rescore_tolerance("eps_ref")
    near, far = own + 0.5 * tol, own + 2 * tol
    task.rescore(folder, 0, ctx, claimed={"eps_ref": near})
    task.rescore(folder, 0, ctx, claimed={"eps_ref": far})
    factors = task.params.fgs_factors
    assert seen[0] == pytest.approx(tuple(f * own for f in factors))
    assert seen[1] == pytest.approx(tuple(f * near for f in factors))
    assert seen[2] == pytest.approx(tuple(f * own for f in factors))


# ------------------------------------------------------------------ no eps_ref: which points were the trouble

def _eps_ref_of(net, labels, tmp_path, monkeypatch, **params):
    """``reference_epsilon`` with ``net`` as the seed-0 vanilla model, on 16 random 6×6
    images labelled ``labels`` (no training, no dataset read)."""
    import robench.training
    from robench.data import ArraySplit, Dataset

    x = torch.rand(len(labels), 1, 6, 6, generator=torch.Generator().manual_seed(0))
    data = Dataset(name="tiny", train=ArraySplit(x, labels), test=ArraySplit(x, labels), num_classes=5)
    monkeypatch.setattr(robench.training, "trained_baseline", lambda *a, **k: (net.eval(), {"test_accuracy": 0.0}))
    task = RobustTrainingTask(**{**TINY, "n_test": len(labels), "eval_batch_size": len(labels), **params})
    return task.reference_epsilon(data, RunContext(tmp_path, tmp_path / "cache"))


def _predicting(cls: int, margin: float):
    """A linear model whose logits favour class ``cls`` by ``margin`` whatever the image."""
    net = nn.Sequential(nn.Flatten(), nn.Linear(36, 5))
    with torch.no_grad():
        net[1].weight.normal_(0, 0.01, generator=torch.Generator().manual_seed(0))
        net[1].bias.zero_()
        net[1].bias[cls] = margin
    return net


def test_no_eps_ref_says_whether_the_model_or_deepfool_failed(tmp_path, monkeypatch):
    from conftest import check_one_line_user_error

    half = torch.tensor([0, 1] * 8)  # class 0 everywhere: 8 points right, 8 wrong
    # DeepFool cannot cross a margin of 1e4 within [0, 1]: rho2 averages the 8 wrong points' zeros
    check_one_line_user_error(lambda: _eps_ref_of(_predicting(0, 1e4), half, tmp_path / "a", monkeypatch),
                              "eps_ref undefined for mlp-500-150", "DeepFool found no adversarial example",
                              "deepfool_steps=30", "any of the 8 correctly classified points", "n_test=16",
                              "raise deepfool_steps")
    with pytest.raises(UserError) as err:  # ... nor with every point right (rho2 NaN)
        _eps_ref_of(_predicting(0, 1e4), torch.zeros(16, dtype=torch.long), tmp_path / "b", monkeypatch,
                    deepfool_steps=1)
    assert "within deepfool_steps=1 steps for any of the 16 correctly classified" in str(err.value)
    assert "classifies none" not in str(err.value)
    # every point wrong: the model's fault, not DeepFool's
    check_one_line_user_error(lambda: _eps_ref_of(_predicting(0, 1e4), torch.ones(16, dtype=torch.long),
                                                  tmp_path / "c", monkeypatch),
                              "eps_ref undefined for mlp-500-150", "classifies none of the n_test=16 attacked "
                              "points correctly", "raise baseline_epochs")
    # a margin DeepFool can cross: the same points give a positive eps_ref, and no error
    eps_ref, rho2 = _eps_ref_of(_predicting(0, 0.05), half, tmp_path / "d", monkeypatch)
    assert eps_ref > 0 and rho2 > 0


def test_a_fixed_eps_ref_is_the_budget_for_every_model(tmp_path, monkeypatch):
    """`eps_ref: 0.1` (RobustBench's convention: one ε for every model): the attacks run at
    fgs_factors × 0.1; the seed-0 vanilla model is neither a prerequisite of a seed-1 run nor
    used (no DeepFool calibration, no eps_ref_rho2_vanilla); rescore attacks at the same
    budgets. At its default (null) the parameter stays out of the run ids stored before it."""
    from robench.spec import canonical_task_params

    torch.set_num_threads(1)
    params = {**TINY, "n_test": 8, "deepfool_steps": 5, "attack_preset": None}
    fixed = RobustTrainingTask(**params, eps_ref=0.1)
    assert "eps_ref" not in canonical_task_params(RobustTrainingTask, params, "test", "params")
    assert canonical_task_params(RobustTrainingTask, {**params, "eps_ref": 0.1}, "test", "params")["eps_ref"] == 0.1
    assert len(fixed.prerequisites(Vanilla(), 1)) == 1
    assert len(RobustTrainingTask(**params).prerequisites(Vanilla(), 1)) == 2
    monkeypatch.setattr(RobustTrainingTask, "reference_epsilon", lambda *a: pytest.fail("calibrated eps_ref"))
    folder, ctx = tmp_path / "run", RunContext(artifact_dir=tmp_path / "run", cache_dir=tmp_path / "cache")
    folder.mkdir()
    m = fixed.run(Vanilla(), 1, ctx).metrics
    assert m["eps_ref"] == 0.1 and "eps_ref_rho2_vanilla" not in m
    assert {f"fgs_accuracy@{f}" for f in ("0.2x", "0.5x", "1x")} <= set(m)
    budgets = sorted(float(k.split("@")[1]) for k in m if k.startswith("accuracy_under_fgsm_linf@"))  # ε-named twins
    assert budgets == pytest.approx([0.02, 0.05, 0.1])
    rescored = fixed.rescore(folder, 1, ctx)
    assert rescored["eps_ref"] == 0.1 and "eps_ref_rho2_vanilla" not in rescored
    per_budget = [k for k in rescored if k.endswith("x")]
    assert per_budget and all(rescored[k] == m[k] for k in per_budget)
    with pytest.raises(Exception, match="eps_ref"):
        RobustTrainingTask(eps_ref=0.0)
