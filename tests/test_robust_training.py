"""The robust_training task (DeepDefense): the unrolled differentiable DeepFool, the
regularizer's gradient, Parseval's retraction, and tiny end-to-end runs."""

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
            pgd_steps=3, batch_size=64)


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
        assert 0 <= m["clean_accuracy"] <= 1 and 0.5 < m["test_accuracy"] <= 1
        for f in ("0.2x", "0.5x", "1x"):
            assert 0 <= m[f"pgd_accuracy@{f}"] <= m[f"fgs_accuracy@{f}"] + 0.2
            assert m[f"fgs_accuracy@{f}"] <= m["clean_accuracy"]
        assert m["fgs_accuracy@0.2x"] >= m["fgs_accuracy@1x"]
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
    attack = fb.attacks.L2DeepFoolAttack(steps=info["deepfool_steps"], candidates=10, overshoot=0.02, loss="logits")
    adv, _, hit = attack(fb.PyTorchModel(model, bounds=(0, 1)), x, y, epsilons=None)
    correct = model(x).argmax(1) == y
    ratio = (adv - x).flatten(1).norm(dim=1) / x.flatten(1).norm(dim=1)
    ratio = torch.where(correct, ratio, torch.zeros_like(ratio))
    keep = ~correct | hit
    assert float(ratio[keep].double().mean()) == pytest.approx(result.metrics["rho2"], rel=1e-4)
    assert float(correct.double().mean()) == pytest.approx(result.metrics["clean_accuracy"])


def test_bad_params_are_rejected():
    with pytest.raises(UserError, match=r"^task 'robust_training': params\.fgs_factors"):
        RobustTrainingTask(fgs_factors=(1.0, 0.5))
    with pytest.raises(UserError, match=r"^task 'robust_training': params\.nonsense: unknown key"):
        RobustTrainingTask(nonsense=1)


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
