"""FairGrad (Ban & Ji, ICML 2024, "Fair Resource Allocation in Multi-Task Learning", Eq. 4), as torchjd 0.18."""

from __future__ import annotations

import math

import torch

from ._newton import DEFAULT_NEWTON_ITERATIONS, nearest_psd, power_equation
from .base import SOLVER_KINDS, Aggregator, SolverSpec, check_iterations

__all__ = ["FairGrad"]


class FairGrad(Aggregator):
    """alpha-fair weights: ``w > 0`` with ``G w = w^(-1/alpha)``, solved exactly by damped Newton
    (:mod:`._newton`) where torchjd runs scipy's bounded least squares from ``1/K``; ``alpha = 0`` is
    the uniform ``1/K`` (linear scalarisation), as torchjd. alpha = 1 is proportional fairness
    (Nash-MTL's equation, unclipped). An objective with a zero gradient in a segment gets weight 0.
    """

    name = "fairgrad"
    scale_invariant = False  # w scales as |g|^(-2 alpha / (alpha + 1))

    def __init__(self, alpha: float = 1.0, iterations: int = DEFAULT_NEWTON_ITERATIONS):
        if not (math.isfinite(alpha) and alpha >= 0):
            raise ValueError(f"alpha must be finite and >= 0 (the problem is not convex below), got {alpha}")
        check_iterations(iterations)
        self.alpha, self.iterations = float(alpha), iterations

    def solver_spec(self, num_objectives: int) -> SolverSpec:
        # ints: (Newton iterations,); floats: (alpha,) (csrc/include/ltu_fast/aggregators/fairgrad.h)
        return SolverSpec(SOLVER_KINDS["fairgrad"], ints=(self.iterations,), floats=(self.alpha,))

    def coefficients(self, gram: torch.Tensor) -> torch.Tensor:
        k = gram.shape[-1]
        if self.alpha == 0:
            return torch.full(gram.shape[:2], 1.0 / k, dtype=gram.dtype, device=gram.device)
        return power_equation(nearest_psd(gram.to(torch.float64)), 1.0 / self.alpha, self.iterations).to(gram.dtype)

    def __repr__(self) -> str:
        return f"FairGrad(alpha={self.alpha}, iterations={self.iterations})"
