"""Task ``compression``: how much smaller can a trained classifier get, and at what accuracy?

Protocol of one run (method M, seed s):

1. Load the dataset; take the dense baseline trained by ``TrainSpec(model, dataset,
   epochs=baseline_epochs, seed=s)`` from the shared cache (trained once per seed and
   reused by every method, so all methods of a seed start from the same weights).
2. ``M.prepare(model, data, total_steps, s)`` (the executor has seeded the run's global
   generators with s; a method draws its own randomness from
   ``robench.seeding.stream(s, "method")``).
3. Fine-tune with SGD (momentum 0.9, weight decay 5e-4, lr ``finetune_lr``, cosine-decayed
   to 0 over the budget, restarting where ``M.lr_restarts`` says), batch ``batch_size``,
   for ``finetune_epochs`` epochs, with M as the step hooks. The budget is the same for
   every method, ``dense`` included; a method that compresses without retraining
   (``M.wants_finetuning()`` False, e.g. ``sketch``) skips this step.
4. ``model = M.finalize(model)``; its zeros are the pruned weights.
5. Measure accuracy, parameter/FLOP compression, storage in bits and CPU latency of
   ``M.inference_model`` (by default the sparse path: CSR kernels for pruned layers where
   they are faster) against the dense baseline; add ``M.extra_metrics``; export
   ``model.pt`` (state dict, device-free, loadable with ``torch.load(..., weights_only=True)``)
   and ``layers.json`` (per-layer counts, sparsity, storage encoding and bits, and which
   layers ran sparse; its top-level ``inference`` says whether latency was measured and
   whether the sparse path was chosen).

With ``latency: false`` the latency step is skipped: no inference model is built, nothing
of the task is timed, and ``latency_ms``, ``latency_dense_ms`` and ``speedup_measured`` are
absent from the run's metrics (not NaN); ``layers.json`` then has ``inference: {latency:
false, sparse: false}`` and no layer on a sparse kernel. Meant for large models (ImageNet
scale, minutes of CPU timing per run) and GPU runs, where CPU latency says little. A
method's own ``extra_metrics`` still run (``uniform`` at 8 bits times its int8 model there).

Devices: the baseline, fine-tuning, accuracy and counting run on the run's device
(``ctx.device``); the dataset stays on the CPU and each batch moves to the model. The
latency metrics are CPU latencies whatever the run's device (the CSR kernels they compare
are CPU kernels): they time CPU copies of the models on a CPU batch.

Latency metrics are wall-clock measurements: they vary run to run, unlike every other
metric, which is deterministic for a given seed and machine.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Literal, Optional

from pydantic import Field

from robench.errors import UserError
from robench.registry import register_task
from robench.tasks.base import (Precision, RobustBaseParam, RunContext, Task, TaskParams, TaskResult, WeightsHead,
                                added, precision_param, registered, weights_head_param, weights_normalization_param,
                                weights_param)
from robench.tasks.compression.methods.base import CompressionMethod


class CompressionParams(TaskParams):
    """Parameters of the ``compression`` task. With the defaults one LeNet-5 run (baseline cached)
    takes ≈ 16 s of CPU time on one core: 504 fine-tuning steps, evaluation and timing."""
    model: str = registered("models", "lenet-5", "registered classifier")
    dataset: str = registered("datasets", "mnist-5k", "registered dataset (mnist-5k, mnist, cifar10, a plug-in)")
    dataset_root: str | None = None
    baseline_epochs: int = Field(10, gt=0, description="epochs of the shared dense baseline")
    finetune_epochs: int = Field(8, gt=0, description="fine-tuning budget of every method, in epochs")
    batch_size: int = Field(64, gt=0, description="fine-tuning minibatch size")
    finetune_lr: float = Field(0.02, gt=0, description="initial fine-tuning learning rate (cosine-decayed to 0)")
    latency_batch_size: int = Field(64, gt=0, le=4096, description="images per timed forward pass")
    latency_repeats: int = Field(30, gt=0, description="timed forward passes per model (median reported)")
    latency: bool = added(True, "measure CPU latency (latency_ms, latency_dense_ms, speedup_measured; builds "
                          "and times the method's inference model); false: skip it, e.g. at ImageNet scale "
                          "or on a GPU run")
    base: RobustBaseParam = added(None, "start from the dense baseline fine-tuned by a robust_training recipe, "
                                  "e.g. {recipe: deepdefense, params: {c: 10}, epochs: 5} (default: the "
                                  "dense baseline itself)")
    precision: Precision = precision_param()
    weights: Optional[str] = weights_param()
    weights_normalization: Literal["model", "none"] = weights_normalization_param()
    weights_head: WeightsHead = weights_head_param()


@register_task("compression")
class CompressionTask(Task):
    """Prune/compress a trained classifier, fine-tune with a fixed budget; accuracy vs compression."""
    name = "compression"
    version = "2"
    Params = CompressionParams
    method_base = CompressionMethod
    primary_metric = "accuracy"
    reference_methods = {"dense": "upper"}
    tradeoff = {"x": "compression_ratio_bits", "y": "accuracy", "within": 0.01}
    typical_run_s = 16.0  # LeNet-5 at the defaults, baseline cached (one core)
    greater_is_better = True
    label_params = ("model", "dataset")
    metrics_info = {
        "accuracy": ("top-1 test accuracy of the compressed, fine-tuned model, in [0, 1]", True),
        "baseline_accuracy": ("top-1 test accuracy of the dense baseline before fine-tuning", True),
        "accuracy_delta": ("accuracy − baseline_accuracy", True),
        "compression_ratio": ("all parameters (biases included) / nonzero parameters", True),
        "compression_ratio_bits": ("32 · all parameters / bits needed to store the model (values and "
                                   "sparse indices; see robench.tasks.compression.metrics)", True),
        "bits_per_weight": ("storage bits of the Conv2d/Linear weights / their number", False),
        "sparsity": ("fraction of zero weights in Conv2d/Linear layers, in [0, 1]", True),
        "flops_ratio": ("dense multiply-adds / multiply-adds with nonzero weights (conv: per output position)", True),
        "latency_ms": ("median CPU ms of a forward pass of the compressed model's inference path "
                       "(pruned layers on CSR sparse kernels where faster; sketch: associative "
                       "binary layers), timed on a CPU copy whatever the run's device", False),
        "latency_dense_ms": ("median CPU ms of a forward pass of the dense baseline (a CPU copy), "
                             "same batch", False),
        "speedup_measured": ("latency_dense_ms / latency_ms", True),
    }
    LATENCY_METRICS = ("latency_ms", "latency_dense_ms", "speedup_measured")  # absent with latency: false

    headline_metrics = ("accuracy_delta", "compression_ratio", "compression_ratio_bits", "bits_per_weight",
                        "speedup_measured")
    plots = ({"name": "accuracy_vs_storage", "x": "compression_ratio_bits", "y": "accuracy", "logx": True,
              "front": True},
             {"name": "accuracy_vs_compression", "x": "compression_ratio", "y": "accuracy", "logx": True})

    check_params = dict(model="lenet-300-100", baseline_epochs=1, finetune_epochs=1, batch_size=128,
                        latency_batch_size=8, latency_repeats=2)

    @classmethod
    def conformance(cls, make_method, folder):
        """The method contract on a tiny LeNet-5 and random data (see methods/base.py)."""
        return method_conformance(make_method, "lenet-5", "compresses a tiny LeNet-5 (prepare, step hooks, finalize)")

    def prerequisites(self, method, seed):
        """The dense baseline of this seed, trained once."""
        from robench.training import TrainSpec, start_prerequisite

        return [start_prerequisite(TrainSpec.of_task(self.params, seed), self.params.base)]

    def run(self, method: CompressionMethod, seed: int, ctx: RunContext) -> TaskResult:
        import torch

        from robench.data import load_dataset
        from robench.tasks.compression import metrics
        from robench.training import accuracy

        p = self.params
        data = load_dataset(p.dataset, p.dataset_root)
        dense, info, model = compress(p, method, data, seed, ctx)

        test_accuracy = accuracy(model, data.test, precision=p.precision)
        stats = metrics.layer_stats(model, data.input_shape)
        storage_bits, storage = metrics.model_storage(model, method)
        timed: dict[str, float] = {}
        inference: dict = {"latency": False, "sparse": False}  # latency: false: no inference model built
        sparse_layers: dict = {}
        if p.latency:
            with torch.device("cpu"):  # CPU latency (CSR kernels are CPU kernels), whatever the run's device
                batch = data.test.take(torch.arange(p.latency_batch_size) % len(data.test))[0]
                fast = method.inference_model(_on_cpu(model), batch)
                latency_dense, latency = metrics.paired_latency_ms([_on_cpu(dense), fast], batch,
                                                                   p.latency_repeats)
            timed = {"latency_ms": latency, "latency_dense_ms": latency_dense,
                     "speedup_measured": latency_dense / latency}
            sparse_layers = getattr(fast, "sparse_layers_", {})
            inference = {"latency": True, **getattr(fast, "sparse_model_", {})}

        result = {
            "accuracy": test_accuracy,
            "baseline_accuracy": info["test_accuracy"],
            "accuracy_delta": test_accuracy - info["test_accuracy"],
            **metrics.storage_ratios(model, storage_bits, storage),
            "sparsity": metrics.weight_sparsity(stats),
            "flops_ratio": metrics.flops_ratio(stats),
            **timed,
        }
        extra = method.extra_metrics(model, data) or {}
        clash = sorted(set(extra) & (set(result) | set(self.LATENCY_METRICS)))
        if clash:
            raise UserError(f"method {method!r}: extra_metrics() redefines the task's metric(s) {', '.join(clash)}")
        result.update({k: float(v) for k, v in extra.items()})
        artifacts = self._export(model, stats, (storage_bits, storage), sparse_layers, inference,
                                 Path(ctx.artifact_dir))
        return TaskResult(metrics=result, artifacts=artifacts)

    def rescore(self, artifact_dir: Path, seed: int, ctx: RunContext, method=None,
                claimed: dict | None = None) -> dict[str, float]:
        """Re-score the exported ``model.pt`` (``robench verify``): ``accuracy`` on this
        setting's test split; ``baseline_accuracy`` of the starting model this setting and
        seed start from, taken from the maintainer's own cache (:func:`starting_model`, the
        run's cache function; trained there if missing) and ``accuracy_delta``; parameter
        compression, weight sparsity and FLOP ratio of the weights; and, when ``method``
        (the run's method, built from its stored name and parameters) stores its weights
        with the generic encoding (``storage_bits`` None for every layer, as ``run`` decides),
        ``compression_ratio_bits`` and ``bits_per_weight`` recomputed from the weights.
        ``layers.json`` is never read. Left out (claims): the storage metrics of a method with
        its own encoding (Network Sketching's bases are not in the weights) or when no method
        is given, the wall-clock latencies, and a method's ``extra_metrics``."""
        import torch

        from robench import seeding
        from robench.data import load_dataset
        from robench.models import build_model
        from robench.tasks.base import load_exported_model
        from robench.tasks.compression import metrics
        from robench.training import TrainSpec, accuracy, starting_model

        folder = Path(artifact_dir)
        p = self.params
        data = load_dataset(p.dataset, p.dataset_root)
        with seeding.scoped(seeding.PROTOCOL_SEED), torch.device("cpu"):  # weights are loaded over it
            model = build_model(p.model, num_classes=data.num_classes)
        load_exported_model(folder / "model.pt", model, f"task 'compression': {folder.name}")
        model = model.to(ctx.device).eval()
        _, info = starting_model(TrainSpec.of_task(p, seed), p.base, ctx.cache_dir, data=data, say=ctx.say,
                                 device=ctx.device)
        stats = metrics.layer_stats(model, data.input_shape)
        test_accuracy = accuracy(model, data.test, precision=p.precision)
        out = {"accuracy": test_accuracy, "baseline_accuracy": info["test_accuracy"],
               "accuracy_delta": test_accuracy - info["test_accuracy"],
               "compression_ratio": metrics.compression_ratio(model),
               "sparsity": metrics.weight_sparsity(stats), "flops_ratio": metrics.flops_ratio(stats)}
        if method is not None and generic_storage(model, method):
            ratios, _ = metrics.storage_metrics(model, None)
            out["compression_ratio_bits"], out["bits_per_weight"] = ratios["compression_ratio_bits"], ratios["bits_per_weight"]
        return out

    def rescore_tolerance(self, metric: str) -> float:
        """``accuracy``: :data:`~robench.tasks.base.FLIPS` of the n test points flipping,
        FLIPS/n. ``baseline_accuracy`` comes from the maintainer's own baseline, retrained on
        its kernel set when not cached: another rounding of a whole training,
        :data:`~robench.tasks.base.RETRAIN_ACCURACY_TOLERANCE`; ``accuracy_delta`` the sum of
        both. Counts and storage are exact (0)."""
        from robench.tasks.base import RETRAIN_ACCURACY_TOLERANCE, flip_tolerance

        if metric == "accuracy":
            return flip_tolerance(self._n_test())
        if metric == "baseline_accuracy":
            return RETRAIN_ACCURACY_TOLERANCE
        if metric == "accuracy_delta":
            return flip_tolerance(self._n_test()) + RETRAIN_ACCURACY_TOLERANCE
        return 0.0

    def _n_test(self) -> int:
        """Test points behind ``accuracy`` (the dataset is loaded once per task object)."""
        from robench.data import load_dataset

        if getattr(self, "_rescore_n_test", None) is None:
            self._rescore_n_test = len(load_dataset(self.params.dataset, self.params.dataset_root).test)
        return self._rescore_n_test

    def _export(self, model, stats, storage, sparse_layers, inference, folder: Path) -> dict[str, str]:
        from robench.models import export_state_dict
        from robench.tasks.compression.metrics import parameter_counts

        storage_bits, storage = storage
        folder.mkdir(parents=True, exist_ok=True)
        export_state_dict(model, folder / "model.pt")
        total, nonzero = parameter_counts(model.parameters())
        report = {
            "model": self.params.model,
            "dataset": self.params.dataset,
            "inference": inference,
            "layers": [{**s.as_dict(), "storage": {k: v for k, v in r.items() if k != "name"},
                        "inference": sparse_layers.get(s.name, {"sparse": False})}
                       for s, r in zip(stats, storage)],
            "total": {"params": total, "nonzero_params": nonzero,
                      "weights": sum(s.weights for s in stats),
                      "nonzero_weights": sum(s.nonzero_weights for s in stats),
                      "macs_dense": sum(s.macs_dense for s in stats),
                      "macs_nonzero": sum(s.macs_nonzero for s in stats),
                      "storage_bits": storage_bits},
        }
        (folder / "layers.json").write_text(json.dumps(report, indent=2) + "\n")
        return {"model": "model.pt", "layers": "layers.json"}


def generic_storage(model, method) -> bool:
    """Whether ``method`` stores every Conv2d/Linear weight of ``model`` with the generic
    encoding (its ``storage_bits`` returns None for each, as :func:`metrics.model_storage`
    asks it in ``run``): only then do the weights alone determine the storage metrics. A
    ``storage_bits`` that fails on a fresh instance counts as a method encoding."""
    from robench.tasks.compression.methods.base import prunable_layers

    try:
        return all(method.storage_bits(name, module) is None for name, module in prunable_layers(model))
    except Exception:  # noqa: BLE001 - an encoding that needs the method's fitted state
        return False


def _on_cpu(model):
    """``model`` itself when it is on the CPU, else a CPU copy (the run's model stays put)."""
    tensors = [*model.parameters(), *model.buffers()]
    return model if all(t.device.type == "cpu" for t in tensors) else copy.deepcopy(model).cpu()


def method_conformance(make_method, model: str, label: str, sparsity_tolerance: float | None = None) -> list:
    """The compression-method contract, shared by the tasks that take these methods: on a tiny
    ``model`` and random data, the method (as fine-tuning hooks) keeps the model's parameter
    objects, returns the model and is deterministic for a seed (``label`` names that check);
    its storage is counted; with ``sparsity_tolerance``, a method with a ``sparsity``
    parameter reaches it within that tolerance."""
    from robench.attacks import weight_sparsity
    from robench.tasks.compression import metrics
    from robench.tasks.contract import Check, guarded, step_hook_checks, tiny_classification_data

    checks, out = step_hook_checks(label, model, tiny_classification_data(), make_method)
    if out is None:
        return checks
    checks.append(guarded("storage accounting (compression_ratio_bits)",
                          lambda: metrics.model_storage(out, make_method()))[0])
    target = metrics.target_sparsity(make_method())
    if sparsity_tolerance is not None and target is not None:
        check, measured = guarded(f"reaches its sparsity {target:g} (within {sparsity_tolerance:g})",
                                  lambda: weight_sparsity(out))
        if measured is not None:
            check = Check(check.name, abs(measured - target) <= sparsity_tolerance,
                          f"measured weight sparsity {measured:.4f}")
        checks.append(check)
    return checks


def compress(p, method: CompressionMethod, data, seed: int, ctx: RunContext):
    """The compression protocol's steps, shared by the tasks that take these methods: the
    starting model of ``seed`` (``p.base``: the dense baseline or a robust base, from the
    cache), and a copy of it compressed by ``method`` as the fine-tuning hooks of
    ``p.finetune_epochs`` epochs (SGD, ``p.finetune_lr`` cosine-decayed, ``p.batch_size``,
    ``p.precision``), in eval mode. Returns ``(start, info, model)``."""
    import torch

    from robench.training import TrainSpec, finetune_with_hooks, starting_model

    spec = TrainSpec.of_task(p, seed)
    start, info = starting_model(spec, p.base, ctx.cache_dir, data=data, say=ctx.say, device=ctx.device)
    ctx.say(f"compressing with {method!r}, fine-tuning {p.finetune_epochs} epochs")
    model = finetune_with_hooks(copy.deepcopy(start), data, method, epochs=p.finetune_epochs,
                                batch_size=p.batch_size, lr=p.finetune_lr, seed=seed, precision=p.precision)
    if not isinstance(model, torch.nn.Module):
        raise UserError(f"method {method!r}: finalize() returned {type(model).__name__}; expected the model")
    return start, info, model.eval()


def reached_sparsity(method: CompressionMethod, model, tolerance: float) -> tuple[float | None, float]:
    """``(target, measured)``: the method's ``sparsity`` parameter (None without one) and the
    model's measured weight sparsity; a UserError when they differ by more than ``tolerance``."""
    from robench.attacks import weight_sparsity
    from robench.tasks.compression.metrics import target_sparsity

    target, measured = target_sparsity(method), weight_sparsity(model)
    if target is not None and abs(measured - target) > tolerance:
        raise UserError(f"method {method!r}: measured weight sparsity {measured:.4f} differs from the "
                        f"target {target:g} by more than sparsity_tolerance={tolerance:g}")
    return target, measured
