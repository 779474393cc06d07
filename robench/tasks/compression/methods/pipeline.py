"""Composing compression methods: ``pipeline`` runs registered methods one after another
within the task's single fine-tuning budget, and ``dns+inq`` is its preset for Deep
Compression-style "prune, then quantize" (DNS, then INQ on the surviving weights).

In a suite::

    - name: pipeline
      params:
        stages:
          - {name: dns, params: {c: [1, 3, 5.5, 2.5]}}
          - {name: inq, params: {bits: 5}}
        shares: [0.5, 0.5]

Budget: the task's ``total_steps`` are split among the stages in proportion to
``shares`` (default: equal shares for the stages that fine-tune; a stage whose
``wants_finetuning()`` is False gets no steps). Stage i is prepared when its first step
comes (``prepare(model, data, steps_i, seed + i)``) and finalized when its last step is
done, so stage i+1 starts from stage i's finalized model; the learning-rate schedule
restarts at each stage (and inside it where the stage asks, e.g. INQ's phases). A stage's
``finalize`` must return the model it was given (the optimizer holds its parameters),
except the last one's.

The compressed model is evaluated with the last stage's encoding (``storage_bits``) and
inference path; ``extra_metrics`` of all stages are merged (later stages win). A pipeline's
``version`` includes its stages' versions (``1[dns@1,inq@1]``), so changing a stage method's
version recomputes the pipeline's runs too.
"""

from __future__ import annotations

from typing import Any

from robench.errors import UserError
from robench.registry import register_method
from robench.tasks.compression.methods.base import CompressionMethod
from robench.tasks.contract import check_param

TASK = "compression"


def _build_stage(index: int, stage: Any) -> CompressionMethod:
    from robench import registry
    from robench.spec import canonical_method_params

    where = f"stages[{index}]"
    if not isinstance(stage, dict) or "name" not in stage or set(stage) - {"name", "params"}:
        raise ValueError(f"{where}: expected a mapping {{name: <method>, params: {{...}}}}, got {stage!r}")
    name, params = stage["name"], stage.get("params") or {}
    if not isinstance(params, dict):
        raise ValueError(f"{where}.params: expected a mapping, got {params!r}")
    try:
        cls = registry.methods.get(name, task=TASK)
        return cls(**canonical_method_params(cls, params, where, "params"))
    except UserError as exc:
        raise ValueError(f"{where}: {exc}" if not str(exc).startswith(where) else str(exc)) from None


