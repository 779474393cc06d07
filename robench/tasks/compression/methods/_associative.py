"""Associative binary convolution (Network Sketching, Guo et al. CVPR 2017, Sec. 3.3):
the inference path of the ``sketch`` method (a private helper of ``methods/sketch.py``).

A sketched layer holds F = out·m binary filters B_f ∈ {−1, +1}^n (n = in·kh·kw). At one
output position, with x the n input values under the kernel, two filters c and p that
differ at the positions D = {i : B_c,i ≠ B_p,i} give

    x·B_c = x·B_p + 2 · Σ_{i ∈ D} B_c,i · x_i,

so once x·B_p is known, x·B_c costs |D| = hamming(B_c, B_p) additions (the factor 2 is a
shift) instead of the n − 1 of a plain dot product. The order of computation is a tree:
the minimum spanning tree of the complete graph on the F filters with Hamming-distance
edge weights (Prim's algorithm, :func:`minimum_spanning_tree`). The root costs n − 1
additions, every other filter the Hamming distance to its parent (0 for a duplicate).
:func:`additions` counts both schemes per output position; the weighted sum
Σ_j a_j·(x·B_j) and the bias cost the same in both and are not counted.

:class:`AssociativeBinaryConv2d` / :class:`AssociativeBinaryLinear` run this scheme
(inference only): the input is unfolded into columns X (n × positions); the root's result
is one dense ±1 matmul, the children's increments ``2·B_c`` on their differing positions
form one CSR matrix multiplied with X once, and the tree is walked level by level (one
vectorised gather-and-add per depth, the tree rooted at its centre to keep it shallow);
finally out = Σ_j a_j·(X·B_j) + bias. Outputs equal ``F.conv2d(x, Σ_j a_j B_j, bias)`` up
to float rounding. The CSR matrix is kept as plain tensors (crow, col, values) so the
modules can be deep-copied and cast with ``.double()``.
"""

from __future__ import annotations

import warnings
from collections import deque
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


# -- the spanning tree ------------------------------------------------------------------
def binary_matrix(bases) -> np.ndarray:
    """Bases (…, n) of ±1 values (any dtype; ``x >= 0`` counts as +1) → float32 (F, n) ±1."""
    b = bases.detach().cpu().numpy() if isinstance(bases, torch.Tensor) else np.asarray(bases)
    b = b.reshape(-1, b.shape[-1])
    return np.where(b >= 0, np.float32(1.0), np.float32(-1.0))


def hamming_matrix(bases) -> np.ndarray:
    """int64 (F, F) Hamming distances between the rows of ±1 ``bases`` (…, n):
    ``(n − B Bᵀ) / 2``, exact (float32 holds integer sums up to 2^24)."""
    b = torch.from_numpy(binary_matrix(bases))
    gram = (b @ b.t()).numpy()
    return np.rint((b.shape[1] - gram) / 2.0).astype(np.int64)


def minimum_spanning_tree(dist: np.ndarray, root: int = 0) -> np.ndarray:
    """Prim's algorithm on the complete graph with weights ``dist`` (F × F, symmetric, ≥ 0).

    Returns ``parent`` (F,) int64 with ``parent[root] = −1``; the tree's edges are
    ``(v, parent[v])``. O(F²) time, vectorised over the candidate vertices; zero
    weights (identical filters) are ordinary edges.
    """
    dist = np.asarray(dist)
    n = len(dist)
    parent = np.full(n, -1, dtype=np.int64)
    if n == 0:
        return parent
    in_tree = np.zeros(n, dtype=bool)
    in_tree[root] = True
    best = dist[root].astype(np.float64)  # cheapest edge from the tree to each vertex
    best_from = np.full(n, root, dtype=np.int64)
    best[root] = np.inf
    for _ in range(n - 1):
        v = int(np.argmin(best))
        parent[v] = best_from[v]
        in_tree[v] = True
        best[v] = np.inf
        row = dist[v]
        closer = (row < best) & ~in_tree
        best[closer] = row[closer]
        best_from[closer] = v
    return parent


def _bfs(adjacency: list[list[int]], start: int) -> tuple[list[int], np.ndarray, np.ndarray]:
    n = len(adjacency)
    parent = np.full(n, -1, dtype=np.int64)
    depth = np.full(n, -1, dtype=np.int64)
    depth[start] = 0
    order, queue = [], deque([start])
    while queue:
        u = queue.popleft()
        order.append(u)
        for w in adjacency[u]:
            if depth[w] < 0:
                depth[w] = depth[u] + 1
                parent[w] = u
                queue.append(w)
    return order, parent, depth


