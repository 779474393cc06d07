"""Physics-inspired optimization (PIO) of a room layout against a network's evidence.

ST-PIO (Zhao et al., CVPR 2017) does not sample and score many layout hypotheses: it
treats the layout as a physical system whose edges are pulled by forces derived from the
network's feature maps and lets it settle into equilibrium.  Here the system is the
layout's keypoints (for a given room type); their potential energy is

    E(k) = E_surface(k) + edge_weight * E_edge(k)

    E_surface = mean over pixels p of  sum_S m_S(p; k) * -log P_S(p)
                (the expected cross-entropy between the layout's soft surface map m and
                the network's surface probabilities P; ``surface_term="disagreement"``
                uses 1 - P_S instead of -log P_S, the expected pixel error, which was no
                better on validation rooms)
    E_edge    = - mean over points q sampled along each layout line of  G(q)
                (G: the network's layout-edge probability, Gaussian-smoothed so that an
                edge attracts from a few pixels away)

where m is the differentiable version of
:func:`robench.tasks.room_layout.render.render_segmentation`: softmin over each
surface's half-plane constraints, softmax over surfaces (temperature in pixels).  The
force on every keypoint is F = -dE/dk (autograd).  Keypoints move as damped particles
with velocity-Verlet-like steps in the FIRE scheme (Bitzek et al., PRL 2006, "fast
inertial relaxation engine"): velocity is mixed toward the force, steps grow while the
power F.v stays positive and the system stops dead (v = 0, smaller step) whenever it
starts climbing.  Constraints act like rails: a border keypoint slides along the image
border (projected back after every step), an inner corner stays inside the image.  The
run stops at equilibrium (largest displacement of a step below ``tol`` pixels) or after
``steps``; the lowest-energy state visited is returned, so refinement never increases
the energy (:func:`refine_layout`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter

from robench.tasks.room_layout.render import surface_constraints
from robench.tasks.room_layout.room_types import room_type

LOG_EPS = 1e-4  # probabilities are clipped here before the log


@dataclass
class Evidence:
    """A network's maps for one image: surface probabilities (5, H, W) (channel c is
    label c + 1), layout-edge probabilities (H, W)."""
    surface_probs: np.ndarray
    edge_probs: np.ndarray


BIG = 1e4  # "infinitely" far outside a half-plane, finite so that gradients stay finite
MAX_KEYPOINTS = 8


@dataclass
class Problem:
    """One layout to refine: its room type, starting keypoints (K, 2) and evidence."""
    type_id: int
    keypoints: np.ndarray
    evidence: Evidence


class LayoutEnergy:
    """E(k) of a batch of B problems (see module docstring), all of one image size.

    Call with keypoints (B, 8, 2) (rows past a type's K are padding and get no force);
    returns (B,) energies.  Each problem's half-plane sides are fixed from its starting
    keypoints.  The surface term is evaluated on a grid of ``stride`` x ``stride`` pixel
    blocks (the block's mean -log P at its centre): 2 makes a step 4x cheaper and moves
    the energy's minimum by far less than a pixel on 64-px images.  Its tensors live on
    ``device`` (that of the network whose evidence it holds)."""

    def __init__(self, problems: list[Problem], edge_weight: float = 1.0,
                 temperature: float = 1.0, edge_sigma: float = 1.5,
                 samples_per_line: int = 24, stride: int = 2, surface_term: str = "nll",
                 device="cpu"):
        if not problems:
            raise ValueError("LayoutEnergy needs at least one problem")
        if surface_term not in ("nll", "disagreement"):
            raise ValueError(f"surface_term={surface_term!r}: expected 'nll' or 'disagreement'")
        self.problems = problems
        self.device = torch.device(device)
        self.types = [room_type(p.type_id) for p in problems]
        shapes = {np.shape(p.evidence.edge_probs) for p in problems}
        if len(shapes) != 1:
            raise ValueError(f"problems of one batch must share an image size, got {shapes}")
        self.shape = h, w = shapes.pop()
        if h % stride or w % stride:
            stride = 1
        b = len(problems)
        cons = [surface_constraints(p.type_id, p.keypoints) for p in problems]
        n_c = max(len(c) for c in cons)
        n_l = max(len(t.lines) for t in self.types)
        # built in numpy, then moved to the device in one copy each
        ci = np.zeros((b, n_c), dtype=np.int64)
        cj = np.ones((b, n_c), dtype=np.int64)
        side = np.zeros((b, n_c), dtype=np.float32)
        per_surface = max(sum(1 for x in c if x.surface == s) for c in cons for s in range(1, 6))
        member_index = np.zeros((b, 5, per_surface), dtype=np.int64)
        outside = np.full((b, 5, per_surface), BIG, dtype=np.float32)
        surface_valid = np.zeros((b, 5), dtype=bool)
        li = np.zeros((b, n_l), dtype=np.int64)
        lj = np.ones((b, n_l), dtype=np.int64)
        line_valid = np.zeros((b, n_l), dtype=np.float32)
        self.is_corner = np.zeros((b, MAX_KEYPOINTS), dtype=bool)
        self.is_border = np.zeros((b, MAX_KEYPOINTS), dtype=bool)
        neg_log = np.zeros((b, 5, h // stride, w // stride))
        edges = np.zeros((b, 1, h, w))
        for k, (p, c, t) in enumerate(zip(problems, cons, self.types)):
            slot = [0] * 5
            for m, con in enumerate(c):
                ci[k, m], cj[k, m], side[k, m] = con.i, con.j, con.side
                s_ = con.surface - 1
                member_index[k, s_, slot[s_]] = m
                outside[k, s_, slot[s_]] = 0.0
                slot[s_] += 1
                surface_valid[k, s_] = True
            for m, (i, j) in enumerate(t.lines):
                li[k, m], lj[k, m], line_valid[k, m] = i, j, 1.0
            for m, spec in enumerate(t.keypoints):
                self.is_corner[k, m] = spec.is_corner
                self.is_border[k, m] = not spec.is_corner
            probs = np.asarray(p.evidence.surface_probs, dtype=np.float64)
            nl = -np.log(np.clip(probs, LOG_EPS, 1.0)) if surface_term == "nll" else 1.0 - probs
            neg_log[k] = nl.reshape(5, h // stride, stride, w // stride, stride).mean(axis=(2, 4))
            edge = gaussian_filter(np.asarray(p.evidence.edge_probs, dtype=np.float64), edge_sigma)
            edges[k, 0] = edge / max(edge.max(), 1e-6)
        on = lambda a: torch.from_numpy(a).to(self.device)  # noqa: E731
        self.ci, self.cj, self.side = on(ci), on(cj), on(side)
        self.member_index, self.surface_valid = on(member_index), on(surface_valid)
        self.li, self.lj, self.line_valid = on(li), on(lj), on(line_valid)
        self.outside = on(outside)[:, :, :, None]  # (B, 5, M, 1): BIG on padding slots
        self.neg_log = on(neg_log.reshape(b, 5, -1)).float()
        self.edge = on(edges).float()
        ys, xs = np.mgrid[0:h // stride, 0:w // stride].astype(np.float64)
        self.xs = on((xs * stride + (stride - 1) / 2).ravel()).float()
        self.ys = on((ys * stride + (stride - 1) / 2).ravel()).float()
        self.t = torch.linspace(0.0, 1.0, samples_per_line, device=self.device)
        self.edge_weight = float(edge_weight)
        self.temperature = float(temperature)

    def initial_keypoints(self) -> np.ndarray:
        """(B, 8, 2) the problems' starting keypoints, zero-padded."""
        out = np.zeros((len(self.problems), MAX_KEYPOINTS, 2))
        for k, p in enumerate(self.problems):
            kp = np.asarray(p.keypoints, dtype=np.float64).reshape(-1, 2)
            out[k, :len(kp)] = kp
        return out

    def soft_surfaces(self, kp: torch.Tensor) -> torch.Tensor:
        """(B, 5, P) soft membership of each grid point in each surface (0 for surfaces
        the type lacks; sums to 1 over surfaces): softmax of the softmin of each
        surface's signed distances to its half-planes."""
        tau = self.temperature
        gather = lambda idx: torch.gather(kp, 1, idx[:, :, None].expand(-1, -1, 2))  # noqa: E731
        a, bb = gather(self.ci), gather(self.cj)
        d = bb - a  # (B, C, 2)
        length = torch.sqrt((d * d).sum(dim=2, keepdim=True) + 1e-9)
        dist = self.side[:, :, None] * (d[:, :, :1] * (self.ys - a[:, :, 1:]) -
                                        d[:, :, 1:] * (self.xs - a[:, :, :1])) / length  # (B, C, P)
        n_b, _, n_p = dist.shape
        n_m = self.member_index.shape[2]
        own = torch.gather(dist, 1, self.member_index.reshape(n_b, -1, 1).expand(-1, -1, n_p))
        own = own.reshape(n_b, 5, n_m, n_p) + self.outside  # each surface's constraints
        scores = -tau * torch.logsumexp(-own / tau, dim=2)  # (B, 5, P) softmin
        scores = torch.where(self.surface_valid[:, :, None], scores, -BIG)
        return torch.softmax(scores / tau, dim=1)

    def terms(self, kp: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(E_surface (B,), E_edge (B,)) at keypoints ``kp`` (B, 8, 2)."""
        kp = kp.float()
        e_surface = (self.soft_surfaces(kp) * self.neg_log).sum(dim=1).mean(dim=1)
        h, w = self.shape
        gather = lambda idx: torch.gather(kp, 1, idx[:, :, None].expand(-1, -1, 2))  # noqa: E731
        a, b = gather(self.li), gather(self.lj)  # (B, L, 2)
        pts = a[:, :, None, :] + self.t[None, None, :, None] * (b - a)[:, :, None, :]
        grid = torch.stack([2 * pts[..., 0] / (w - 1) - 1, 2 * pts[..., 1] / (h - 1) - 1], dim=-1)
        n_b, n_l, n_t, _ = grid.shape
        sampled = F.grid_sample(self.edge, grid.reshape(n_b, n_l * n_t, 1, 2), mode="bilinear",
                                padding_mode="zeros", align_corners=True).reshape(n_b, n_l, n_t)
        e_edge = -(sampled.mean(dim=2) * self.line_valid).sum(dim=1) / self.line_valid.sum(dim=1)
        return e_surface, e_edge

    def __call__(self, kp: torch.Tensor) -> torch.Tensor:
        e_surface, e_edge = self.terms(kp)
        return e_surface + self.edge_weight * e_edge

    def values(self, keypoints: np.ndarray) -> np.ndarray:
        """(B,) energies of (B, 8, 2) keypoints (no gradient)."""
        with torch.no_grad():
            kp = torch.as_tensor(np.asarray(keypoints), dtype=torch.float32, device=self.device)
            return self(kp).double().cpu().numpy()

    def project(self, kp: np.ndarray) -> np.ndarray:
        """The constraints as rails: border keypoints onto the nearest point of the image
        border, inner corners into the image; (B, 8, 2) -> (B, 8, 2)."""
        h, w = self.shape
        x = np.clip(kp[..., 0], 0.0, w - 1.0)
        y = np.clip(kp[..., 1], 0.0, h - 1.0)
        dist = np.stack([x, w - 1 - x, y, h - 1 - y])
        side = np.argmin(dist, axis=0)
        bx = np.choose(side, [np.zeros_like(x), np.full_like(x, w - 1.0), x, x])
        by = np.choose(side, [y, y, np.zeros_like(y), np.full_like(y, h - 1.0)])
        out = np.stack([np.where(self.is_border, bx, x), np.where(self.is_border, by, y)], axis=-1)
        return np.where((self.is_border | self.is_corner)[..., None], out, 0.0)


@dataclass
class RefineResult:
    keypoints: np.ndarray  # (K, 2) lowest-energy state visited
    energy: float  # its energy
    initial_energy: float  # energy of the (projected) starting keypoints
    steps: int  # steps taken
    converged: bool  # stopped at equilibrium (not by the step limit)
    energies: list[float]  # energy at every step (the trajectory, not only improvements)


def refine_layouts(energy: LayoutEnergy, steps: int = 60, max_step: float = 1.0,
                   tol: float = 0.02, dt0: float = 0.5, alpha0: float = 0.1) -> list[RefineResult]:
    """Let every problem's keypoints settle under the forces -dE/dk (FIRE dynamics with
    the border and image constraints; see module docstring), all problems at once but
    each with its own step size and stopping time.  ``max_step`` caps a keypoint's
    displacement per step (pixels); a problem is at equilibrium when none of its keypoints
    moves more than ``tol`` in a step.  Returns, per problem, the lowest-energy state
    visited, so ``energy <= initial_energy`` always."""
    x = energy.project(energy.initial_keypoints())
    b = len(x)
    v = np.zeros_like(x)
    dt = np.full(b, dt0)
    alpha = np.full(b, alpha0)
    n_positive = np.zeros(b, dtype=int)
    active = np.ones(b, dtype=bool)
    converged = np.zeros(b, dtype=bool)
    taken = np.zeros(b, dtype=int)
    best_x, best_e = x.copy(), np.full(b, np.inf)
    trajectory: list[list[float]] = [[] for _ in range(b)]
    initial = None
    for _ in range(steps + 1):
        kp = torch.tensor(x, dtype=torch.float32, device=energy.device, requires_grad=True)
        e = energy(kp)
        (grad,) = torch.autograd.grad(e.sum(), kp)
        e_val = e.detach().double().cpu().numpy()
        if initial is None:
            initial = e_val.copy()
        for k in np.flatnonzero(active):
            trajectory[k].append(float(e_val[k]))
        better = active & (e_val < best_e)
        best_x[better], best_e[better] = x[better], e_val[better]
        if not active.any() or _ == steps:
            break
        force = -grad.double().cpu().numpy()
        fmax = np.abs(force).reshape(b, -1).max(axis=1)
        stuck = active & (fmax < 1e-12)
        converged |= stuck
        active &= ~stuck
        force = force / np.maximum(fmax, 1e-12)[:, None, None]  # energy scale is arbitrary
        power = (force * v).sum(axis=(1, 2))
        up = power > 0
        fn = np.linalg.norm(force.reshape(b, -1), axis=1)[:, None, None]
        vn = np.linalg.norm(v.reshape(b, -1), axis=1)[:, None, None]
        mixed = (1 - alpha[:, None, None]) * v + alpha[:, None, None] * vn * force / np.maximum(fn, 1e-12)
        v = np.where(up[:, None, None], mixed, 0.0)  # climbing: stop dead
        n_positive = np.where(up, n_positive + 1, 0)
        grow = up & (n_positive > 3)
        dt = np.where(grow, np.minimum(dt * 1.1, 4 * dt0), np.where(up, dt, dt * 0.5))
        alpha = np.where(grow, alpha * 0.99, np.where(up, alpha, alpha0))
        v = v + dt[:, None, None] * force
        move = dt[:, None, None] * v
        biggest = np.abs(move).reshape(b, -1).max(axis=1)
        move *= np.minimum(1.0, max_step / np.maximum(biggest, 1e-12))[:, None, None]
        new_x = energy.project(x + move)
        moved = np.abs(new_x - x).reshape(b, -1).max(axis=1)
        settled = active & (moved < tol) & (taken > 0)
        converged |= settled
        active &= ~settled
        x = np.where(active[:, None, None], new_x, x)
        taken += active
    out = []
    for k, p in enumerate(energy.problems):
        n = len(np.asarray(p.keypoints).reshape(-1, 2))
        out.append(RefineResult(best_x[k, :n].copy(), float(best_e[k]), float(initial[k]),
                                int(taken[k]), bool(converged[k]), trajectory[k]))
    return out


def refine_layout(type_id: int, keypoints0: np.ndarray, evidence: Evidence, *,
                  steps: int = 60, edge_weight: float = 1.0, temperature: float = 1.0,
                  **kwargs) -> RefineResult:
    """:func:`refine_layouts` of a single problem."""
    energy = LayoutEnergy([Problem(type_id, keypoints0, evidence)], edge_weight=edge_weight,
                          temperature=temperature)
    return refine_layouts(energy, steps=steps, **kwargs)[0]
