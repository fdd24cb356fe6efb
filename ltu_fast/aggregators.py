"""Aggregators: batched Gram matrices ``[L, K, K]`` -> combination coefficients ``[L, K]``.

Every method here only needs inner products between the K objective gradients of a segment, so
it runs on the tiny Gram tensor (on the gradients' device, no host synchronisation), and the
heavy pass over memory is one weighted sum done by a backend. Objective weights ``w`` are applied
as if the losses had been scaled: the aggregator sees ``diag(w) G diag(w)`` and its coefficients
are multiplied by ``w`` again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch

__all__ = ["AGGREGATORS", "MGDA", "Aggregator", "PCGrad", "Project", "SolverSpec", "Sum", "make_aggregator",
           "pcgrad_visit_orders"]

# Aggregator kinds of the compiled solvers (csrc/include/ltu_fast/solve_math.h, kernels/solve.py).
SOLVER_SUM, SOLVER_PCGRAD, SOLVER_PROJECT, SOLVER_MGDA = range(4)
MAX_SOLVER_K = 8  # the compiled solvers handle K <= 8; beyond, every backend runs the torch aggregators


class SolverSpec(NamedTuple):
    """What a compiled backend needs to reproduce an aggregator: plain integers, no tensors."""

    kind: int
    protect: int = 0
    iterations: int = 0
    random_order: bool = False
    seed: int = 0


def _safe_ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """num / den where den > 0, else 0: a zero gradient (a layer a loss does not touch) projects nothing."""
    positive = den > 0
    return torch.where(positive, num / torch.where(positive, den, torch.ones_like(den)), torch.zeros_like(num))


class Aggregator:
    """Base class: subclasses implement :meth:`coefficients` on an unweighted Gram batch."""

    name = "aggregator"

    def __call__(self, gram: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        if gram.dim() != 3 or gram.shape[1] != gram.shape[2]:
            raise ValueError(f"gram: expected shape [L, K, K], got {tuple(gram.shape)}")
        if weights is None:
            return self.coefficients(gram)
        w = weights.to(gram)
        return w * self.coefficients(gram * w[:, None] * w[None, :])

    def coefficients(self, gram: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def solver_spec(self) -> SolverSpec | None:
        """The compiled solvers' description of this aggregator; None (a custom subclass): torch only."""
        return None

    def step_counter(self, device: torch.device) -> torch.Tensor | None:
        """int64 [1] device counter a compiled solver reads and advances, or None (stateless)."""
        return None

    def validate(self, num_objectives: int) -> None:
        """Raise ValueError if this aggregator cannot serve ``num_objectives`` objectives."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Sum(Aggregator):
    """Plain sum of the objective gradients: no harmonization (the baseline)."""

    name = "sum"

    def coefficients(self, gram: torch.Tensor) -> torch.Tensor:
        return torch.ones(gram.shape[:2], dtype=gram.dtype, device=gram.device)

    def solver_spec(self) -> SolverSpec:
        return SolverSpec(SOLVER_SUM)


_MASK32 = 0xFFFFFFFF


def _mix32(x: torch.Tensor) -> torch.Tensor:
    """solve_math.h's ``mix32`` on int64 tensors holding 32-bit values (products stay below 2^63)."""
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & _MASK32
    x = x ^ (x >> 15)
    x = (x * 0x5BD1E995) & _MASK32
    return x ^ (x >> 16)


def pcgrad_visit_orders(seed: int, step: torch.Tensor, k: int) -> torch.Tensor:
    """[K, K-1] visit orders of PCGrad's random order at ``step`` (int64 [1], on any device).

    Row i lists the other objectives by ascending key ``mix32(mix32(mix32(16 i + j) ^ step) ^ seed)``
    (then j): a deterministic function of (seed, step) that the compiled solvers compute bit for
    bit, so the order stays random under CUDA-graph replay and a checkpoint resumes it exactly.
    """
    idx = torch.arange(k, dtype=torch.int64, device=step.device)
    h = _mix32(idx[:, None] * 16 + idx[None, :])
    h = _mix32(h ^ (step.reshape(()) & _MASK32))
    h = _mix32(h ^ (int(seed) & _MASK32))
    keys = (h << 4) | idx[None, :]
    keys = torch.where(idx[:, None] == idx[None, :], torch.full_like(keys, 1 << 40), keys)
    return keys.argsort(dim=1)[:, : k - 1]


