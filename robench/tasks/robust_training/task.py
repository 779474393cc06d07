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
   FGS (l∞ FGSM) and l∞ PGD (``pgd_steps`` steps, random start) at
   ε = f × ``eps_ref`` for f in ``fgs_factors``; sanity flags as 0/1 metrics.
   ``test_accuracy`` is on the whole test split.
4. Export ``model.pt`` (state dict, ``torch.load(..., weights_only=True)``),
   ``robustness.npz`` (per-sample attack results, :class:`RobustnessReport`) and
   ``eval.json`` (model name, evaluated test indices, ε values).

**ε_ref** (one number per model/dataset/baseline setting, shared by every recipe and
seed, so seeds average at the same ε): ``eps_ref = rho2_vanilla × mean_i ‖x_i‖∞`` over
the evaluated test images, where ``rho2_vanilla`` is the ρ2 of the cached vanilla model
of seed :data:`robench.seeding.PROTOCOL_SEED` (0: step 1's spec with that seed, no
fine-tuning) under the same DeepFool. That is, the l∞ budget whose size relative to the
image's l∞ norm equals the vanilla model's mean relative l2 distance to the boundary
(ρ2 = ‖r‖₂/‖x‖₂ → ε/‖x‖∞). On MNIST ‖x‖∞ = 1,
so ``eps_ref = rho2_vanilla``. The paper derives its reference ε from the vanilla model's
ρ2 too but the exact conversion is not in our notes (PAPERS.md); this is ours. It is
computed once, cached under ``<cache_dir>/robust_training/`` (:func:`robench.cache.cached`),
and recorded as the metric ``eps_ref`` (with ``eps_ref_rho2_vanilla``, the ρ2 it came from).

The recipes, their contract (``methods/base.py``) and the differentiable DeepFool behind
``deepdefense`` (``methods/_deepfool.py``) live in ``methods/``.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

from pydantic import Field, field_validator

from robench.errors import UserError
from robench.registry import register_task
from robench.tasks.base import RunContext, Task, TaskParams, TaskResult
from robench.tasks.robust_training.methods.base import RobustTrainingRecipe


class RobustTrainingParams(TaskParams):
    """Parameters of ``robust_training``. Defaults: LeNet-5 on MNIST-5k, 5 fine-tuning epochs
    (the paper's budget), attacks on 200 test images."""
    model: str = "lenet-5"
    dataset: str = "mnist-5k"
    dataset_root: str | None = None
    baseline_epochs: int = Field(10, gt=0, description="epochs of the shared vanilla model")
    epochs: int = Field(5, gt=0, description="fine-tuning budget of every recipe, in epochs")
    batch_size: int = Field(64, gt=0, description="fine-tuning minibatch size")
    lr: float = Field(0.005, gt=0, description="initial fine-tuning learning rate (halved for the last 20%)")
    n_train: int | None = Field(None, gt=0, description="use only the first n_train training images (None: all)")
    n_test: int = Field(200, gt=0, description="test images attacked (the first n_test of the test split)")
    deepfool_steps: int = Field(50, gt=0, description="L2 DeepFool iterations for rho2 (foolbox)")
    pgd_steps: int = Field(20, gt=0, description="l-inf PGD iterations (step 2.5*eps/steps, random start)")
    fgs_factors: tuple[float, ...] = Field((0.2, 0.5, 1.0), description="FGS/PGD budgets as multiples of eps_ref")
    eval_batch_size: int = Field(250, gt=0, description="attack batch size")

    @field_validator("fgs_factors")
    @classmethod
    def _increasing(cls, v):
        if not v or any(f <= 0 for f in v) or any(b <= a for a, b in zip(v, v[1:])):
            raise ValueError("fgs_factors must be positive and strictly increasing, e.g. [0.2, 0.5, 1.0]")
        return v


def factor_name(f: float) -> str:
    """0.2 → '0.2x', 1.0 → '1x' (metric-name suffix of a budget relative to eps_ref)."""
    return f"{float(f):g}x"


