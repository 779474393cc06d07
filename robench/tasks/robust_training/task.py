"""Task ``robust_training``: does a training recipe make a classifier harder to fool?
(the DeepDefense study, Yan et al., NeurIPS 2018, at small scale.)

Protocol of one run (recipe R, seed s):

1. Load the dataset (it stays on the CPU); take the vanilla model trained by
   ``TrainSpec(model, dataset, epochs=baseline_epochs, seed=s)`` from the shared cache
   (trained once per seed, reused by every recipe and by other tasks with the same spec),
   on the run's device.
2. ``model = R.train(copy, data, epochs, s, batch_size=..., lr=...)`` on the global
   generators as the executor seeded them with s (nothing before this step draws from
   them): every recipe fine-tunes the same weights for the same number of epochs
   ("vanilla" included); wall and CPU seconds of this step are reported
   (``train_seconds``, ``train_cpu_seconds``).
3. Evaluate with the shared attack layer (:mod:`robench.attacks`) on the first ``n_test``
   test images: L2 DeepFool (``deepfool_steps``, overshoot 0.02) → ``rho2``;
   FGS (l∞ FGSM) and l∞ PGD (``pgd_steps`` steps, random start) and the l∞ fixed-ε attacks
   of ``attack_preset`` (default ``autoattack-fast``: APGD-CE and APGD-T with the AutoAttack
   paper's settings; a preset attack named like one of the task's own is the task's) at
   ε = f × ``eps_ref`` for f in ``fgs_factors`` (the preset's attacks at the f of
   ``preset_factors`` only, when given: they cost 5–45× PGD). ``robust_accuracy@<f>x`` is the worst case
   per point over every l∞ attack, ``broken_first_by_<attack>@<f>x`` the share of points
   each one broke first (order: FGS, PGD, then the preset's); sanity flags as 0/1 metrics.
   ``clean_accuracy`` and ``test_accuracy`` (the same value) are on the whole test split,
   ``clean_accuracy_attacked`` on the ``n_test`` attacked images.
4. Export ``model.pt`` (state dict, ``torch.load(..., weights_only=True)``),
   ``robustness.npz`` (per-sample attack results and the first-broken record,
   :class:`RobustnessReport`) and ``eval.json`` (model name, split, evaluated indices, ε
   values, the attacks with all their parameters).

**Selection on a validation split** (``eval_split: validation``): the last
``validation_size`` training images are held out from *every* training of the run (the
vanilla baseline, cached separately, and the recipe) and take the test split's place in
steps 3–4 and in ε_ref; the test split is not read. The run's metrics then say so:
``validation_accuracy`` and ``baseline_validation_accuracy`` replace ``test_accuracy`` and
``baseline_test_accuracy`` (``clean_accuracy`` is then the validation accuracy; the attack
metrics and ``clean_accuracy_attacked`` are on the first ``n_test`` validation images). A
suite picks hyperparameters on such runs and reports the picked ones on ``eval_split: test``
runs, so the test split is touched once.

**ε_ref** (one number per model/dataset/baseline setting, shared by every recipe and
seed, so seeds average at the same ε): ``eps_ref = rho2_vanilla × mean_i ‖x_i‖∞`` over
the evaluated test images, where ``rho2_vanilla`` is the ρ2 of the cached vanilla model
of seed :data:`robench.seeding.PROTOCOL_SEED` (0: step 1's spec with that seed, no
fine-tuning) under the same DeepFool. That is, the l∞ budget whose size relative to the
image's l∞ norm equals the vanilla model's mean relative l2 distance to the boundary
(ρ2 = ‖r‖₂/‖x‖₂ → ε/‖x‖∞). On MNIST ‖x‖∞ = 1,
so ``eps_ref = rho2_vanilla``. The paper derives its reference ε from the vanilla model's
ρ2 too, but we could not confirm its exact conversion; this one is ours. It is
computed once, cached under ``<cache_dir>/robust_training/`` (:func:`robench.cache.cached`),
and recorded as the metric ``eps_ref`` (with ``eps_ref_rho2_vanilla``, the ρ2 it came from).
With the parameter ``eps_ref`` set, that number is the budget instead, the same for every
model (RobustBench's convention: models compared at one ε, e.g. 0.3 on MNIST, 8/255 on
CIFAR-10): the seed-0 vanilla model is then not needed, nor ``eps_ref_rho2_vanilla`` reported.

``rescore`` re-attacks an exported ``model.pt`` on the same points at the budgets of the
maintainer's own ε_ref (never those of ``eval.json``) and returns the deterministic metrics,
``eps_ref`` and the baseline's accuracy included (not the wall-clock times, nor the ε-named
twins of the ``@<f>x`` metrics).

The recipes, their contract (``methods/base.py``) and the differentiable DeepFool behind
``deepdefense`` (``methods/_deepfool.py``) live in ``methods/``.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

from pydantic import Field, field_validator

from robench.errors import UserError
from robench.registry import register_task
from robench.tasks.base import (Precision, RunContext, Task, TaskParams, TaskResult, WeightsHead, added,
                                registered, weights_head_param, weights_normalization_param, weights_param)
from robench.tasks.robust_training.methods.base import RobustTrainingRecipe
from robench.training import TrainSpec


class RobustTrainingParams(TaskParams):
    """Parameters of ``robust_training``. Defaults: LeNet-5 on MNIST-5k, 5 fine-tuning epochs
    (the paper's budget), attacks on 200 test images, APGD-CE + APGD-T next to FGS and PGD."""
    model: str = registered("models", "lenet-5", "registered classifier")
    dataset: str = registered("datasets", "mnist-5k", "registered dataset (mnist-5k, mnist, cifar10, a plug-in)")
    dataset_root: str | None = None
    baseline_epochs: int = Field(10, gt=0, description="epochs of the shared vanilla model")
    epochs: int = Field(5, gt=0, description="fine-tuning budget of every recipe, in epochs")
    batch_size: int = Field(64, gt=0, description="fine-tuning minibatch size")
    lr: float = Field(0.005, gt=0, description="initial fine-tuning learning rate (halved for the last 20%)")
    n_train: int | None = Field(None, gt=0, description="use only the first n_train training images (None: all)")
    n_test: int = Field(200, gt=0, description="images attacked (the first n_test of the evaluated split)")
    deepfool_steps: int = Field(50, gt=0, description="L2 DeepFool iterations for rho2 (foolbox)")
    pgd_steps: int = Field(20, gt=0, description="l-inf PGD iterations (step 2.5*eps/steps, random start)")
    fgs_factors: tuple[float, ...] = Field((0.2, 0.5, 1.0), description="FGS/PGD budgets as multiples of eps_ref")
    eps_ref: Optional[float] = added(None, "a fixed l-inf eps_ref in [0, 1] pixel units (e.g. 0.3 for MNIST, "
                                     "8/255 for CIFAR-10, RobustBench's), the same for every model; null: "
                                     "calibrated by DeepFool on the seed-0 vanilla model (the paper's protocol)",
                                     gt=0, le=1)
    attack_preset: str | None = Field(
        "autoattack-fast", description="robench.attacks preset whose l-inf fixed-eps attacks also run at the "
                                       "same budgets (null: FGS and PGD only)")
    preset_factors: tuple[float, ...] | None = Field(
        None, validate_default=True,
        description="the budgets (multiples of eps_ref, among fgs_factors) at which the preset's attacks run "
                    "(null: all of fgs_factors)")
    eval_split: Literal["test", "validation"] = Field(
        "test", description="evaluate on the test split, or on a validation split held out from the training "
                            "images (for selecting hyperparameters)")
    validation_size: int = Field(1000, gt=0, validate_default=True,
                                 description="training images held out when eval_split is validation")
    eval_batch_size: int = Field(250, gt=0, description="attack batch size")
    precision: Precision = added("fp32", "forward passes of the vanilla baseline's training and of clean "
                                 "evaluation: fp32, or bf16/fp16 mixed precision (torch.autocast; fp16 needs a GPU); "
                                 "recipes fine-tune and attacks run in fp32 (their adversarial examples need exact "
                                 "gradients)")
    weights: Optional[str] = weights_param()
    weights_normalization: Literal["model", "none"] = weights_normalization_param()
    weights_head: WeightsHead = weights_head_param()

    @field_validator("fgs_factors")
    @classmethod
    def _increasing(cls, v):
        if not v or any(f <= 0 for f in v) or any(b <= a for a, b in zip(v, v[1:])):
            raise ValueError("fgs_factors must be positive and strictly increasing, e.g. [0.2, 0.5, 1.0]")
        return v

    @field_validator("preset_factors")
    @classmethod
    def _among_fgs_factors(cls, v, info):
        factors = info.data.get("fgs_factors")
        if v is not None and factors is not None and (not v or any(f not in factors for f in v)):
            raise ValueError(f"must be a non-empty subset of fgs_factors {list(factors)}")
        return v

    @field_validator("attack_preset")
    @classmethod
    def _known_preset(cls, v):
        if v is not None:
            preset_attacks(v, ())
        return v

    @field_validator("validation_size")
    @classmethod
    def _holds_the_attacked_images(cls, v, info):
        n_test = info.data.get("n_test")
        if info.data.get("eval_split") == "validation" and n_test is not None and n_test > v:
            raise ValueError(f"must be at least n_test={n_test}: the attacked images come from the validation split")
        return v


def preset_attacks(preset: str, own_names) -> list:
    """The l∞ fixed-ε attacks of ``preset`` whose names are not among ``own_names`` (the
    task's FGS and PGD); an unknown preset raises ValueError (one line, did-you-mean)."""
    from robench.attacks.configs import get_preset

    try:
        configs = get_preset(preset)
    except UserError as exc:
        raise ValueError(str(exc)) from None
    return [c for c in configs if c.norm == "linf" and not c.minimal and c.name not in own_names]


@dataclass(frozen=True)
class HeldOutSpec(TrainSpec):
    """The vanilla baseline of a validation run: trained without the last ``held_out``
    training images (its own cache file: the key differs)."""
    held_out: int = 0


def selection_view(data, validation_size: int):
    """``data`` with the last ``validation_size`` training images moved into the test
    slot (the validation split); the real test split is left out."""
    from robench.data import Dataset

    n = len(data.train)
    if validation_size >= n:
        raise UserError(f"robust_training: validation_size={validation_size} leaves no training images "
                        f"({data.name} has {n})")
    cut = n - validation_size
    return Dataset(name=f"{data.name}[validation]", num_classes=data.num_classes,
                   train=data.train.subset(range(cut), augment=getattr(data.train, "augment", False)),
                   test=data.train.subset(range(cut, n)))


def _build_held_out_baseline(spec: HeldOutSpec, cache_dir, device) -> list[Path]:
    """The shared-prerequisite build of a validation run's vanilla model."""
    from robench.data import load_dataset
    from robench.training import trained_baseline

    data = selection_view(load_dataset(spec.dataset, spec.dataset_root), spec.held_out)
    _, info = trained_baseline(spec, cache_dir, data=data, device=device)
    return [Path(info["path"])]


def factor_name(f: float) -> str:
    """0.2 → '0.2x', 1.0 → '1x' (metric-name suffix of a budget relative to eps_ref)."""
    return f"{float(f):g}x"


@register_task("robust_training")
class RobustTrainingTask(Task):
    """Fine-tune a trained classifier with a robustness recipe (same epochs); rho2, worst-case l∞ accuracy."""
    name = "robust_training"
    # 2: APGD-CE + APGD-T by default (attacks version 2), worst case robust_accuracy@<f>x, eval_split
    # 3: attacks version 3 (robench's APGD: the same l∞ results; l2 APGD-T one step size per point)
    # 4: clean_accuracy is the accuracy on the whole evaluated split (= <eval_split>_accuracy); the
    #    attacked images' accuracy is clean_accuracy_attacked
    version = "4"
    Params = RobustTrainingParams
    method_base = RobustTrainingRecipe
    primary_metric = "rho2"
    reference_methods = {"vanilla": "lower"}
    typical_run_s = 32.0  # the default suite's settings (suites/parts/robust_training.yaml)
    greater_is_better = True
    label_params = ("model",)
    headline_metrics = ("test_accuracy", "validation_accuracy", "robust_accuracy@1x", "pgd_accuracy@1x",
                        "fgs_accuracy@1x", "eps_ref")
    plots = ({"name": "rho2_vs_accuracy", "x": "test_accuracy", "y": "rho2"},
             {"name": "rho2_vs_training_cost", "x": "train_cpu_seconds", "y": "rho2", "logx": True})
    metrics_info = {
        "rho2": ("mean over attacked test images of ||r||2/||x||2, r from L2 DeepFool (misclassified count 0)", True),
        "clean_accuracy": ("accuracy on the whole evaluated split (= test_accuracy, or validation_accuracy "
                           "with eval_split: validation)", True),
        "clean_accuracy_attacked": ("accuracy on the n_test attacked images", True),
        "test_accuracy": ("accuracy on the whole test split (= clean_accuracy)", True),
        "validation_accuracy": ("accuracy on the whole validation split (eval_split: validation; "
                                "= clean_accuracy)", True),
        "baseline_test_accuracy": ("test accuracy of the vanilla model before fine-tuning", True),
        "baseline_validation_accuracy": ("validation accuracy of the held-out vanilla model before fine-tuning", True),
        "eps_ref": ("reference l-inf budget: rho2 of the seed-0 vanilla model x mean ||x||inf", True),
        "eps_ref_rho2_vanilla": ("rho2 of the seed-0 vanilla model that eps_ref comes from", True),
        **{f"{metric}@{f}": (f"{what} at {'' if f == '1x' else f.rstrip('x') + ' x '}eps_ref", True)
           for f in ("0.2x", "0.5x", "1x") for metric, what in (
               ("robust_accuracy", "worst case per point over every l-inf attack (FGS, PGD, the preset's)"),
               ("fgs_accuracy", "accuracy under FGS"), ("pgd_accuracy", "accuracy under l-inf PGD"),
               ("apgd_ce_accuracy", "accuracy under APGD-CE (AutoAttack settings)"),
               ("apgd_t_accuracy", "accuracy under APGD-T (AutoAttack settings)"))},
        "train_seconds": ("wall-clock seconds of the recipe's fine-tuning", False),
        "train_cpu_seconds": ("CPU seconds (process time) of the recipe's fine-tuning", False),
    }

    check_params = dict(model="lenet-300-100", baseline_epochs=1, epochs=1, n_train=256, n_test=16,
                        deepfool_steps=10, pgd_steps=3, eval_batch_size=16, attack_preset="smoke")

    @classmethod
    def conformance(cls, make_method, folder):
        """The recipe contract (methods/base.py) on a small MLP and random data."""
        import torch

        from robench import seeding
        from robench.models import build_model
        from robench.tasks.contract import Check, guarded, model_checks

        gen = seeding.stream(seeding.PROTOCOL_SEED, "data")
        data = _TrainSplitOnly(torch.rand(64, 1, 28, 28, generator=gen, device="cpu"),
                               torch.randint(0, 10, (64,), generator=gen, device="cpu"))

        def train(seed: int):
            with seeding.scoped(seeding.PROTOCOL_SEED):
                model = build_model("lenet-300-100")
            before = {k: v.clone() for k, v in model.state_dict().items()}
            with seeding.scoped(seed):  # as the executor seeds a run
                out = make_method().train(model, data, 1, seed, batch_size=16, lr=0.01)
            return out, before

        check, first = guarded("trains for one epoch on the training split only", lambda: train(0))
        if first is None:
            return [check]
        out, before = first
        checks = [check, Check("train() returns an nn.Module", isinstance(out, torch.nn.Module),
                               f"got {type(out).__name__}")]
        if not checks[-1].ok:
            return checks
        changed = any(k in before and not torch.equal(before[k], v) for k, v in out.state_dict().items())
        checks.append(Check("the weights changed (it trained)", changed, "every weight is as it was"))
        checks += model_checks(out, data.train.take(range(8))[0], 10, lambda: train(0)[0])
        return checks

    def run(self, method: RobustTrainingRecipe, seed: int, ctx: RunContext) -> TaskResult:
        import torch

        from robench.training import trained_baseline

        p = self.params
        data = self.data()
        calibration = self.calibrated_epsilon(data, ctx)
        vanilla, info = trained_baseline(self._spec(seed), ctx.cache_dir, data=data, say=ctx.say,
                                         device=ctx.device)
        model = copy.deepcopy(vanilla)
        train_data = data if p.n_train is None else _head(data, p.n_train)

        ctx.say(f"fine-tuning {method!r} for {p.epochs} epochs")
        wall, cpu = time.perf_counter(), time.process_time()
        model = method.train(model, train_data, p.epochs, seed, batch_size=p.batch_size, lr=p.lr)
        train_wall, train_cpu = time.perf_counter() - wall, time.process_time() - cpu
        if not isinstance(model, torch.nn.Module):
            raise UserError(f"method {method!r}: train() returned {type(model).__name__}; expected the model")
        model.eval()

        ctx.say(f"attacking the fine-tuned model ({p.eval_split} split)")
        eps_ref = calibration["eps_ref"]
        epsilons = tuple(f * eps_ref for f in p.fgs_factors)
        metrics, report = self.score(model, data, epsilons, seed)
        metrics.update({
            f"baseline_{p.eval_split}_accuracy": info["test_accuracy"],  # the view's test slot: see data()
            **calibration,
            "train_seconds": train_wall, "train_cpu_seconds": train_cpu,
            "eval_seconds": float(report.meta["seconds_total"]),
        })
        artifacts = self._export(model, report, data, epsilons, eps_ref, Path(ctx.artifact_dir))
        return TaskResult(metrics=metrics, artifacts=artifacts)

    def rescore(self, artifact_dir: Path, seed: int, ctx: RunContext, method=None,
                claimed: dict | None = None) -> dict[str, float]:
        """The run's deterministic metrics again (``robench verify``), from its ``model.pt``,
        this setting's parameters and the maintainer's own cache: ``eps_ref`` (and
        ``eps_ref_rho2_vanilla``) from the maintainer's seed-0 vanilla model
        (:meth:`reference_epsilon`, the run's cache function; trained there if missing), the
        budgets ``fgs_factors × eps_ref``, the same points, attacks and seed, and
        ``baseline_<split>_accuracy`` of this seed's vanilla model. ``eval.json`` and
        ``robustness.npz`` are never read. Left out (claims): the wall-clock times, and the
        ε-named twins of the per-budget metrics (``robust_accuracy_linf@<ε>``,
        ``accuracy_under_<attack>@<ε>``, ``broken_first_by_<attack>@<ε>``): their names print
        the run's own ε_ref, which a re-trained vanilla model on another kernel set does not
        reproduce to the printed digits; their ``@<f>x`` twins (the same numbers) are
        returned. The budgets are ``fgs_factors × ε_ref`` of the claim when it is within
        ``rescore_tolerance("eps_ref")`` of the maintainer's (so a run from another kernel
        set, whose retrained vanilla model moved ε_ref a little, is attacked at its own
        budgets), else of the maintainer's."""
        import torch

        from robench import seeding
        from robench.models import build_model
        from robench.tasks.base import load_exported_model
        from robench.training import trained_baseline

        p = self.params
        folder = Path(artifact_dir)
        data = self.data()
        with seeding.scoped(seeding.PROTOCOL_SEED), torch.device("cpu"):  # weights are loaded over it
            model = build_model(p.model, num_classes=data.num_classes)
        load_exported_model(folder / "model.pt", model, f"task 'robust_training': {folder.name}")
        model = model.to(ctx.device).eval()
        calibration = self.calibrated_epsilon(data, ctx)
        eps_ref = calibration["eps_ref"]
        _, info = trained_baseline(self._spec(seed), ctx.cache_dir, data=data, say=ctx.say, device=ctx.device)
        budget = eps_ref
        theirs = (claimed or {}).get("eps_ref")
        if p.eps_ref is None and isinstance(theirs, (int, float)) and \
                abs(theirs - eps_ref) <= self.rescore_tolerance("eps_ref"):
            # the claim's ε_ref is the protocol's within the retraining tolerance (checked here):
            # attack at its budgets, so the per-budget metrics compare across kernel sets
            budget = float(theirs)
        epsilons = tuple(f * budget for f in p.fgs_factors)
        metrics = self.score(model, data, epsilons, seed)[0]
        metrics = {k: v for k, v in metrics.items() if not _epsilon_named(k)}
        metrics.update({f"baseline_{p.eval_split}_accuracy": info["test_accuracy"], **calibration})
        return metrics

    def rescore_tolerance(self, metric: str) -> float:
        """Tolerances of a re-score on another kernel set (see ``Task.rescore_tolerance``):
        those of :func:`robench.tasks.base.attack_tolerance` over the ``n_test`` attacked
        images and the evaluated split, the per-budget metrics (``@<f>x``) included. ``eps_ref``
        and ``eps_ref_rho2_vanilla`` come from the maintainer's own seed-0 vanilla model,
        retrained on its kernel set when not cached: :data:`~robench.tasks.base.RETRAIN_RHO2_TOLERANCE`.
        The per-budget tolerance holds at the same budgets: where the re-scored ``eps_ref``
        differs from the claimed one by more than rounding, the budgets differ too and so
        may those metrics, by more than it (measured: 8 of 200 points at a 3.6% smaller
        ε_ref), which is then no sign of a false claim."""
        from robench.tasks.base import RETRAIN_RHO2_TOLERANCE, attack_tolerance

        if metric in ("eps_ref", "eps_ref_rho2_vanilla"):
            return RETRAIN_RHO2_TOLERANCE
        return attack_tolerance(metric, self.params.n_test, self._n_split())

    def _n_split(self) -> int:
        """Images of the evaluated split (``clean_accuracy``, ``test_accuracy``), loaded once per task
        object."""
        if getattr(self, "_rescore_n_split", None) is None:
            self._rescore_n_split = len(self.data().test)
        return self._rescore_n_split

    # -- protocol pieces ----------------------------------------------------------------
    def data(self):
        """The splits the run sees: the dataset, or its validation view (``eval_split``)."""
        from robench.data import load_dataset

        p = self.params
        data = load_dataset(p.dataset, p.dataset_root)
        if p.eval_split == "validation":
            data = selection_view(data, p.validation_size)
        if p.n_test > len(data.test):
            raise UserError(f"robust_training: n_test={p.n_test} but {data.name} has {len(data.test)} "
                            f"{p.eval_split} images")
        return data

    def score(self, model, data, epsilons, seed: int):
        """(metrics, report) of the fine-tuned ``model``: the attacks of step 3 and the
        accuracy on the whole evaluated split (``clean_accuracy``, and the same value as
        ``test_accuracy`` or ``validation_accuracy``)."""
        from robench.training import accuracy

        report = self.evaluate(model, data, epsilons, seed)
        metrics = self._metrics(report, epsilons)
        split_accuracy = accuracy(model, data.test, precision=self.params.precision)
        metrics[f"{self.params.eval_split}_accuracy"] = split_accuracy
        metrics["clean_accuracy"] = split_accuracy
        return metrics, report

    def prerequisites(self, method, seed):
        """The vanilla baselines of this seed and of seed 0 (ε_ref, unless fixed), trained once."""
        import functools

        from robench.training import baseline_path, baseline_prerequisite

        specs = [self._spec(s) for s in dict.fromkeys((seed,) if self.params.eps_ref is not None else (seed, 0))]
        if self.params.eval_split == "test":
            return [baseline_prerequisite(spec) for spec in specs]
        return [(baseline_path(spec), functools.partial(_build_held_out_baseline, spec)) for spec in specs]

    def _spec(self, seed: int):
        spec = TrainSpec.of_task(self.params, seed)
        if self.params.eval_split == "validation":
            return HeldOutSpec(**{**spec.__dict__, "held_out": self.params.validation_size})
        return spec

    def attacks(self, epsilons):
        """The attack list of step 3: DeepFool (ρ2), then, at ``epsilons``, FGS, PGD and the
        preset's l∞ fixed-ε attacks (foolbox and robench.attacks.apgd, via robench.attacks)."""
        from robench.attacks import deepfool_l2, fgsm, pgd_linf
        p = self.params
        configs = [deepfool_l2(steps=p.deepfool_steps)]
        if epsilons:
            configs += [fgsm(epsilons), pgd_linf(epsilons, steps=p.pgd_steps)]
            if p.attack_preset is not None:
                own = {c.name for c in configs}
                chosen = p.fgs_factors if p.preset_factors is None else p.preset_factors
                strong = tuple(e for f, e in zip(p.fgs_factors, epsilons) if f in chosen)
                configs += [c.with_epsilons(strong) for c in preset_attacks(p.attack_preset, own)]
        return configs

    def evaluate(self, model, data, epsilons, seed: int):
        from robench.attacks import evaluate_robustness
        p = self.params
        x, y = data.test.take(range(p.n_test))
        return evaluate_robustness(model, x, y, self.attacks(epsilons), batch_size=p.eval_batch_size, seed=seed)

    def calibrated_epsilon(self, data, ctx: RunContext) -> dict[str, float]:
        """The run's ε_ref as metrics: ``{"eps_ref": the fixed one}`` with ``eps_ref`` set,
        else ``eps_ref`` and ``eps_ref_rho2_vanilla`` from :meth:`reference_epsilon`."""
        if self.params.eps_ref is not None:
            return {"eps_ref": float(self.params.eps_ref)}
        eps_ref, rho2_vanilla = self.reference_epsilon(data, ctx)
        return {"eps_ref": eps_ref, "eps_ref_rho2_vanilla": rho2_vanilla}

    def reference_epsilon(self, data, ctx: RunContext) -> tuple[float, float]:
        """(eps_ref, rho2 of the PROTOCOL_SEED vanilla model), computed once and cached (see
        module doc)."""
        from robench.cache import cached, safe_name
        from robench.seeding import PROTOCOL_SEED
        from robench.training import trained_baseline

        p = self.params
        spec = self._spec(PROTOCOL_SEED)
        split = "" if p.eval_split == "test" else f"-val{p.validation_size}"
        # DeepFool's settings (unchanged since attacks version 1) are all that eps_ref depends on
        path = (Path(ctx.cache_dir) / "robust_training" /
                f"eps_ref-{safe_name(p.model)}-{safe_name(p.dataset)}-{spec.key()}-n{p.n_test}-df{p.deepfool_steps}-a1{split}.json")

        def compute() -> dict:
            vanilla, _ = trained_baseline(spec, ctx.cache_dir, data=data, say=ctx.say, device=ctx.device)
            ctx.say(f"computing eps_ref from the seed-{PROTOCOL_SEED} vanilla model")
            report = self.evaluate(vanilla, data, (), PROTOCOL_SEED)
            rho2 = report.rho2()
            x_inf = float(data.test.take(range(p.n_test))[0].flatten(1).abs().amax(1).double().mean())
            eps_ref = float(rho2 * x_inf)
            if not eps_ref > 0:  # 0 or NaN: say which of the vanilla model's points were the trouble
                raise UserError(self._no_eps_ref(report, rho2, x_inf))
            return {"eps_ref": eps_ref, "rho2_vanilla": rho2, "mean_x_linf": x_inf, "baseline_key": spec.key()}

        value, _ = cached(path, compute, lambda value, tmp: tmp.write_text(json.dumps(value)),
                          lambda path: json.loads(path.read_text()))
        return value["eps_ref"], value["rho2_vanilla"]

    def _no_eps_ref(self, report, rho2: float, x_inf: float) -> str:
        """The one-line reason why the seed-0 vanilla model's ``report`` (DeepFool only)
        gives no positive ε_ref: no attacked point classified correctly; DeepFool broke none
        of the correct ones within ``deepfool_steps`` (ρ2 then averages the misclassified
        points' zeros, or nothing); or, rarely, zero images or zero perturbations."""
        import numpy as np

        p = self.params
        where = f"robust_training: eps_ref undefined for {p.model} on {p.dataset}"
        correct = np.asarray(report.clean_correct, dtype=bool)
        deepfool = next(c.name for c in report.configs if c.kind == "deepfool" and c.norm == "l2")
        norms = np.asarray(report.minimal_norms[deepfool])[correct]
        if not correct.any():
            return (f"{where}: the seed-0 vanilla model classifies none of the n_test={p.n_test} attacked points "
                    f"correctly (rho2 = 0); expected a trained classifier (raise baseline_epochs)")
        if not np.isfinite(norms).any():
            return (f"{where}: DeepFool found no adversarial example within deepfool_steps={p.deepfool_steps} "
                    f"steps for any of the {int(correct.sum())} correctly classified points (of n_test={p.n_test}) "
                    f"of the seed-0 vanilla model; expected it to break some (raise deepfool_steps)")
        return (f"{where}: rho2 = {rho2:g} of the seed-0 vanilla model, mean ||x||inf = {x_inf:g} over the "
                f"n_test={p.n_test} attacked points; expected both positive (images that are not all zero)")

    def _metrics(self, report, epsilons) -> dict[str, float]:
        from robench.attacks import format_epsilon
        metrics = dict(report.as_metrics())
        metrics.update(report.sanity().as_metrics())
        fixed = [c.name for c in report.configs if not c.minimal]
        for f, eps in zip(self.params.fgs_factors, epsilons):
            name, factor = format_epsilon(eps), factor_name(f)
            metrics[f"robust_accuracy@{factor}"] = metrics[f"robust_accuracy_linf@{name}"]
            for attack in fixed:
                if f"accuracy_under_{attack}@{name}" not in metrics:  # a preset attack not run at this budget
                    continue
                short = {"fgsm_linf": "fgs", "pgd_linf": "pgd"}.get(attack, attack.removesuffix("_linf"))
                metrics[f"{short}_accuracy@{factor}"] = metrics[f"accuracy_under_{attack}@{name}"]
                metrics[f"broken_first_by_{attack}@{factor}"] = metrics[f"broken_first_by_{attack}@{name}"]
        return metrics

    def _export(self, model, report, data, epsilons, eps_ref, folder: Path) -> dict[str, str]:
        from robench.models import export_state_dict

        folder.mkdir(parents=True, exist_ok=True)
        export_state_dict(model, folder / "model.pt")
        report.save_npz(folder / "robustness.npz")
        p = self.params
        # the attacked images: test images [0, n_test), or training images [cut, cut + n_test)
        where = {"test_indices": [0, p.n_test]} if p.eval_split == "test" else \
            {"train_indices": [len(data.train), len(data.train) + p.n_test]}
        (folder / "eval.json").write_text(json.dumps({
            "model": p.model, "dataset": p.dataset, "split": p.eval_split, **where,
            "eps_ref": eps_ref, "fgs_factors": list(p.fgs_factors), "epsilons": list(epsilons),
            "deepfool_steps": p.deepfool_steps, "pgd_steps": p.pgd_steps,
            "attacks": [c.to_dict() for c in report.configs]}, indent=2) + "\n")
        return {"model": "model.pt", "robustness": "robustness.npz", "eval": "eval.json"}


def _epsilon_named(metric: str) -> bool:
    """Whether ``metric`` is a per-budget metric named by its ε (``...@0.0123``), not by
    its factor of ε_ref (``...@0.5x``)."""
    return "@" in metric and not metric.endswith("x")


def _head(data, n: int):
    from robench.data import Dataset
    return Dataset(name=data.name, train=data.train.subset(range(n)), test=data.test, num_classes=data.num_classes)


class _TrainSplitOnly:
    """Training data for `robench check`: reading the test split is a contract violation."""
    name, num_classes = "check", 10

    def __init__(self, x, y):
        from robench.data import ArraySplit

        self.train = ArraySplit(x, y)

    @property
    def input_shape(self):
        return self.train.sample_shape

    def __getattr__(self, name):  # test, test_x, test_y (and anything else the contract does not give)
        raise AssertionError(f"the recipe read data.{name}; recipes may use the training split only")
