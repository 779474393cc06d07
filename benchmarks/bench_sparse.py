"""Sparse vs dense CPU latency of pruned LeNets, measured in one run (printed, never asserted).

For each pruning level of a freshly initialised model (magnitude pruning of every layer to
the row's sparsity, and "dns": DNS's published per-layer densities), the median latency of
one forward pass of a batch of MNIST-sized inputs through

* ``dense``: the pruned model as stored (zeros in dense tensors) — what the compression
  task's ``latency_dense_ms`` times (on the unpruned model, same kernels);
* ``dense-cl``: the same in channels-last memory format (torch's faster dense layout for
  LeNet-5: its NCHW max-pooling is slow on this CPU), to show what layout alone gives;
* ``sparse``: every pruned Conv2d/Linear on its sparse kernel (``CSRConv2d``/``CSRLinear``:
  embedding-bag sums over the nonzero weights, batch-innermost activations);
* ``auto``: the task's inference path, ``sparse_inference_model(model, example)``: per
  layer the faster kernel on the layer's real input, then the whole model checked against
  dense (dense kept unless ≥ 1.05× faster);

then the ratios (> 1: faster than dense), the largest output difference from dense
(relative to the largest output), and the layers ``auto`` put on sparse kernels ("dense"
when its whole-model check kept dense, "-" when no layer was faster alone).

Usage: python benchmarks/bench_sparse.py [--batch 64] [--repeats 30] [--threads 1]

Why per-layer pruning: global magnitude pruning of a fresh initialisation (weights ∝
1/√fan-in) empties fc1 first and leaves conv1 nearly dense, a regime no trained pruned
LeNet is in (DNS keeps 14 % of conv1, 3.1 % of conv2, 0.7 % of fc1, 4.3 % of fc2).

Last run (2 CPU cores shared with other jobs, load average 2.3 throughout; torch 2.14.1,
1 thread, batch 64, median of 30):

    model          sparsity   dense      cl  sparse    auto d/sparse  d/auto cl/auto rel |Δ|  on sparse (auto)
    lenet-300-100     0.500   0.427   0.427   0.462   0.430    0.93x   0.99x   0.99x 4.1e-07  -
    lenet-300-100     0.800   0.516   0.511   0.305   0.311    1.69x   1.66x   1.64x 2.1e-07  1, 3
    lenet-300-100     0.900   0.512   0.510   0.235   0.241    2.18x   2.13x   2.12x 1.1e-07  1, 3
    lenet-300-100     0.950   0.514   0.510   0.200   0.205    2.56x   2.51x   2.49x 6.3e-08  1, 3
    lenet-300-100     0.980   0.515   0.512   0.182   0.185    2.82x   2.79x   2.77x 7.3e-08  1, 3
    lenet-300-100     0.990   0.512   0.508   0.169   0.176    3.03x   2.91x   2.89x 7.7e-08  1, 3
    lenet-300-100 dns 0.982   0.513   0.512   0.177   0.181    2.91x   2.84x   2.83x 6.6e-08  1, 3
    lenet-5           0.500  13.293   6.100   4.940   4.853    2.69x   2.74x   1.26x 5.5e-07  0, 2, 5
    lenet-5           0.800  13.278   6.147   2.467   2.301    5.38x   5.77x   2.67x 3.3e-07  0, 2, 5
    lenet-5           0.900  13.055   6.246   1.764   1.555    7.40x   8.40x   4.02x 1.8e-07  0, 2, 5
    lenet-5           0.950  11.106   5.340   1.139   0.992    9.75x  11.20x   5.38x 8.6e-08  0, 2, 5
    lenet-5           0.980  11.994   6.123   1.141   0.976   10.51x  12.29x   6.27x 9.5e-08  0, 2, 5
    lenet-5           0.990  11.346   6.189   1.066   0.910   10.64x  12.46x   6.80x 9.5e-08  0, 2, 5
    lenet-5       dns 0.991  13.232   6.193   1.350   1.158    9.80x  11.42x   5.35x 9.0e-08  0, 2, 5

Reading: LeNet-5 pruned to DNS's densities runs 11× faster than dense as stored and 5.3×
faster than dense channels-last (12× / 6.3× at 98 % per layer); ``auto`` is never slower
than dense (LeNet-300-100 at 50 %: no layer faster, dense kept; 0.99× is noise). Part of
LeNet-5's gain over "dense" is layout: torch's NCHW max-pool takes ≈ 5 of dense's 11 ms
here, which dense-cl avoids too, so ``cl/auto`` is about the gain of the sparse kernels
alone. The kernels are FBGEMM's embedding-bag sums, 64 floats (the batch) per index.
LeNet-300-100 gains ≈ 3× from 98 %: its sparse model takes ≈ 0.18 ms, much of it fixed
per-call costs and the transpose of the input for fc1.
"""

