"""Aggregators: per-segment Gram matrices ``[L, K, K]`` -> combination coefficients ``[L, K]``.

One module per method (see :mod:`.base` for the contract); this registry maps names to classes,
so ``aggregator="pcgrad"`` and ``PCGrad()`` are the same thing everywhere.
"""

from __future__ import annotations

from .base import (
    MAX_SOLVER_K,
    SOLVER_MGDA,
    SOLVER_PCGRAD,
    SOLVER_PROJECT,
    SOLVER_SUM,
    Aggregator,
    SolverSpec,
    as_weights,
    safe_ratio,
)
from .mgda import MGDA
from .pcgrad import PCGrad, pcgrad_visit_orders
from .project import Project
from .sum import Sum

__all__ = ["AGGREGATORS", "MAX_SOLVER_K", "MGDA", "SOLVER_MGDA", "SOLVER_PCGRAD", "SOLVER_PROJECT", "SOLVER_SUM",
           "Aggregator", "PCGrad", "Project", "SolverSpec", "Sum", "as_weights", "make_aggregator",
           "pcgrad_visit_orders", "safe_ratio"]


AGGREGATORS: dict[str, type[Aggregator]] = {cls.name: cls for cls in (Sum, PCGrad, Project, MGDA)}


def make_aggregator(spec: str | Aggregator, **options) -> Aggregator:
    """An aggregator from its registered name (``AGGREGATORS``, e.g. ``"pcgrad"``) or an instance."""
    if isinstance(spec, Aggregator):
        if options:
            raise ValueError(f"aggregator: options {sorted(options)} given with an instance; configure the instance")
        return spec
    if not isinstance(spec, str) or spec not in AGGREGATORS:
        raise ValueError(f"aggregator: unknown {spec!r}; choose one of {sorted(AGGREGATORS)} or pass an Aggregator")
    return AGGREGATORS[spec](**options)
