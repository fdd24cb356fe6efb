"""Sum: no harmonization (the baseline)."""

from __future__ import annotations

import torch

from .base import SOLVER_KINDS, Aggregator, SolverSpec

__all__ = ["Sum"]


class Sum(Aggregator):
    """Plain sum of the objective gradients: no harmonization (the baseline)."""

    name = "sum"

    def coefficients(self, gram: torch.Tensor) -> torch.Tensor:
        return torch.ones(gram.shape[:2], dtype=gram.dtype, device=gram.device)

    def solver_spec(self, num_objectives: int) -> SolverSpec:
        return SolverSpec(SOLVER_KINDS["sum"])