@dataclass
class AssociativePlan:
    """The order in which :class:`AssociativeBinaryConv2d` computes F binary filters.

    parent: (F,) int64, −1 for the root; order: (F,) breadth-first order (depth
    non-decreasing, so each filter comes after its parent); depth: (F,) hops from the root;
    cost: (F,) additions per output position (n − 1 for the root, else the Hamming
    distance to the parent); n: filter length.
    """
    parent: np.ndarray
    order: np.ndarray
    depth: np.ndarray
    cost: np.ndarray
    n: int

    @property
    def plain_additions(self) -> int:
        return len(self.parent) * (self.n - 1)

    @property
    def associative_additions(self) -> int:
        return int(self.cost.sum())


def associative_plan(bases) -> AssociativePlan:
    """Minimum Hamming spanning tree of the binary filters in ``bases`` (…, n), re-rooted
    at its centre (same edges, hence the same additions, but about half the depth)."""
    b = binary_matrix(bases)
    count, n = b.shape
    dist = hamming_matrix(b)
    tree = minimum_spanning_tree(dist)
    adjacency: list[list[int]] = [[] for _ in range(count)]
    for v, p in enumerate(tree.tolist()):
        if p >= 0:
            adjacency[v].append(p)
            adjacency[p].append(v)
    # centre of the tree: the middle of a longest path (two breadth-first searches)
    order, _, depth = _bfs(adjacency, 0)
    far = int(np.argmax(depth))
    _, parent, depth = _bfs(adjacency, far)
    node, path = int(np.argmax(depth)), []
    while node >= 0:
        path.append(node)
        node = int(parent[node])
    order, parent, depth = _bfs(adjacency, path[len(path) // 2])
    cost = np.full(count, n - 1, dtype=np.int64)
    children = parent >= 0
    cost[children] = dist[np.flatnonzero(children), parent[children]]
    return AssociativePlan(parent=parent, order=np.asarray(order, dtype=np.int64), depth=depth, cost=cost, n=n)


def additions(bases) -> tuple[int, int]:
    """``(plain, associative)`` additions per output position to compute every binary
    filter of ``bases`` (out, m, n) (or (F, n)): F·(n − 1) dot-product additions, versus
    n − 1 for the tree's root plus the Hamming distance of every other filter to its
    parent in the minimum spanning tree."""
    plan = associative_plan(bases)
    return plan.plain_additions, plan.associative_additions


# -- the modules ------------------------------------------------------------------------
class _AssociativeBinary(nn.Module):
    """Shared core: F = out·m binary filters, coefficients (out, m), bias (out,)."""

    def __init__(self, bases: torch.Tensor, coefficients: torch.Tensor, bias: torch.Tensor | None,
                 plan: AssociativePlan | None = None):
        super().__init__()
        if bases.dim() != 3:
            raise ValueError(f"bases must be (out, m, n); got shape {tuple(bases.shape)}")
        out, m, n = bases.shape
        if tuple(coefficients.shape) != (out, m):
            raise ValueError(f"coefficients must be (out, m) = {(out, m)}; got {tuple(coefficients.shape)}")
        plan = plan if plan is not None else associative_plan(bases)
        b = binary_matrix(bases)  # (F, n), filter f = o·m + j
        order, parent = plan.order, plan.parent
        position = np.empty_like(order)
        position[order] = np.arange(len(order))  # filter → row of the breadth-first result
        roots = int((parent[order] < 0).sum())
        if not (parent[order[:roots]] < 0).all():
            raise ValueError("plan.order must list the roots first")
        # increments of the children, in breadth-first order: 2·B_c where B_c ≠ B_parent
        children = order[roots:]
        differs = b[children] != b[parent[children]]
        rows, cols = np.nonzero(differs)
        values = 2.0 * b[children][rows, cols]
        crow = np.zeros(len(children) + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=len(children)), out=crow[1:])
        dtype = coefficients.dtype if coefficients.is_floating_point() else torch.float32
        self.register_buffer("root_bases", torch.from_numpy(b[order[:roots]]).to(dtype))
        self.register_buffer("delta_crow", torch.from_numpy(crow))
        self.register_buffer("delta_col", torch.from_numpy(cols.astype(np.int64)))
        self.register_buffer("delta_values", torch.from_numpy(values).to(dtype))
        self.register_buffer("position", torch.from_numpy(position))
        self.register_buffer("coefficients", coefficients.detach().clone().to(dtype))
        self.register_buffer("bias", None if bias is None else bias.detach().clone().to(dtype))
        # one (start, stop, parent rows) per depth ≥ 1; rows are breadth-first positions
        depth = plan.depth[order]
        self.levels = []
        for d in range(1, int(depth.max()) + 1 if len(depth) else 0):
            idx = np.flatnonzero(depth == d)
            self.levels.append((int(idx[0]), int(idx[-1]) + 1,
                                torch.from_numpy(position[parent[order[idx]]])))
        self.out_filters, self.m, self.n = out, m, n
        self.plain_additions, self.associative_additions = plan.plain_additions, plan.associative_additions

    def _binary_products(self, cols: torch.Tensor) -> torch.Tensor:
        """cols (n, P) → (F, P) products with every binary filter, breadth-first order."""
        roots = self.root_bases.to(cols.dtype) @ cols
        if self.delta_crow.numel() == 1:
            return roots
        with warnings.catch_warnings():  # "sparse CSR support is in beta"
            warnings.simplefilter("ignore")
            delta = torch.sparse_csr_tensor(self.delta_crow, self.delta_col, self.delta_values.to(cols.dtype),
                                            size=(self.delta_crow.numel() - 1, self.n), device=cols.device,
                                            check_invariants=False)
            increments = delta @ cols
        products = torch.cat([roots, increments])
        for start, stop, parents in self.levels:  # parents sit at smaller depths: already final
            products[start:stop] += products.index_select(0, parents.to(products.device))
        return products

    def _combine(self, cols: torch.Tensor) -> torch.Tensor:
        """cols (n, P) → (out, P) = Σ_j a_j·(B_j · cols) + bias."""
        products = self._binary_products(cols).index_select(0, self.position)
        a = self.coefficients.to(cols.dtype)
        out = torch.bmm(a.unsqueeze(1), products.view(self.out_filters, self.m, -1)).squeeze(1)
        if self.bias is not None:
            out += self.bias.to(cols.dtype).unsqueeze(1)
        return out

    def extra_repr(self) -> str:
        return (f"out={self.out_filters}, m={self.m}, n={self.n}, additions/position "
                f"{self.associative_additions} (plain {self.plain_additions}), depth {len(self.levels)}")


class AssociativeBinaryLinear(_AssociativeBinary):
    """y = x (Σ_j a_j B_j)ᵀ + b with the binary products computed along the tree.

    bases: (out, m, in_features) ±1; coefficients: (out, m); bias: (out,) or None.
    """

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        leading = x.shape[:-1]
        cols = x.reshape(-1, self.n).t().contiguous()
        return self._combine(cols).t().reshape(*leading, self.out_filters)

    @classmethod
    def from_sketch(cls, linear: nn.Linear, bases, coefficients, plan=None) -> "AssociativeBinaryLinear":
        return cls(bases, coefficients, linear.bias, plan)


class AssociativeBinaryConv2d(_AssociativeBinary):
    """``F.conv2d(x, Σ_j a_j B_j, bias, stride, padding, dilation)`` (groups = 1, zero
    padding) with the binary products computed along the tree, on im2col columns.

    bases: (out, m, in·kh·kw) ±1 in the order of ``weight.reshape(out, -1)``;
    coefficients: (out, m); bias: (out,) or None; kernel_size, stride, padding, dilation:
    ints or pairs as for ``nn.Conv2d`` (numeric padding only).
    """

    def __init__(self, bases, coefficients, bias, kernel_size, stride=1, padding=0, dilation=1, plan=None):
        super().__init__(bases, coefficients, bias, plan)
        pair = nn.modules.utils._pair
        if isinstance(padding, str):
            raise ValueError(f"padding={padding!r}: only numeric padding is supported")
        self.kernel_size, self.stride = pair(kernel_size), pair(stride)
        self.padding, self.dilation = pair(padding), pair(dilation)
        if self.n % (self.kernel_size[0] * self.kernel_size[1]):
            raise ValueError(f"filter length {self.n} is not a multiple of kernel {self.kernel_size}")

    @classmethod
    def from_sketch(cls, conv: nn.Conv2d, bases, coefficients, plan=None) -> "AssociativeBinaryConv2d":
        if conv.groups != 1 or conv.padding_mode != "zeros" or isinstance(conv.padding, str):
            raise ValueError("only groups=1 convolutions with numeric zero padding are supported")
        return cls(bases, coefficients, conv.bias, conv.kernel_size, conv.stride, conv.padding, conv.dilation,
                   plan)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, _, h, w = x.shape
        cols = F.unfold(x, self.kernel_size, self.dilation, self.padding, self.stride)  # (N, n, L)
        size = [(s + 2 * p - d * (k - 1) - 1) // st + 1 for s, p, d, k, st in
                zip((h, w), self.padding, self.dilation, self.kernel_size, self.stride)]
        out = self._combine(cols.transpose(0, 1).reshape(self.n, -1))  # (out, N·L)
        return out.view(self.out_filters, batch, -1).transpose(0, 1).reshape(batch, self.out_filters, *size)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, " + super().extra_repr())


__all__ = ["binary_matrix", "hamming_matrix", "minimum_spanning_tree", "AssociativePlan", "associative_plan",
           "additions", "AssociativeBinaryLinear", "AssociativeBinaryConv2d"]
