"""Machine unlearning: the task contract, data, models, training, metrics, runner and reports; your own
model and data too (``UnlearnTask.from_datasets``, ``unlearn``, ``evaluate_unlearning``; docs/own_model.md)."""

from .api import METHODS, ArraySplit, UnlearnMethod, UnlearnResult, UnlearnTask, register_method
from .data import DATASETS, SplitConfig, Splits, build_splits, load_dataset, train_test
from .metrics import avg_gap, evaluate_model, mia_efficacy, mia_lr
from .models import MODELS, build_model, model_factory
from .presets import PRESETS
from .runner import ExperimentConfig, available_methods, evaluate_unlearning, run_comparison, unlearn
from .splits import DatasetSplit, Split, as_split
from .train import TrainRecipe, train_cached, train_model

__all__ = [
    "DATASETS",
    "METHODS",
    "MODELS",
    "PRESETS",
    "ArraySplit",
    "DatasetSplit",
    "ExperimentConfig",
    "Split",
    "SplitConfig",
    "Splits",
    "TrainRecipe",
    "UnlearnMethod",
    "UnlearnResult",
    "UnlearnTask",
    "as_split",
    "available_methods",
    "avg_gap",
    "build_model",
    "build_splits",
    "evaluate_model",
    "evaluate_unlearning",
    "load_dataset",
    "mia_efficacy",
    "mia_lr",
    "model_factory",
    "register_method",
    "run_comparison",
    "train_cached",
    "train_model",
    "train_test",
    "unlearn",
]
