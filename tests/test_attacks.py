"""The shared attack layer: configs, per-sample evaluation, worst-case aggregation and the
first-broken record, ρ2, npz round trip, sanity flags and input validation, checked against
closed forms (linear models), an independent plain-torch PGD, and the AutoAttack paper's
settings; every adversarial example checked inside its ε-ball and the box."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robench.attacks import (PRESETS, AttackConfig, RobustnessReport, activation_sparsity, apgd_ce, apgd_t,
                             cw_l2, deepfool_l2, describe_attacks, evaluate_robustness, fab_t, fgsm,
                             get_preset, pgd_l2, pgd_linf, run_sanity_checks, sanity_flags, square,
                             weight_sparsity)
from robench.errors import UserError

# -- fixtures ------------------------------------------------------------------------------

LINF_EPS = (0.05, 0.1, 0.2, 0.3)
L2_EPS = (0.5, 1.0, 2.0, 3.0)
# cheap versions of the mnist-default attacks (test budget), same kinds and grids
CHEAP_ATTACKS = (
    deepfool_l2(),
    cw_l2(binary_search_steps=2, steps=30),
    fgsm(LINF_EPS),
    pgd_linf(LINF_EPS, steps=10),
    pgd_l2(L2_EPS, steps=10),
)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """On a busy 2-core box two intra-op threads make these small ops 10-80x slower (spinning
    threads fight for the cores); one thread keeps the module at seconds. Restored after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def mlp_report(mnist_mlp):
    model, x, y = mnist_mlp
    return evaluate_robustness(model, x, y, CHEAP_ATTACKS, batch_size=128)


def linear_problem(num_classes, n=60, dim=12, seed=0):
    """A random linear classifier and inputs well inside the bounds (-5, 5); labels = predictions
    except the last 5, which are wrong on purpose."""
    gen = torch.Generator().manual_seed(seed)
    model = nn.Linear(dim, num_classes)
    with torch.no_grad():
        model.weight.copy_(torch.randn(num_classes, dim, generator=gen))
        model.bias.copy_(torch.randn(num_classes, generator=gen))
    x = torch.rand(n, dim, generator=gen) * 2 - 1
    with torch.no_grad():
        y = model(x).argmax(1)
    y[-5:] = (y[-5:] + 1) % num_classes
    return model, x, y


def closed_form_distance(model, x, y):
    """Exact l2 distance to the decision region's boundary of a linear classifier:
    min over k ≠ y of |f_k − f_y| / ‖w_k − w_y‖ (binary: |w·x + b| / ‖w‖)."""
    with torch.no_grad():
        f = model(x).double()
        w = model.weight.double()
        gaps = (f - f.gather(1, y[:, None])).abs()
        wdiff = (w[None, :, :] - w[y][:, None, :]).norm(dim=2)
        dist = gaps / wdiff
        dist[torch.arange(len(y)), y] = math.inf
        return dist.min(1).values.numpy()


def plain_pgd_linf_robust(model, x, y, eps, steps=40, seed=0):
    """Independent PGD-l∞ (Madry et al.): random start, 40 signed steps of 2.5ε/steps.
    Returns the bool mask of points still classified correctly."""
    torch.manual_seed(seed)
    step = 2.5 * eps / steps
    x_adv = (x + torch.empty_like(x).uniform_(-eps, eps)).clamp(0, 1)
    for _ in range(steps):
        x_adv.requires_grad_(True)
        grad, = torch.autograd.grad(F.cross_entropy(model(x_adv), y), x_adv)
        x_adv = x_adv.detach() + step * grad.sign()
        x_adv = torch.min(torch.max(x_adv, x - eps), x + eps).clamp(0, 1)
    with torch.no_grad():
        return ((model(x).argmax(1) == y) & (model(x_adv).argmax(1) == y)).numpy()


