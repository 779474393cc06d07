"""Task ``compression``: prune a trained classifier, fine-tune it with a fixed budget, and
measure accuracy against parameter/FLOP compression and CPU latency.

``task.py`` holds the protocol, ``metrics.py`` the counting and timing helpers,
``methods/`` the reference plug-ins (dense, random, magnitude, dns, dns-nosplice).
"""

BUILTINS = [
    ("tasks", "compression", "robench.tasks.compression.task:CompressionTask",
     "prune/compress a trained classifier, fine-tune with a fixed budget; accuracy vs compression"),
    ("methods", "dense", "robench.tasks.compression.methods.dense:Dense",
     "reference: the dense baseline, fine-tuned with the same budget", "compression"),
    ("methods", "random", "robench.tasks.compression.methods.random_prune:RandomPruning",
     "prune a random fraction of each layer's weights, then fine-tune", "compression"),
    ("methods", "magnitude", "robench.tasks.compression.methods.magnitude:MagnitudePruning",
     "one-shot magnitude pruning (layer-wise or global) to a target sparsity, then fine-tune", "compression"),
    ("methods", "dns", "robench.tasks.compression.methods.dns:DynamicNetworkSurgery",
     "Dynamic Network Surgery: prune and splice with hysteresis masks (Guo et al. 2016)", "compression"),
    ("methods", "dns-nosplice", "robench.tasks.compression.methods.dns:DynamicNetworkSurgeryNoSplice",
     "DNS ablation: pruned weights get no gradient and never come back", "compression"),
]
