"""Where the methods of ``corruption_robustness`` come from: the ``compression`` task.

The task declares ``methods_from = "compression"``, so every method name of
``corruption_robustness`` resolves to the registered ``compression`` method of that name
(built-in or plug-in, with its own parameters), applied with the compression protocol
(its hooks, the same fine-tuning, ``finalize``) to the run's starting model; a method
cannot be registered for ``corruption_robustness`` itself. The contract is therefore
:class:`~robench.tasks.compression.methods.base.CompressionMethod`; a method with a
``sparsity`` parameter must also reach that weight sparsity (within the task's
``sparsity_tolerance``). ``dense`` is the reference: the starting model fine-tuned with
the same budget, nothing compressed.
"""

from robench.tasks.compression.methods.base import CompressionMethod

__all__ = ["CompressionMethod"]
