"""``fcn``: a small fully convolutional network trained from scratch on the layout.

The network (:class:`~robench.tasks.room_layout.methods._nets.LayoutNet`) predicts the
five surfaces per pixel, the layout edges and the room type; it is trained for the task's
budget with :func:`~robench.tasks.room_layout.methods._nets.train_network`.  The
prediction is the per-pixel argmax of the surfaces (the network's own output, no
post-processing); the room type is the type of the predicted surfaces (after merging
surfaces smaller than 1% of the image), or the type head's answer when those surfaces fit
no type; keypoints are fitted to the predicted segmentation
(:func:`~robench.tasks.room_layout.render.fit_keypoints`: a robust line per boundary
between two surfaces, corners at their intersections), with the type's mean training
keypoints for edges the segmentation lacks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from robench.registry import register_method
from robench.tasks.contract import check_param
from robench.tasks.room_layout.methods.base import FitSetup, LayoutMethod, LayoutPrediction, type_priors

if TYPE_CHECKING:
    import numpy as np

    from robench.tasks.room_layout.formats import LayoutSample

EDGE_TARGET_WIDTH = 2  # layout-edge targets: the boundary pixels on both sides


def layout_targets(samples: Sequence[LayoutSample]):
    """Training targets of the layout: surface classes (label - 1), layout-edge masks and
    room types (:class:`~robench.tasks.room_layout.methods._nets.Targets`), on the CPU."""
    import numpy as np
    import torch

    from robench.tasks.room_layout.methods._nets import Targets
    from robench.tasks.room_layout.render import boundary_mask

    seg = np.stack([np.asarray(s.segmentation, dtype=np.int64) - 1 for s in samples])
    if seg.min() < 0 or seg.max() > 4:
        raise ValueError("layout targets need every pixel labelled 1..5")
    edge = np.stack([boundary_mask(s.segmentation, EDGE_TARGET_WIDTH) for s in samples])
    return Targets(torch.from_numpy(seg), torch.from_numpy(edge.astype(np.float32)),
                   torch.tensor([s.room_type for s in samples], dtype=torch.int64, device="cpu"))


def stack_images(samples: Sequence[LayoutSample]) -> np.ndarray:
    import numpy as np

    return np.stack([s.image for s in samples])


class NetworkMethod(LayoutMethod):
    """What ``fcn`` and ``st-pio`` share: the network's size and learning rate, training on
    the layout targets, and the layout read off a segmentation."""

    def _check(self, name: str) -> None:
        """Validate (and store) ``width`` and ``lr``."""
        owner = f"method {name!r}"
        self.width = check_param(owner, "width", self.width, int, low=1)
        self.lr = check_param(owner, "lr", self.lr, float, low=0.0, low_open=True)

    def _new_net(self, setup: FitSetup, **kwargs):
        """A freshly initialised :class:`LayoutNet` of this width on the run's device: its
        weights drawn from the run's seed (stream "init"), whatever the run drew before."""
        from robench import seeding
        from robench.tasks.room_layout.methods._nets import LayoutNet

        with seeding.scoped(seeding.stream_seed(setup.seed, "init")):
            return LayoutNet(width=self.width, **kwargs)

    def _train(self, net, train: Sequence[LayoutSample], setup: FitSetup, epochs: int) -> list[float]:
        from robench.tasks.room_layout.methods._nets import train_network

        return train_network(net, stack_images(train), layout_targets(train), epochs=epochs,
                             batch_size=setup.batch_size, lr=self.lr, seed=setup.seed,
                             say=setup.say)

    def _maps(self, images: np.ndarray):
        from robench.tasks.room_layout.methods._nets import predict_maps

        return predict_maps(self.net_, images)

    def _layout_of(self, segmentation: np.ndarray, type_probs: np.ndarray):
        """(type, keypoints, cleaned segmentation) read off a predicted label map."""
        import numpy as np

        from robench.tasks.room_layout.render import clean_segmentation, fit_keypoints
        from robench.tasks.room_layout.room_types import room_type_from_surfaces

        seg = clean_segmentation(segmentation)
        type_id = room_type_from_surfaces(np.unique(seg))
        if type_id < 0:
            type_id = int(np.argmax(type_probs))
        return type_id, fit_keypoints(seg, type_id, self.priors_.keypoints(type_id)), seg


@register_method("room_layout", "fcn")
class FCN(NetworkMethod):
    """Fully convolutional network (surfaces + edges + room type) trained from scratch for
    the task's budget; segmentation = per-pixel argmax, keypoints fitted to it.

    width: channels at the first level (the network has ~1.9 width^2 thousand weights);
    lr: Adam learning rate (cosine-decayed); extra_epochs: training epochs on top of the
    task's budget (0 for the reference; an equal-compute control for ``st-pio``, whose
    network also gets a pre-training stage)."""
    version = "1"

    def __init__(self, width: int = 16, lr: float = 0.002, extra_epochs: int = 0):
        self.width = width
        self.lr = lr
        self._check("fcn")
        self.extra_epochs = check_param("method 'fcn'", "extra_epochs", extra_epochs, int, low=0)

    def fit(self, train, setup: FitSetup) -> FCN:
        self.priors_ = type_priors(train)
        self.net_ = self._new_net(setup)
        setup.say(f"fcn: training for {setup.epochs + self.extra_epochs} epochs")
        self.history_ = self._train(self.net_, train, setup, setup.epochs + self.extra_epochs)
        return self

    def predict(self, images: np.ndarray) -> LayoutPrediction:
        import numpy as np

        probs, _, type_probs = self._maps(images)
        segs = (np.argmax(probs, axis=1) + 1).astype(np.uint8)
        types, kps = [], []
        for seg, tp in zip(segs, type_probs):
            t, kp, _ = self._layout_of(seg, tp)
            types.append(t)
            kps.append(kp)
        return LayoutPrediction(segs, np.array(types, dtype=np.int64), kps)
