"""``robench check METHOD``: does a (plug-in) method honour its task's contract?

Three layers of checks, each reported as one line (pass/fail and why):

1. registration: the method is registered for the task and subclasses the task's method
   base class; its constructor stores its parameters (``get_params()`` gives back what it
   was built with) and they are JSON-serialisable (so run ids are stable);
2. the task's own contract checks on tiny data (``Task.conformance``), e.g. a training
   recipe must return a model with the same outputs' shape, train only on the training
   split and be deterministic for a seed;
3. one end-to-end run of the task at its tiny ``check_params`` settings in a scratch
   folder: the primary metric is present, every metric is a finite float (or NaN) and
   every declared artifact exists.

Nothing is written to the results store.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Callable

from robench.errors import UserError
from robench.tasks.contract import Check, guarded


def resolve_task(method: str, task: str | None) -> str:
    from robench import registry

    if task is not None:
        registry.tasks.get(task)  # raises a UserError with suggestions
        return task
    owners = sorted({e.task for e in registry.methods.entries(task=...) if e.name == method and e.task})
    if not owners:
        import difflib
        names = sorted({e.name for e in registry.methods.entries(task=...)})
        hint = difflib.get_close_matches(method, names, n=1, cutoff=0.5)
        raise UserError(f"unknown method {method!r}" + (f"; did you mean {hint[0]!r}?" if hint else
                                                         "; `robench ls methods` lists them"))
    if len(owners) > 1:
        raise UserError(f"method {method!r} exists for several tasks ({', '.join(owners)}); pass --task")
    return owners[0]


def check_method(method: str, task: str | None = None, params: dict | None = None,
                 plugins: tuple = (), run_task: bool = True,
                 on_check: Callable[[Check], None] | None = None,
                 device: str | None = "cpu") -> tuple[str, list[Check]]:
    """Run every check on ``method`` (of ``task``, found from the registry when omitted).
    Returns ``(task name, checks)``; ``on_check`` is called with each group of checks as it
    finishes (for progress output); the end-to-end run uses ``device`` (``auto``, ``cpu``,
    ``cuda``...). Raises UserError for an unknown method/task, bad params or a missing device."""
    from robench import registry
    from robench.spec import canonical_json, canonical_method_params

    registry.setup(plugins)
    task = resolve_task(method, task)
    task_cls = registry.tasks.get(task)
    method_cls = registry.methods.get(method, task=task)
    canonical = canonical_method_params(method_cls, params or {}, "robench check", "params")

    checks = _Reported(on_check)
    checks.append(Check(f"subclasses {task_cls.method_base.__name__}",
                    isinstance(method_cls, type) and issubclass(method_cls, task_cls.method_base),
                    f"{getattr(method_cls, '__name__', method_cls)!r} does not"))
    if not checks[0].ok:
        return task, list(checks)

    def make():
        return method_cls(**canonical)

    check, instance = guarded("constructor accepts its parameters", make)
    checks.append(check)
    if instance is None:
        return task, list(checks)

    def params_round_trip():
        got = instance.get_params()
        if canonical_json(got) != canonical_json(canonical):
            raise AssertionError(f"get_params() gives {got!r}, built with {canonical!r}: store each "
                                 f"constructor argument as an attribute of the same name")
        canonical_json(got)
    checks.append(guarded("parameters round-trip and are JSON", params_round_trip)[0])

    from robench.executors import resolve_device
    device = resolve_device(device)
    with tempfile.TemporaryDirectory(prefix="robench-check-") as tmp:
        import torch

        with torch.device(device):  # the contract checks run where the runs would
            checks.extend(task_cls.conformance(make, Path(tmp)))
        if run_task:
            checks.extend(_run_once(task_cls, make, Path(tmp), device))
    return task, list(checks)


class _Reported(list):
    """A list of checks that reports each one to ``on_check`` as it is added."""

    def __init__(self, on_check):
        super().__init__()
        self._on_check = on_check

    def append(self, check: Check) -> None:
        super().append(check)
        if self._on_check is not None:
            self._on_check(check)

    def extend(self, checks) -> None:
        for check in checks:
            self.append(check)


def _run_once(task_cls, make, folder: Path, device: str = "cpu", params: dict | None = None,
              label: str | None = None, may_be_infinite: tuple[str, ...] = (),
              cache: Path | None = None) -> list[Check]:
    """One run at the check settings: the primary metric present, every metric a float and
    finite (or NaN; those ending in ``may_be_infinite`` may also be inf), every declared
    artifact written. ``cache``: the cache folder (default: a new one in ``folder``)."""
    from robench.seeding import seed_everything
    from robench.tasks.base import RunContext, execute

    artifacts, cache = folder / "artifacts", cache or folder / "cache"
    artifacts.mkdir()
    cache.mkdir(exist_ok=True)
    label = label or f"runs through '{task_cls.name}' at its check settings"

    def run_once():
        method = make()
        task = task_cls(**(params if params is not None else task_cls.check_params_for(method)))
        seed_everything(0)
        return execute(task, method, 0, RunContext(artifact_dir=artifacts, cache_dir=cache, device=device))
    check, result = guarded(label, run_once)
    if result is None:
        return [check]
    problems = []
    metrics = getattr(result, "metrics", None)
    if not isinstance(metrics, dict):
        return [Check(label, False, f"run() returned {type(result).__name__}; expected a TaskResult")]
    if task_cls.primary_metric not in metrics:
        problems.append(f"no primary metric {task_cls.primary_metric!r}")
    for name, value in metrics.items():
        try:
            value = float(value)
        except (TypeError, ValueError):
            problems.append(f"metric {name!r} is {value!r}, not a number")
            continue
        if math.isinf(value) and not name.endswith(may_be_infinite):
            problems.append(f"metric {name!r} is infinite")
    missing = [rel for rel in (result.artifacts or {}).values() if not (artifacts / rel).exists()]
    if missing:
        problems.append(f"declared artifacts not written: {', '.join(missing)}")
    return [Check(label, not problems, "; ".join(problems))]


# -- models ------------------------------------------------------------------------------------
CLASSIFICATION_TASKS = ("compression", "sparsity_robustness", "robust_training", "corruption_robustness")
# per classification task, the method of a model check's end-to-end run and what it changes in
# the task's check_params. The attacks are cut to what exercises the model through each task
# (DeepFool for ρ2, one-step and two-step l∞ attacks), on a few points: every
# attack costs a backward pass per class and step, minutes each for a 36M-parameter network on
# a CPU (the smoke preset's C&W and APGD-T on 40 points took over an hour for WRN-28-10).
# corruption_robustness evaluates two families (one noise, one geometric) at one severity,
# without fine-tuning (the compression run fine-tunes the model).
MODEL_CHECK_RUNS = {"compression": ("magnitude", {}),
                    "sparsity_robustness": ("magnitude", {
                        "n_test": 10, "attack_batch_size": 10,
                        "attacks": ({"kind": "deepfool", "norm": "l2", "steps": 10},
                                    {"kind": "fgsm", "norm": "linf", "epsilons": [0.1]})}),
                    "robust_training": ("vanilla", {"attack_preset": None, "pgd_steps": 2, "eps_ref": 0.1}),
                    "corruption_robustness": ("magnitude", {"families": ("shot_noise", "rotate"), "severities": (3,),
                                                            "finetune_epochs": 0})}
# robust_training attacks at a fixed eps_ref (its RobustBench-style option): calibrating it needs
# a vanilla model that has learned, and the checks' one-epoch baselines of deep networks on 500
# images are near-constant classifiers DeepFool cannot cross (ResNet-20, VGG-16, NIN: no eps_ref),
# a matter of the check's budget, not of the model's contract.
# The runs read this class-balanced 600-image head of mnist-5k (all four tasks default to
# mnist-5k), so a deep network's check takes minutes on a CPU, not hours; they share one
# scratch cache, so the dense baseline they have in common is trained once.
MODEL_CHECK_DATASET = "mnist-check"
# A minimal attack's median norm is inf when more than half the points stay unbroken within
# its budget (robench.attacks.evaluate). At the tiny check budgets deep networks get there
# (ResNet-20: DeepFool at 10 steps): the attack's budget, not the model's contract, so a model
# check lets these metrics be inf.
MAY_BE_INFINITE_FOR_MODELS = ("_median",)


def check_model(model: str, task: str | None = None, plugins: tuple = (), run_task: bool = True,
                on_check: Callable[[Check], None] | None = None,
                device: str | None = "cpu") -> tuple[list[str], list[Check]]:
    """``robench check --model NAME``: the model contract on tiny MNIST-shaped data, then one
    tiny end-to-end run of each classification task (or of ``task``) with the model, on
    ``mnist-check`` (:data:`MODEL_CHECK_DATASET`).

    The contract: the factory builds from ``num_classes`` (and ``in_channels`` where the
    data need it); the model returns (N, classes) logits, not probabilities; one training
    step changes it; its ``state_dict`` round-trips through ``torch.load(weights_only=True)``;
    the same seed builds the same weights; the pruning hooks find Conv2d/Linear layers to
    prune and keep its parameters; the attack layer runs on it. Returns ``(tasks, checks)``.
    """
    from robench import registry
    from robench.executors import resolve_device

    registry.setup(plugins)
    registry.models.entry(model)  # unknown: a UserError with did-you-mean
    if task is not None and task not in CLASSIFICATION_TASKS:
        registry.tasks.get(task)
        raise UserError(f"--task {task}: models are checked with the classification tasks "
                        f"({', '.join(CLASSIFICATION_TASKS)})")
    tasks = [task] if task else list(CLASSIFICATION_TASKS)
    device = resolve_device(device)
    checks = _Reported(on_check)
    import torch

    with torch.device(device):
        checks.extend(_model_contract(model))
    if run_task and all(c.ok for c in checks):
        with tempfile.TemporaryDirectory(prefix="robench-check-") as tmp:
            for name in tasks:
                task_cls = registry.tasks.get(name)
                folder = Path(tmp) / name
                folder.mkdir()
                method, extra = MODEL_CHECK_RUNS[name]
                method_cls = registry.methods.get(method, task=name)
                params = {**task_cls.check_params, **extra, "model": model, "dataset": MODEL_CHECK_DATASET}
                checks.extend(_run_once(task_cls, method_cls, folder, device, params,
                                        label=f"runs through '{name}' ({method}) at its check settings",
                                        may_be_infinite=MAY_BE_INFINITE_FOR_MODELS, cache=Path(tmp) / "cache"))
    return tasks, list(checks)


def _model_contract(model: str) -> list[Check]:
    import io

    import torch
    import torch.nn.functional as F

    from robench import seeding
    from robench.models import build_model
    from robench.tasks.contract import step_hook_checks, tiny_classification_data

    data = tiny_classification_data()
    device = torch.get_default_device()

    def build(seed: int = 0):
        with seeding.scoped(seed):
            return build_model(model, num_classes=data.num_classes)

    check, net = guarded("builds from num_classes=10 (MNIST-shaped input 1x28x28)", build)
    if net is None:
        return [check]
    checks = [check]
    x, y = data.test_x.to(device), data.test_y.to(device)
    check, out = guarded("runs on a batch", lambda: net.eval()(x))
    if out is None:  # say what the task feeds, beside torch's words
        fed = f"(N, {x.shape[1]}, {x.shape[2]}, {x.shape[3]}) float images in [0, 1], {data.num_classes} classes"
        check = Check(check.name, False, f"does not take the input the classification tasks feed on MNIST-shaped "
                                         f"data: {fed} (torch: {check.detail})")
    checks.append(check)
    if out is None:
        return checks
    shape_ok = isinstance(out, torch.Tensor) and tuple(out.shape) == (len(x), data.num_classes)
    checks.append(Check("returns (N, classes) outputs", shape_ok,
                        f"got {tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__}, "
                        f"expected ({len(x)}, {data.num_classes})"))
    if not shape_ok:
        return checks
    with torch.no_grad():
        rows = out.detach().float()
        probabilities = bool((rows >= 0).all() and (rows <= 1).all()
                             and torch.allclose(rows.sum(1), torch.ones(len(rows), device=rows.device), atol=1e-4))
    checks.append(Check("returns logits, not probabilities", not probabilities,
                        "every row is in [0, 1] and sums to 1: drop the final softmax (the tasks use "
                        "cross-entropy and attacks on logits)"))

    def one_step():
        before = [p.detach().clone() for p in net.parameters()]
        optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
        net.train()
        optimizer.zero_grad()
        F.cross_entropy(net(x), y).backward()
        optimizer.step()
        if not any(not torch.equal(b, p.detach()) for b, p in zip(before, net.parameters())):
            raise AssertionError("no parameter changed after one SGD step (no trainable parameters?)")
    checks.append(guarded("one training step changes it", one_step)[0])

    def round_trip():
        buffer = io.BytesIO()
        torch.save({k: v.detach().cpu() for k, v in net.state_dict().items()}, buffer)
        buffer.seek(0)
        state = torch.load(buffer, weights_only=True)
        fresh = build(1)
        fresh.load_state_dict(state)
        with torch.no_grad():
            if not torch.allclose(fresh.eval()(x), net.eval()(x)):
                raise AssertionError("a model loaded from its state_dict gives other outputs")
    checks.append(guarded("state_dict round-trips through torch.load(weights_only=True)", round_trip)[0])

    def deterministic():
        a, b = build(0).state_dict(), build(0).state_dict()
        if not all(torch.equal(a[k], b[k]) for k in a):
            raise AssertionError("two builds with the same seed have different weights")
    checks.append(guarded("the same seed builds the same weights", deterministic)[0])

    from robench.tasks.compression.methods.magnitude import MagnitudePruning
    from robench.tasks.compression.methods.base import prunable_layers

    has_layers = bool(prunable_layers(build()))
    checks.append(Check("has Conv2d/Linear layers for the pruning hooks", has_layers,
                        "prunable_layers() finds none: the compression methods would have nothing to prune"))
    if has_layers:
        hook_checks, _ = step_hook_checks("magnitude pruning (sparsity 0.5) and fine-tuning run on it", model,
                                          data, lambda: MagnitudePruning(sparsity=0.5))
        checks += [c for c in hook_checks if c.name not in {k.name for k in checks}]

    def attacked():
        from robench.attacks import evaluate_robustness
        from robench.attacks.configs import fgsm

        report = evaluate_robustness(net.eval(), data.test_x[:8], data.test_y[:8], (fgsm((0.1,)),),
                                     batch_size=8, seed=0)
        report.as_metrics()
    checks.append(guarded("the attack layer runs on it (FGSM, 8 images)", attacked)[0])
    return checks
