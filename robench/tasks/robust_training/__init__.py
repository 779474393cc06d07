"""Task ``robust_training``: fine-tune a trained classifier with a robustness recipe for a
fixed epoch budget, then measure ρ2 (DeepFool), FGS and PGD accuracy (DeepDefense study).

``task.py`` holds the protocol, ``methods/`` the recipes (their contract in ``base.py``)
and, beside ``deepdefense``, its differentiable DeepFool and regularizer (``_deepfool.py``).
"""
