"""Throughput of the attack layer against (a) a raw torch loop doing the same forward/backward
passes and (b) the library called directly, for PGD (foolbox) and APGD-CE (robench's own
APGD, against torchattacks' APGD: with its defaults, and with the paper's 100 steps, whose
examples robench's APGD reproduces to the last bit).

    python benchmarks/bench_attacks.py [--threads 1] [--repeats 5] [--steps 40] [--apgd-steps 100] [--batch 250]

Model: LeNet-5 (untrained: timing only) on 250 MNIST-5k test images, at ε = 0.3 (l∞). For
APGD the labels are the model's own predictions, so every point is correctly classified
and attacked for all its iterations (APGD attacks clean-correct points only), as in the raw
loop. Throughput is gradient evaluations per second = passes × images / seconds (best of
``--repeats``, the variants interleaved so machine load hits them alike). The layer's time
includes everything ``evaluate_robustness`` does around the attack (input checks, the clean
forward passes, the library's or the layer's own final success check); that overhead is
part of the ratio. Prints the ratios; never asserts (timings belong here, not in tests).
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


def raw_apgd_linf(model, x, y, eps: float, steps: int):
    """The passes of one APGD-CE run (Croce & Hein 2020): a gradient at the random start,
    then ``steps`` momentum steps (α = 0.75) of size 2ε, projected and clipped, each followed
    by a forward/backward pass; the best loss kept per point. No step-size schedule and no
    best-point bookkeeping (that work is the implementation's overhead, which the ratio shows)."""
    import torch
    import torch.nn.functional as F

    def loss_and_grad(z):
        z = z.detach().requires_grad_(True)
        loss = F.cross_entropy(model(z), y, reduction="none")
        grad, = torch.autograd.grad(loss.sum(), z)
        return loss.detach(), grad

    x_adv = (x + eps * (2 * torch.rand_like(x) - 1)).clamp(0, 1)
    loss, grad = loss_and_grad(x_adv)
    best, x_prev, step = loss.clone(), x_adv, 2 * eps
    for i in range(steps):
        z = torch.min(torch.max(x_adv + step * grad.sign(), x - eps), x + eps).clamp(0, 1)
        a = 0.75 if i else 1.0
        z = torch.min(torch.max(x_adv + a * (z - x_adv) + (1 - a) * (x_adv - x_prev), x - eps), x + eps).clamp(0, 1)
        x_prev, x_adv = x_adv, z
        loss, grad = loss_and_grad(x_adv)
        best = torch.maximum(best, loss)
    with torch.no_grad():
        return model(x_adv).argmax(1) != y


def _timed(variants: dict, repeats: int):
    """Best wall and CPU seconds of each variant over ``repeats`` interleaved rounds."""
    wall = {name: float("inf") for name in variants}
    cpu = {name: float("inf") for name in variants}
    for _ in range(repeats):
        for name, fn in variants.items():
            w0, c0 = time.perf_counter(), time.process_time()
            fn()
            wall[name] = min(wall[name], time.perf_counter() - w0)
            cpu[name] = min(cpu[name], time.process_time() - c0)
    return wall, cpu


def _report(title: str, variants, evals: dict, wall: dict, cpu: dict, library: str, same: str | None = None) -> None:
    print(title)
    # CPU time of this process is the steadier measure on a shared machine; wall time is what users wait
    for label, best in (("wall", wall), ("cpu", cpu)):
        rate = {name: evals[name] / best[name] for name in variants}
        print(f" {label} clock:")
        for name in variants:
            print(f"  {name:22s} {best[name]:7.3f} s  {rate[name]:9.0f} grad evals/s")
        print(f"  layer / raw torch          = {rate['layer'] / rate['raw torch']:.3f}")
        print(f"  layer / {library + ' defaults':18s} = {rate['layer'] / rate[library + ' defaults']:.3f}")
        if same:
            print(f"  layer / {same:18s} = {rate['layer'] / rate[same]:.3f}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--steps", type=int, default=40, help="PGD steps")
    parser.add_argument("--apgd-steps", type=int, default=100, help="APGD-CE steps (AutoAttack: 100)")
    parser.add_argument("--batch", type=int, default=250)
    parser.add_argument("--eps", type=float, default=0.3)
    parser.add_argument("--only", choices=("pgd", "apgd"), default=None)
    args = parser.parse_args(argv)

    import foolbox as fb
    import torch
    import torchattacks

    from robench.attacks import apgd_ce, evaluate_robustness, frozen, pgd_linf
    from robench.data import load_dataset
    from robench.models import build_model

    if args.threads:
        torch.set_num_threads(args.threads)

    def frozen_call(model, fn):  # no parameter gradients, as the layer attacks (robench.attacks.frozen)
        with frozen(model):
            return fn()
    torch.manual_seed(0)
    data = load_dataset("mnist-5k")
    x, y = data.test_x[:args.batch].contiguous(), data.test_y[:args.batch]
    model = build_model("lenet-5").eval()
    setup = (f"LeNet-5 (untrained), {len(x)} MNIST-5k images, l∞ eps={args.eps}, torch {torch.__version__} "
             f"({torch.get_num_threads()} threads), best of {args.repeats}")

    if args.only in (None, "pgd"):
        config = pgd_linf((args.eps,), steps=args.steps, rel_stepsize=0.01 / 0.3)  # foolbox's default step

        def foolbox_defaults():
            # what a user writes from foolbox's README: trainable parameters, default LinfPGD (40 steps)
            fmodel = fb.PyTorchModel(model, bounds=(0, 1), device="cpu")
            fb.attacks.LinfPGD()(fmodel, x, y, epsilons=[args.eps])
            model.zero_grad(set_to_none=True)  # foolbox leaves .grad on the parameters

        variants = {
            "layer": lambda: evaluate_robustness(model, x, y, [config], batch_size=args.batch),
            "raw torch": lambda: frozen_call(model, lambda: raw_pgd_linf(model, x, y, args.eps, args.steps,
                                                                         config.rel_stepsize)),
            "foolbox defaults": foolbox_defaults,
        }
        variants["layer"]()  # warm-up (imports, allocator)
        wall, cpu = _timed(variants, args.repeats)
        evals = {name: (40 if name == "foolbox defaults" else args.steps) * len(x) for name in variants}
        note = "" if args.steps == 40 else " (foolbox defaults always run 40 steps; scaled accordingly)"
        _report(f"PGD-l∞ (foolbox {fb.__version__}), {args.steps} steps; {setup}{note}",
                variants, evals, wall, cpu, "foolbox")

    if args.only in (None, "apgd"):
        with torch.no_grad():
            own = model(x).argmax(1)  # every point correctly classified: all of them attacked throughout
        config = apgd_ce("linf", (args.eps,), steps=args.apgd_steps)

        def torchattacks_defaults():
            # torchattacks' README: APGD on the model as it is (default 10 steps; scaled below)
            torchattacks.APGD(model, eps=args.eps, seed=0)(x, own)
            model.zero_grad(set_to_none=True)

        variants = {
            "layer": lambda: evaluate_robustness(model, x, own, [config], batch_size=args.batch),
            "raw torch": lambda: frozen_call(model, lambda: raw_apgd_linf(model, x, own, args.eps, args.apgd_steps)),
            "torchattacks defaults": torchattacks_defaults,
            # what attacks version 2 ran: torchattacks' APGD with the paper's steps, frozen model
            "torchattacks APGD": lambda: frozen_call(model, lambda: torchattacks.APGD(
                model, eps=args.eps, steps=args.apgd_steps, seed=0)(x, own)),
        }
        variants["layer"]()
        wall, cpu = _timed(variants, args.repeats)
        evals = {name: ((10 if name == "torchattacks defaults" else args.apgd_steps) + 1) * len(x)
                 for name in variants}
        _report(f"APGD-CE l∞ (robench; torchattacks {torchattacks.__version__} for comparison), {args.apgd_steps} "
                f"steps + the start; {setup}", variants, evals, wall, cpu, "torchattacks", same="torchattacks APGD")


if __name__ == "__main__":
    main()
