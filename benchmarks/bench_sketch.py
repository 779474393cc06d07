"""Network Sketching layers: float conv vs plain binary convs vs the associative order.

Run: python benchmarks/bench_sketch.py [--batch 64] [--repeats 20] [--threads 1]

For LeNet-5's conv2 (20→50, 5×5, on 12×12 inputs) and fc1 (800→500), sketched with
m ∈ {1, 3, 5} bases (refined) from the freshly initialised LeNet-5 weights, times
(best of ``--repeats``) one forward pass of

* float: ``F.conv2d`` / ``F.linear`` with the reconstructed weight Σ_j a_j B_j;
* plain binary: m separate ±1 convolutions, then the weighted sum Σ_j a_j·(x ⊛ B_j);
* associative: :class:`AssociativeBinaryConv2d` / :class:`AssociativeBinaryLinear`
  (minimum-Hamming-spanning-tree order, one CSR matmul, one gather-add per tree level);

and prints their ratios to the float time and the additions per output position the
associative order saves. A measurement, not a test: it asserts agreement only.

Last run (2 CPU cores, shared with other jobs, load average ≈ 2.8; torch 2.14 CPU,
``--repeats 30``)::

    batch 64, torch threads=1, best of 30
    layer               m  float ms  plain ms  assoc ms  plain/float  assoc/float  assoc/plain  adds saved  depth
    conv2 20→50 5×5     1     4.040     4.171    14.132        1.03x        3.50x        3.39x       53.5%      7
    conv2 20→50 5×5     3     3.794    15.784    29.658        4.16x        7.82x        1.88x       55.2%     14
    conv2 20→50 5×5     5     3.843    27.813    47.167        7.24x       12.27x        1.70x       55.8%     20
    fc1 800→500         1     0.537     0.551     1.382        1.03x        2.57x        2.51x       55.1%     32
    fc1 800→500         3     0.539     1.749     3.709        3.24x        6.88x        2.12x       55.7%     40
    fc1 800→500         5     0.535     2.894     6.003        5.41x       11.21x        2.07x       55.9%     47

Reading: the associative order saves ≈ 55% of the binary additions, but on a CPU with
float BLAS it is 2.5–12× slower than the float layer: the CSR matmul of the increments
(about 45% dense) runs far below dense-GEMM speed, and im2col alone costs about as much
as the whole float convolution. The saving is in operation count, which only pays off
on hardware with real binary/add-only kernels; ``latency_ms`` of the ``sketch`` methods
measures this implementation.
"""

from __future__ import annotations

import argparse
import time


def best_time(fn, repeats: int) -> tuple[float, object]:
    result = fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    import torch
    import torch.nn.functional as F

    from robench import registry
    registry.load_builtins()
    from robench.models import build_model
    from robench.tasks.compression.methods._associative import AssociativeBinaryConv2d, AssociativeBinaryLinear
    from robench.tasks.compression.methods.sketch import sketch_weight

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64, help="images per forward pass")
    parser.add_argument("--repeats", type=int, default=20, help="timed passes (best is reported)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the machine is shared)")
    parser.add_argument("--ms", type=int, nargs="+", default=[1, 3, 5], help="bases per filter")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    lenet = build_model("lenet-5").eval()
    gen = torch.Generator().manual_seed(0)
    layers = [("conv2 20→50 5×5", lenet[2], torch.rand(args.batch, 20, 12, 12, generator=gen)),
              ("fc1 800→500", lenet[5], torch.rand(args.batch, 800, generator=gen))]

    print(f"batch {args.batch}, torch threads={args.threads}, best of {args.repeats}")
    print(f"{'layer':18} {'m':>2} {'float ms':>9} {'plain ms':>9} {'assoc ms':>9} {'plain/float':>12} "
          f"{'assoc/float':>12} {'assoc/plain':>12} {'adds saved':>11} {'depth':>6}")
    with torch.inference_mode():
        for label, layer, x in layers:
            conv = isinstance(layer, torch.nn.Conv2d)
            out = layer.weight.shape[0]
            for m in args.ms:
                sketch = sketch_weight(layer.weight, m, "refined")
                weight, bias = sketch.reconstruction, layer.bias.detach()
                a = sketch.coefficients.float()
                binary = [sketch.bases[:, j].float().reshape(weight.shape) for j in range(m)]
                if conv:
                    fast = AssociativeBinaryConv2d.from_sketch(layer, sketch.bases, a)

                    def float_layer():
                        return F.conv2d(x, weight, bias)

                    def plain_binary():
                        y = bias.view(1, out, 1, 1)
                        for j in range(m):
                            y = y + a[:, j].view(1, out, 1, 1) * F.conv2d(x, binary[j])
                        return y
                else:
                    fast = AssociativeBinaryLinear.from_sketch(layer, sketch.bases, a)

                    def float_layer():
                        return F.linear(x, weight, bias)

                    def plain_binary():
                        y = bias
                        for j in range(m):
                            y = y + a[:, j] * F.linear(x, binary[j])
                        return y

                t_float, y_float = best_time(float_layer, args.repeats)
                t_plain, y_plain = best_time(plain_binary, args.repeats)
                t_assoc, y_assoc = best_time(lambda: fast(x), args.repeats)
                scale = y_float.abs().max().item()
                gap = max((y_plain - y_float).abs().max().item(), (y_assoc - y_float).abs().max().item())
                assert gap <= 1e-4 * scale, (label, m, gap, scale)
                saved = 1 - fast.associative_additions / fast.plain_additions
                print(f"{label:18} {m:>2} {1e3 * t_float:9.3f} {1e3 * t_plain:9.3f} {1e3 * t_assoc:9.3f} "
                      f"{t_plain / t_float:11.2f}x {t_assoc / t_float:11.2f}x {t_assoc / t_plain:11.2f}x "
                      f"{saved:11.1%} {len(fast.levels):>6}")
    print("ratios > 1 are slower than float; 'adds saved' = 1 − associative / plain additions per position")


if __name__ == "__main__":
    main()
