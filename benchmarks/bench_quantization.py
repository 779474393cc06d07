"""Quantization performance ratios (printed, never asserted).

1. INQ's fine-tuning time / plain fine-tuning time (``dense``: no hooks) for LeNet-5 on
   mnist-5k, 1 epoch, through ``robench.training.finetune_with_hooks`` (prepare + SGD
   + finalize; INQ also restarts the cosine schedule at its phases);
2. the same for ``uniform`` (8-bit fake quantization with a straight-through estimator);
3. PyTorch int8 dynamic quantization latency / float latency for LeNet-300-100 on a batch
   of 64 test images (``uniform``'s ``extra_metrics``).

The models start from a briefly trained baseline (``--baseline-epochs``) so the printed
accuracies mean something; timings are interleaved over ``--repeats`` rounds, best kept.

Usage: python benchmarks/bench_quantization.py [--repeats 3] [--threads 2]

Last run (2 shared CPU cores, torch 2.14.1, defaults: --repeats 3 --threads 2
--baseline-epochs 2; 2 min in all)::

    LeNet-5 baseline (2 epochs): accuracy 0.9410
    fine-tuning 1 epoch, dense   :   6.65 s  ratio to dense  1.00x  (accuracy after: 0.9550)
    fine-tuning 1 epoch, inq     :   7.38 s  ratio to dense  1.11x  (accuracy after: 0.9500)
    fine-tuning 1 epoch, uniform :   7.32 s  ratio to dense  1.10x  (accuracy after: 0.9550)
    LeNet-300-100 batch 64: float 0.329 ms, int8 dynamic 0.215 ms → ratio 0.65x; accuracy float 0.8810, int8 dynamic 0.8790
"""

import argparse
import copy
import time


def trained(name: str, data, epochs: int):
    import torch

    from robench.models import build_model
    from robench.training import fit, make_sgd

    torch.manual_seed(0)
    model = build_model(name, num_classes=data.num_classes)
    fit(model, data.train_x, data.train_y, epochs=epochs, batch_size=64, optimizer=make_sgd(model, 0.05), seed=0)
    return model


def bench_finetuning(data, baseline_epochs: int, repeats: int) -> None:
    from robench import registry
    registry.load_builtins()
    from robench.tasks.compression.methods.dense import Dense
    from robench.tasks.compression.methods.inq import IncrementalNetworkQuantization
    from robench.tasks.compression.methods.uniform import UniformQuantization
    from robench.training import accuracy, finetune_with_hooks

    base = trained("lenet-5", data, baseline_epochs)
    print(f"LeNet-5 baseline ({baseline_epochs} epochs): accuracy {accuracy(base, data.test_x, data.test_y):.4f}")
    makers = {"dense": Dense, "inq": IncrementalNetworkQuantization, "uniform": UniformQuantization}
    times: dict[str, list[float]] = {name: [] for name in makers}
    accuracies = {}
    for _ in range(repeats):
        for name, make in makers.items():  # interleaved, so background load hits all alike
            model = copy.deepcopy(base)
            start = time.perf_counter()
            model = finetune_with_hooks(model, data, make(), epochs=1, batch_size=64, lr=0.01, seed=0)
            times[name].append(time.perf_counter() - start)
            accuracies[name] = accuracy(model, data.test_x, data.test_y)
    dense = min(times["dense"])
    for name in makers:
        best = min(times[name])
        print(f"fine-tuning 1 epoch, {name:8s}: {best:6.2f} s  ratio to dense {best / dense:5.2f}x  "
              f"(accuracy after: {accuracies[name]:.4f})")


def bench_int8(data, baseline_epochs: int) -> None:
    from robench.tasks.compression.methods.uniform import int8_dynamic_metrics
    from robench.training import accuracy

    model = trained("lenet-300-100", data, baseline_epochs)
    m = int8_dynamic_metrics(model, data, batch=64, repeats=200)
    if not m:
        print("int8 dynamic quantization: torch.ao.quantization unavailable")
        return
    print(f"LeNet-300-100 batch 64: float {m['latency_float_ms']:.3f} ms, int8 dynamic "
          f"{m['latency_int8_dynamic_ms']:.3f} ms → ratio {m['latency_int8_dynamic_ms'] / m['latency_float_ms']:.2f}x; "
          f"accuracy float {accuracy(model, data.test_x, data.test_y):.4f}, "
          f"int8 dynamic {m['accuracy_int8_dynamic']:.4f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="interleaved timing rounds (best kept)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--baseline-epochs", type=int, default=2, help="epochs of the starting models")
    args = parser.parse_args()

    import torch

    from robench.data import load_dataset
    torch.set_num_threads(args.threads)
    mnist = load_dataset("mnist-5k")
    bench_finetuning(mnist, args.baseline_epochs, args.repeats)
    bench_int8(mnist, args.baseline_epochs)
