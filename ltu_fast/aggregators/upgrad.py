"""UPGrad (Quinton & Rey, 2024, "Jacobian Descent for Multi-Objective Optimization")."""

from __future__ import annotations

import torch

from .dual_cone import DualConeAggregator

__all__ = ["UPGrad"]


class UPGrad(DualConeAggregator):
    """Unconflicting projection of gradients: each ``p_i g_i`` is projected onto the dual cone of
    the gradients (the directions that conflict with none), and the projections are summed:
    ``w = sum_i v_i``, ``v_i = argmin_{v >= p_i e_i} v^T G' v`` with
    ``G' = G / trace(G) + reg_eps I`` (``G' = reg_eps I`` when ``trace(G) < norm_eps``) and the
    preference ``p`` (default ``1/K`` each), exactly as torchjd 0.18's ``UPGrad``. The K small QPs
    are solved exactly by an active-set method with a fixed trip count (:mod:`._qp`) instead of
    quadprog on the host.
    """

    name = "upgrad"

    def bounds(self, pref: torch.Tensor) -> torch.Tensor:
        return torch.diag(pref)
