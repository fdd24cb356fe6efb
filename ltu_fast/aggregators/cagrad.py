"""CAGrad (Liu et al., NeurIPS 2021, "Conflict-Averse Gradient Descent", Algorithm 1), as torchjd 0.18."""

from __future__ import annotations

import torch

from ._qp import default_iterations, simplex_minimize
from .base import SOLVER_KINDS, Aggregator, SolverSpec, check_iterations, trace_normalized

__all__ = ["CAGrad"]


class CAGrad(Aggregator):
    """Conflict-averse gradient: maximise the worst objective's improvement within a ball of radius
    ``c |g0|`` around the mean gradient ``g0``. On torchjd's normalised Gram ``G' = G / trace(G)``
    (0 when ``trace(G) < norm_eps``): ``w* = argmin_{w in simplex} w^T G' 1/K + c |g0| sqrt(w^T G' w)``,
    ``|g0|^2 = 1^T G' 1 / K^2``; coefficients ``1/K + c |g0| / |g_w*| w*``, or 0 when
    ``|g_w*| < norm_eps`` (near the Pareto front). torchjd solves the simplex problem with
    cvxpy/Clarabel on the host; here an exact active-set method with closed-form faces (:mod:`._qp`).
    """

    name = "cagrad"
    scale_invariant = False  # the norm_eps thresholds are absolute

    def __init__(self, c: float = 0.5, norm_eps: float = 1e-4, iterations: int | None = None):
        if not c >= 0:
            raise ValueError(f"c must be >= 0, got {c}")
        if not norm_eps >= 0:
            raise ValueError(f"norm_eps must be >= 0, got {norm_eps}")
        check_iterations(iterations)
        self.c, self.norm_eps, self.iterations = float(c), float(norm_eps), iterations

    def coefficients(self, gram: torch.Tensor) -> torch.Tensor:
        g = trace_normalized(gram.to(torch.float64), self.norm_eps)
        k = g.shape[-1]
        b = g.sum(-1) / k  # G' 1/K: each gradient's product with g0
        radius = self.c * (b.sum(-1) / k).clamp_min(0).sqrt()
        w = simplex_minimize(g, b, radius, self.iterations or default_iterations(k))
        norm = (w * (g @ w[..., None])[..., 0]).sum(-1, keepdim=True).clamp_min(0).sqrt()
        away = norm >= self.norm_eps
        coef = 1.0 / k + radius[..., None] / torch.where(away, norm, 1.0) * w
        return torch.where(away, coef, 0.0).to(gram.dtype)

    def solver_spec(self, num_objectives: int) -> SolverSpec:
        """The compiled solve (``aggregators/cagrad.h``): ints ``(iterations,)`` (None resolved for K),
        floats ``(c, norm_eps)``."""
        return SolverSpec(SOLVER_KINDS["cagrad"], ints=(self.iterations or default_iterations(num_objectives),),
                          floats=(self.c, self.norm_eps))

    def __repr__(self) -> str:
        return f"CAGrad(c={self.c}, norm_eps={self.norm_eps}, iterations={self.iterations})"
