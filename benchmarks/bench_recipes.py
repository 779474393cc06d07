"""Training time per epoch of each ``robust_training`` recipe over ``vanilla`` (printed, never asserted).

For each of the DeepDefense suite's models (``suites/papers/deepdefense.yaml``: mlp-500-150
and lenet-5 on mnist-5k), every recipe fine-tunes the same freshly built model (seed 0;
random init is fine for timing) for one epoch over the first ``--n-train`` training images
through its own ``recipe.train(model, data, 1, 0, batch_size=..., lr=...)``, with the
suite's recipe params (read from the suite file: deepdefense uses ``candidates: 4`` on
lenet-5) and the task's batch size and learning rate (64, 0.005). Recipes are built through
the registry, as the task does. Per-epoch time scales linearly with the number of training
images (a fixed amount of work per minibatch), so the "suite" column estimates the suite's
5 epochs over 4000 images as ``per-epoch × 4000 / n_train × 5``. Wall time
(``time.perf_counter``) and CPU time (``time.process_time``) are both shown, each the best of
``--repeats`` rounds (recipes interleaved within a round, so background load hits them
alike); ratios are wall (CPU in brackets). One untimed warm-up minibatch per model first.

Usage: python benchmarks/bench_recipes.py [--n-train 512] [--threads 1] [--repeats 3]
       [--models mlp-500-150,lenet-5] [--recipes vanilla,deepdefense,adv-fgs,adv-pgd,parseval]

Last run (2 shared CPU cores with a background load of ~2.5, torch 2.14.1, defaults:
--n-train 512 --threads 1 --repeats 3; 50 s in all; wall > CPU time shows the contention)::

    mnist-5k, one epoch over 512 training images, 1 torch thread(s), torch 2.14.1+cu130

    mlp-500-150 (batch 64, lr 0.005; suite: 5 epochs x 4000 images)
      recipe       params         wall s/ep  cpu s/ep  ratio wall (cpu) suite est. s
      vanilla      -                  0.028     0.020     1.00x ( 1.00x)          1.1
      deepdefense  -                  1.689     1.119    59.88x (55.36x)         66.0
      adv-fgs      -                  0.078     0.053     2.77x ( 2.63x)          3.1
      adv-pgd      -                  0.191     0.127     6.78x ( 6.29x)          7.5
      parseval     -                  0.154     0.102     5.45x ( 5.03x)          6.0

    lenet-5 (batch 64, lr 0.005; suite: 5 epochs x 4000 images)
      recipe       params         wall s/ep  cpu s/ep  ratio wall (cpu) suite est. s
      vanilla      -                  0.290     0.194     1.00x ( 1.00x)         11.3
      deepdefense  candidates=4       7.084     5.048    24.45x (26.06x)        276.7
      adv-fgs      -                  0.663     0.607     2.29x ( 3.14x)         25.9
      adv-pgd      -                  1.884     1.734     6.50x ( 8.95x)         73.6
      parseval     -                  0.403     0.264     1.39x ( 1.36x)         15.7
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

SUITE = Path(__file__).resolve().parent.parent / "suites" / "papers" / "deepdefense.yaml"
RECIPES = ("vanilla", "deepdefense", "adv-fgs", "adv-pgd", "parseval")
MODELS = ("mlp-500-150", "lenet-5")


def suite_settings(path: Path) -> dict[str, dict]:
    """model -> {"epochs", "n_train" (None: all), "recipes": {name: params}} from the suite file."""
    import yaml

    spec = yaml.safe_load(path.read_text())
    out = {}
    for entry in spec["tasks"]:
        if entry["task"] != "robust_training":
            continue
        p = entry.get("params", {})
        out[p.get("model", "lenet-5")] = {
            "epochs": p.get("epochs"), "n_train": p.get("n_train"), "batch_size": p.get("batch_size"),
            "lr": p.get("lr"),
            "recipes": {m["name"]: dict(m.get("params") or {}) for m in entry["methods"]}}
    return out


def time_recipe(make, model, data, *, batch_size: int, lr: float) -> tuple[float, float]:
    """(wall, cpu) seconds of one epoch of ``make().train`` on a copy of ``model``."""
    import torch

    model = copy.deepcopy(model).train()
    recipe = make()
    torch.manual_seed(0)
    wall, cpu = time.perf_counter(), time.process_time()
    recipe.train(model, data, 1, 0, batch_size=batch_size, lr=lr)
    return time.perf_counter() - wall, time.process_time() - cpu


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=512,
                        help="time one epoch over the first n training images (per-epoch time scales linearly)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved timing rounds (best kept)")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated models of the suite")
    parser.add_argument("--recipes", default=",".join(RECIPES),
                        help="comma-separated recipes (vanilla is always timed: the ratios need it)")
    args = parser.parse_args(argv)

    import torch

    from robench import registry
    from robench.data import Splits, load_dataset
    from robench.models import build_model
    from robench.tasks.robust_training.task import RobustTrainingParams

    torch.set_num_threads(args.threads)
    registry.load_builtins()
    settings = suite_settings(SUITE)
    defaults = RobustTrainingParams()
    data = load_dataset("mnist-5k")
    n = min(args.n_train, len(data.train_x))
    head = Splits(name=data.name, train_x=data.train_x[:n], train_y=data.train_y[:n], test_x=data.test_x,
                  test_y=data.test_y, num_classes=data.num_classes)
    recipes = ["vanilla"] + [r for r in args.recipes.split(",") if r and r != "vanilla"]  # the base, first

    print(f"mnist-5k, one epoch over {n} training images, {args.threads} torch thread(s), torch {torch.__version__}")
    for model_name in [m for m in args.models.split(",") if m]:
        s = settings.get(model_name, {"epochs": defaults.epochs, "n_train": None, "recipes": {}})
        batch_size = s.get("batch_size") or defaults.batch_size
        lr = s.get("lr") or defaults.lr
        epochs = s["epochs"] or defaults.epochs
        suite_n = min(s["n_train"] or len(data.train_x), len(data.train_x))
        scale = suite_n / n * epochs

        torch.manual_seed(0)
        model = build_model(model_name, num_classes=data.num_classes)
        warm = Splits(name=data.name, train_x=data.train_x[:batch_size], train_y=data.train_y[:batch_size],
                      test_x=data.test_x, test_y=data.test_y, num_classes=data.num_classes)
        time_recipe(registry.methods.get("vanilla", task="robust_training"), model, warm, batch_size=batch_size, lr=lr)

        print(f"\n{model_name} (batch {batch_size}, lr {lr:g}; suite: {epochs} epochs x {suite_n} images)")
        print(f"  {'recipe':12s} {'params':14s} {'wall s/ep':>9s} {'cpu s/ep':>9s} {'ratio wall (cpu)':>17s} "
              f"{'suite est. s':>12s}")
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in recipes}
        for _ in range(args.repeats):
            for name in recipes:  # interleaved, so background load hits all alike
                cls = registry.methods.get(name, task="robust_training")
                params = s["recipes"].get(name, {})
                times[name].append(time_recipe(lambda: cls(**params), model, head, batch_size=batch_size, lr=lr))
        base_wall = min(w for w, _ in times["vanilla"])
        base_cpu = min(c for _, c in times["vanilla"])
        for name in recipes:
            wall, cpu = min(w for w, _ in times[name]), min(c for _, c in times[name])
            shown = ",".join(f"{k}={v}" for k, v in s["recipes"].get(name, {}).items()) or "-"
            print(f"  {name:12s} {shown:14s} {wall:9.3f} {cpu:9.3f} {wall / base_wall:8.2f}x ({cpu / base_cpu:5.2f}x) "
                  f"{wall * scale:12.1f}")

if __name__ == "__main__":
    main()
