"""Harmonizing optimizers: one base (layout, objectives, rows, statistics, checkpoints), the fused
front ends (one update rule of :mod:`ltu_fast.rules` each) and the wrapper of any torch optimizer."""

from .adamw import HarmonizedAdamW
from .base import HarmonizedOptimizer
from .fused import FusedOptimizer
from .lion import HarmonizedLion
from .sgd import HarmonizedSGD
from .wrapper import Harmonized

__all__ = ["FusedOptimizer", "Harmonized", "HarmonizedAdamW", "HarmonizedLion", "HarmonizedOptimizer", "HarmonizedSGD"]