def metrics_equal(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert (a[k] == b[k]) or (math.isnan(a[k]) and math.isnan(b[k])), k


# -- configs -------------------------------------------------------------------------------

def test_presets_and_config_round_trip():
    default = {c.name: c for c in get_preset("mnist-default")}
    assert list(default) == ["deepfool_l2", "cw_l2", "fgsm_linf", "pgd_linf", "pgd_l2",
                             "apgd_ce_linf", "apgd_t_linf", "apgd_ce_l2", "apgd_t_l2"]
    assert default["deepfool_l2"].epsilons is None and default["deepfool_l2"].overshoot == 0.02
    assert default["deepfool_l2"].steps == 50 and default["cw_l2"].minimal
    assert default["fgsm_linf"].epsilons == default["pgd_linf"].epsilons == default["apgd_t_linf"].epsilons == LINF_EPS
    assert default["pgd_l2"].epsilons == default["apgd_ce_l2"].epsilons == L2_EPS
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 10))
    for configs in PRESETS.values():
        for cfg in configs:
            d = cfg.to_dict()
            assert d["version"] == "3" and d[cfg.library] == cfg.library_class
            assert AttackConfig.from_dict(d) == cfg
            if cfg.library == "foolbox":
                cfg.build()  # every preset maps to a constructible attack
            elif cfg.library == "torchattacks":
                assert cfg.foolbox_class is None
                cfg.build_torchattacks(model, 0.1, 10, seed=0)
            else:
                assert cfg.library == "robench" and cfg.kind in ("apgd_ce", "apgd_t")
                cfg.apgd_arguments(10)
    with pytest.raises(UserError, match="did you mean 'smoke'"):
        get_preset("smok")
    with pytest.raises(UserError, match="does not apply"):
        AttackConfig("deepfool", "l2", rel_stepsize=0.1)
    with pytest.raises(UserError, match="does not apply"):
        AttackConfig("apgd_ce", "linf", epsilons=(0.1,), target_classes=3)
    with pytest.raises(UserError, match="minimal-perturbation mode"):
        AttackConfig("cw", "l2", epsilons=(1.0,))
    with pytest.raises(UserError, match="does not support norm"):
        AttackConfig("cw", "linf")
    with pytest.raises(UserError, match=r"p_init must lie in \(0, 1\]"):
        square("linf", (0.1,), p_init=1.5)


def test_autoattack_presets_have_the_papers_settings():
    """Croce & Hein 2020, standard version: APGD-CE and APGD-T 100 iterations, 1 restart,
    APGD-T on the DLR loss with 9 target classes, FAB-T 100 iterations and 9 targets,
    Square 5000 queries with p_init 0.8; worst case per point (the evaluator's rule)."""
    standard = {c.name: c for c in get_preset("autoattack-standard")}
    assert list(standard) == [f"{k}_{n}" for n in ("linf", "l2") for k in ("apgd_ce", "apgd_t", "fab_t", "square")]
    for norm, grid in (("linf", LINF_EPS), ("l2", L2_EPS)):
        ce, t, fab, sq = (standard[f"{k}_{norm}"] for k in ("apgd_ce", "apgd_t", "fab_t", "square"))
        assert (ce.steps, ce.restarts, ce.rho) == (100, 1, 0.75)
        assert (t.steps, t.restarts, t.target_classes, t.rho) == (100, 1, 9, 0.75)
        assert (fab.steps, fab.restarts, fab.target_classes) == (100, 1, 9)
        assert (sq.queries, sq.restarts, sq.p_init) == (5000, 1, 0.8)
        assert ce.epsilons == t.epsilons == fab.epsilons == sq.epsilons == grid
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 10))
    built = {name: cfg.build_torchattacks(model, 0.3, 10, seed=0) for name, cfg in standard.items()
             if cfg.library == "torchattacks"}
    assert standard["apgd_ce_linf"].apgd_arguments(10) == {"norm": "linf", "steps": 100, "restarts": 1,
                                                           "rho": 0.75, "target_classes": None}  # CE loss
    assert standard["apgd_t_l2"].apgd_arguments(10) == {"norm": "l2", "steps": 100, "restarts": 1,
                                                         "rho": 0.75, "target_classes": 9}
    assert built["fab_t_linf"].multi_targeted and built["fab_t_linf"].n_target_classes == 9
    assert built["fab_t_linf"].steps == 100 and built["fab_t_l2"].norm == "L2"
    assert built["square_linf"].n_queries == 5000 and built["square_linf"].rescale_schedule is False
    assert built["square_linf"].loss == "margin"
    # targets are capped at classes − 1 when the model has fewer classes
    assert standard["apgd_t_linf"].apgd_arguments(5)["target_classes"] == 4
    assert standard["fab_t_linf"].build_torchattacks(model, 0.3, 5, seed=0).n_target_classes == 4
    fast = [c.name for c in get_preset("autoattack-fast")]
    assert fast == ["apgd_ce_linf", "apgd_t_linf", "apgd_ce_l2", "apgd_t_l2"]
    text = describe_attacks("autoattack-fast")
    assert text.startswith("APGD-CE l∞ (100 steps) at ε 0.05, 0.1, 0.2, 0.3; APGD-T l∞ (100 steps, 9 targets)")
    default = describe_attacks("mnist-default", exclude=["cw_l2"])
    assert default.startswith("DeepFool l2 (50 steps); FGSM l∞ (1 step) at ε 0.05") and "C&W" not in default
    assert describe_attacks([{"kind": "square", "norm": "l2", "epsilons": [1]}]) == "Square l2 (5000 queries) at ε 1"


