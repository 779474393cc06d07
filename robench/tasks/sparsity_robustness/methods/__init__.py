"""Methods of ``sparsity_robustness``: pruners that reach the task's target sparsity
(adapters over the ``compression`` methods, in ``prune.py``)."""
