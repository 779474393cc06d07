"""APGD (Croce & Hein, ICML 2020): APGD-CE and the targeted APGD-T of AutoAttack.

robench's own implementation of Algorithm 1 of "Reliable evaluation of adversarial
robustness with an ensemble of diverse parameter-free attacks", written after the paper's
reference code (fra31/auto-attack) and checked point by point against torchattacks 3.5.1's
``APGD`` / ``APGDT`` (same random starts, same iterates, same returned examples: see
``tests/test_apgd.py``). It does the same forward/backward passes as the library, without
the library's per-iteration host work (index lists, copies of the loss history to NumPy):
every update is a masked select on the device, so the loop never waits for the device.

The algorithm, per point, for ``steps`` iterations N_iter:

- start at a random point of the ε-sphere (l∞: a uniform draw scaled to l∞ norm ε;
  l2: a Gaussian draw scaled to l2 norm ε), clipped to the box [0, 1];
- step size η = 2ε; momentum: z = P(x_k + η·s(∇)) and
  x_{k+1} = P(x_k + α(z − x_k) + (1 − α)(x_k − x_{k−1})) with α = 0.75 (1 at the first
  step), s = sign for l∞ and ∇/‖∇‖₂ for l2, P the projection onto ball ∩ box;
- checkpoints after p₁ = 22 % of the iterations, then at intervals shrinking by 3 % down to
  6 %; at a checkpoint a point's step size is halved (and it restarts from its best point)
  if the loss went up in at most ρ (0.75) of the steps since the last checkpoint, or if its
  best loss did not improve since the last checkpoint and its step was not halved there;
- losses: cross-entropy (APGD-CE); the targeted DLR loss
  −(z_y − z_t) / (z_π1 − (z_π3 + z_π4)/2) (APGD-T), run once per target t among the
  ``target_classes`` highest-scoring wrong classes of the clean input, each on the points
  the earlier targets left unbroken;
- ``restarts`` runs (each on the points still unbroken); a point is broken when some
  iterate is misclassified, and its adversarial example is the last such iterate.

Where torchattacks differs from the paper's code, this module follows the paper: l2 APGD-T
keeps one step size per point (torchattacks' ``APGDT`` uses the batch's first point's).
Inputs are in [0, 1] (the evaluator maps other bounds onto it) with any shape (N, ...).
Random starts come from a CPU generator seeded with ``seed`` (the draws torchattacks makes
after ``torch.manual_seed(seed)``); the global generators are not touched.
"""

from __future__ import annotations


def apgd(model, x, y, *, norm: str, eps: float, steps: int = 100, restarts: int = 1, rho: float = 0.75,
         seed: int = 0, target_classes: int | None = None, attack=None):
    """Run APGD on ``model`` at budget ``eps`` (``norm``: ``"linf"`` or ``"l2"``).

    x: float (N, ...) in [0, 1]; y: int (N,). ``target_classes=None``: APGD-CE;
    an int t: APGD-T against the t highest-scoring wrong classes, one after the other.
    attack: bool (N,) mask of the points to attack (default: those the model classifies
    correctly, found with one forward pass). Returns ``(x_adv, broken)``: broken, bool (N,),
    marks the attacked points where some iterate was misclassified, and x_adv holds the last
    such iterate there and x elsewhere.
    """
    import torch

    if norm not in ("linf", "l2"):
        raise ValueError(f"norm must be 'linf' or 'l2', got {norm!r}")
    generator = torch.Generator().manual_seed(int(seed))
    x_adv = x.detach().clone()
    with torch.no_grad():
        attacked = (model(x).max(1)[1] == y) if attack is None else attack.bool()
    robust = attacked.clone()
    for target in ([None] if target_classes is None else range(2, target_classes + 2)):
        for _ in range(restarts):
            index = robust.nonzero().flatten()
            if index.numel() == 0:
                break
            hit, found = _single_run(model, x[index], y[index], norm, float(eps), steps, rho, generator, target)
            robust[index[hit]] = False
            x_adv[index[hit]] = found[hit]
    return x_adv, attacked & ~robust