@register_task("robust_training")
class RobustTrainingTask(Task):
    """Fine-tune a trained classifier with a robustness recipe (same epochs); rho2, FGS/PGD accuracy."""
    name = "robust_training"
    version = "1"
    Params = RobustTrainingParams
    method_base = RobustTrainingRecipe
    primary_metric = "rho2"
    greater_is_better = True
    label_params = ("model",)
    headline_metrics = ("test_accuracy", "fgs_accuracy@1x", "pgd_accuracy@1x", "eps_ref")
    plots = ({"name": "rho2_vs_accuracy", "x": "test_accuracy", "y": "rho2"},
             {"name": "rho2_vs_training_cost", "x": "train_cpu_seconds", "y": "rho2", "logx": True})
    metrics_info = {
        "rho2": ("mean over attacked test images of ||r||2/||x||2, r from L2 DeepFool (misclassified count 0)", True),
        "clean_accuracy": ("accuracy on the attacked test images", True),
        "test_accuracy": ("accuracy on the whole test split", True),
        "baseline_test_accuracy": ("test accuracy of the vanilla model before fine-tuning", True),
        "eps_ref": ("reference l-inf budget: rho2 of the seed-0 vanilla model x mean ||x||inf", True),
        "eps_ref_rho2_vanilla": ("rho2 of the seed-0 vanilla model that eps_ref comes from", True),
        "fgs_accuracy@0.2x": ("accuracy under FGS at 0.2 x eps_ref", True),
        "fgs_accuracy@0.5x": ("accuracy under FGS at 0.5 x eps_ref", True),
        "fgs_accuracy@1x": ("accuracy under FGS at eps_ref", True),
        "pgd_accuracy@0.2x": ("accuracy under l-inf PGD at 0.2 x eps_ref", True),
        "pgd_accuracy@0.5x": ("accuracy under l-inf PGD at 0.5 x eps_ref", True),
        "pgd_accuracy@1x": ("accuracy under l-inf PGD at eps_ref", True),
        "train_seconds": ("wall-clock seconds of the recipe's fine-tuning", False),
        "train_cpu_seconds": ("CPU seconds (process time) of the recipe's fine-tuning", False),
    }

    check_params = dict(model="lenet-300-100", baseline_epochs=1, epochs=1, n_train=256, n_test=16,
                        deepfool_steps=10, pgd_steps=3, eval_batch_size=16)

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
        checks += model_checks(out, data.train_x[:8], 10, lambda: train(0)[0])
        return checks

    def run(self, method: RobustTrainingRecipe, seed: int, ctx: RunContext) -> TaskResult:
        import torch

        from robench.data import load_dataset
        from robench.training import accuracy, trained_baseline

        p = self.params
        data = load_dataset(p.dataset, p.dataset_root)
        if p.n_test > len(data.test_x):
            raise UserError(f"robust_training: n_test={p.n_test} but {p.dataset} has {len(data.test_x)} test images")
        eps_ref, rho2_vanilla = self.reference_epsilon(data, ctx)
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

        ctx.say("attacking the fine-tuned model")
        epsilons = tuple(f * eps_ref for f in p.fgs_factors)
        report = self.evaluate(model, data, epsilons, seed)
        metrics = self._metrics(report, epsilons)
        metrics.update({
            "test_accuracy": accuracy(model, data.test_x, data.test_y),
            "baseline_test_accuracy": info["test_accuracy"],
            "eps_ref": eps_ref, "eps_ref_rho2_vanilla": rho2_vanilla,
            "train_seconds": train_wall, "train_cpu_seconds": train_cpu,
            "eval_seconds": float(report.meta["seconds_total"]),
        })
        artifacts = self._export(model, report, epsilons, eps_ref, Path(ctx.artifact_dir))
        return TaskResult(metrics=metrics, artifacts=artifacts)

    # -- protocol pieces ----------------------------------------------------------------
    def prerequisites(self, method, seed):
        """The vanilla baselines of this seed and of seed 0 (ε_ref), trained once."""
        from robench.training import baseline_prerequisite

        return [baseline_prerequisite(self._spec(s)) for s in dict.fromkeys((seed, 0))]

    def _spec(self, seed: int):
        from robench.training import TrainSpec
        return TrainSpec.of_task(self.params, seed)

    def attacks(self, epsilons):
        """The attack list of step 3 (foolbox via robench.attacks)."""
        from robench.attacks import deepfool_l2, fgsm, pgd_linf
        p = self.params
        configs = [deepfool_l2(steps=p.deepfool_steps)]
        if epsilons:
            configs += [fgsm(epsilons), pgd_linf(epsilons, steps=p.pgd_steps)]
        return configs

    def evaluate(self, model, data, epsilons, seed: int):
        from robench.attacks import evaluate_robustness
        p = self.params
        return evaluate_robustness(model, data.test_x[:p.n_test], data.test_y[:p.n_test], self.attacks(epsilons),
                                   batch_size=p.eval_batch_size, seed=seed)

    def reference_epsilon(self, data, ctx: RunContext) -> tuple[float, float]:
        """(eps_ref, rho2 of the PROTOCOL_SEED vanilla model), computed once and cached (see
        module doc)."""
        from robench.attacks import ATTACKS_VERSION
        from robench.cache import cached
        from robench.seeding import PROTOCOL_SEED
        from robench.training import trained_baseline

        p = self.params
        spec = self._spec(PROTOCOL_SEED)
        path = (Path(ctx.cache_dir) / "robust_training" /
                f"eps_ref-{p.model}-{p.dataset}-{spec.key()}-n{p.n_test}-df{p.deepfool_steps}-a{ATTACKS_VERSION}.json")

        def compute() -> dict:
            vanilla, _ = trained_baseline(spec, ctx.cache_dir, data=data, say=ctx.say, device=ctx.device)
            ctx.say(f"computing eps_ref from the seed-{PROTOCOL_SEED} vanilla model")
            rho2 = self.evaluate(vanilla, data, (), PROTOCOL_SEED).rho2()
            x_inf = float(data.test_x[:p.n_test].flatten(1).abs().amax(1).double().mean())
            eps_ref = float(rho2 * x_inf)
            if not eps_ref > 0:
                raise UserError(f"robust_training: eps_ref = 0 for {p.model} on {p.dataset}: the vanilla model "
                                f"misclassifies all {p.n_test} attacked test images (rho2 = 0); expected a "
                                f"trained classifier (raise baseline_epochs or n_test)")
            return {"eps_ref": eps_ref, "rho2_vanilla": rho2, "mean_x_linf": x_inf, "baseline_key": spec.key()}

        value, _ = cached(path, compute, lambda value, tmp: tmp.write_text(json.dumps(value)),
                          lambda path: json.loads(path.read_text()))
        return value["eps_ref"], value["rho2_vanilla"]

    def _metrics(self, report, epsilons) -> dict[str, float]:
        from robench.attacks import format_epsilon
        metrics = dict(report.as_metrics())
        metrics.update(report.sanity().as_metrics())
        for f, eps in zip(self.params.fgs_factors, epsilons):
            name = format_epsilon(eps)
            metrics[f"fgs_accuracy@{factor_name(f)}"] = metrics[f"accuracy_under_fgsm_linf@{name}"]
            metrics[f"pgd_accuracy@{factor_name(f)}"] = metrics[f"accuracy_under_pgd_linf@{name}"]
        return metrics

    def _export(self, model, report, epsilons, eps_ref, folder: Path) -> dict[str, str]:
        from robench.models import export_state_dict

        folder.mkdir(parents=True, exist_ok=True)
        export_state_dict(model, folder / "model.pt")
        report.save_npz(folder / "robustness.npz")
        p = self.params
        (folder / "eval.json").write_text(json.dumps({
            "model": p.model, "dataset": p.dataset, "test_indices": [0, p.n_test],
            "eps_ref": eps_ref, "fgs_factors": list(p.fgs_factors), "epsilons": list(epsilons),
            "deepfool_steps": p.deepfool_steps, "pgd_steps": p.pgd_steps}, indent=2) + "\n")
        return {"model": "model.pt", "robustness": "robustness.npz", "eval": "eval.json"}


def _head(data, n: int):
    from robench.data import Splits
    return Splits(name=data.name, train_x=data.train_x[:n], train_y=data.train_y[:n], test_x=data.test_x,
                  test_y=data.test_y, num_classes=data.num_classes)


class _TrainSplitOnly:
    """Training data for `robench check`: reading the test split is a contract violation."""
    name, num_classes = "check", 10

    def __init__(self, x, y):
        self.train_x, self.train_y = x, y

    @property
    def input_shape(self):
        return tuple(self.train_x.shape[1:])

    @property
    def test_x(self):
        raise AssertionError("the recipe read data.test_x; recipes may use the training split only")

    test_y = test_x
