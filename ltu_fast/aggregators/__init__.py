"""Aggregators: per-segment Gram matrices ``[L, K, K]`` -> combination coefficients ``[L, K]``.

One module per method (see :mod:`.base` for the contract, :mod:`.stateful` for per-segment state);
the solvers they share are :mod:`._qp` (active-set QPs), :mod:`._eigen` (Jacobi) and
:mod:`._newton` (the Nash/FairGrad equation). This registry maps names to classes, so
``aggregator="upgrad"`` and ``UPGrad()`` are the same thing everywhere, and the shared tests run
on every registered aggregator.
"""

from __future__ import annotations

from .aligned_mtl import AlignedMTL
from .base import (
    MAX_SOLVE_K,
    SOLVER_KINDS,
    SPEC_FLOATS,
    SPEC_INTS,
    SPEC_PREFERENCE,
    Aggregator,
    SolverSpec,
    as_weights,
    safe_ratio,
)
from .cagrad import CAGrad
from .config import ConFIG
from .dualproj import DualProj
from .fairgrad import FairGrad
from .gradvac import GradVac
from .imtl_g import IMTLG
from .mgda import MGDA
from .nash_mtl import NashMTL
from .pcgrad import PCGrad, pcgrad_visit_orders
from .project import Project
from .stateful import StatefulAggregator
from .sum import Sum
from .upgrad import UPGrad

__all__ = ["AGGREGATORS", "IMTLG", "MAX_SOLVE_K", "MGDA", "SOLVER_KINDS", "SPEC_FLOATS", "SPEC_INTS",
           "SPEC_PREFERENCE", "Aggregator", "AlignedMTL", "CAGrad", "ConFIG", "DualProj", "FairGrad", "GradVac", "NashMTL",
           "PCGrad", "Project", "SolverSpec", "StatefulAggregator", "Sum", "UPGrad", "as_weights", "make_aggregator",
           "pcgrad_visit_orders", "safe_ratio"]


AGGREGATORS: dict[str, type[Aggregator]] = {
    cls.name: cls for cls in (Sum, PCGrad, Project, MGDA, UPGrad, DualProj, IMTLG, AlignedMTL, CAGrad, ConFIG,
                              GradVac, NashMTL, FairGrad)
}


def make_aggregator(spec: str | Aggregator, **options) -> Aggregator:
    """An aggregator from its registered name (``AGGREGATORS``, e.g. ``"pcgrad"``) or an instance."""
    if isinstance(spec, Aggregator):
        if options:
            raise ValueError(f"aggregator: options {sorted(options)} given with an instance; configure the instance")
        return spec
    if not isinstance(spec, str) or spec not in AGGREGATORS:
        raise ValueError(f"aggregator: unknown {spec!r}; choose one of {sorted(AGGREGATORS)} or pass an Aggregator")
    return AGGREGATORS[spec](**options)
