"""DualProj (Lopez-Paz & Ranzato, 2017, GEM's Eq. 11; torchjd's ``DualProj``)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ._qp import check_projection, default_iterations, dual_cone_weights, regularized
from .base import Aggregator, as_preference, check_preference, preference

__all__ = ["DualProj"]


class DualProj(Aggregator):
    """The preference-weighted mean ``J^T p`` (default ``p = 1/K``) projected onto the dual cone of
    the gradients: ``w = argmin_{w >= p} w^T G' w`` with torchjd's ``G' = G / trace(G) + reg_eps I``
    (``reg_eps I`` when ``trace(G) < norm_eps``). One QP per segment, solved exactly (:mod:`._qp`).
    """

    name = "dualproj"
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
        u = preference(self.pref_vector, k, 1.0 / k, g.device).expand(g.shape[0], 1, k)
        w = dual_cone_weights(regularized(g, self.norm_eps, self.reg_eps), u, self.iterations or default_iterations(k))
        return w[:, 0].to(gram.dtype)

    def __repr__(self) -> str:
        return (f"DualProj(pref_vector={self.pref_vector}, norm_eps={self.norm_eps}, reg_eps={self.reg_eps}, "
                f"iterations={self.iterations})")
