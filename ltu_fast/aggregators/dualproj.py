"""DualProj (Lopez-Paz & Ranzato, 2017, GEM's Eq. 11; torchjd's ``DualProj``)."""

from __future__ import annotations

import torch

from .dual_cone import DualConeAggregator

__all__ = ["DualProj"]


class DualProj(DualConeAggregator):
    """The preference-weighted mean ``J^T p`` (default ``p = 1/K``) projected onto the dual cone of
    the gradients: ``w = argmin_{w >= p} w^T G' w`` with torchjd's ``G' = G / trace(G) + reg_eps I``
    (``reg_eps I`` when ``trace(G) < norm_eps``). One QP per segment, solved exactly (:mod:`._qp`).
    """

    name = "dualproj"

    def bounds(self, pref: torch.Tensor) -> torch.Tensor:
        return pref[None]
