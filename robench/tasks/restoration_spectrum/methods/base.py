"""The contract of a ``restoration_spectrum`` method, and the problem the task hands it.

A method restores degraded test images at every level of a spectrum::

    method.check(family)          # UserError if the method does not apply (before any work)
    method.fit(problem)           # once per run: train or load what it needs; returns self
    x = method.restore(obs)       # per level: obs is an Observation (degradations.py)

* ``restore`` returns a finite float tensor (N, 3, H, W), same shape as
  ``obs.network_input`` (on its device; another device is moved there); values outside
  [0, 1] are clamped by the task, which then quantizes to 8 bits (as a saved image would
  be) and scores against the ground truth. It is called under ``torch.no_grad()``; a
  method needing gradients (DL-Net) enables them itself. It must not change ``obs`` (the
  task scores the reference networks on the same observation), and for a seed it gives
  the same restoration every time.
* The constructor stores parameters only (scikit-learn style); state learned in ``fit``
  lives in attributes ending in ``_``.
* A method must not look at the ground truth: ``obs`` holds the observation ``y``, the
  mask, ``network_input`` and the forward operator, and ``obs.level`` (the level is known
  at test time, as in the paper's protocol; only the oracle uses it). It restores from
  that alone, and never loads the test images itself.
* Constructor parameters are validated in the constructor
  (:func:`robench.tasks.contract.check_param`).

:class:`RestorationProblem` gives access to the shared, cached networks of the run's
seed (``base_network``, ``network_at``, ``finetuned``), on the run's device, so every
method that starts from the base starts from the same weights. ``robench check`` runs a
method through this contract (``RestorationSpectrumTask.conformance``)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar

from robench.errors import UserError
from robench.tasks.base import Method

ALL_FAMILIES = ("inpainting", "interpolation", "super_resolution")
# Fine-tuning lr = this × the base lr: Adam restarts with fresh moments, and at the base lr
# its first steps knock a trained network off (a base-ft seed lost 1.5 dB at 0.5×).
FINETUNE_LR_FACTOR = 0.2


@dataclass
class RestorationProblem:
    """One run's setting: the family, its levels, and the cached networks of its seed.

    ``base_spec`` is the :class:`~robench.tasks.restoration_spectrum.networks.NetSpec` of the base
    network (trained at ``train_level``); every other network derives from it.
    ``patches()`` returns the training patches (loaded only if something must be trained).
    ``device``: where the networks go (the run's device).
    """
    family: str
    train_level: float
    test_levels: tuple[float, ...]
    image_size: int
    seed: int
    base_spec: Any
    finetune_steps: int
    cache_dir: Path
    patches: Callable[[], Any]
    say: Callable[[str], None] | None = None
    device: str = "cpu"

    def spec_at(self, level: float):
        """Spec of the network trained from scratch at ``level`` (the base's spec at train_level)."""
        return dataclasses.replace(self.base_spec, level=float(level))

    def finetune_spec(self, module_steps: int = 0, step_size: float = 1.0, learn_step: bool = True,
                      on: str = "spectrum"):
        """Spec of the base fine-tuned for ``finetune_steps`` on the spectrum (or the train level),
        with DL-Net's module when ``module_steps`` > 0; lr is ``FINETUNE_LR_FACTOR`` × the base's."""
        levels = (min(self.test_levels), max(self.test_levels))
        return dataclasses.replace(
            self.base_spec, init=self.base_spec, steps=self.finetune_steps, lr=self.base_spec.lr * FINETUNE_LR_FACTOR,
            level=None if on == "spectrum" else float(self.train_level),
            spectrum=levels if on == "spectrum" else None,
            module_steps=int(module_steps), step_size=float(step_size), learn_step=bool(learn_step))

    def networks_at(self, levels) -> list:
        from robench.tasks.restoration_spectrum.networks import trained_networks
        return trained_networks([self.spec_at(level) for level in levels], self.cache_dir, self.patches, self.say,
                                self.device)

    def network_at(self, level: float):
        return self.networks_at([level])[0]

    def base_network(self):
        return self.network_at(self.train_level)

    def finetuned(self, **kwargs):
        from robench.tasks.restoration_spectrum.networks import trained_network
        return trained_network(self.finetune_spec(**kwargs), self.cache_dir, self.patches, self.say, self.device)


class RestorationMethod(Method):
    """Base of every ``restoration_spectrum`` method."""
    families: ClassVar[tuple[str, ...]] = ALL_FAMILIES

    def check(self, family: str) -> None:
        """Raise UserError if this method does not apply to ``family``."""
        if family not in self.families:
            name = self.registered_name or type(self).__name__
            raise UserError(f"method {name!r} does not apply to family {family!r}; "
                            f"it handles {', '.join(self.families)}")

    def fit(self, problem: RestorationProblem) -> "RestorationMethod":
        return self

    def restore(self, obs) -> Any:
        """(N, 3, H, W) float restoration of ``obs``."""
        raise NotImplementedError

