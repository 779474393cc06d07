"""Methods of ``corruption_robustness``: the ``compression`` task's (see ``base.py``)."""
