"""GradVac (Wang et al., ICLR 2021, "Gradient Vaccine"), as torchjd 0.18's ``GradVac``, per segment."""

from __future__ import annotations

import torch

from .base import SOLVER_KINDS, SolverSpec
from .pcgrad import _MASK32, fixed_visit_orders, pcgrad_visit_orders
from .stateful import StatefulAggregator, StateSpec

__all__ = ["GradVac"]


class GradVac(StatefulAggregator):
    """Gradient vaccine: PCGrad's pass in coefficient space, but towards a target cosine. Visiting
    the others j of each i (random order by default, as torchjd; the same seeded hash of a device
    step counter as ``PCGrad(order="random")``), with ``phi`` the cosine of the modified ``g_i`` and
    the original ``g_j`` (denominators ``+ eps``) and ``phi_hat`` the segment's EMA target for (i, j):
    if ``phi < phi_hat``, ``g_i += |g_i| (phi_hat sqrt(1-phi^2) - phi sqrt(1-phi_hat^2)) /
    (|g_j| sqrt(1-phi_hat^2) + eps) g_j``; then ``phi_hat <- (1-beta) phi_hat + beta phi``. The result is
    the sum of the modified gradients. ``phi`` is clamped to [-1, 1]: from the Gram, ``|g_i|`` of a
    modified gradient that (nearly) cancels is lost to rounding and the ratio ran to 1e16 for parallel
    gradients (torchjd's too), and the EMA kept it. State: the targets ``[L, K, K]`` (start at 0, so the first
    step is PCGrad) and the step counter, in ``state_dict``; ``reset()`` clears them.
    """

    name = "gradvac"
    scale_invariant = False  # eps is absolute

    def __init__(self, beta: float = 0.5, eps: float = 1e-8, order: str = "random", seed: int = 0):
        super().__init__()
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"beta must be in [0, 1], got {beta}")
        if not eps >= 0:
            raise ValueError(f"eps must be >= 0, got {eps}")
        if order not in ("fixed", "random"):
            raise ValueError(f"order must be 'fixed' or 'random', got {order!r}")
        self.beta, self.eps, self.order, self.seed = float(beta), float(eps), order, seed

    def state_spec(self, num_segments: int, num_objectives: int) -> StateSpec:
        k = num_objectives
        return {"targets": ((num_segments, k, k), torch.float64, 0.0), "step": ((1,), torch.int64, 0)}

    def coefficients(self, gram: torch.Tensor) -> torch.Tensor:
        state = self.state(gram)
        targets, counter = state["targets"], state["step"]
        g = gram.to(torch.float64)
        num_segments, k = g.shape[:2]
        if self.order == "random":
            orders = pcgrad_visit_orders(int(self.seed) & _MASK32, counter, k)
        else:
            orders = fixed_visit_orders(k, g.device)
        counter += 1
        eye = torch.eye(k, dtype=g.dtype, device=g.device)
        norms = g.diagonal(dim1=1, dim2=2).clamp_min(0).sqrt()
        beta = torch.zeros(num_segments, k, dtype=g.dtype, device=g.device)
        for i in range(k):
            c = eye[i].expand(num_segments, k)  # coefficients of the modified g_i
            cg = g[:, i]  # [L, K]: <modified g_i, g_j> for every j
            row = targets[:, i]
            for t in range(k - 1):
                j = orders[i, t:t + 1]  # a [1] device index: no host sync under a random order
                norm_i = (c * cg).sum(-1).clamp_min(0).sqrt()
                norm_j = norms.index_select(1, j)[:, 0]
                phi = (cg.index_select(1, j)[:, 0] / (norm_i * norm_j + self.eps)).clamp(-1.0, 1.0)
                hat = row.index_select(1, j)[:, 0]
                root_hat = (1 - hat * hat).clamp_min(0).sqrt()
                step = norm_i * (hat * (1 - phi * phi).clamp_min(0).sqrt() - phi * root_hat) / (norm_j * root_hat + self.eps)
                step = torch.where(phi < hat, step, 0.0)
                c = c + step[:, None] * eye.index_select(0, j)
                cg = cg + step[:, None] * g.index_select(1, j)[:, 0]
                row.index_copy_(1, j, ((1 - self.beta) * hat + self.beta * phi)[:, None].to(row.dtype))
            beta = beta + c
        return beta.to(gram.dtype)

    def solver_spec(self, num_objectives: int) -> SolverSpec:
        # ints: (random order, seed's low 32 bits), as PCGrad's; floats: (beta, eps)
        return SolverSpec(SOLVER_KINDS["gradvac"], ints=(int(self.order == "random"), int(self.seed) & _MASK32),
                          floats=(self.beta, self.eps))

    def solver_tensors(self, gram: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The step counter and the targets viewed ``[L, K * K]`` (row i of a segment at ``i * K``)."""
        state = self.state(gram)
        return state["step"], state["targets"].view(gram.shape[0], -1)

    def __repr__(self) -> str:
        return f"GradVac(beta={self.beta}, eps={self.eps}, order={self.order!r}, seed={self.seed})"
