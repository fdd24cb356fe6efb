"""One-sided projection: protect one objective from the others' conflicting components."""

from __future__ import annotations

import torch

from .base import SOLVER_KINDS, Aggregator, SolverSpec, safe_ratio

__all__ = ["Project"]


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
        steps = safe_ratio(dots, gram[:, r, r, None]).clamp(max=0.0)
        steps[:, r] = 0.0
        beta = torch.ones_like(dots)
        beta[:, r] -= steps.sum(-1)
        return beta

    def solver_spec(self, num_objectives: int) -> SolverSpec:
        return SolverSpec(SOLVER_KINDS["project"], ints=(self.protect,))  # ints: (protected objective,)

    def __repr__(self) -> str:
        return f"Project(protect={self.protect})"
