"""Retrain: the gold standard, training a fresh model on the full retain set with the original recipe."""

from __future__ import annotations

import torch
from torch import nn

from ..api import UnlearnMethod, UnlearnResult, UnlearnTask, register_method
from ._loop import train_epochs

RECIPE_DEFAULTS = {"epochs": 8, "lr": 0.05, "batch_size": 64, "momentum": 0.9, "weight_decay": 5e-4}


@register_method
class Retrain(UnlearnMethod):
    """Ignores the given model; ``task.train_recipe`` (epochs, lr, batch_size, momentum,
    weight_decay) overrides :data:`RECIPE_DEFAULTS` so Retrain repeats the original training."""

    name = "retrain"
    uses_full_retain = True

    def unlearn(self, model: nn.Module, task: UnlearnTask) -> UnlearnResult:
        recipe = {**RECIPE_DEFAULTS, **{k: v for k, v in task.train_recipe.items() if k in RECIPE_DEFAULTS}}
        with torch.random.fork_rng(devices=[]):  # the factory's init draws from the global RNG
            torch.manual_seed(task.seed)
            fresh = task.model_factory()
        train_epochs(fresh, task.retain_full, seed=task.seed, device=task.device, **recipe)
        return UnlearnResult(fresh, {"recipe": recipe})
