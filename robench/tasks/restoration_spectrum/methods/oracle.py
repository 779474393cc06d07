"""``oracle``: at each test level, a network of the base's architecture trained from
scratch at that level with the base's budget (an upper bound for a single network; at
the training level it is the base network itself: same spec, same cache file)."""

from __future__ import annotations

from robench.errors import UserError
from robench.registry import register_method
from robench.tasks.restoration_spectrum.methods.base import RestorationMethod


@register_method("restoration_spectrum", "oracle")
class Oracle(RestorationMethod):
    """a level-specific network per test level (upper bound; one cached network per level)"""
    version = "1"

    def fit(self, problem):
        levels = tuple(float(level) for level in problem.test_levels)
        self.nets_ = dict(zip(levels, problem.networks_at(levels)))
        return self

    def restore(self, obs):
        net = self.nets_.get(float(obs.level))
        if net is None:
            raise UserError(f"oracle: no network for level {obs.level!r}; "
                            f"trained at {', '.join(f'{lv:g}' for lv in self.nets_)}")
        return net(obs.network_input)
