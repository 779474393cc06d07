"""The contract of a ``sparsity_robustness`` method.

A method turns the task's target sparsity into step hooks: :meth:`SparsityMethod.pruner`
returns a fresh :class:`~robench.tasks.compression.methods.base.CompressionMethod` (the
step-hook object of ``compression``) that prunes to ``sparsity``; the task fine-tunes with
it as its hooks and checks the measured weight sparsity of the finalized model against
the target.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from robench.tasks.base import Method

if TYPE_CHECKING:
    from robench.tasks.compression.methods.base import CompressionMethod


class SparsityMethod(Method):
    """Base of every ``sparsity_robustness`` method."""

    def pruner(self, sparsity: float) -> "CompressionMethod":
        """Step hooks (a ``compression`` method) that prune to ``sparsity`` in [0, 1)."""
        raise NotImplementedError