# -- closed forms on linear models --------------------------------------------------------

@pytest.mark.parametrize("num_classes", [2, 5])
def test_deepfool_norm_matches_linear_closed_form(num_classes):
    model, x, y = linear_problem(num_classes)
    report = evaluate_robustness(model, x, y, [deepfool_l2(), cw_l2(steps=200, stepsize=0.01)], bounds=(-5, 5))
    exact = closed_form_distance(model, x, y)
    correct = report.clean_correct
    assert correct.sum() == len(y) - 5 and not correct[-5:].any()
    df = report.minimal_norms["deepfool_l2"]
    # foolbox steps to the nearest hyperplane (+1e-4), then overshoots by 2%
    assert np.all(df[correct] >= exact[correct] * (1 - 1e-5))
    assert np.all(df[correct] <= 1.02 * (exact[correct] + 1e-4) * (1 + 1e-5) + 1e-6)
    assert np.all(df[~correct] == 0)  # misclassified: nothing to perturb
    # no attack can beat the exact minimum; C&W gets close on a linear model (stepsize for
    # interior points: the MNIST default 0.1 is tuned for saturated pixels, see configs.py)
    cw = report.minimal_norms["cw_l2"][correct]
    assert np.all(cw >= exact[correct] * (1 - 1e-4))
    assert np.median(cw) <= 1.05 * np.median(exact[correct])


# -- aggregation and metrics on a constructed report ---------------------------------------

def constructed_report():
    configs = (deepfool_l2(), pgd_linf((0.1, 0.2)), fgsm((0.2, 0.3)), pgd_l2((0.5, 1.0)))
    return RobustnessReport(
        labels=np.zeros(4, dtype=np.int64),
        clean_correct=np.array([True, True, True, False]),
        clean_correct_unwrapped=np.array([True, True, True, False]),
        input_l2=np.array([1.0, 2.0, 3.0, 4.0]),
        minimal_norms={"deepfool_l2": np.array([0.3, 2.0, 0.9, 0.0])},
        success={"pgd_linf": np.array([[1, 1], [0, 0], [0, 0], [1, 1]], dtype=bool),
                 "fgsm_linf": np.array([[0, 0], [1, 1], [0, 0], [1, 1]], dtype=bool),
                 "pgd_l2": np.zeros((4, 2), dtype=bool)},
        epsilons={"pgd_linf": np.array([0.1, 0.2]), "fgsm_linf": np.array([0.2, 0.3]),
                  "pgd_l2": np.array([0.5, 1.0])},
        configs=configs, meta={"bounds": [0.0, 1.0]})


