"""The contract of a ``compression`` method, and the mask helpers the pruners share.

A method is a set of hooks the task calls around one fixed fine-tuning budget::

    method.prepare(model, data, total_steps, seed)   # once, on the trained dense model
    for step in range(total_steps):                  # robench.training.fit(..., hooks=method)
        method.before_forward(model, step)
        loss(model(x), y).backward()
        method.after_backward(model, step)
        optimizer.step()                             # SGD on model.parameters()
        method.after_step(model, step)
    model = method.finalize(model)                   # exported and evaluated as returned

* ``prepare`` does the one-shot work (computing masks, pruning) and returns ``self``.
* The three step hooks edit weights/gradients in place (``param.data``, ``param.grad``);
  they must leave the model's structure (modules, parameter objects) unchanged, because
  the task's optimizer holds those parameter objects.
* ``finalize`` returns the model to evaluate and export: its zeros are the pruned weights
  (stored dense, ``float32``). It may return the same object.

Optional hooks (the defaults suit a pruner):

* ``wants_finetuning()`` — False for a method that compresses without retraining
  (Network Sketching): the task then calls ``prepare(model, data, 0, seed)`` and
  ``finalize`` with no step in between.
* ``lr_restarts(total_steps)`` — steps at which the task's cosine learning-rate schedule
  restarts from the initial rate (INQ's retraining phases, the stages of a pipeline).
* ``storage_bits(name, module)`` — bits this method's encoding needs to store the layer's
  weight (index overhead included), or None to let the task pick the cheapest generic
  encoding (:func:`robench.tasks.compression.metrics.weight_storage`).
* ``inference_model(model, example)`` — the module whose CPU latency is reported as
  ``latency_ms`` (default: the sparse inference path, ``sparse_inference_model`` of
  ``_sparse.py``, which ``metrics`` re-exports; imported from ``_sparse`` because
  ``metrics`` builds on this contract);
  the task passes a CPU copy of the finalized model and the CPU batch it will time.
* ``extra_metrics(model, data)`` — method-specific metrics merged into the run's metrics
  (names must not clash with the task's).

The constructor stores parameters only (scikit-learn style) and validates them with
:func:`robench.tasks.contract.check_param`, so a suite with a bad value fails at
``robench validate``; state learned in ``prepare`` lives in attributes ending in ``_``
(``masks_``). Prunable weights are the ``weight`` of every ``nn.Conv2d`` and
``nn.Linear``; biases are never pruned.

Devices and seeds: the hooks get the model on the run's device, so every tensor a hook
puts next to a weight (masks, quantized values) lives on ``weight.device``; random draws
come from ``robench.seeding.stream(seed, "method")``, a CPU generator (draw with
``device="cpu"``, then move the result), so they do not depend on the device.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from robench.tasks.base import Method
from robench.tasks.contract import check_param

if TYPE_CHECKING:
    import torch
    from torch import nn


def prunable_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` of every Conv2d/Linear in ``model.named_modules()`` order."""
    from torch import nn

    return [(name, module) for name, module in model.named_modules() if isinstance(module, (nn.Conv2d, nn.Linear))]


class CompressionMethod(Method):
    """Base of every ``compression`` method: all hooks are no-ops (that is ``dense``)."""

    def _name(self) -> str:
        """The registered name (the class name for an unregistered subclass)."""
        return self.registered_name or type(self).__name__

    def _owner(self) -> str:
        """How parameter errors name this method: ``method 'dns'``."""
        return f"method {self._name()!r}"

    def prepare(self, model: nn.Module, data: Any, total_steps: int, seed: int) -> "CompressionMethod":
        """One-shot work on the trained dense ``model`` before fine-tuning.

        data: the task's :class:`robench.data.Splits` (may be ``None`` in unit tests);
        total_steps: the number of optimizer steps fine-tuning will take;
        seed: the run's seed, for any randomness of the method. Returns ``self``.
        """
        return self

    def before_forward(self, model: nn.Module, step: int) -> None:
        """Called before the forward pass of step ``step`` (0-based)."""

    def after_backward(self, model: nn.Module, step: int) -> None:
        """Called after ``loss.backward()``, before ``optimizer.step()``: edit ``.grad`` here."""

    def after_step(self, model: nn.Module, step: int) -> None:
        """Called after ``optimizer.step()``."""

    def finalize(self, model: nn.Module) -> nn.Module:
        """Return the compressed model (pruned weights are exact zeros)."""
        return model

    # -- optional hooks ---------------------------------------------------------------
    def wants_finetuning(self) -> bool:
        """False: the task skips fine-tuning (``prepare`` gets ``total_steps=0``)."""
        return True

    def lr_restarts(self, total_steps: int) -> list[int]:
        """Steps (0 < s < total_steps) where the cosine learning-rate schedule restarts."""
        return []

    def storage_bits(self, name: str, module: nn.Module) -> int | None:
        """Bits this method's encoding needs for ``module.weight`` (None: generic encoding)."""
        return None

    def inference_model(self, model: nn.Module, example: torch.Tensor) -> nn.Module:
        """The module timed for ``latency_ms``; ``example`` is the timed input batch."""
        from robench.tasks.compression._sparse import sparse_inference_model
        return sparse_inference_model(model, example)

    def extra_metrics(self, model: nn.Module, data: Any) -> dict[str, float]:
        """Method-specific metrics of the finalized ``model`` (``data``: the task's Splits)."""
        return {}


def check_fraction(name: str, value: float, method: str) -> float:
    """Validate a pruned fraction in [0, 1) (a fully pruned layer cannot be fine-tuned);
    returns it as a float. Raises a one-line :class:`~robench.errors.UserError`."""
    return check_param(f"method {method!r}", name, value, float, low=0.0, high=1.0, high_open=True)


class MaskedPruning(CompressionMethod):
    """A pruner whose masks are fixed in ``prepare`` and kept through fine-tuning.

    Subclasses implement :meth:`compute_masks`. Pruned weights are zeroed at ``prepare``,
    their gradients are zeroed after every backward and the masks are re-applied after
    every step (momentum or weight decay can never move a pruned weight), so they are
    exactly zero after fine-tuning.
    """

    masks_: dict[str, torch.Tensor]

    def compute_masks(self, model: nn.Module, seed: int) -> dict[str, torch.Tensor]:
        """Layer name → bool mask shaped like its weight (True = kept)."""
        raise NotImplementedError

    def prepare(self, model, data, total_steps, seed):
        self.masks_ = self.compute_masks(model, seed)
        apply_masks(model, self.masks_)
        return self

    def after_backward(self, model, step):
        mask_gradients(model, self.masks_)

    def after_step(self, model, step):
        apply_masks(model, self.masks_)


# -- mask helpers shared by magnitude, random and dns ----------------------------------
def _weights(model: nn.Module, masks: dict[str, torch.Tensor]):
    modules = dict(model.named_modules())
    for name, mask in masks.items():
        yield modules[name].weight, mask


def apply_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    """Zero, in place, every weight whose mask entry is False."""
    import torch

    with torch.no_grad():
        for weight, mask in _weights(model, masks):
            weight.mul_(mask)


def mask_gradients(model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    """Zero, in place, the gradient of every weight whose mask entry is False."""
    import torch

    with torch.no_grad():
        for weight, mask in _weights(model, masks):
            if weight.grad is not None:
                weight.grad.mul_(mask)

