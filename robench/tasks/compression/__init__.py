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
    ("methods", "inq", "robench.tasks.compression.methods.inq:IncrementalNetworkQuantization",
     "Incremental Network Quantization: powers of two or zero, quantize-freeze-retrain (Zhou et al. 2017)",
     "compression"),
    ("methods", "inq-oneshot", "robench.tasks.compression.methods.inq:OneShotPowerOfTwo",
     "INQ ablation: round every weight to a power of two at once, then the same retraining budget",
     "compression"),
    ("methods", "uniform", "robench.tasks.compression.methods.uniform:UniformQuantization",
     "symmetric per-layer k-bit fake quantization, retrained with a straight-through estimator",
     "compression"),
    ("methods", "sketch", "robench.tasks.compression.methods.sketch:NetworkSketching",
     "Network Sketching: W ≈ Σ a_j B_j binary bases per filter, direct or refined (Guo et al. 2017)",
     "compression"),
    ("methods", "bwn", "robench.tasks.compression.methods.sketch:BinaryWeightNetwork",
     "binary-weight-network baseline: sign(W) scaled by mean |W| per filter (m = 1)", "compression"),
    ("methods", "sign", "robench.tasks.compression.methods.sketch:SignBinarization",
     "unscaled binarization baseline: W → sign(W)", "compression"),
    ("methods", "pipeline", "robench.tasks.compression.methods.pipeline:Pipeline",
     "compose registered compression methods: each stage runs on the previous stage's output",
     "compression"),
    ("methods", "dns+inq", "robench.tasks.compression.methods.pipeline:DNSThenINQ",
     "pipeline preset: Dynamic Network Surgery, then INQ on the surviving weights (zeros kept)",
     "compression"),
]