def test_worst_case_is_the_pointwise_union_of_attacks():
    report = constructed_report()
    # l∞: pgd breaks point 0 (at 0.1, 0.2), fgsm breaks point 1 (at 0.2, 0.3), point 3 is wrong
    assert report.robust_accuracy("linf") == {0.1: 0.5, 0.2: 0.25, 0.3: 0.5}
    # l2: PGD breaks nothing, DeepFool's minimal norms 0.3 and 0.9 break points 0 and 2
    assert report.robust_accuracy("l2") == {0.5: 0.5, 1.0: 0.25}
    m = report.as_metrics()
    assert m["robust_accuracy_linf@0.2"] == 0.25 and m["robust_accuracy_l2@1"] == 0.25
    assert m["accuracy_under_pgd_linf@0.2"] == 0.5 and m["accuracy_under_fgsm_linf@0.2"] == 0.5
    assert m["clean_accuracy_attacked"] == 0.75
    # ρ2: ratios 0.3/1, 2/2, 0.9/3 and 0 for the misclassified point
    assert m["rho2"] == pytest.approx((0.3 + 1.0 + 0.3 + 0.0) / 4)
    assert m["deepfool_l2_median"] == pytest.approx(0.9)
    flags = run_sanity_checks(report)
    # 0.3 after 0.2 rises: only fgsm ran at 0.3 (no closure over smaller ε) → flagged
    assert flags.flags["robust_accuracy_monotone_linf"] is False
    assert any("0.2->0.3" in msg for msg in flags.messages)
    assert flags.flags["robust_accuracy_monotone_l2"] and flags.flags["deepfool_l2_complete"]
    assert flags.flags["worst_case_le_every_attack_linf"] and flags.flags["worst_case_le_every_attack_l2"]
    # which attack first broke each point, in the order given (deepfool_l2, pgd_linf, fgsm_linf, pgd_l2)
    assert report.first_broken["linf"].tolist() == [[1, 1, -1], [-1, 2, 2], [-1, -1, -1], [-2, -2, -2]]
    assert report.first_broken["l2"].tolist() == [[0, 0], [-1, -1], [-1, 0], [-2, -2]]
    assert m["broken_first_by_pgd_linf@0.2"] == 0.25 and m["broken_first_by_fgsm_linf@0.2"] == 0.25
    assert "broken_first_by_pgd_linf@0.3" not in m  # pgd did not run at 0.3
    assert m["broken_first_by_deepfool_l2@1"] == 0.5 and m["broken_first_by_pgd_l2@1"] == 0.0
    for threat, grid in (("linf", (0.1, 0.2, 0.3)), ("l2", (0.5, 1.0))):
        for eps in grid:  # shares add up to clean accuracy − robust accuracy
            shares = sum(v for k, v in m.items() if k.startswith("broken_first_by_") and k.endswith(f"@{eps:g}")
                         and report.config(k.removeprefix("broken_first_by_").split("@")[0]).norm == threat)
            assert shares == pytest.approx(m["clean_accuracy_attacked"] - m[f"robust_accuracy_{threat}@{eps:g}"])
    # a DeepFool failure: inf norm, out of ρ2, counted, flagged
    report.minimal_norms["deepfool_l2"][1] = np.inf
    m = report.as_metrics()
    assert m["rho2"] == pytest.approx((0.3 + 0.3 + 0.0) / 3)
    assert m["deepfool_l2_failure_rate"] == pytest.approx(1 / 3)
    assert sanity_flags(report)["deepfool_l2_complete"] is False


# -- a real evaluation on a small MNIST MLP --------------------------------------------------

def test_mlp_evaluation_metrics_and_sanity(mnist_mlp, mlp_report):
    model, x, y = mnist_mlp
    report, m = mlp_report, mlp_report.as_metrics()
    n = len(y)
    assert report.clean_correct.shape == (n,) and report.success["pgd_linf"].shape == (n, 4)
    assert 0.8 < m["clean_accuracy_attacked"] < 1.0  # some misclassified points exercise the ρ2 convention
    for threat, grid in (("linf", LINF_EPS), ("l2", L2_EPS)):
        acc = [m[f"robust_accuracy_{threat}@{e:g}"] for e in grid]
        assert all(b <= a for a, b in zip(acc, acc[1:])), acc  # non-increasing in ε
        assert acc[0] <= m["clean_accuracy_attacked"] and acc[-1] <= 0.05
    assert m["robust_accuracy_linf@0.1"] <= min(m["accuracy_under_fgsm_linf@0.1"], m["accuracy_under_pgd_linf@0.1"])
    # ρ2 by hand: ‖r‖/‖x‖ on correct points, 0 on misclassified ones
    with torch.no_grad():
        correct = (model(x).argmax(1) == y).numpy()
    xnorm = x.flatten(1).double().norm(dim=1).numpy()
    df = report.minimal_norms["deepfool_l2"]
    assert np.array_equal(correct, report.clean_correct)
    assert m["rho2"] == pytest.approx(np.mean(np.where(correct, df / xnorm, 0.0)), rel=1e-12)
    assert m["cw_l2_median"] == pytest.approx(np.median(report.minimal_norms["cw_l2"][correct]))
    assert np.all(df[~correct] == 0) and np.all(np.isfinite(df))
    flags = sanity_flags(report)
    assert flags == {"robust_accuracy_monotone_linf": True, "robust_accuracy_monotone_l2": True,
                     "robust_accuracy_near_zero_linf": True, "robust_accuracy_near_zero_l2": True,
                     "worst_case_le_every_attack_linf": True, "worst_case_le_every_attack_l2": True,
                     "deepfool_l2_complete": True, "wrapped_matches_unwrapped": True}


def test_the_worst_case_flag_fires_on_a_fabricated_inconsistent_report():
    report = constructed_report()
    assert sanity_flags(report)["worst_case_le_every_attack_linf"]
    # fabricated: the stored record calls point 0 robust at ε 0.1 although pgd_linf broke it there
    report.first_broken["linf"][0, 0] = -1
    assert report.robust_accuracy("linf")[0.1] == 0.75 > report.as_metrics()["accuracy_under_pgd_linf@0.1"]
    result = run_sanity_checks(report)
    assert result.flags["worst_case_le_every_attack_linf"] is False
    assert result.flags["worst_case_le_every_attack_l2"] is True
    message = [m for m in result.messages if m.startswith("linf worst case")]
    assert message == ["linf worst case is not <= every attack: at epsilon 0.1 robust accuracy 0.750 counts "
                       "1 point(s) that pgd_linf broke (its own accuracy there: 0.500); the first-broken record "
                       "disagrees with the attacks' results"]
    assert result.as_metrics()["sanity_worst_case_le_every_attack_linf"] == 0.0


