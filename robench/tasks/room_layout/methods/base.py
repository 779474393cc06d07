"""The contract of a ``room_layout`` method, and helpers the reference methods share.

The task calls, once per run::

    method.fit(train_samples, setup)      # -> self; may ignore the data (``geometric``)
    prediction = method.predict(images)    # test images, then the harder test images

* ``train_samples``: :class:`~robench.tasks.room_layout.formats.LayoutSample` list at
  the task's working size (image (S, S, 3) uint8, segmentation (S, S) labels 1..5, room
  type 0..10, keypoints (K, 2) 0-based (x, y), clutter mask when the data has one).
* ``setup``: :class:`FitSetup`, the task's training budget (the same for every method),
  the run's seed, and a cache folder for models shared between runs.
* ``images``: (N, S, S, 3) uint8, not to be modified.  ``predict`` returns a
  :class:`LayoutPrediction` at the same size: surface labels 1..5 per pixel (robench's
  semantic convention; the metrics only need a consistent partition), one LSUN type per
  image, and that type's keypoints in LSUN order, inside the image.
* Deterministic: the same data and ``setup.seed`` give the same predictions.

``robench check`` runs a method through this contract on tiny synthetic rooms
(:meth:`robench.tasks.room_layout.task.RoomLayoutTask.conformance`).

The constructor stores parameters only (scikit-learn style); learned state lives in
attributes ending in ``_``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from robench.errors import UserError
from robench.tasks.base import Method
from robench.tasks.room_layout.room_types import N_KEYPOINTS, N_ROOM_TYPES

if TYPE_CHECKING:
    import numpy as np

    from robench.tasks.room_layout.formats import LayoutSample


@dataclass
class FitSetup:
    """What the task gives ``fit``: the training budget (``epochs`` passes over the
    training split in minibatches of ``batch_size``; every learned method gets the same),
    the run's ``seed``, ``cache_dir`` for trained models shared between runs (None: no
    sharing), ``data_key`` naming the training data (part of any cache key), and
    ``say`` for progress lines."""
    epochs: int
    batch_size: int
    seed: int
    cache_dir: Path | None = None
    data_key: str = ""
    say: Callable[[str], None] = field(default=lambda message: None)


@dataclass
class LayoutPrediction:
    """Predictions for N images of size (H, W): segmentations (N, H, W) uint8 labels
    1..5; room_types (N,) int64 in 0..10; keypoints: N arrays (K_i, 2) float64 0-based
    (x, y) with K_i = N_KEYPOINTS[room_types[i]], inside the image (0 <= x <= W - 1,
    0 <= y <= H - 1)."""
    segmentations: np.ndarray
    room_types: np.ndarray
    keypoints: list[np.ndarray]

    def validate(self, n: int, shape: tuple[int, int], who: str) -> None:
        """ValueError naming ``who`` if the prediction breaks the contract above."""
        import numpy as np

        seg = np.asarray(self.segmentations)
        if seg.shape != (n, *shape):
            raise ValueError(f"{who}: segmentations have shape {seg.shape}, expected {(n, *shape)}")
        if seg.size and (seg.min() < 1 or seg.max() > 5):
            raise ValueError(f"{who}: segmentation labels must be in 1..5")
        types = np.asarray(self.room_types)
        if types.shape != (n,) or np.any((types < 0) | (types >= N_ROOM_TYPES)):
            raise ValueError(f"{who}: room_types must be ({n},) integers in 0..10")
        if len(self.keypoints) != n:
            raise ValueError(f"{who}: {len(self.keypoints)} keypoint arrays for {n} images")
        for i, (t, kp) in enumerate(zip(types, self.keypoints)):
            kp = np.asarray(kp)
            if kp.shape != (N_KEYPOINTS[int(t)], 2) or not np.all(np.isfinite(kp)):
                raise ValueError(f"{who}: image {i}: keypoints of shape {kp.shape} for room "
                                 f"type {int(t)} (expected ({N_KEYPOINTS[int(t)]}, 2), finite)")


class LayoutMethod(Method):
    """Base of every ``room_layout`` method."""

    def fit(self, train: Sequence[LayoutSample], setup: FitSetup) -> "LayoutMethod":
        """Learn from the training split; returns ``self``."""
        return self

    def predict(self, images: np.ndarray) -> LayoutPrediction:
        """Layouts of (N, H, W, 3) uint8 images."""
        raise NotImplementedError


@dataclass
class TypePriors:
    """Statistics of the training split: frequency of each type (11,), and the mean
    keypoints of each type seen ({type: (K, 2)}), for a working size (H, W)."""
    frequencies: np.ndarray
    mean_keypoints: dict[int, np.ndarray]
    shape: tuple[int, int]

    @property
    def most_frequent(self) -> int:
        import numpy as np

        return int(np.argmax(self.frequencies))  # ties: the lowest type id

    def keypoints(self, type_id: int) -> np.ndarray:
        """Mean keypoints of ``type_id``; for a type never seen in training, its keypoints
        spread on a box around the image centre (so something can always be drawn)."""
        if type_id in self.mean_keypoints:
            return self.mean_keypoints[type_id].copy()
        return default_keypoints(type_id, self.shape)


def type_priors(train: Sequence[LayoutSample]) -> TypePriors:
    """The :class:`TypePriors` of a training split."""
    import numpy as np

    if not train:
        raise UserError("room_layout: the training split is empty")
    shape = train[0].shape
    counts = np.bincount([s.room_type for s in train if s.room_type >= 0],
                         minlength=N_ROOM_TYPES).astype(np.float64)
    means = {}
    for t in range(N_ROOM_TYPES):
        kps = [np.asarray(s.keypoints, dtype=np.float64) for s in train
               if s.room_type == t and len(s.keypoints) == N_KEYPOINTS[t]]
        if kps:
            means[t] = np.mean(kps, axis=0)
    return TypePriors(counts / max(counts.sum(), 1.0), means, shape)


def default_keypoints(type_id: int, shape: tuple[int, int]) -> np.ndarray:
    """Keypoints of a typical room of ``type_id`` at ``shape``: one view drawn by the
    synthetic generator's camera prior (deterministic), for types absent from training."""
    import numpy as np

    from robench.tasks.room_layout.synth import sample_view

    for attempt in range(20):
        _, _, _, view = sample_view(np.random.default_rng([type_id, attempt]), shape, type_id)
        if view.room_type == type_id:
            return view.keypoints.copy()
    raise RuntimeError(f"no view of room type {type_id} at {shape}")  # pragma: no cover
