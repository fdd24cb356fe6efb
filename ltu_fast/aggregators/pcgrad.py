"""PCGrad (Yu et al., 2020) in coefficient space, fixed or seeded random visit order."""

from __future__ import annotations

from functools import cache

import torch

from .base import SOLVER_KINDS, Aggregator, SolverSpec, safe_ratio

__all__ = ["PCGrad", "fixed_visit_orders", "pcgrad_visit_orders"]


_MASK32 = 0xFFFFFFFF


def _mix32(x: torch.Tensor) -> torch.Tensor:
    """``mix32`` of csrc/include/ltu_fast/aggregators/visit_order.h on int64 tensors holding 32-bit values (products stay below 2^63)."""
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


@cache
def fixed_visit_orders(k: int, device: torch.device) -> torch.Tensor:
    """[K, K-1] index order: objective i visits the others ascending (uploaded once per device)."""
    return torch.tensor([[j for j in range(k) if j != i] for i in range(k)], dtype=torch.int64,
                        device=device).reshape(k, k - 1)


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

    def solver_spec(self, num_objectives: int) -> SolverSpec:
        # ints: (random order, seed's low 32 bits); the counter is step_counter's (random order only)
        return SolverSpec(SOLVER_KINDS["pcgrad"], ints=(int(self.order == "random"), int(self.seed) & _MASK32))

    def coefficients(self, gram: torch.Tensor) -> torch.Tensor:
        num_segments, k = gram.shape[:2]
        counter = self.step_counter(gram.device)
        if counter is None:
            orders = fixed_visit_orders(k, gram.device)
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
                step = safe_ratio(dot, diag.index_select(1, j)[:, 0]).clamp(max=0.0)  # only in conflict
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
