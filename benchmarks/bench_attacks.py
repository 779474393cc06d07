"""Throughput of the attack layer's PGD against (a) a raw torch loop doing the same
forward/backward passes and (b) foolbox called directly with its defaults.

    python benchmarks/bench_attacks.py [--threads 1] [--repeats 5] [--steps 40] [--batch 250]

Model: LeNet-5 (untrained: timing only) on 250 MNIST-5k test images, PGD-l∞ at ε = 0.3.
Throughput is gradient evaluations per second = steps × images / seconds (best of
``--repeats``, the three variants interleaved so machine load hits them alike). The layer's
time includes everything ``evaluate_robustness`` does around the attack (input checks, the
clean forward passes, foolbox's final success check); that overhead is part of the ratio.
Prints the ratios; never asserts (timings belong here, not in tests).
"""

from __future__ import annotations

import argparse
import time


def raw_pgd_linf(model, x, y, eps: float, steps: int, rel_stepsize: float):
    """The same passes as foolbox's LinfPGD (random start, signed steps, projection, clip)."""
    import torch
    import torch.nn.functional as F

    x_adv = (x + torch.empty_like(x).uniform_(-eps, eps)).clamp(0, 1)
    for _ in range(steps):
        x_adv.requires_grad_(True)
        loss = F.cross_entropy(model(x_adv), y, reduction="sum")
        grad, = torch.autograd.grad(loss, x_adv)
        x_adv = x_adv.detach() + rel_stepsize * eps * grad.sign()
        x_adv = (x + (x_adv - x).clamp(-eps, eps)).clamp(0, 1)
    with torch.no_grad():
        return model(x_adv).argmax(1) != y


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch", type=int, default=250)
    parser.add_argument("--eps", type=float, default=0.3)
    args = parser.parse_args(argv)

    import foolbox as fb
    import torch

    from robench.attacks import evaluate_robustness, pgd_linf
    from robench.data import load_dataset
    from robench.models import build_model

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    data = load_dataset("mnist-5k")
    x, y = data.test_x[:args.batch].contiguous(), data.test_y[:args.batch]
    model = build_model("lenet-5").eval()
    config = pgd_linf((args.eps,), steps=args.steps, rel_stepsize=0.01 / 0.3)  # foolbox's default step
    grad_evals = args.steps * len(x)

    def layer():
        evaluate_robustness(model, x, y, [config], batch_size=args.batch)

    def raw():
        flags = [p.requires_grad for p in model.parameters()]
        for p in model.parameters():
            p.requires_grad_(False)
        try:
            raw_pgd_linf(model, x, y, args.eps, args.steps, config.rel_stepsize)
        finally:
            for p, flag in zip(model.parameters(), flags):
                p.requires_grad_(flag)

    def foolbox_defaults():
        # what a user writes from foolbox's README: trainable parameters, default LinfPGD (40 steps)
        fmodel = fb.PyTorchModel(model, bounds=(0, 1), device="cpu")
        fb.attacks.LinfPGD()(fmodel, x, y, epsilons=[args.eps])
        model.zero_grad(set_to_none=True)  # foolbox leaves .grad on the parameters

    variants = {"layer": layer, "raw torch": raw, "foolbox defaults": foolbox_defaults}
    if args.steps != 40:
        print("note: foolbox defaults always run 40 steps; its throughput is scaled accordingly")
    wall = {name: float("inf") for name in variants}
    cpu = {name: float("inf") for name in variants}
    layer()  # warm-up (imports, allocator)
    for _ in range(args.repeats):
        for name, fn in variants.items():
            w0, c0 = time.perf_counter(), time.process_time()
            fn()
            wall[name] = min(wall[name], time.perf_counter() - w0)
            cpu[name] = min(cpu[name], time.process_time() - c0)
    evals = {name: (40 * len(x) if name == "foolbox defaults" else grad_evals) for name in variants}

    print(f"LeNet-5 (untrained), {len(x)} MNIST-5k images, PGD-linf eps={args.eps}, "
          f"{args.steps} steps, torch {torch.__version__} ({torch.get_num_threads()} threads), "
          f"foolbox {fb.__version__}, best of {args.repeats}")
    # CPU time of this process is the steadier measure on a shared machine; wall time is what users wait
    for label, best in (("wall", wall), ("cpu", cpu)):
        rate = {name: evals[name] / best[name] for name in variants}
        print(f" {label} clock:")
        for name in variants:
            print(f"  {name:18s} {best[name]:7.3f} s  {rate[name]:9.0f} grad evals/s")
        print(f"  layer / raw torch        = {rate['layer'] / rate['raw torch']:.3f}")
        print(f"  layer / foolbox defaults = {rate['layer'] / rate['foolbox defaults']:.3f}")


if __name__ == "__main__":
    main()
