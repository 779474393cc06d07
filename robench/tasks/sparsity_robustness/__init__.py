"""Task ``sparsity_robustness`` (Guo et al., "Sparse DNNs with improved adversarial
robustness", NeurIPS 2018, arXiv 1810.09619, and robench's compression-robustness study):
compress a trained (or robustly trained) classifier with any ``compression`` method,
fine-tune it with the compression protocol, and attack it (ρ2 from DeepFool, robust
accuracy per ε and threat) next to the compression task's storage accounting.

``task.py`` holds the protocol; ``methods/base.py`` says where the methods come from
(the ``compression`` task's, through the registry's ``methods_from``).
"""
