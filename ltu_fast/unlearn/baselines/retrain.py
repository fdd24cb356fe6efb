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

    def unlearn(self, model: nn.Module, task: UnlearnTask) -> UnlearnResult:
        recipe = TrainRecipe(**task.train_recipe)
        with torch.random.fork_rng(devices=[]):  # the factory's init draws from the global RNG
            torch.manual_seed(task.seed)
            fresh = task.model_factory()
        train_model(fresh, task.retain_full, recipe, task.seed, task.device, desc="retrain", progress=False)
        return UnlearnResult(fresh, {"recipe": vars(recipe)})
