"""The projection onto the dual cone of the gradients that UPGrad and DualProj share (torchjd's
``DualConeProjector`` with its ``QuadprogProjector`` constants), solved by :mod:`._qp`."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ._qp import check_projection, default_iterations, dual_cone_weights, regularized
from .base import SOLVER_KINDS, Aggregator, SolverSpec, as_preference, check_preference, preference

__all__ = ["DualConeAggregator"]


class DualConeAggregator(Aggregator):
    """``w = sum_n argmin_{v >= u_n} v^T G' v`` over the bounds ``u_n`` a subclass gives
    (:meth:`bounds`), ``G' = G / trace(G) + reg_eps I`` (``reg_eps I`` when ``trace(G) < norm_eps``)."""

    scale_invariant = False  # the norm_eps threshold is absolute

    def __init__(self, pref_vector: Sequence[float] | torch.Tensor | None = None, norm_eps: float = 1e-4,
                 reg_eps: float = 1e-4, iterations: int | None = None):
        self.pref_vector = as_preference(pref_vector)
        self.norm_eps, self.reg_eps, self.iterations = check_projection(norm_eps, reg_eps, iterations)

    def validate(self, num_objectives: int) -> None:
        check_preference(self.pref_vector, num_objectives)

    def bounds(self, pref: torch.Tensor) -> torch.Tensor:
        """``[N, K]`` lower bounds of the N projections, from the preference ``pref [K]``."""
        raise NotImplementedError

    def coefficients(self, gram: torch.Tensor) -> torch.Tensor:
        g = gram.to(torch.float64)
        k = g.shape[-1]
        u = self.bounds(preference(self.pref_vector, k, 1.0 / k, g.device))
        q_matrix = regularized(g, self.norm_eps, self.reg_eps)
        v = dual_cone_weights(q_matrix, u.expand(g.shape[0], *u.shape), self.iterations or default_iterations(k))
        return v.sum(1).to(gram.dtype)

    def solver_spec(self, num_objectives: int) -> SolverSpec:
        """The compiled solve (``aggregators/<name>.h``, ``kernels/aggregators/<name>.py``): ints
        ``(iterations,)`` (None resolved for K), floats ``(norm_eps, reg_eps)``, the preference ``p``."""
        k = num_objectives
        return SolverSpec(SOLVER_KINDS[self.name], ints=(self.iterations or default_iterations(k),),
                          floats=(self.norm_eps, self.reg_eps), preference=self.pref_vector or (1.0 / k,) * k)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(pref_vector={self.pref_vector}, norm_eps={self.norm_eps}, "
                f"reg_eps={self.reg_eps}, iterations={self.iterations})")
