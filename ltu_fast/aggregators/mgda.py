"""MGDA (Desideri 2012; Sener & Koltun 2018): the min-norm point of the gradients' convex hull."""

from __future__ import annotations

import torch

from .base import SOLVER_MGDA, Aggregator, SolverSpec, safe_ratio

__all__ = ["MGDA"]


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
            a = safe_ratio(g22 - g12, den).clamp(0.0, 1.0)
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
            gamma = safe_ratio(vv - vt, vv - 2 * vt + tt).clamp(0.0, 1.0)
            target = torch.zeros_like(alpha).scatter_(-1, t, 1.0)
            alpha = (1 - gamma[:, None]) * alpha + gamma[:, None] * target
        return alpha

    def solver_spec(self) -> SolverSpec:
        return SolverSpec(SOLVER_MGDA, iterations=self.iterations)

    def __repr__(self) -> str:
        return f"MGDA(iterations={self.iterations})"
