"""robench's loops at the papers' shapes, against raw torch doing the same work.

    python benchmarks/bench_scale.py [--device cpu|cuda] [--batch 8] [--steps 3] [--repeats 3]
                                     [--apgd-steps 5] [--images 96] [--workers 2]

1. Training and evaluation: one epoch of ``--steps`` minibatches through ``robench.training.fit``
   and ``robench.training.accuracy`` on an in-memory split, against a raw loop (``randperm``,
   index, forward, cross-entropy, backward, SGD step; ``no_grad`` forward and argmax), for
   ResNet-18 (``tv:resnet18``) at 224 px and WRN-28-10 (``wrn-28-10``) at 32 px. Target ≥ 0.95×.
2. APGD-CE (l∞, ε = 8/255) through the attack layer (``evaluate_robustness``) against the raw
   APGD loop of ``bench_attacks.py`` (the same forward/backward passes). Target ≥ 0.95×.
3. The ``imagefolder`` pipeline: images/s of one evaluation pass and one augmented training
   pass over ``--images`` JPEGs (500×375, ImageNet's typical size) against torchvision's
   ``ImageFolder`` + ``DataLoader`` with the same transforms and ``--workers``. Target ≥ 1×.

Models are untrained (timing only); each variant is timed best-of ``--repeats``, interleaved
so machine load hits them alike. Prints a Markdown table; never asserts a time.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def best_of(variants: dict, repeats: int, sync) -> dict[str, float]:
    best = {name: float("inf") for name in variants}
    for _ in range(repeats):
        for name, fn in variants.items():
            sync()
            start = time.perf_counter()
            fn()
            sync()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def raw_train_epoch(model, x, y, batch: int, seed: int, lr: float = 0.01):
    import torch
    import torch.nn.functional as F

    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed)).to(x.device)
    model.train()
    for start in range(0, len(x), batch):
        idx = order[start:start + batch]
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x[idx]), y[idx]).backward()
        optimizer.step()
    model.eval()


def raw_eval(model, x, y, batch: int) -> float:
    import torch

    correct = 0
    with torch.no_grad():
        for start in range(0, len(x), batch):
            correct += (model(x[start:start + batch]).argmax(1) == y[start:start + batch]).sum()
    return int(correct) / len(x)


def bench_loops(args, device, sync) -> list[tuple]:
    import torch

    from robench.attacks import apgd_ce, evaluate_robustness, frozen
    from robench.data import ArraySplit
    from robench.models import build_model
    from robench.training import accuracy, fit, make_sgd
    from bench_attacks import raw_apgd_linf

    rows = []
    for name, side in (("tv:resnet18", 224), ("wrn-28-10", 32)):
        torch.manual_seed(0)
        model = build_model(name, num_classes=10).to(device)
        n = args.batch * args.steps
        x = torch.rand(n, 3, side, side, device=device)
        y = torch.randint(0, 10, (n,), device=device)
        split = ArraySplit(x, y)
        state = {k: v.clone() for k, v in model.state_dict().items()}

        def ours_train():
            model.load_state_dict(state)
            fit(model, split, epochs=1, batch_size=args.batch, optimizer=make_sgd(model, 0.01), seed=0)

        def raw_train():
            model.load_state_dict(state)
            raw_train_epoch(model, x, y, args.batch, 0)

        times = best_of({"robench": ours_train, "raw": raw_train}, args.repeats, sync)
        rows.append((f"train epoch, {name} {side}px, {args.steps}×{args.batch}", times["robench"], times["raw"],
                     n / times["robench"], "img/s"))
        model.eval()
        times = best_of({"robench": lambda: accuracy(model, split, batch_size=args.batch),
                         "raw": lambda: raw_eval(model, x, y, args.batch)}, args.repeats, sync)
        rows.append((f"evaluation, {name} {side}px, {n} images", times["robench"], times["raw"],
                     n / times["robench"], "img/s"))
        eps = 8 / 255
        xa, ya = x[:args.batch], y[:args.batch]
        with torch.no_grad():
            own = model(xa).argmax(1)  # every point attacked throughout, as in the raw loop
        config = apgd_ce("linf", (eps,), steps=args.apgd_steps)

        def raw_apgd():
            with frozen(model):
                raw_apgd_linf(model, xa, own, eps, args.apgd_steps)
        times = best_of({"robench": lambda: evaluate_robustness(model, xa, own, [config], batch_size=args.batch),
                         "raw": raw_apgd}, args.repeats, sync)
        evals = (args.apgd_steps + 1) * len(xa)
        rows.append((f"APGD-CE l∞, {name} {side}px, {args.apgd_steps} steps × {len(xa)}", times["robench"],
                     times["raw"], evals / times["robench"], "grad evals/s"))
        del model, x, y, split
    return rows


def write_jpegs(root: Path, images: int, classes: int = 4) -> None:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(images):
        folder = root / "train" / f"n{i % classes:08d}"
        folder.mkdir(parents=True, exist_ok=True)
        # smooth content (JPEG of noise decodes unlike photographs): a low-resolution field upsampled
        low = rng.integers(0, 256, size=(12, 16, 3), dtype=np.uint8)
        Image.fromarray(low).resize((500, 375), Image.BILINEAR).save(folder / f"img_{i:04d}.JPEG", quality=90)
    (root / "val").mkdir()
    for entry in (root / "train").iterdir():
        (root / "val" / entry.name).symlink_to(entry)


def bench_pipeline(args) -> list[tuple]:
    import torch
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    from robench.data.folders import imagefolder

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_jpegs(root, args.images)
        os.environ["ROBENCH_DATA_WORKERS"] = str(args.workers)
        data = imagefolder(str(root))
        order = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(0))
        eval_tf = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor()])
        train_tf = transforms.Compose([transforms.RandomResizedCrop(224), transforms.RandomHorizontalFlip(),
                                       transforms.ToTensor()])

        def drain(iterable):
            for x, _ in iterable:
                x.sum()

        def reference(transform, shuffle):
            loader = DataLoader(datasets.ImageFolder(str(root / "train"), transform=transform), batch_size=32,
                                shuffle=shuffle, num_workers=args.workers, prefetch_factor=4 if args.workers else None)
            drain(loader)

        for label, ours, theirs in (
                ("evaluation transform", lambda: drain(data.test.batches(None, 32, "cpu")),
                 lambda: reference(eval_tf, False)),
                ("training transform (crop + flip)", lambda: drain(data.train.batches(order, 32, "cpu", augment_seed=1)),
                 lambda: reference(train_tf, True))):
            times = best_of({"robench": ours, "torchvision": theirs}, args.repeats, lambda: None)
            rows.append((f"imagefolder, {label}, {args.images} JPEGs 500×375, {args.workers} workers",
                         times["robench"], times["torchvision"], args.images / times["robench"], "img/s"))
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--apgd-steps", type=int, default=5)
    parser.add_argument("--images", type=int, default=96)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--only", choices=("loops", "pipeline"), default=None)
    args = parser.parse_args(argv)

    import torch

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("skipped: --device cuda but no CUDA device here")
        return
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    load = os.getloadavg()
    print(f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else f'{os.cpu_count()} cores'}), "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, load before {load[0]:.2f}, "
          f"best of {args.repeats}\n")
    rows = []
    if args.only in (None, "loops"):
        rows += bench_loops(args, device, sync)
    if args.only in (None, "pipeline"):
        rows += bench_pipeline(args)
    print("| measurement | robench s | reference s | robench / reference speed | robench throughput |")
    print("| --- | --- | --- | --- | --- |")
    for label, ours, theirs, rate, unit in rows:
        print(f"| {label} | {ours:.3f} | {theirs:.3f} | {theirs / ours:.2f}× | {rate:.1f} {unit} |")


if __name__ == "__main__":
    main()
