"""A batched L2 DeepFool that is differentiable with respect to the model's weights, and the
DeepDefense regularizer built on it (Yan et al., NeurIPS 2018, arXiv 1803.00404): the
private helper of the ``deepdefense`` recipe. Every tensor it makes lives on the input's
device.

The attack is unrolled for ``steps`` iterations; every iteration takes the input gradients
of the logit differences with ``torch.autograd.grad(..., create_graph=True)``, so the final
perturbation r(x; θ) is a differentiable function of the weights θ through *every*
iteration, like a recursive network. Discrete choices (which class boundary is nearest,
which samples are already fooled) are taken as constants, as in the reference code.

Two modes per sample (as in the reference ``forward_correct`` / ``forward_wrong``):

- **correctly classified** (prediction == label): untargeted DeepFool away from the label
  towards the nearest of the ``candidates`` top classes of the clean logits; a sample stops
  moving once its prediction differs from the label. This is exactly foolbox's
  ``L2DeepFoolAttack(steps, candidates, overshoot, loss="logits")`` iteration: step
  ``(|l| + 1e-4) / (‖w‖+1e-8)² · w`` for the nearest linearized boundary l, w = ∇ₓl,
  input ``x0 + (1 + overshoot)·Σ steps``, clipped to ``bounds``.
- **misclassified**: targeted DeepFool from the current prediction towards the true label
  (the pair is re-chosen at every iteration); a sample stops once it is classified
  correctly.

``rho = ‖x_K − x0‖₂ / ‖x0‖₂`` per sample (x_K after the last iteration, clipped).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

DEFAULT_STEPS = 5
DEFAULT_OVERSHOOT = 0.02


@dataclass
class DeepFoolResult:
    """perturbation: (B, ...) x_K − x0 (differentiable w.r.t. the weights when asked);
    rho: (B,) ‖perturbation‖₂ / ‖x0‖₂; correct: bool (B,) clean prediction == label;
    fooled: bool (B,) the sample reached its goal (flipped / corrected) within the steps."""
    perturbation: torch.Tensor
    rho: torch.Tensor
    correct: torch.Tensor
    fooled: torch.Tensor


def deepfool_l2(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, steps: int = DEFAULT_STEPS,
                overshoot: float = DEFAULT_OVERSHOOT, candidates: int | None = 10,
                bounds: tuple[float, float] | None = (0.0, 1.0), create_graph: bool = True,
                detach_between_steps: bool = False) -> DeepFoolResult:
    """Unrolled L2 DeepFool on a batch (see the module docstring).

    x: float (B, ...) inputs; y: int64 (B,) labels. ``candidates``: the top classes of the
    clean logits considered for correctly classified samples (foolbox's meaning; ``None``
    = all). ``bounds``: clip range of the perturbed input, ``None`` for no clipping (the
    reference code does not clip). ``create_graph``: keep the graph so the result can be
    differentiated w.r.t. the weights (False: a plain attack, cheaper).
    ``detach_between_steps``: ablation, each step sees the previous perturbation as a
    constant (gradient only through the last step taken).
    """
    x0 = x.detach()
    batch = len(x0)
    rows = torch.arange(batch, device=x0.device)
    with torch.no_grad():
        logits0 = model(x0)
    num_classes = logits0.shape[1]
    cand = num_classes if candidates is None else min(int(candidates), num_classes)
    top = logits0.argsort(dim=1, descending=True)[:, :cand]  # (B, cand), top[:, 0] = prediction
    correct = top[:, 0] == y
    r = torch.zeros_like(x0)
    done = torch.zeros(batch, dtype=torch.bool, device=x0.device)
    x_cur = x0
    for _ in range(steps):
        x_in = x_cur if x_cur.requires_grad else x_cur.clone().requires_grad_(True)
        logits = model(x_in)
        with torch.no_grad():
            pred = logits.argmax(1)
            done = torch.where(correct, pred != y, pred == y)
        if bool(done.all()):
            break
        # (source, target) class pairs per sample and candidate; l = f_target − f_source < 0
        # until the boundary is crossed. Correct: source = label, targets = other top classes.
        # Misclassified: source = current prediction, target = label (one pair only).
        source = torch.where(correct, y, pred)
        losses, grads = [], []
        for k in range(1, cand):
            target = torch.where(correct, top[:, k], y)
            loss = logits[rows, target] - logits[rows, source]
            (grad,) = torch.autograd.grad(loss.sum(), x_in, create_graph=create_graph, retain_graph=True)
            losses.append(loss)
            grads.append(grad)
        losses_t = torch.stack(losses, 1)  # (B, cand-1)
        grads_t = torch.stack(grads, 1)  # (B, cand-1, ...)
        gnorm = _safe_norm(grads_t.flatten(2)) + 1e-8
        # misclassified samples have one pair only; mask the others after the division
        # (an inf inside the division would turn the backward pass into NaN)
        valid = correct[:, None] | (torch.arange(1, cand, device=x0.device) == 1)[None, :]
        distances = torch.where(valid, losses_t.abs() / gnorm, torch.full_like(losses_t, float("inf")))
        with torch.no_grad():
            best = distances.argmin(1)
        dist = distances[rows, best] + 1e-4
        w = grads_t[rows, best]
        scale = (dist / gnorm[rows, best]).view(-1, *([1] * (x0.ndim - 1)))
        step = scale * w
        r_prev = r.detach() if detach_between_steps else r
        r = torch.where(done.view(-1, *([1] * (x0.ndim - 1))), r_prev, r_prev + step)
        x_cur = x0 + (1.0 + overshoot) * r
        if bounds is not None:
            x_cur = x_cur.clamp(bounds[0], bounds[1])
        if not create_graph:
            x_cur = x_cur.detach()
            r = r.detach()
    else:
        with torch.no_grad():
            pred = model(x_cur).argmax(1)
            done = torch.where(correct, pred != y, pred == y)
    perturbation = x_cur - x0
    rho = _safe_norm(perturbation.flatten(1)) / x0.flatten(1).norm(dim=1).clamp_min(1e-12)
    return DeepFoolResult(perturbation=perturbation, rho=rho, correct=correct, fooled=done)


def _safe_norm(t: torch.Tensor) -> torch.Tensor:
    """L2 norm over the last dim whose gradient is 0 (not NaN) at 0: a sample that needs no
    step (already fooled) has an all-zero input gradient, and its graph still runs backward."""
    return (t.square().sum(-1) + 1e-24).sqrt()


def deepdefense_regularizer(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, lam: float = 15.0,
                            c: float = 25.0, d: float = 5.0, steps: int = DEFAULT_STEPS,
                            overshoot: float = DEFAULT_OVERSHOOT, candidates: int | None = 10,
                            bounds: tuple[float, float] | None = (0.0, 1.0),
                            detach_between_steps: bool = False) -> tuple[torch.Tensor, DeepFoolResult]:
    """DeepDefense's regularizer, averaged over the batch:
    ``mean_i λ·exp(−c·ρ_i)`` for correctly classified i, ``λ·exp(d·ρ_i)`` for misclassified i,
    with ρ from :func:`deepfool_l2` (differentiable through every iteration).
    Returns ``(scalar loss, DeepFoolResult)``."""
    result = deepfool_l2(model, x, y, steps=steps, overshoot=overshoot, candidates=candidates,
                         bounds=bounds, create_graph=True, detach_between_steps=detach_between_steps)
    rho = result.rho
    terms = torch.where(result.correct, lam * torch.exp(-c * rho), lam * torch.exp(d * rho))
    return terms.mean(), result