def test_npz_round_trip_reproduces_metrics_exactly(mlp_report, tmp_path):
    path = mlp_report.save_npz(tmp_path / "report.npz")
    again = RobustnessReport.from_npz(path)
    metrics_equal(mlp_report.as_metrics(), again.as_metrics())
    assert again.configs == mlp_report.configs
    assert sanity_flags(again) == sanity_flags(mlp_report)
    for name, norms in mlp_report.minimal_norms.items():
        assert np.array_equal(norms, again.minimal_norms[name])
    for threat, record in mlp_report.first_broken.items():
        assert record.dtype == np.int16 and np.array_equal(record, again.first_broken[threat])
    # the stored record is what is reported (not re-derived on load) ...
    edited = mlp_report.first_broken["linf"].copy()
    edited[:, 0] = -1
    RobustnessReport(**{**mlp_report.__dict__, "first_broken": {"linf": edited}}).save_npz(tmp_path / "edited.npz")
    assert RobustnessReport.from_npz(tmp_path / "edited.npz").robust_accuracy("linf")[0.05] == 1.0
    # ... and a report written before the record existed gets it derived
    with np.load(path) as data:
        old = {k: data[k] for k in data.files if not k.startswith("first_broken__")}
    np.savez(tmp_path / "old.npz", **old)
    metrics_equal(RobustnessReport.from_npz(tmp_path / "old.npz").as_metrics(), mlp_report.as_metrics())
    with pytest.raises(UserError, match="cannot read"):
        RobustnessReport.from_npz(tmp_path / "missing.npz")


def test_independent_pgd_is_never_stronger_than_the_worst_case(mnist_mlp, mlp_report):
    model, x, y = mnist_mlp
    for eps in (0.05, 0.1):
        independent = plain_pgd_linf_robust(model, x, y, eps).mean()
        assert mlp_report.as_metrics()[f"robust_accuracy_linf@{eps:g}"] <= independent + 0.02


def test_parameters_and_modes_are_restored():
    model, x, y = linear_problem(3, n=20)
    model = nn.Sequential(model, nn.Dropout(0.5))
    model.train()
    model[0].bias.requires_grad_(False)
    report = evaluate_robustness(model, x, y, [deepfool_l2(), pgd_linf((0.1,), steps=3)], bounds=(-5, 5))
    assert model[0].weight.requires_grad and not model[0].bias.requires_grad
    assert model[0].weight.grad is None and model[0].bias.grad is None
    assert model.training and model[1].training
    # dropout was off while evaluating: exactly the 15 points labelled with the prediction are correct
    assert report.clean_correct.sum() == 15 and np.array_equal(report.clean_correct, report.clean_correct_unwrapped)


def test_same_seed_same_report():
    model, x, y = linear_problem(3, n=30)
    attacks = [pgd_l2((0.2, 0.5), steps=3)]
    a = evaluate_robustness(model, x, y, attacks, bounds=(-5, 5), seed=1)
    b = evaluate_robustness(model, x, y, attacks, bounds=(-5, 5), seed=1)
    assert np.array_equal(a.success["pgd_l2"], b.success["pgd_l2"])


def test_sparsity_helpers():
    model = nn.Sequential(nn.Flatten(), nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 3), nn.ReLU())
    with torch.no_grad():
        model[1].weight[:2] = 0  # 12 of 24 + 12 weights are zero
    assert weight_sparsity(model) == pytest.approx(12 / 36)
    x = torch.randn(10, 6)
    with torch.no_grad():
        h1 = F.relu(model[1](x))
        h2 = F.relu(model[3](h1))
    sp = activation_sparsity(model, x, batch_size=3)
    assert sp["2"] == pytest.approx((h1 == 0).float().mean().item())
    assert sp["4"] == pytest.approx((h2 == 0).float().mean().item())
    assert sp["overall"] == pytest.approx(((h1 == 0).sum() + (h2 == 0).sum()).item() / (h1.numel() + h2.numel()))
    assert math.isnan(activation_sparsity(nn.Linear(6, 3), x)["overall"])


