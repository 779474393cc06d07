"""The pruning methods of ``sparsity_robustness``: thin adapters over the ``compression``
methods that take the target sparsity from the task (a suite sweeps it as a task
parameter, so one (model, method, sparsity, seed) is one run).

The contract is :class:`~robench.tasks.sparsity_robustness.methods.base.SparsityMethod`.
The compression methods are imported when a pruner is built, so declaring these methods
(``robench validate``) imports no torch.
"""

from __future__ import annotations

from robench.registry import register_method
from robench.tasks.contract import check_param
from robench.tasks.sparsity_robustness.methods.base import SparsityMethod


@register_method("sparsity_robustness", "magnitude")
class Magnitude(SparsityMethod):
    """One-shot magnitude pruning to the target sparsity, masks fixed while fine-tuning.

    scope: ``"layer"`` (every Conv2d/Linear layer pruned to the target, as in the paper's
    sweep) or ``"global"`` (one magnitude ranking over all layers).
    """
    version = "1"

    def __init__(self, scope: str = "layer"):
        self.scope = check_param("method 'magnitude'", "scope", scope, str, choices=("layer", "global"))

    def pruner(self, sparsity):
        from robench.tasks.compression.methods.magnitude import MagnitudePruning

        return MagnitudePruning(sparsity=sparsity, scope=self.scope)


@register_method("sparsity_robustness", "random")
class Random(SparsityMethod):
    """Random pruning of every layer to the target sparsity (the floor of any criterion)."""
    version = "1"

    def __init__(self):
        pass

    def pruner(self, sparsity):
        from robench.tasks.compression.methods.random_prune import RandomPruning

        return RandomPruning(sparsity=sparsity)


@register_method("sparsity_robustness", "dns")
class DNS(SparsityMethod):
    """Dynamic Network Surgery (compression/dns) with thresholds set from the target sparsity.

    gamma, power: mask-update probability (1 + gamma·step)^(−power); mask_update_fraction:
    masks are updated (pruned and spliced) during that first fraction of fine-tuning; then
    each layer's mask is set to its largest-|W| weights at exactly the target sparsity and
    kept fixed for the rest (DNS alone drifts off the target by up to a few percent;
    ``methods/_target_dns.py``).
    """
    version = "1"

    def __init__(self, gamma: float = 1e-4, power: float = 1.0, mask_update_fraction: float = 0.5):
        owner = "method 'dns'"
        self.gamma = check_param(owner, "gamma", gamma, float, low=0.0)
        self.power = check_param(owner, "power", power, float, low=0.0)
        self.mask_update_fraction = check_param(owner, "mask_update_fraction", mask_update_fraction, float,
                                                low=0.0, low_open=True, high=1.0)

    def pruner(self, sparsity):
        from robench.tasks.sparsity_robustness.methods._target_dns import TargetDNS

        dns = TargetDNS(sparsity, self.gamma, self.power, self.mask_update_fraction)
        dns.registered_name = "dns"
        return dns
