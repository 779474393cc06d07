"""Methods of ``sparsity_robustness``: the ``compression`` task's (see ``base.py``)."""
