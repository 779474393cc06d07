"""The contract checks every task's conformance uses (``robench check``), and the one
parameter check every method constructor uses.

This module sits below the tasks: tasks import it, it imports no task. A check is one
line of the ``robench check`` report: a name, pass/fail and why.
"""

from __future__ import annotations

import math
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from robench.errors import UserError


@dataclass
class Check:
    name: str
    ok: bool
    detail: str = ""


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def guarded(name: str, fn: Callable[[], Any]) -> tuple[Check, Any]:
    """Run ``fn``; a raised exception becomes a failed check (its last frame in the detail)."""
    try:
        return Check(name, True), fn()
    except Exception as exc:  # noqa: BLE001 — a plug-in may raise anything
        frames = traceback.extract_tb(exc.__traceback__)
        where = f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
        return Check(name, False, one_line(exc) + where), None


def model_checks(model, x, classes: int, rerun: Callable[[], Any]) -> list[Check]:
    """The checks every task's contract shares for the model a method returns: it runs on
    ``x`` with (N, ``classes``) outputs, its weights are finite, and ``rerun()`` (the same
    method, data and seed again) gives the same weights."""
    import torch

    first = next(iter(model.parameters()), None)
    if first is not None:
        x = x.to(first.device)  # data are on the CPU; the model is where the run put it
    with torch.no_grad():
        logits = guarded("the model runs", lambda: model.eval()(x))[1]
    shape = None if logits is None else tuple(logits.shape)
    state = model.state_dict()
    finite = all(bool(torch.isfinite(t).all()) for t in state.values() if t.is_floating_point())
    again = guarded("a second run", rerun)[1]
    same = again is not None and all(torch.equal(a, b) for a, b in zip(state.values(), again.state_dict().values()))
    return [Check("outputs keep their shape (N, classes)", shape == (len(x), classes), f"got {shape}"),
            Check("weights are finite", finite, "NaN or inf in the returned model's weights"),
            Check("deterministic for a seed", same, "two runs with seed 0 gave different weights")]


_TYPE_WORDS = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def check_param(owner: str, name: str, value: Any, kind: type | tuple = float, *,
                low: float | None = None, high: float | None = None, low_open: bool = False,
                high_open: bool = False, choices: Iterable | None = None, each: bool = False) -> Any:
    """Validate one constructor parameter and return it (an int given for a float as float).

    ``owner`` names the component in the message ("method 'dns'"); ``kind`` is the type (or
    types) expected; ``low``/``high`` bound it (closed unless ``*_open``; NaN is never in
    range); ``choices`` lists the accepted values; ``each`` applies all that to every item
    of a list or tuple ``value`` (a bare value is accepted too). Raises a one-line
    :class:`UserError` naming the parameter, the value and what was expected."""
    if each and isinstance(value, (list, tuple)):
        if not value:
            raise UserError(f"{owner}: {name}=[]; expected at least one value")
        return type(value)(check_param(owner, name, v, kind, low=low, high=high, low_open=low_open,
                                       high_open=high_open, choices=choices) for v in value)
    kinds = kind if isinstance(kind, tuple) else (kind,)
    expected = " or ".join(_TYPE_WORDS.get(k, k.__name__) for k in kinds)
    ok_type = any(_is_kind(value, k) for k in kinds)
    if choices is not None:
        choices = list(choices)
        if not ok_type or value not in choices:
            raise UserError(f"{owner}: {name}={value!r}; expected one of {', '.join(map(repr, choices))}")
        return value
    if not ok_type:
        raise UserError(f"{owner}: {name}={value!r}; expected {expected}{_range_text(low, high, low_open, high_open)}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        x = float(value)
        bad = (math.isnan(x) or (low is not None and (x <= low if low_open else x < low))
               or (high is not None and (x >= high if high_open else x > high)))
        if bad:
            raise UserError(f"{owner}: {name}={value!r}; expected {expected}{_range_text(low, high, low_open, high_open)}")
        if float in kinds and int not in kinds:
            return float(value)
    return value


def _is_kind(value: Any, kind: type) -> bool:
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, kind)


def _range_text(low, high, low_open, high_open) -> str:
    if low is None and high is None:
        return ""
    if high is None:
        return f" {'>' if low_open else '>='} {low:g}"
    if low is None:
        return f" {'<' if high_open else '<='} {high:g}"
    return f" in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"


def tiny_classification_data(n_train: int = 64, n_test: int = 16, shape: tuple = (1, 28, 28), classes: int = 10):
    """Random images in [0, 1] and labels (CPU, the protocol's "data" stream) as a
    :class:`robench.data.Splits`: the tiny data the classification contracts run on."""
    import torch

    from robench import seeding
    from robench.data import Splits

    gen = seeding.stream(seeding.PROTOCOL_SEED, "data")
    n = n_train + n_test
    x = torch.rand(n, *shape, generator=gen, device="cpu")
    y = torch.randint(0, classes, (n,), generator=gen, device="cpu")
    return Splits("check", x[:n_train], y[:n_train], x[n_train:], y[n_train:], classes)


def step_hook_checks(label: str, model_name: str, data, make_hooks: Callable[[], Any]) -> tuple[list[Check], Any]:
    """The contract of fine-tuning step hooks (a ``compression`` method, a sparsity pruner)
    on a tiny ``model_name`` and ``data``: one epoch of the protocol's fine-tuning with
    ``make_hooks()`` runs, ``finalize`` returns an nn.Module, the hooks keep the model's
    parameter objects (the optimizer holds them), and :func:`model_checks` (outputs,
    finite weights, same weights for the same seed). Returns ``(checks, model or None)``."""
    import torch

    from robench import seeding
    from robench.models import build_model
    from robench.training import finetune_with_hooks

    def run(seed: int):
        with seeding.scoped(seeding.PROTOCOL_SEED):  # the same initial weights every time
            model = build_model(model_name, num_classes=data.num_classes)
        ids = {n: id(p) for n, p in model.named_parameters()}
        with seeding.scoped(seed):  # as the executor seeds a run
            out = finetune_with_hooks(model, data, make_hooks(), epochs=1, batch_size=16, lr=0.01, seed=seed)
        return out, {n: id(p) for n, p in model.named_parameters()} == ids

    check, first = guarded(label, lambda: run(0))
    if first is None:
        return [check], None
    out, kept = first
    checks = [check, Check("finalize() returns an nn.Module", isinstance(out, torch.nn.Module),
                           f"got {type(out).__name__}")]
    if not checks[-1].ok:
        return checks, None
    checks.append(Check("keeps the model's parameter objects (the optimizer holds them)", kept,
                        "a hook replaced a module or parameter; edit param.data in place instead"))
    checks += model_checks(out, data.test_x, data.num_classes, lambda: run(0)[0])
    return checks, out
