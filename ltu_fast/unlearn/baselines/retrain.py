"""Retrain: the gold standard, training a fresh model on the full retain set with the original recipe."""

from __future__ import annotations

import torch
from torch import nn

from ..api import UnlearnMethod, UnlearnResult, UnlearnTask, register_method
from ..train import TrainRecipe, train_model


@register_method
class Retrain(UnlearnMethod):
    """Ignores the given model and repeats the original training (``task.train_recipe``, the
    fields of :class:`~ltu_fast.unlearn.train.TrainRecipe`) on ``retain_full`` from scratch."""

    name = "retrain"
    uses_full_retain = True

    def __init__(self, progress: bool = False):
        self.progress = progress  # a bar per epoch: Retrain is the long one

    def unlearn(self, model: nn.Module, task: UnlearnTask) -> UnlearnResult:
        given = {"retain_full": task.retain_full is not None, "model_factory": task.model_factory is not None,
                 "train_recipe": bool(task.train_recipe)}
        missing = [name for name, ok in given.items() if not ok]
        if missing:
            raise ValueError(f"retrain: needs the whole retain set, a fresh-model factory and the original's "
                             f"training recipe; the task has no {missing}")
        recipe = TrainRecipe(**task.train_recipe)
        with torch.random.fork_rng(devices=[]):  # the factory's init draws from the global RNG
            torch.manual_seed(task.seed)
            fresh = task.model_factory()
        train_model(fresh, task.retain_full, recipe, task.seed, task.device, desc="retrain", progress=self.progress)
        return UnlearnResult(fresh, {"recipe": vars(recipe)})
