"""Baselines, one small module each; importing this package registers them in ``METHODS``."""

from .ascent import GradientAscent, NegGradPlus
from .finetune import FineTune, L1Sparse
from .iau import IAU
from .relabel import RandomLabel, SalUn
from .retrain import Retrain
from .scrub import SCRUB
from .ssd import SSD

__all__ = ["IAU", "SCRUB", "SSD", "FineTune", "GradientAscent", "L1Sparse", "NegGradPlus", "RandomLabel", "Retrain", "SalUn"]
