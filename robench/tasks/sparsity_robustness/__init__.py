"""Task ``sparsity_robustness`` (Guo et al., "Sparse DNNs with improved adversarial
robustness", NeurIPS 2018, arXiv 1810.09619): prune a trained classifier to one target
sparsity, fine-tune it, and attack it (ρ2 from DeepFool, robust accuracy per ε and threat).

``task.py`` holds the protocol; ``methods/prune.py`` the methods, which are the pruning
methods of the ``compression`` task adapted to take the task's target sparsity.
"""

_TASK = "sparsity_robustness"
_M = "robench.tasks.sparsity_robustness.methods.prune"

BUILTINS = [
    ("tasks", _TASK, "robench.tasks.sparsity_robustness.task:SparsityRobustnessTask",
     "prune a trained classifier to a target sparsity, fine-tune, attack: rho2 and robust accuracy vs sparsity"),
    ("methods", "magnitude", f"{_M}:Magnitude",
     "one-shot magnitude pruning to the task's target sparsity (compression/magnitude), then fine-tune", _TASK),
    ("methods", "dns", f"{_M}:DNS",
     "Dynamic Network Surgery with per-layer thresholds set to reach the task's target sparsity", _TASK),
    ("methods", "random", f"{_M}:Random",
     "random pruning to the task's target sparsity (compression/random): the control", _TASK),
]