class PCGrad(Aggregator):
    """Projecting Conflicting Gradients (Yu et al., 2020), exact for any K.

    For each objective i, its gradient is projected in turn onto the normal plane of every other
    *original* gradient j it conflicts with, visiting j in a fixed order (``order="fixed"``) or in
    a fresh random permutation per i and per step (``order="random"``, as in the paper). Each
    projected gradient stays a linear combination of the originals, so the method runs on the
    coefficient matrix C [L, K, K] (row i: coefficients of projected g_i) using only G.
    The random permutations are a hash of (seed, step counter) (:func:`pcgrad_visit_orders`); the
    counter is an int64 tensor on the gradients' device advanced by every call, so no host
    random state is involved, a captured CUDA graph keeps drawing new orders, and the counter is
    part of :meth:`state_dict` so a resumed run replays the same orders.
    """

    name = "pcgrad"

    def __init__(self, order: str = "fixed", seed: int = 0):
        if order not in ("fixed", "random"):
            raise ValueError(f"order must be 'fixed' or 'random', got {order!r}")
        self.order = order
        self.seed = seed
        self._counter = torch.zeros(1, dtype=torch.int64)

    def step_counter(self, device: torch.device) -> torch.Tensor | None:
        if self.order != "random":
            return None
        if self._counter.device != torch.device(device):  # once: the counter follows the gradients
            self._counter = self._counter.to(device)
        return self._counter

    def solver_spec(self) -> SolverSpec:
        return SolverSpec(SOLVER_PCGRAD, random_order=self.order == "random", seed=int(self.seed) & _MASK32)

    def coefficients(self, gram: torch.Tensor) -> torch.Tensor:
        num_segments, k = gram.shape[:2]
        counter = self.step_counter(gram.device)
        if counter is None:
            orders = torch.tensor([[j for j in range(k) if j != i] for i in range(k)], dtype=torch.int64,
                                  device=gram.device).reshape(k, k - 1)
        else:
            orders = pcgrad_visit_orders(self.seed, counter, k)
            counter += 1
        eye = torch.eye(k, dtype=gram.dtype, device=gram.device)
        diag = gram.diagonal(dim1=1, dim2=2)
        beta = torch.zeros(num_segments, k, dtype=gram.dtype, device=gram.device)
        for i in range(k):
            c = eye[i].expand(num_segments, k)  # [L, K]: coefficients of the projected g_i
            for t in range(k - 1):
                j = orders[i, t:t + 1]  # a [1] device index: no host sync under a random order
                dot = (c * gram.index_select(2, j)[:, :, 0]).sum(-1)  # <projected g_i, g_j>
                step = _safe_ratio(dot, diag.index_select(1, j)[:, 0]).clamp(max=0.0)  # only in conflict
                c = c - step[:, None] * eye.index_select(0, j)
            beta = beta + c
        return beta

    def state_dict(self) -> dict:
        return {"order": self.order, "seed": self.seed, "step": self._counter.clone()}

    def load_state_dict(self, state: dict) -> None:
        self.order, self.seed = state["order"], state["seed"]
        step = state.get("step", 0)  # a checkpoint of the host-RNG era has none: restart the draw
        self._counter = torch.as_tensor(step, dtype=torch.int64).reshape(1).clone().to(self._counter.device)

    def __repr__(self) -> str:
        return f"PCGrad(order={self.order!r}, seed={self.seed})"


