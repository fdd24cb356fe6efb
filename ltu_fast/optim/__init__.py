"""Harmonizing optimizers: one base (layout, objectives, rows, statistics, checkpoints), one small
module per update rule."""

from .adamw import HarmonizedAdamW
from .base import HarmonizedOptimizer
from .sgd import HarmonizedSGD
from .wrapper import Harmonized

__all__ = ["Harmonized", "HarmonizedAdamW", "HarmonizedOptimizer", "HarmonizedSGD"]
