"""UPGrad (Quinton & Rey, 2024, "Jacobian Descent for Multi-Objective Optimization")."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ._qp import check_projection, default_iterations, dual_cone_weights, regularized
from .base import Aggregator, as_preference, check_preference, preference

__all__ = ["UPGrad"]


class UPGrad(Aggregator):
    """Unconflicting projection of gradients: each ``p_i g_i`` is projected onto the dual cone of
    the gradients (the directions that conflict with none), and the projections are summed:
    ``w = sum_i v_i``, ``v_i = argmin_{v >= p_i e_i} v^T G' v`` with
    ``G' = G / trace(G) + reg_eps I`` (``G' = reg_eps I`` when ``trace(G) < norm_eps``) and the
    preference ``p`` (default ``1/K`` each), exactly as torchjd 0.18's ``UPGrad``. The K small QPs
    are solved exactly by an active-set method with a fixed trip count (:mod:`._qp`) instead of
    quadprog on the host.
    """

    name = "upgrad"
    scale_invariant = False  # the norm_eps threshold is absolute

    def __init__(self, pref_vector: Sequence[float] | torch.Tensor | None = None, norm_eps: float = 1e-4,
                 reg_eps: float = 1e-4, iterations: int | None = None):
        self.pref_vector = as_preference(pref_vector)
        self.norm_eps, self.reg_eps, self.iterations = check_projection(norm_eps, reg_eps, iterations)

    def validate(self, num_objectives: int) -> None:
        check_preference(self.pref_vector, num_objectives)

    def coefficients(self, gram: torch.Tensor) -> torch.Tensor:
        g = gram.to(torch.float64)
        k = g.shape[-1]
        u = torch.diag(preference(self.pref_vector, k, 1.0 / k, g.device)).expand(g.shape[0], k, k)
        v = dual_cone_weights(regularized(g, self.norm_eps, self.reg_eps), u, self.iterations or default_iterations(k))
        return v.sum(1).to(gram.dtype)

    def __repr__(self) -> str:
        return (f"UPGrad(pref_vector={self.pref_vector}, norm_eps={self.norm_eps}, reg_eps={self.reg_eps}, "
                f"iterations={self.iterations})")

