"""Where the methods of ``sparsity_robustness`` come from: the ``compression`` task.

The task declares ``methods_from = "compression"``, so the registry resolves every
method name of ``sparsity_robustness`` to the registered ``compression`` method of that
name (built-in or plug-in; ``robench ls methods`` lists them under ``compression``), with
its own parameters, and refuses to register a method for ``sparsity_robustness`` itself.
The contract is therefore :class:`~robench.tasks.compression.methods.base.CompressionMethod`
(its hooks, applied with the compression protocol); a method with a ``sparsity``
parameter must also reach that weight sparsity (within the task's ``sparsity_tolerance``).
To add a method, register it for ``compression``: it then runs in both tasks.
"""

from robench.tasks.compression.methods.base import CompressionMethod

__all__ = ["CompressionMethod"]
