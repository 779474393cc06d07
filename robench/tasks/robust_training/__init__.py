"""Task ``robust_training``: fine-tune a trained classifier with a robustness recipe for a
fixed epoch budget, then measure ρ2 (DeepFool), FGS and PGD accuracy (DeepDefense study).

``task.py`` holds the protocol, ``deepfool.py`` the differentiable DeepFool and the
DeepDefense regularizer, ``methods/`` the recipes.
"""

BUILTINS = [
    ("tasks", "robust_training", "robench.tasks.robust_training.task:RobustTrainingTask",
     "fine-tune a trained classifier with a robustness recipe (same epochs); rho2, FGS/PGD accuracy"),
    ("methods", "vanilla", "robench.tasks.robust_training.methods.vanilla:Vanilla",
     "reference: plain cross-entropy fine-tuning with the same budget", "robust_training"),
    ("methods", "deepdefense", "robench.tasks.robust_training.methods.deepdefense:DeepDefense",
     "DeepDefense: cross-entropy + exp(-c*rho)/exp(d*rho) regularizer through an unrolled DeepFool (Yan et al. 2018)",
     "robust_training"),
    ("methods", "adv-fgs", "robench.tasks.robust_training.methods.adversarial:AdversarialFGS",
     "adversarial training with FGS examples (Goodfellow et al. 2015)", "robust_training"),
    ("methods", "adv-pgd", "robench.tasks.robust_training.methods.adversarial:AdversarialPGD",
     "Madry-style adversarial training on l-inf PGD examples", "robust_training"),
    ("methods", "parseval", "robench.tasks.robust_training.methods.parseval:Parseval",
     "Parseval networks: retraction W <- (1+b)W - b W W^T W after every step (Cisse et al. 2017)",
     "robust_training"),
]
