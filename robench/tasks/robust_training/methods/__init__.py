"""Reference recipes of the ``robust_training`` task, one file each; all subclass
:class:`robench.tasks.robust_training.methods.base.RobustTrainingRecipe`. Private helpers
of one recipe start with ``_`` (``_deepfool.py``: DeepDefense's unrolled DeepFool)."""
