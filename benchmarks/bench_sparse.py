"""Sparse vs dense CPU latency of pruned layers and models (printed, never asserted).

For each sparsity (one-shot global magnitude pruning of a freshly initialised model), the
median latency of a forward pass of a batch of MNIST-sized inputs through

* ``dense``: the pruned model as stored (zeros in dense tensors),
* ``csr``: every pruned Conv2d/Linear on its CSR kernel (``CSRLinear``/``CSRConv2d``),
* ``auto``: the compression task's inference path — the faster kernel per layer, chosen by
  timing both on the layer's real input (``sparse_inference_model(model, example)``),

and the ratios dense / csr and dense / auto (> 1: faster than dense).

Usage: python benchmarks/bench_sparse.py [--batch 64] [--repeats 30] [--threads 1]

Last run (2 shared CPU cores, load ≈ 2 from a paper suite running in the background, so
LeNet-5's milliseconds are noisy; torch 2.14.1, 1 thread, batch 64):

    model          sparsity  dense ms   csr ms  auto ms dense/csr dense/auto  layers on CSR (auto)
    lenet-300-100      0.50     0.465    0.877    0.456     0.53x      1.02x  -
    lenet-300-100      0.80     0.644    0.956    0.636     0.67x      1.01x  -
    lenet-300-100      0.90     0.592    0.514    0.381     1.15x      1.55x  1
    lenet-300-100      0.95     0.463    0.210    0.157     2.21x      2.95x  1
    lenet-300-100      0.98     0.417    0.095    0.094     4.37x      4.41x  1
    lenet-300-100      0.99     0.417    0.081    0.085     5.13x      4.93x  1, 3
    lenet-5            0.50    11.870   16.761   13.869     0.71x      0.86x  -
    lenet-5            0.80    24.264   38.525   26.837     0.63x      0.90x  5
    lenet-5            0.90    21.794   40.467   26.486     0.54x      0.82x  5
    lenet-5            0.95    24.163   37.469   30.801     0.64x      0.78x  5
    lenet-5            0.98    24.357   44.105   27.310     0.55x      0.89x  5
    lenet-5            0.99    12.849   24.107   16.917     0.53x      0.76x  5

Reading: CSR matmuls pay off for Linear layers from ≈90% sparsity (LeNet-300-100: 1.5× at
90%, ≈5× at 99%). LeNet-5's time is in its convolutions, where im2col + CSR is slower than
oneDNN's dense convolution at every sparsity here, so its sparse path cannot beat dense;
the "auto" rows below 1× are timing noise of the per-layer choice under load (its fc1 on
CSR measured faster alone) — the task reports whatever it measures.
"""

from __future__ import annotations

import argparse


def main() -> None:
    import torch

    from robench import registry
    registry.load_builtins()
    from robench.models import build_model
    from robench.tasks.compression import metrics
    from robench.tasks.compression.methods.magnitude import MagnitudePruning

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64, help="images per forward pass")
    parser.add_argument("--repeats", type=int, default=30, help="timed passes per variant (median)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the machine is shared)")
    parser.add_argument("--sparsities", default="0.5,0.8,0.9,0.95,0.98,0.99")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sparsities = [float(s) for s in args.sparsities.split(",")]
    x = torch.rand(args.batch, 1, 28, 28)

    print(f"batch {args.batch}, {args.threads} thread(s), torch {torch.__version__}; median of {args.repeats}")
    print(f"{'model':<14} {'sparsity':>8} {'dense ms':>9} {'csr ms':>8} {'auto ms':>8} "
          f"{'dense/csr':>9} {'dense/auto':>10}  layers on CSR (auto)")
    for name in ("lenet-300-100", "lenet-5"):
        for sparsity in sparsities:
            torch.manual_seed(0)
            model = build_model(name).eval()
            MagnitudePruning(sparsity, "global").prepare(model, None, 1, 0)
            csr = metrics.sparse_inference_model(model)          # every candidate converted
            auto = metrics.sparse_inference_model(model, x)      # the task's choice per layer
            dense_ms, csr_ms, auto_ms = metrics.paired_latency_ms([model, csr, auto], x, args.repeats)
            chosen = [n for n, c in auto.sparse_layers_.items() if c["sparse"]]
            print(f"{name:<14} {sparsity:>8.2f} {dense_ms:>9.3f} {csr_ms:>8.3f} {auto_ms:>8.3f} "
                  f"{dense_ms / csr_ms:>8.2f}x {dense_ms / auto_ms:>9.2f}x  {', '.join(chosen) or '-'}")


if __name__ == "__main__":
    main()