# -- input validation: one line, before any attack runs ---------------------------------------

class _Prob(nn.Module):
    def forward(self, x):
        return torch.softmax(x.flatten(1)[:, :4], dim=1)


@pytest.mark.parametrize("case, pattern", [
    ("scalar_output", r"logits of shape \(N, classes\)"),
    ("tuple_output", "must be a tensor of logits"),
    ("probabilities", "looks like probabilities"),
    ("out_of_bounds", "outside the declared bounds"),
    ("label_range", "model has 4 classes"),
    ("length_mismatch", "differ in length"),
])
def test_bad_inputs_raise_one_line_before_attacking(case, pattern, monkeypatch):
    monkeypatch.setattr(AttackConfig, "build", lambda self: pytest.fail("an attack was built"))
    x = torch.rand(10, 1, 2, 2)
    y = torch.zeros(10, dtype=torch.int64)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 4))
    if case == "scalar_output":
        model = nn.Sequential(nn.Flatten(), nn.Linear(4, 1), nn.Flatten(0))
    elif case == "tuple_output":
        model = nn.Sequential(nn.Flatten(), nn.Linear(4, 4), _Tuple())
    elif case == "probabilities":
        model = _Prob()
    elif case == "out_of_bounds":
        x = x * 2
    elif case == "label_range":
        y[3] = 7
    elif case == "length_mismatch":
        y = y[:9]
    with pytest.raises(UserError, match=pattern) as info:
        evaluate_robustness(model, x, y, [deepfool_l2(), fgsm((0.1,))])
    assert "\n" not in str(info.value)


class _Tuple(nn.Module):
    def forward(self, x):
        return x, x


@pytest.mark.parametrize("epsilons, pattern", [
    ((0.3, 0.1), "strictly increasing"),
    ((0.1, 0.1), "strictly increasing"),
    ((-0.1, 0.1), "non-negative"),
    ((), "empty"),
])
def test_bad_epsilon_grids_raise_one_line(epsilons, pattern):
    with pytest.raises(UserError, match=pattern) as info:
        pgd_linf(epsilons)
    assert "\n" not in str(info.value)
    with pytest.raises(UserError, match=pattern):  # also when configs come from stored dicts
        evaluate_robustness(nn.Linear(4, 3), torch.rand(5, 4), torch.zeros(5, dtype=torch.int64),
                            [{"kind": "fgsm", "norm": "linf", "epsilons": list(epsilons)}])


# -- the AutoAttack attacks (robench's APGD, torchattacks' FAB-T and Square) -------------------

def _collect_adversarials(store):
    def collect(name, eps, x, x_adv, success):
        store.append((name, float(eps), x.detach().clone(), x_adv.detach().clone(), success.clone()))
    return collect


def _assert_inside_ball_and_box(seen, cfgs, lo, hi):
    norms = {c.name: c.norm for c in cfgs}
    for name, eps, x, x_adv, _ in seen:
        delta = (x_adv - x).flatten(1).double()
        size = delta.abs().amax(1) if norms[name] == "linf" else delta.norm(dim=1)
        assert float(size.max()) <= eps * (1 + 1e-5) + 1e-6, (name, eps, float(size.max()))
        assert float(x_adv.min()) >= lo and float(x_adv.max()) <= hi, name


def test_autoattack_kinds_stay_in_the_ball_and_box_and_beat_pgd_on_a_linear_model():
    """Flat inputs in bounds (−5, 5): the evaluator maps them onto the [0, 1] 4-D batches
    torchattacks expects; every returned example lies in the ε-ball and the box, and the
    recorded success is the model's own verdict on it."""
    model, x, y = linear_problem(5, n=40)
    grids = {"linf": (0.1, 0.5), "l2": (0.5, 2.0)}
    cfgs = [pgd_linf(grids["linf"], steps=10), pgd_l2(grids["l2"], steps=10)]
    cfgs += [make(norm, grids[norm], steps=20) for norm in ("linf", "l2") for make in (apgd_ce, apgd_t, fab_t)]
    seen = []
    report = evaluate_robustness(model, x, y, cfgs, bounds=(-5, 5), on_adversarial=_collect_adversarials(seen))
    assert [(name, eps) for name, eps, *_ in seen] == [(c.name, e) for c in cfgs for e in c.epsilons]
    _assert_inside_ball_and_box(seen, cfgs, -5, 5)
    assert report.meta["invalid_adversarials"] == {c.name: 0 for c in cfgs[2:]}
    for name, eps, _, x_adv, success in seen:
        if report.config(name).library in ("robench", "torchattacks"):
            with torch.no_grad():
                wrong = model(x_adv).argmax(1) != y
            assert torch.equal(success, wrong | ~torch.as_tensor(report.clean_correct))
    m = report.as_metrics()
    exact = closed_form_distance(model, x, y)  # l2 only; APGD's l2 result must respect it
    for eps in grids["l2"]:
        truly_robust = (report.clean_correct & (exact > eps)).mean()
        assert m[f"robust_accuracy_l2@{eps:g}"] >= truly_robust - 1e-12  # no attack beats the exact minimum
        assert m[f"accuracy_under_apgd_t_l2@{eps:g}"] <= m[f"accuracy_under_pgd_l2@{eps:g}"] + 1 / 40
    assert all(sanity_flags(report).values())


