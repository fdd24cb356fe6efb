"""ltu_fast: fused multi-objective gradient harmonization and Learning-to-Unlearn for PyTorch."""

from .aggregators import (
    IMTLG,
    MGDA,
    AlignedMTL,
    CAGrad,
    ConFIG,
    DualProj,
    FairGrad,
    GradVac,
    NashMTL,
    PCGrad,
    Project,
    Sum,
    UPGrad,
    make_aggregator,
)
from .backends import available_backends, resolve_backend
from .functional import StepStats, axpy, harmonize, harmonize_rows
from .optim import Harmonized, HarmonizedAdamW, HarmonizedLion, HarmonizedSGD
from .plan import SegmentPlan

__version__ = "0.1.0"

__all__ = [
    "IMTLG",
    "MGDA",
    "AlignedMTL",
    "CAGrad",
    "ConFIG",
    "DualProj",
    "FairGrad",
    "GradVac",
    "Harmonized",
    "HarmonizedAdamW",
    "HarmonizedLion",
    "HarmonizedSGD",
    "NashMTL",
    "PCGrad",
    "Project",
    "SegmentPlan",
    "StepStats",
    "Sum",
    "UPGrad",
    "available_backends",
    "axpy",
    "harmonize",
    "harmonize_rows",
    "make_aggregator",
    "resolve_backend",
]