class Project(Aggregator):
    """One-sided projection: protect objective ``protect``; every other gradient that conflicts
    with it loses its component along the protected gradient. The protected gradient passes
    untouched, so the combined step never decreases it to first order (used by LTU to keep the
    remembering direction while forgetting)."""

    name = "project"

    def __init__(self, protect: int = 0):
        self.protect = protect

    def validate(self, num_objectives: int) -> None:
        if isinstance(self.protect, bool) or not isinstance(self.protect, int) or not 0 <= self.protect < num_objectives:
            raise ValueError(f"protect={self.protect} is not an objective index in [0, {num_objectives})")

    def coefficients(self, gram: torch.Tensor) -> torch.Tensor:
        r = self.protect
        dots = gram[:, :, r]  # [L, K]: <g_i, g_r>
        steps = _safe_ratio(dots, gram[:, r, r, None]).clamp(max=0.0)
        steps[:, r] = 0.0
        beta = torch.ones_like(dots)
        beta[:, r] -= steps.sum(-1)
        return beta

    def solver_spec(self) -> SolverSpec:
        return SolverSpec(SOLVER_PROJECT, protect=self.protect)

    def __repr__(self) -> str:
        return f"Project(protect={self.protect})"


class MGDA(Aggregator):
    """Multiple-gradient descent (Désidéri 2012; Sener & Koltun 2018): the min-norm point of the
    convex hull of the gradients. Closed form for K = 2; Frank-Wolfe with a fixed number of
    iterations (exact line search) for K > 2, so the cost is known ahead and nothing syncs."""

    name = "mgda"

    def __init__(self, iterations: int = 64):
        if iterations < 1:
            raise ValueError(f"iterations must be >= 1, got {iterations}")
        self.iterations = iterations

    def coefficients(self, gram: torch.Tensor) -> torch.Tensor:
        num_segments, k, _ = gram.shape
        if k == 1:
            return torch.ones(num_segments, 1, dtype=gram.dtype, device=gram.device)
        if k == 2:
            g11, g12, g22 = gram[:, 0, 0], gram[:, 0, 1], gram[:, 1, 1]
            den = g11 + g22 - 2 * g12
            a = _safe_ratio(g22 - g12, den).clamp(0.0, 1.0)
            a = torch.where(den > 0, a, torch.full_like(a, 0.5))
            return torch.stack([a, 1 - a], -1)
        alpha = torch.full((num_segments, k), 1.0 / k, dtype=gram.dtype, device=gram.device)
        diag = torch.diagonal(gram, dim1=1, dim2=2)
        for _ in range(self.iterations):
            g_alpha = torch.einsum("lij,lj->li", gram, alpha)  # <g_i, v>
            vv = (alpha * g_alpha).sum(-1)
            t = g_alpha.argmin(-1, keepdim=True)
            vt = g_alpha.gather(-1, t).squeeze(-1)
            tt = diag.gather(-1, t).squeeze(-1)
            gamma = _safe_ratio(vv - vt, vv - 2 * vt + tt).clamp(0.0, 1.0)
            target = torch.zeros_like(alpha).scatter_(-1, t, 1.0)
            alpha = (1 - gamma[:, None]) * alpha + gamma[:, None] * target
        return alpha

    def solver_spec(self) -> SolverSpec:
        return SolverSpec(SOLVER_MGDA, iterations=self.iterations)

    def __repr__(self) -> str:
        return f"MGDA(iterations={self.iterations})"


AGGREGATORS: dict[str, type[Aggregator]] = {cls.name: cls for cls in (Sum, PCGrad, Project, MGDA)}


def make_aggregator(spec: str | Aggregator, **options) -> Aggregator:
    """An aggregator from its name (``"sum"``, ``"pcgrad"``, ``"project"``, ``"mgda"``) or instance."""
    if isinstance(spec, Aggregator):
        if options:
            raise ValueError(f"aggregator: options {sorted(options)} given with an instance; configure the instance")
        return spec
    if not isinstance(spec, str) or spec not in AGGREGATORS:
        raise ValueError(f"aggregator: unknown {spec!r}; choose one of {sorted(AGGREGATORS)} or pass an Aggregator")
    return AGGREGATORS[spec](**options)


def as_weights(weights: Sequence[float] | torch.Tensor | None, num_objectives: int) -> torch.Tensor | None:
    """Validate objective weights: K finite non-negative numbers, or None for all ones."""
    if weights is None:
        return None
    w = torch.as_tensor(weights, dtype=torch.float32).flatten()
    if w.numel() != num_objectives:
        raise ValueError(f"weights: expected {num_objectives} values (one per objective), got {w.numel()}")
    if not torch.isfinite(w).all() or (w < 0).any():
        raise ValueError(f"weights: must be finite and non-negative, got {w.tolist()}")
    return w