@register_method("compression", "pipeline")
class Pipeline(CompressionMethod):
    """Run registered compression methods in sequence within one fine-tuning budget.

    stages: list of ``{name: <registered compression method>, params: {...}}``, run in
    order, each on the previous stage's finalized model.
    shares: fraction of the fine-tuning steps for each stage (normalised; default equal
    shares among the stages that fine-tune).
    """
    version = "1"

    def __init__(self, stages: list[dict[str, Any]] = (), shares: list[float] | None = None):
        self.stages = list(stages)
        if not self.stages:
            raise ValueError("stages: expected a non-empty list of {name, params} mappings")
        self._methods = [_build_stage(i, stage) for i, stage in enumerate(self.stages)]
        # the run id must change when a stage's method changes: fold the stages' versions in
        self.version = f"{type(self).version}[" + ",".join(
            f"{stage['name']}@{method.version}" for stage, method in zip(self.stages, self._methods)) + "]"
        if shares is not None:
            shares = check_param(self._owner(), "shares", shares, float, low=0.0, each=True)
            if not isinstance(shares, (list, tuple)) or len(shares) != len(self.stages) or not sum(shares) > 0:
                raise UserError(f"{self._owner()}: shares={shares!r}; expected {len(self.stages)} non-negative "
                                f"numbers with a positive sum (one per stage)")
        self.shares = shares

    # -- planning ----------------------------------------------------------------------
    def _plan(self, total_steps: int) -> list[int]:
        """Start step of each stage, and total_steps at the end (len = stages + 1)."""
        wants = [m.wants_finetuning() for m in self._methods]
        weights = ([float(s) * w for s, w in zip(self.shares, wants)] if self.shares is not None
                   else [1.0 if w else 0.0 for w in wants])
        total_weight = sum(weights)
        bounds, acc = [0], 0.0
        for weight in weights:
            acc += weight
            bounds.append(round(total_steps * acc / total_weight) if total_weight else 0)
        bounds[-1] = total_steps if total_weight else 0
        return bounds

    def wants_finetuning(self) -> bool:
        return any(m.wants_finetuning() for m in self._methods)

    def lr_restarts(self, total_steps: int) -> list[int]:
        bounds = self._plan(total_steps)
        restarts = set(bounds[1:-1])
        for method, start, end in zip(self._methods, bounds, bounds[1:]):
            restarts.update(start + s for s in method.lr_restarts(end - start))
        return sorted(s for s in restarts if 0 < s < total_steps)

    # -- hooks -------------------------------------------------------------------------
    def prepare(self, model, data, total_steps, seed):
        self._methods = [_build_stage(i, stage) for i, stage in enumerate(self.stages)]  # fresh state
        self.bounds_ = self._plan(total_steps)
        self._data, self._seed, self._model = data, seed, model
        self.current_ = -1
        self._advance(0)
        return self

    def _start(self, i: int) -> None:
        self.current_ = i
        steps = self.bounds_[i + 1] - self.bounds_[i]
        self._methods[i].prepare(self._model, self._data, steps, self._seed + i)

    def _finish_current(self, last: bool = False):
        method = self._methods[self.current_]
        out = method.finalize(self._model)
        if not last and out is not self._model:
            raise UserError(f"method 'pipeline': stage {self.current_} ({self.stages[self.current_]['name']}) "
                            f"returned a new model from finalize(); only the last stage may")
        return out

    def _advance(self, step: int) -> None:
        """Make the stage owning ``step`` current (finishing and starting stages as needed)."""
        if self.current_ < 0:
            self._start(0)
        while self.current_ < len(self._methods) - 1 and step >= self.bounds_[self.current_ + 1]:
            self._finish_current()
            self._start(self.current_ + 1)

    def _local(self, step: int) -> int:
        return step - self.bounds_[self.current_]

    def before_forward(self, model, step):
        self._advance(step)
        self._methods[self.current_].before_forward(model, self._local(step))

    def after_backward(self, model, step):
        self._methods[self.current_].after_backward(model, self._local(step))

    def after_step(self, model, step):
        self._methods[self.current_].after_step(model, self._local(step))

    def finalize(self, model):
        while self.current_ < len(self._methods) - 1:
            self._finish_current()
            self._start(self.current_ + 1)
        out = self._finish_current(last=True)
        self._model = self._data = None
        return out

    # -- evaluation hooks: the last stage's encoding and inference path --------------------
    def storage_bits(self, name, module):
        return self._methods[-1].storage_bits(name, module)

    def inference_model(self, model, example):
        return self._methods[-1].inference_model(model, example)

    def extra_metrics(self, model, data):
        merged: dict[str, float] = {}
        for method in self._methods:
            merged.update(method.extra_metrics(model, data) or {})
        return merged


@register_method("compression", "dns+inq")
class DNSThenINQ(Pipeline):
    """Preset pipeline: ``dns`` (params ``dns``), then ``inq`` (params ``inq``) on the
    surviving weights with the pruned zeros kept at zero; half the budget each by default.
    Equivalent to ``pipeline`` with ``stages: [{name: dns, params: …}, {name: inq, params: …}]``.

    dns: parameters of the ``dns`` stage (e.g. {c: [1, 3, 5.5, 2.5]}; default: dns's defaults).
    inq: parameters of the ``inq`` stage (e.g. {bits: 5}; default: inq's defaults).
    shares: fraction of the fine-tuning steps of each stage (default: half each).
    """
    version = "1"

    def __init__(self, dns: dict[str, Any] | None = None, inq: dict[str, Any] | None = None,
                 shares: list[float] | None = None):
        self.dns = dns
        self.inq = inq
        super().__init__([{"name": "dns", "params": dict(dns or {})},
                          {"name": "inq", "params": dict(inq or {})}], shares)