class _SignOfDifference(nn.Module):
    """Two classes on x ∈ [0, 1]²: logits (x0 − x1, x1 − x0), so class 0 iff x0 > x1."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 2, bias=False)
        with torch.no_grad():
            self.linear.weight.copy_(torch.tensor([[1.0, -1.0], [-1.0, 1.0]]))

    def forward(self, x):
        return self.linear(x)


# per point: the input, its label, and the step (in units of ε) a fake APGD returns for it
BALL_POINTS = [
    ((0.52, 0.48), (-0.5, 0.5)),   # A: misclassified, l∞ 0.5ε, l2 0.71ε: broken under both norms
    ((0.52, 0.48), (-2.0, 2.0)),   # B: misclassified, 2ε away (l∞ and l2): outside the ball
    ((0.99, 0.97), (0.0, 0.5)),    # C: misclassified at x1 = 0.97 + 0.05 > 1: outside the box
    ((0.70, 0.30), (-0.5, 0.5)),   # D: still classified correctly: not broken
    ((0.30, 0.70), (0.0, 0.0)),    # E: a clean error: broken without any perturbation
    ((0.52, 0.48), (-0.9, 0.9)),   # F: misclassified, l∞ 0.9ε inside, l2 1.27ε outside
]


def test_only_adversarials_inside_the_ball_and_the_box_count_as_broken(monkeypatch):
    """The evaluator, not the attack, decides success for the AutoAttack kinds: an input the
    model misclassifies but that lies outside the ε-ball (in the attack's norm) or outside
    the box is not broken (robust accuracy unchanged) and is counted as invalid; one inside
    both is broken."""
    def fake_apgd(model, u, y, *, eps, norm, **_):
        steps = torch.tensor([step for _, step in BALL_POINTS], dtype=u.dtype).reshape(u.shape)
        return u + eps * steps, None  # unit box = (0, 1): u is x (as (N, 1, 1, 2))
    monkeypatch.setattr("robench.attacks.apgd.apgd", fake_apgd)
    model = _SignOfDifference()
    x = torch.tensor([point for point, _ in BALL_POINTS])
    y = torch.zeros(len(x), dtype=torch.long)
    seen = []
    report = evaluate_robustness(model, x, y, [apgd_ce("linf", (0.1,)), apgd_ce("l2", (0.1,))],
                                 on_adversarial=_collect_adversarials(seen))
    with torch.no_grad():  # the fake's inputs really fool the model (but E's is a clean error)
        assert [(model(adv).argmax(1) != 0).tolist() for *_, adv, _ in seen] == [[True, True, True, False, True, True]] * 2
    assert report.clean_correct.tolist() == [True, True, True, True, False, True]
    assert report.success["apgd_ce_linf"][:, 0].tolist() == [True, False, False, False, True, True]
    assert report.success["apgd_ce_l2"][:, 0].tolist() == [True, False, False, False, True, False]
    assert report.meta["invalid_adversarials"] == {"apgd_ce_linf": 2, "apgd_ce_l2": 3}
    m = report.as_metrics()
    assert m["robust_accuracy_linf@0.1"] == pytest.approx(3 / 6)  # B, C, D
    assert m["robust_accuracy_l2@0.1"] == pytest.approx(4 / 6)  # B, C, D, F
    assert m["accuracy_under_apgd_ce_linf@0.1"] == pytest.approx(3 / 6)
    assert report.first_broken["linf"][:, 0].tolist() == [0, -1, -1, -1, -2, 0]


def test_square_runs_on_images_and_attacks_only_in_the_ball(mnist_mlp):
    model, x, y = mnist_mlp
    cfgs = [square("linf", (0.1, 0.3), queries=200), square("l2", (1.0, 3.0), queries=200)]
    seen = []
    report = evaluate_robustness(model, x[:50], y[:50], cfgs, on_adversarial=_collect_adversarials(seen))
    _assert_inside_ball_and_box(seen, cfgs, 0, 1)
    m = report.as_metrics()
    assert m["accuracy_under_square_linf@0.3"] < m["accuracy_under_square_linf@0.1"] <= m["clean_accuracy_attacked"]


def test_apgd_per_point_results_are_reproducible_per_seed(mnist_mlp):
    model, x, y = mnist_mlp
    cfgs = [apgd_ce("linf", (0.05, 0.1), steps=10), apgd_t("linf", (0.05, 0.1), steps=10, target_classes=3)]
    seen = {"a": [], "b": [], "c": []}
    state = torch.random.get_rng_state()
    a = evaluate_robustness(model, x[:60], y[:60], cfgs, batch_size=32, seed=3, on_adversarial=_collect_adversarials(seen["a"]))
    assert torch.equal(state, torch.random.get_rng_state())  # the caller's generator is left alone
    b = evaluate_robustness(model, x[:60], y[:60], cfgs, batch_size=32, seed=3, on_adversarial=_collect_adversarials(seen["b"]))
    for name in ("apgd_ce_linf", "apgd_t_linf"):
        assert np.array_equal(a.success[name], b.success[name])
    for threat in ("linf", "l2"):
        assert np.array_equal(a.first_broken[threat], b.first_broken[threat])
    c = evaluate_robustness(model, x[:60], y[:60], cfgs, batch_size=32, seed=4, on_adversarial=_collect_adversarials(seen["c"]))
    assert c.meta["seed"] == 4
    # the same seed: the very same adversarial examples; another seed: other random starts,
    # so each attack returns other examples (l∞ iterates often end at the same corner of the
    # ball and the per-point verdicts may agree: not every batch differs)
    assert [s[:2] for s in seen["a"]] == [s[:2] for s in seen["b"]] == [s[:2] for s in seen["c"]]
    assert all(torch.equal(sa[3], sb[3]) for sa, sb in zip(seen["a"], seen["b"]))
    differs = {name: False for name, *_ in seen["a"]}
    for (name, _, _, adv_a, _), (_, _, _, adv_c, _) in zip(seen["a"], seen["c"]):
        differs[name] |= not torch.equal(adv_a, adv_c)
    assert differs == {"apgd_ce_linf": True, "apgd_t_linf": True}


def test_adding_autoattack_kinds_leaves_the_foolbox_attacks_results_alone(mnist_mlp):
    """torchattacks reseeds torch's global generator and APGD draws its own starts; inside the
    evaluator neither may shift the random starts of the foolbox attacks that run after them
    (their metrics must not move)."""
    model, x, y = mnist_mlp
    pgd = pgd_linf((0.1, 0.15), steps=1, rel_stepsize=0.05)  # its result is mostly its random start
    alone = evaluate_robustness(model, x, y, [pgd], batch_size=100, seed=1)
    other_start = evaluate_robustness(model, x, y, [pgd], batch_size=100, seed=2)
    assert not np.array_equal(alone.success["pgd_linf"], other_start.success["pgd_linf"])  # the test can see it
    mixed = evaluate_robustness(model, x, y, [apgd_ce("linf", (0.1,), steps=2), fab_t("linf", (0.1,), steps=2),
                                              pgd], batch_size=100, seed=1)
    assert np.array_equal(alone.success["pgd_linf"], mixed.success["pgd_linf"])


@pytest.mark.parametrize("case, pattern", [
    ("few_classes", "targeted DLR loss needs at least 4 classes, the model has 3"),
    ("flat_square", r"Square needs image inputs \(N, C, H, W\)"),
    ("float64", "needs a float32 model"),
])
def test_autoattack_kinds_reject_what_they_cannot_attack_in_one_line(case, pattern, monkeypatch):
    monkeypatch.setattr(AttackConfig, "build_torchattacks", lambda *a, **k: pytest.fail("an attack was built"))
    monkeypatch.setattr("robench.attacks.apgd.apgd", lambda *a, **k: pytest.fail("APGD ran"))
    model, x, y = linear_problem(3 if case == "few_classes" else 5, n=10)
    attack = {"few_classes": apgd_t("linf", (0.1,)), "flat_square": square("linf", (0.1,)),
              "float64": fab_t("l2", (0.5,))}[case]
    if case == "float64":
        model, x = model.double(), x.double()
    with pytest.raises(UserError, match=pattern) as info:
        evaluate_robustness(model, x, y, [attack], bounds=(-5, 5))
    assert "\n" not in str(info.value)
