"""MGDA (Desideri 2012; Sener & Koltun 2018): the min-norm point of the gradients' convex hull."""

from __future__ import annotations

import torch

from ._qp import default_iterations, simplex_minimize
from .base import SOLVER_KINDS, Aggregator, SolverSpec, check_iterations, safe_ratio, trace_normalized

__all__ = ["MGDA"]

METHODS = ("active_set", "frank_wolfe")


class MGDA(Aggregator):
    """Multiple-gradient descent (Désidéri 2012; Sener & Koltun 2018): the min-norm point of the
    convex hull of the gradients, ``w = argmin_{w in simplex} w^T G w``.

    ``method="active_set"`` (default): exact, by the active-set method of :mod:`._qp` on
    ``G / trace(G)`` with ``iterations`` trips (default ``2 K + 4``; it meets torchjd's KKT test at
    K = 2 ... 50), compiled in ``aggregators/mgda.h`` and ``kernels/aggregators/mgda.py``.
    ``method="frank_wolfe"``: the previous solver, kept bit for bit (compiled too): closed form for
    K = 2, ``iterations`` (default 64) Frank-Wolfe steps with exact line search for K > 2 (approximate).
    Nothing syncs in either.
    """

    name = "mgda"

    def __init__(self, iterations: int | None = None, method: str = "active_set"):
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        check_iterations(iterations)
        self.iterations, self.method = iterations, method

    def coefficients(self, gram: torch.Tensor) -> torch.Tensor:
        num_segments, k, _ = gram.shape
        if k == 1:
            return torch.ones(num_segments, 1, dtype=gram.dtype, device=gram.device)
        if self.method == "frank_wolfe":
            return self._frank_wolfe(gram, self.iterations or 64)
        g = trace_normalized(gram.to(torch.float64), 0.0)
        zero = torch.zeros(num_segments, k, dtype=g.dtype, device=g.device)
        one = torch.ones(num_segments, dtype=g.dtype, device=g.device)
        return simplex_minimize(g, zero, one, self.iterations or default_iterations(k)).to(gram.dtype)

    @staticmethod
    def _frank_wolfe(gram: torch.Tensor, iterations: int) -> torch.Tensor:
        num_segments, k, _ = gram.shape
        if k == 2:
            g11, g12, g22 = gram[:, 0, 0], gram[:, 0, 1], gram[:, 1, 1]
            den = g11 + g22 - 2 * g12
            a = safe_ratio(g22 - g12, den).clamp(0.0, 1.0)
            a = torch.where(den > 0, a, torch.full_like(a, 0.5))
            return torch.stack([a, 1 - a], -1)
        alpha = torch.full((num_segments, k), 1.0 / k, dtype=gram.dtype, device=gram.device)
        diag = torch.diagonal(gram, dim1=1, dim2=2)
        for _ in range(iterations):
            g_alpha = torch.einsum("lij,lj->li", gram, alpha)  # <g_i, v>
            vv = (alpha * g_alpha).sum(-1)
            t = g_alpha.argmin(-1, keepdim=True)
            vt = g_alpha.gather(-1, t).squeeze(-1)
            tt = diag.gather(-1, t).squeeze(-1)
            gamma = safe_ratio(vv - vt, vv - 2 * vt + tt).clamp(0.0, 1.0)
            target = torch.zeros_like(alpha).scatter_(-1, t, 1.0)
            alpha = (1 - gamma[:, None]) * alpha + gamma[:, None] * target
        return alpha

    def solver_spec(self, num_objectives: int) -> SolverSpec:
        """ints: ``(iterations,)``, resolved for K (Frank-Wolfe: 64; active set: ``2 K + 4``)."""
        if self.method == "frank_wolfe":
            return SolverSpec(SOLVER_KINDS["mgda_frank_wolfe"], ints=(self.iterations or 64,))
        return SolverSpec(SOLVER_KINDS["mgda"], ints=(self.iterations or default_iterations(num_objectives),))

    def __repr__(self) -> str:
        return f"MGDA(iterations={self.iterations}, method={self.method!r})"
