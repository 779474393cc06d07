"""Task ``sparsity_robustness``: is a sparser (or otherwise compressed) network more robust?
(arXiv 1810.09619, and the compression-robustness matrix of robench's own study)

Its methods are the ``compression`` task's (``methods_from``: every registered compression
method and plug-in, with its own parameters: ``magnitude``/``random``/``dns-target`` with
``sparsity``, ``inq``/``uniform`` with ``bits``, ``sketch`` with ``m``, ``bwn``, ``dns``,
``dns+inq``, ``pipeline``...). The sweep axis is the method's own parameter.

Protocol of one run (compression method M, seed r):

1. Resolve the attacks (preset ``attack_preset`` minus ``exclude_attacks``, or the explicit
   ``attacks`` list; an L2 DeepFool with default settings goes first when they have none,
   since ρ2 is the primary metric) and check the inputs: the model's output on a few test images must be
   (N, classes) logits (a probe model built on generators seeded for it alone,
   :func:`robench.seeding.scoped`), every image must lie in ``bounds``. Bad input fails
   here, with one line, before anything is trained or attacked. The data stays on the CPU.
2. Take the starting model from the shared cache: the dense baseline trained by
   ``TrainSpec(model, dataset, epochs=baseline_epochs, seed=r)`` (the same file the
   ``compression`` task uses), or with ``base`` that baseline fine-tuned by a
   ``robust_training`` recipe (:func:`robench.training.starting_model`, e.g.
   ``{recipe: deepdefense, params: {c: 10}}``: trained once per seed, shared with the
   ``compression`` runs of the same base), on the run's device.
3. Apply M with the ``compression`` protocol (:func:`robench.training.finetune_with_hooks`):
   ``M.prepare(...)`` on the global generators as the executor seeded them with r, SGD
   momentum 0.9, weight decay 5e-4, lr ``finetune_lr`` cosine-decayed to 0 (restarting
   where ``M.lr_restarts`` says), batch ``batch_size``, ``finetune_epochs`` epochs, M as
   the step hooks (no fine-tuning when ``M.wants_finetuning()`` is False, e.g. ``sketch``);
   ``model = M.finalize(model)``. ``magnitude`` at sparsity 0 is the dense model
   fine-tuned with the same budget.
4. For a method with a ``sparsity`` parameter, the measured weight sparsity (zero
   Conv/Linear weights) must be within ``sparsity_tolerance`` of it, else the run fails
   (the method did not do what was asked). Storage: the ``compression`` task's accounting
   (:func:`robench.tasks.compression.metrics.model_storage` with M's own encoding).
5. Attack the first ``n_test`` points of a fixed permutation of the test split (the same
   points for every run: :func:`attack_points`) with :func:`robench.attacks.evaluate_robustness`,
   seed r. Export ``model.pt`` (device-free state dict, ``torch.load(..., weights_only=True)``),
   ``attacks.npz`` (per-sample results, the attacks' settings and, per point, which
   attack broke it first: :meth:`RobustnessReport.save_npz`) and ``storage.json`` (bits
   and encoding per layer).

The default preset ``mnist-default`` (attacks version 3) runs APGD-CE and APGD-T with the
AutoAttack paper's settings next to DeepFool, C&W, FGSM and PGD: ``robust_accuracy_*`` is
the worst case per point over all of them, ``broken_first_by_<attack>@<ε>`` the share each
attack broke first (in the preset's order, so the APGD shares are what they add to the
older attacks), and the sanity flag ``worst_case_le_every_attack_<threat>`` checks the two
against each other. ``rescore`` re-attacks an exported ``model.pt`` on the same points
(``attacks.npz`` and ``storage.json`` are not read).

Metrics: everything of ``RobustnessReport.as_metrics()`` (``clean_accuracy_attacked`` and the
attack metrics are on the n_test attacked points), ``sanity_*`` flags as 1/0, plus
``weight_sparsity``, ``target_sparsity`` (methods with a ``sparsity`` parameter),
``activation_sparsity`` (ReLU outputs that are exactly 0 on the attacked points; absent
for a model without ``nn.ReLU`` modules), ``compression_ratio``, ``compression_ratio_bits``
and ``bits_per_weight`` (the ``compression`` task's storage accounting of the attacked
model), ``clean_accuracy`` and ``test_accuracy`` (both the same value: the accuracy on the
whole test split) and ``baseline_accuracy`` (the starting
model, whole test split; ``rescore`` takes it from the maintainer's own cache).
Primary metric: ``rho2``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import Field, field_validator

from robench.errors import UserError
from robench.registry import register_task
from robench.tasks.base import (Precision, RobustBaseParam, RunContext, Task, TaskParams, TaskResult, WeightsHead,
                                added, precision_param, registered, weights_head_param, weights_normalization_param,
                                weights_param)
from robench.tasks.compression.methods.base import CompressionMethod


class SparsityRobustnessParams(TaskParams):
    """Parameters of ``sparsity_robustness`` (the method's own parameters, e.g. its
    ``sparsity``, are the method's). With the defaults (LeNet-300-100, 200 points, full
    mnist-default preset) one run takes ≈ 12 s of CPU time on one core once the baseline
    is cached; LeNet-5 without C&W ≈ 45 s (the attacks dominate)."""
    model: str = registered("models", "lenet-300-100", "registered classifier (linear, lenet-300-100, lenet-5, a plug-in)")
    dataset: str = registered("datasets", "mnist-5k", "registered dataset (mnist-5k, mnist, cifar10, a plug-in)")
    dataset_root: str | None = None
    sparsity_tolerance: float = Field(0.01, ge=0.0, description="allowed |measured − target| weight sparsity "
                                      "(methods with a sparsity parameter)")
    baseline_epochs: int = Field(10, gt=0, description="epochs of the shared dense baseline")
    finetune_epochs: int = Field(3, ge=0, description="fine-tuning budget of every method, in epochs")
    batch_size: int = Field(64, gt=0, description="fine-tuning minibatch size")
    finetune_lr: float = Field(0.02, gt=0, description="initial fine-tuning learning rate (cosine-decayed to 0)")
    attack_preset: str = Field("mnist-default", description="robench.attacks preset name")
    exclude_attacks: tuple[str, ...] = Field((), description="names of preset attacks to skip, e.g. [cw_l2]")
    attacks: tuple[dict[str, Any], ...] | None = Field(
        None, description="explicit AttackConfig dicts (kind, norm, epsilons, ...); replaces the preset")
    n_test: int = Field(200, gt=0, description="test points attacked (a fixed subset, same for every run)")
    attack_batch_size: int = Field(250, gt=0, description="images per attack batch (memory, not results)")
    bounds: tuple[float, float] = Field((0.0, 1.0), description="the input box the attacks keep to")
    base: RobustBaseParam = added(None, "start from the dense baseline fine-tuned by a robust_training recipe, "
                                  "e.g. {recipe: deepdefense, params: {c: 10}, epochs: 5} (default: the "
                                  "dense baseline itself)")
    precision: Precision = precision_param()
    weights: Optional[str] = weights_param()
    weights_normalization: Literal["model", "none"] = weights_normalization_param()
    weights_head: WeightsHead = weights_head_param()

    # checked at construction, so suite expansion (`robench validate`) rejects them in one line
    @field_validator("attack_preset")
    @classmethod
    def _known_preset(cls, value):
        return _one_line(lambda: _configs(value, (), None)) and value

    @field_validator("exclude_attacks")
    @classmethod
    def _in_the_preset(cls, value, info):
        if "attack_preset" in info.data:  # else the preset itself was rejected
            _one_line(lambda: _configs(info.data["attack_preset"], value, None))
        return value

    @field_validator("attacks")
    @classmethod
    def _attacks_resolve(cls, value):
        if value is not None:
            _one_line(lambda: _configs(None, (), value))
        return value


def _one_line(check):
    """``check()``, its UserError turned into the ValueError pydantic reports with the key."""
    try:
        return check()
    except UserError as exc:
        raise ValueError(str(exc)) from None


def _configs(preset: str | None, exclude, attacks):
    from robench.attacks.configs import deepfool_l2, get_preset, resolve_attacks

    if attacks is not None:
        if not attacks:
            raise UserError("attacks is empty; give at least one attack config or leave it null for the preset")
        kept = resolve_attacks([dict(a) for a in attacks])
    else:
        configs = get_preset(preset)
        names = [c.name for c in configs]
        unknown = [n for n in exclude if n not in names]
        if unknown:
            raise UserError(f"{unknown} not in preset {preset!r} (its attacks: {', '.join(names)})")
        kept = tuple(c for c in configs if c.name not in exclude)
        if not kept:
            raise UserError(f"exclude_attacks removes every attack of preset {preset!r}")
    if not any(c.kind == "deepfool" and c.norm == "l2" for c in kept):  # ρ2, the primary metric
        kept = resolve_attacks((deepfool_l2(), *kept))
    return kept


def attack_points(n_test: int, n_available: int):
    """Indices (int64 CPU tensor) of the attacked test points: the first ``n_test`` of a fixed
    permutation (stream "points" of :data:`robench.seeding.PROTOCOL_SEED`: the points are
    part of the protocol, not of a run) of the ``n_available`` test images."""
    import torch

    from robench import seeding

    if n_test > n_available:
        raise UserError(f"n_test={n_test} but the test split has only {n_available} images")
    generator = seeding.stream(seeding.PROTOCOL_SEED, "points")
    return torch.randperm(n_available, generator=generator, device="cpu")[:n_test]


@register_task("sparsity_robustness")
class SparsityRobustnessTask(Task):
    """Compress a trained (or robust) classifier with any compression method, attack it: ρ2, robust accuracy."""
    name = "sparsity_robustness"
    # 2: attacks version 2 (APGD-CE + APGD-T in mnist-default and smoke), first-broken record
    # 3: the methods are the compression task's (sparsity moved from the task to the method),
    #    robust bases, the storage metrics
    # 4: attacks version 3 (robench's APGD: the same results except l2 APGD-T, now one step size per point)
    # 5: clean_accuracy is the accuracy on the whole test split (= test_accuracy); the attacked
    #    points' accuracy is clean_accuracy_attacked
    version = "5"
    Params = SparsityRobustnessParams
    methods_from = "compression"  # every registered compression method (registry.methods_scope)
    method_base = CompressionMethod
    primary_metric = "rho2"
    reference_methods = {"dense": ""}  # the baseline, not a bound: sparse models can be more robust (the paper)
    typical_run_s = 15.0  # the default suite's settings, baseline cached
    greater_is_better = True
    label_params = ("model",)
    # the sparsity is the method's parameter now (in its label: a row per configuration);
    # runs stored before version 3 carry it as a task parameter, which the report folds
    # into the rows as before. Either way the leaderboard joins a method's configurations
    # in x order in the plots below (one legend entry per method)
    sweep_params = ("sparsity",)
    # l-inf 0.1 and l2 1 are on the ε grid of both presets (mnist-default, smoke)
    headline_metrics = ("robust_accuracy_linf@0.1", "robust_accuracy_l2@1", "test_accuracy",
                        "compression_ratio_bits", "weight_sparsity")
    plots = ({"name": "rho2_vs_storage", "x": "compression_ratio_bits", "y": "rho2", "logx": True, "front": True},
             {"name": "linf_robustness_vs_storage", "x": "compression_ratio_bits", "y": "robust_accuracy_linf@0.1",
              "logx": True, "front": True},
             {"name": "rho2_vs_sparsity", "x": "weight_sparsity", "y": "rho2"})
    check_params = dict(model="linear", baseline_epochs=1, finetune_epochs=1, batch_size=128,
                        attack_preset="smoke", n_test=40)
    metrics_info = {
        "rho2": ("mean DeepFool-L2 ‖r‖₂/‖x‖₂ over the attacked points, misclassified = 0", True),
        "clean_accuracy": ("accuracy of the compressed, fine-tuned model on the whole test split "
                           "(= test_accuracy)", True),
        "clean_accuracy_attacked": ("accuracy on the n_test attacked test points", True),
        "test_accuracy": ("accuracy of the compressed, fine-tuned model on the whole test split "
                          "(= clean_accuracy)", True),
        "baseline_accuracy": ("accuracy of the starting model (dense baseline or robust base) on the whole "
                              "test split", True),
        "target_sparsity": ("the method's sparsity parameter (methods that have one)", True),
        "weight_sparsity": ("measured fraction of zero Conv/Linear weights", True),
        "activation_sparsity": ("fraction of nn.ReLU outputs exactly 0 on the attacked points", True),
        "compression_ratio": ("all parameters (biases included) / nonzero parameters", True),
        "compression_ratio_bits": ("32 · all parameters / bits needed to store the attacked model (the "
                                   "compression task's accounting, the method's own encoding)", True),
        "bits_per_weight": ("storage bits of the Conv2d/Linear weights / their number", False),
        "deepfool_l2_median": ("median DeepFool-L2 norm over correctly classified points", True),
        "cw_l2_median": ("median C&W-L2 norm over correctly classified points", True),
    }

    @classmethod
    def conformance(cls, make_method, folder):
        """The compression contract on a tiny LeNet-300-100 and random data (the methods
        are the compression task's): the method, as the fine-tuning hooks of step 3, keeps
        the model's parameter objects, returns the model and is deterministic for a seed;
        its storage is counted; a method with a ``sparsity`` parameter reaches it within
        the default ``sparsity_tolerance``."""
        from robench.tasks.compression.task import method_conformance

        return method_conformance(make_method, "lenet-300-100",
                                  "compresses a tiny LeNet-300-100 (prepare, fine-tuning, finalize)",
                                  SparsityRobustnessParams().sparsity_tolerance)

    def prerequisites(self, method, seed):
        """The starting model of this seed (dense baseline or robust base), trained once."""
        from robench.training import TrainSpec, start_prerequisite

        return [start_prerequisite(TrainSpec.of_task(self.params, seed), self.params.base)]

    def run(self, method: CompressionMethod, seed: int, ctx: RunContext) -> TaskResult:
        import torch

        from robench import seeding
        from robench.attacks.evaluate import (_check_autoattack_inputs, _check_bounds, _check_inputs_in_bounds,
                                              _check_logits)
        from robench.data import load_dataset
        from robench.models import build_model, export_state_dict
        from robench.tasks.compression.metrics import storage_metrics
        from robench.tasks.compression.task import compress, reached_sparsity

        p = self.params
        configs = _configs(p.attack_preset, p.exclude_attacks, p.attacks)
        lo, hi = _check_bounds(p.bounds)

        # -- 1. inputs, checked before anything is trained or attacked ---------------------
        data = load_dataset(p.dataset, p.dataset_root)
        x, y = self.points(data)
        for name, split in (("test", data.test), ("train", data.train)):
            if split.streamed:  # decoded by the loader's transforms: in [0, 1] by construction
                continue
            try:
                _check_inputs_in_bounds(split.x, lo, hi)
            except UserError as exc:
                raise UserError(f"dataset {p.dataset!r} ({name} split): {exc}") from None
        try:
            with seeding.scoped(seeding.PROTOCOL_SEED):  # a throwaway: the run's generators stay as seeded
                probe = build_model(p.model, num_classes=data.num_classes).to(ctx.device)
            classes = _check_logits(probe.eval(), x, y, torch.device(ctx.device))
            _check_autoattack_inputs(configs, probe, x, classes)
        except UserError as exc:
            raise UserError(f"model {p.model!r}: {exc}") from None
        if classes != data.num_classes:
            raise UserError(f"model {p.model!r}: outputs {classes} logits but dataset {p.dataset!r} "
                            f"has {data.num_classes} classes")

        # -- 2-3. the starting model (shared dense baseline or robust base), compressed and
        # fine-tuned with the compression task's protocol ----------------------------------
        start, info, model = compress(p, method, data, seed, ctx)

        # -- 4. did the method produce the requested sparsity? what does it store? ---------
        target, measured = reached_sparsity(method, model, p.sparsity_tolerance)
        storage, records = storage_metrics(model, method)

        # -- 5. attack and export ----------------------------------------------------------
        folder = Path(ctx.artifact_dir)
        folder.mkdir(parents=True, exist_ok=True)
        export_state_dict(model, folder / "model.pt")
        (folder / "storage.json").write_text(json.dumps({"layers": records}, indent=2) + "\n")
        metrics, report = self.score(model, data, seed, say=ctx.say, target=target)
        report.save_npz(folder / "attacks.npz")
        metrics.update(storage)
        metrics["baseline_accuracy"] = float(info["test_accuracy"])
        if target is not None:
            metrics["target_sparsity"] = float(target)
        return TaskResult(metrics=metrics, artifacts={"model": "model.pt", "attacks": "attacks.npz",
                                                      "storage": "storage.json"})

    def rescore(self, artifact_dir: Path, seed: int, ctx: RunContext, method=None,
                claimed: dict | None = None) -> dict[str, float]:
        """The run's metrics again from its ``model.pt``, this setting's parameters and the
        maintainer's own cache (``robench verify``): the same points, attacks (ε from the
        preset or ``attacks``, never from ``attacks.npz``) and seed; ``baseline_accuracy`` of
        the starting model this setting and seed start from (:func:`starting_model`, the
        run's cache function; trained there if missing); with ``method`` (the run's method,
        built from its stored name and parameters) ``target_sparsity``, the check of step 4
        (a model whose sparsity misses it is refused as the run would have failed), and,
        when the method uses the generic encoding, ``compression_ratio_bits`` and
        ``bits_per_weight`` from the weights. ``storage.json`` and ``attacks.npz`` are never
        read. Left out (claims): the storage metrics of a method with its own encoding, or
        when no method is given."""
        import torch

        from robench import seeding
        from robench.attacks import weight_sparsity
        from robench.data import load_dataset
        from robench.models import build_model
        from robench.tasks.base import load_exported_model
        from robench.tasks.compression.metrics import storage_metrics, target_sparsity
        from robench.tasks.compression.task import generic_storage
        from robench.training import TrainSpec, starting_model

        p = self.params
        folder = Path(artifact_dir)
        data = load_dataset(p.dataset, p.dataset_root)
        with seeding.scoped(seeding.PROTOCOL_SEED), torch.device("cpu"):  # weights are loaded over it
            model = build_model(p.model, num_classes=data.num_classes)
        load_exported_model(folder / "model.pt", model, f"task 'sparsity_robustness': {folder.name}")
        model = model.to(ctx.device).eval()
        target = target_sparsity(method) if method is not None else None
        if target is not None and abs(weight_sparsity(model) - target) > p.sparsity_tolerance:
            raise UserError(f"task 'sparsity_robustness': {folder.name}/model.pt: weight sparsity "
                            f"{weight_sparsity(model):.4f} differs from the method's target {target:g} by more "
                            f"than sparsity_tolerance={p.sparsity_tolerance:g} (the run would have failed)")
        _, info = starting_model(TrainSpec.of_task(p, seed), p.base, ctx.cache_dir, data=data, say=ctx.say,
                                 device=ctx.device)
        metrics = self.score(model, data, seed)[0]
        storage, _ = storage_metrics(model, None)
        generic = method is not None and generic_storage(model, method)
        metrics.update(storage if generic else {"compression_ratio": storage["compression_ratio"]})
        metrics["baseline_accuracy"] = float(info["test_accuracy"])
        if target is not None:
            metrics["target_sparsity"] = float(target)
        return metrics

    def rescore_tolerance(self, metric: str) -> float:
        """Tolerances of a re-score on another kernel set (see ``Task.rescore_tolerance``,
        :func:`robench.tasks.base.attack_tolerance`): a share of the ``n_test`` attacked
        points (``clean_accuracy_attacked``, robust accuracies, accuracies under an attack,
        broken-first shares, failure rates) ATTACK_FLIPS/n_test, since an iterative attack's path
        may end on the other side of a boundary where the logits differ in the last bits;
        ``clean_accuracy`` and ``test_accuracy`` FLIPS/len(test split); ``baseline_accuracy``,
        from the maintainer's own (re)trained starting model, RETRAIN_ACCURACY_TOLERANCE; the attack norms (``rho2``,
        ``*_median``) NORM_TOLERANCE; ``activation_sparsity`` ACTIVATION_TOLERANCE; sanity
        flags, ``target_sparsity``, weight sparsity and storage exact (0)."""
        from robench.tasks.base import attack_tolerance

        return attack_tolerance(metric, self.params.n_test, self._n_test_split())

    def _n_test_split(self) -> int:
        """Images of the whole test split (``clean_accuracy``, ``test_accuracy``), loaded once per task
        object."""
        from robench.data import load_dataset

        if getattr(self, "_rescore_n_split", None) is None:
            self._rescore_n_split = len(load_dataset(self.params.dataset, self.params.dataset_root).test)
        return self._rescore_n_split

    def points(self, data):
        """(x, y) of the attacked test points (:func:`attack_points`), on the CPU."""
        return data.test.take(attack_points(self.params.n_test, len(data.test)))

    def score(self, model, data, seed: int, say=None, target: float | None = None):
        """(metrics, report) of the compressed, fine-tuned ``model``: step 5's attacks, the
        sanity flags, sparsities and the test accuracy (no storage, ``baseline_accuracy``
        or ``target_sparsity``)."""
        from robench import seeding
        from robench.attacks import activation_sparsity, evaluate_robustness, weight_sparsity
        from robench.training import accuracy

        p = self.params
        configs = _configs(p.attack_preset, p.exclude_attacks, p.attacks)
        x, y = self.points(data)
        if say is not None:
            say(f"attacking {p.n_test} test points with {', '.join(c.name for c in configs)}")
        report = evaluate_robustness(model, x, y, configs, batch_size=p.attack_batch_size, bounds=p.bounds, seed=seed)
        report.meta.update(test_indices_seed=seeding.stream_seed(seeding.PROTOCOL_SEED, "points"), model=p.model)
        if target is not None:
            report.meta.update(target_sparsity=target)
        metrics = dict(report.as_metrics())
        metrics.update(report.sanity().as_metrics())
        activations = activation_sparsity(model, x)["overall"]
        if math.isfinite(activations):
            metrics["activation_sparsity"] = activations
        test_accuracy = accuracy(model, data.test, precision=p.precision)
        metrics.update(weight_sparsity=weight_sparsity(model), test_accuracy=test_accuracy,
                       clean_accuracy=test_accuracy)
        return {k: float(v) for k, v in metrics.items()}, report
