"""The contract of a ``robust_training`` recipe, and the shared fine-tuning loop.

A recipe is one method::

    model = recipe.train(model, data, epochs, seed, batch_size=..., lr=...)

* ``model`` arrives as a private copy of the cached vanilla model (the same weights for
  every recipe of a seed), in train mode, on the run's device; ``data`` is the task's
  dataset (``robench.data``: in memory or streamed); only ``data.train`` may be read, through
  its ``batches``/``take`` calls.
* The recipe fine-tunes it for **exactly** ``epochs`` passes over ``data.train``
  (the task's budget, identical for every recipe; wall/CPU time is reported next to it),
  with minibatches of ``batch_size`` and initial learning rate ``lr``, and returns the
  model to evaluate (it may be the same object). Randomness comes from ``seed`` only.
* The constructor stores parameters only (scikit-learn style) and validates them.

The default :meth:`RobustTrainingRecipe.train` is the loop every reference recipe shares
(and the DeepDefense reference code uses), run by :func:`robench.training.train_loop`:
SGD, momentum 0.9, weight decay 5e-4 on weights (none on biases), learning rate halved
for the last 20% of the epochs, shuffling from ``seed`` (stream "batches"), each batch
moved to the model's device. A recipe changes it by overriding :meth:`loss` (the
minibatch objective) and/or :meth:`after_step` (e.g. a projection of the weights); a
third-party recipe may also override ``train`` completely, as long as it keeps the epoch
budget.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from robench.tasks.base import Method

if TYPE_CHECKING:
    import torch
    from torch import nn

MOMENTUM = 0.9
WEIGHT_DECAY = 5e-4
LR_DROP_AT = 0.8  # fraction of the epochs after which the learning rate is halved


class RobustTrainingRecipe(Method):
    """Base of every ``robust_training`` recipe: plain cross-entropy (that is ``vanilla``)."""

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Scalar objective on one minibatch (x: (B, C, H, W) in [0, 1], y: int64 (B,), both
        on the model's device)."""
        import torch.nn.functional as F

        return F.cross_entropy(model(x), y)

    def after_step(self, model: nn.Module) -> None:
        """Called after every optimizer step (no-op by default)."""

    def train(self, model: nn.Module, data: Any, epochs: int, seed: int, *, batch_size: int = 64,
              lr: float = 0.01) -> nn.Module:
        """Fine-tune ``model`` in place for exactly ``epochs`` epochs; returns it (eval mode)."""
        import torch

        from robench import seeding
        from robench.training import shuffled_epochs, train_loop

        weights = [p for n, p in model.named_parameters() if not n.endswith("bias")]
        biases = [p for n, p in model.named_parameters() if n.endswith("bias")]
        optimizer = torch.optim.SGD([{"params": weights, "weight_decay": WEIGHT_DECAY},
                                     {"params": biases, "weight_decay": 0.0}], lr=lr, momentum=MOMENTUM)
        n = len(data.train)
        device = next(model.parameters()).device
        steps_per_epoch = math.ceil(n / batch_size)
        drop = int(LR_DROP_AT * epochs)

        def lr_at(step: int) -> float:
            return lr * (0.5 if epochs > 1 and step // steps_per_epoch >= drop else 1.0)

        train_loop(model, optimizer, shuffled_epochs(data.train, batch_size, epochs, seeding.stream(seed, "batches"),
                                                     device),
                   lambda batch: self.loss(model, *batch), hooks=_RecipeHooks(self), lr_schedule=lr_at)
        return model


class _RecipeHooks:
    """The recipe's step hooks for :func:`robench.training.train_loop`: train mode before
    every step (a loss may switch the model to eval mode while it crafts examples), and
    the recipe's ``after_step(model)``."""

    def __init__(self, recipe: RobustTrainingRecipe):
        self.recipe = recipe

    def before_forward(self, model, step: int) -> None:
        model.train()

    def after_step(self, model, step: int) -> None:
        self.recipe.after_step(model)
