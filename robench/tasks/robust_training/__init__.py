"""Task ``robust_training``: fine-tune a trained classifier with a robustness recipe for a
fixed epoch budget, then measure ρ2 (DeepFool), FGS and PGD accuracy (DeepDefense study).

``task.py`` holds the protocol, ``deepfool.py`` the differentiable DeepFool and the
DeepDefense regularizer, ``methods/`` the recipes.
"""
