"""Task ``sparsity_robustness`` (Guo et al., "Sparse DNNs with improved adversarial
robustness", NeurIPS 2018, arXiv 1810.09619): prune a trained classifier to one target
sparsity, fine-tune it, and attack it (ρ2 from DeepFool, robust accuracy per ε and threat).

``task.py`` holds the protocol; ``methods/prune.py`` the methods, which are the pruning
methods of the ``compression`` task adapted to take the task's target sparsity.
"""