from __future__ import annotations

import argparse
import copy
import os

# DNS (Guo et al. 2016, Table 2): fraction of weights kept per layer
DNS_DENSITIES = {"lenet-5": (0.142, 0.031, 0.007, 0.043), "lenet-300-100": (0.018, 0.018, 0.055)}


def prune(model, keep: list[float]):
    """Zero all but the largest-|w| ``keep[l]`` fraction of layer l's weights."""
    import torch

    from robench.tasks.compression.methods.base import prunable_layers
    from robench.tasks.compression.methods.magnitude import smallest_magnitude_mask

    with torch.no_grad():
        for (_, layer), fraction in zip(prunable_layers(model), keep):
            n = layer.weight.numel()
            mask = smallest_magnitude_mask(layer.weight.abs().flatten(), n - round(fraction * n))
            layer.weight.mul_(mask.view_as(layer.weight))
    return model.eval()


def main() -> None:
    import torch

    from robench import registry
    registry.load_builtins()
    from robench.models import build_model
    from robench.tasks.compression import metrics

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64, help="images per forward pass")
    parser.add_argument("--repeats", type=int, default=30, help="timed passes per variant (median)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the machine is shared)")
    parser.add_argument("--sparsities", default="0.5,0.8,0.9,0.95,0.98,0.99,dns")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    x = torch.rand(args.batch, 1, 28, 28)

    print(f"batch {args.batch}, {args.threads} thread(s), torch {torch.__version__}; median of {args.repeats}; "
          f"load average {os.getloadavg()[0]:.2f}")
    print("milliseconds: dense, dense-cl, sparse, auto; then ratios and the largest relative output difference")
    print(f"{'model':<13} {'sparsity':>9} {'dense':>7} {'cl':>7} {'sparse':>7} {'auto':>7} {'d/sparse':>8} "
          f"{'d/auto':>7} {'cl/auto':>7} {'rel |Δ|':>7}  on sparse (auto)")
    for name in ("lenet-300-100", "lenet-5"):
        for level in args.sparsities.split(","):
            torch.manual_seed(0)
            model = build_model(name).eval()
            layers = len(DNS_DENSITIES[name])
            prune(model, DNS_DENSITIES[name] if level == "dns" else [1 - float(level)] * layers)
            stats = metrics.layer_stats(model, (1, 28, 28))
            channels_last = copy.deepcopy(model).to(memory_format=torch.channels_last)
            sparse = metrics.sparse_inference_model(model)          # every candidate converted
            auto = metrics.sparse_inference_model(model, x)         # the task's choice
            timed = [model, channels_last, sparse, auto]
            dense_ms, cl_ms, sparse_ms, auto_ms = metrics.paired_latency_ms(timed, x, args.repeats)
            with torch.inference_mode():
                reference = model(x)
                error = max(float((m(x) - reference).abs().max()) for m in (sparse, auto))
            error /= float(reference.abs().max())
            chosen = [n for n, c in auto.sparse_layers_.items() if c["sparse"]]
            on_sparse = ", ".join(chosen) if chosen else ("dense" if auto.sparse_model_.get("dense_ms") else "-")
            label = f"{'dns ' if level == 'dns' else ''}{metrics.weight_sparsity(stats):.3f}"
            print(f"{name:<13} {label:>9} {dense_ms:>7.3f} {cl_ms:>7.3f} {sparse_ms:>7.3f} {auto_ms:>7.3f} "
                  f"{dense_ms / sparse_ms:>7.2f}x {dense_ms / auto_ms:>6.2f}x {cl_ms / auto_ms:>6.2f}x "
                  f"{error:>7.1e}  {on_sparse}")
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