def _single_run(model, x, y, norm, eps, steps, rho, generator, target):
    """One APGD run on points (x, y) (all attacked); returns (broken bool (n,), the last
    misclassified iterate per point). ``target``: None (CE loss) or the rank of the target
    class among the clean logits (2 = the highest-scoring other class when y is predicted).
    The arithmetic mirrors the reference code's expression by expression, so the iterates
    agree with it to the last bit."""
    import torch
    import torch.nn.functional as F

    n, device = len(x), x.device
    dims = tuple(range(1, x.ndim))
    column = (n,) + (1,) * (x.ndim - 1)
    steps_2, steps_min, size_decr = max(int(0.22 * steps), 1), max(int(0.06 * steps), 1), max(int(0.03 * steps), 1)

    if norm == "linf":
        t = 2 * torch.rand(x.shape, generator=generator).to(device) - 1
        x_adv = x + eps * torch.ones(column, device=device) * t / t.reshape(n, -1).abs().max(dim=1, keepdim=True)[0] \
            .reshape(column)
    else:
        t = torch.randn(x.shape, generator=generator).to(device)
        x_adv = x + eps * torch.ones(column, device=device) * t / ((t ** 2).sum(dim=dims, keepdim=True).sqrt() + 1e-12)
    x_adv = x_adv.clamp(0.0, 1.0)

    if target is None:
        def loss_of(logits):
            return F.cross_entropy(logits, y, reduction="none")
    else:
        with torch.no_grad():
            y_target = model(x).sort(dim=1)[1][:, -target]
        rows = torch.arange(n, device=device)

        def loss_of(logits):
            ordered = logits.sort(dim=1)[0]
            return -(logits[rows, y] - logits[rows, y_target]) / (
                ordered[:, -1] - 0.5 * ordered[:, -3] - 0.5 * ordered[:, -4] + 1e-12)

    def loss_and_grad(z):
        z = z.detach().requires_grad_(True)
        with torch.enable_grad():
            logits = model(z)
            loss = loss_of(logits)
            grad, = torch.autograd.grad(loss.sum(), [z])
        return logits.detach(), loss.detach(), grad.detach()

    logits, loss, grad = loss_and_grad(x_adv)
    robust = logits.max(1)[1] == y
    x_best, x_last_wrong, grad_best, loss_best = x_adv, x_adv, grad, loss
    step_size = 2.0 * eps * torch.ones(column, device=device)
    loss_steps = torch.zeros(steps, n, device=device)
    x_old = x_adv
    k, since_check = steps_2, 0
    loss_best_at_check = loss_best
    reduced_at_check = torch.ones(n, dtype=torch.bool, device=device)
    lower, upper = x - eps, x + eps

    for i in range(steps):
        with torch.no_grad():
            momentum = x_adv - x_old
            x_old = x_adv
            a = 0.75 if i > 0 else 1.0
            if norm == "linf":
                z = torch.clamp(torch.min(torch.max(x_adv + step_size * torch.sign(grad), lower), upper), 0.0, 1.0)
                z = torch.clamp(torch.min(torch.max(x_adv + (z - x_adv) * a + momentum * (1 - a), lower), upper),
                                0.0, 1.0)
            else:
                z = x_adv + step_size * grad / ((grad ** 2).sum(dim=dims, keepdim=True).sqrt() + 1e-12)
                size = ((z - x) ** 2).sum(dim=dims, keepdim=True).sqrt()
                z = torch.clamp(x + (z - x) / (size + 1e-12) * torch.clamp(size, max=eps), 0.0, 1.0)
                z = x_adv + (z - x_adv) * a + momentum * (1 - a)
                size = ((z - x) ** 2).sum(dim=dims, keepdim=True).sqrt()
                z = torch.clamp(x + (z - x) / (size + 1e-12) * torch.clamp(size + 1e-12, max=eps), 0.0, 1.0)
            x_adv = z + 0.0

        logits, loss, grad = loss_and_grad(x_adv)

        with torch.no_grad():
            wrong = logits.max(1)[1] != y
            robust = robust & ~wrong
            x_last_wrong = torch.where(wrong.reshape(column), x_adv, x_last_wrong)
            loss_steps[i] = loss
            better = loss > loss_best
            x_best = torch.where(better.reshape(column), x_adv, x_best)
            grad_best = torch.where(better.reshape(column), grad, grad_best)
            loss_best = torch.where(better, loss, loss_best)

            since_check += 1
            if since_check == k:
                # how often the loss went up over the last k steps (the first checkpoint also
                # compares step 0 with the history's last row, still zero: the reference's indexing)
                now = torch.arange(i - k + 1, i + 1, device=device)
                ups = (loss_steps[now] > loss_steps[(now - 1) % steps]).sum(0)
                reduce = (ups <= k * rho) | (~reduced_at_check & (loss_best_at_check >= loss_best))
                reduced_at_check, loss_best_at_check = reduce, loss_best
                step_size = torch.where(reduce.reshape(column), step_size / 2.0, step_size)
                x_adv = torch.where(reduce.reshape(column), x_best, x_adv)
                grad = torch.where(reduce.reshape(column), grad_best, grad)
                since_check, k = 0, max(k - size_decr, steps_min)

    return ~robust, x_last_wrong
