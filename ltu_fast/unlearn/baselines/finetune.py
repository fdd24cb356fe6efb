"""FT and l1-sparse: fine-tuning on the accessible retain subset (catastrophic forgetting of the
forget set), the latter with a decaying l1 penalty that sparsifies weights (Jia et al., NeurIPS'23)."""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..api import UnlearnMethod, UnlearnResult, UnlearnTask, register_method
from ._loop import descend, endless, generator, make_sgd, steps_per_epoch


def l1_norm(model: nn.Module) -> torch.Tensor:
    return sum(p.abs().sum() for p in model.parameters())


@register_method
class FineTune(UnlearnMethod):
    """Cross-entropy on ``retain_access``; ``l1`` > 0 adds ``l1 * (1 - t/T) * ||theta||_1``.

    Length: ``epochs`` passes over ``retain_access``, or, when ``budget`` is given, ``budget`` times
    Retrain's sample-gradients (its epochs over the full retain set). FT is tuned in the second
    form: catastrophic forgetting of a whole class needs a number of steps that passes over a small
    accessible subset do not reach (on digits, 20 passes over ~115 samples never unlearn class 3),
    and a share of Retrain's work is the cost a user compares against anyway.
    """

    name = "ft"
    search_space: ClassVar[dict[str, tuple]] = {"budget": (0.05, 0.15, 0.4, 1.0), "lr": (0.05, 0.1, 0.2)}

    def __init__(self, epochs: int = 10, lr: float = 0.05, batch_size: int = 32, l1: float = 0.0,
                 budget: float | None = None):
        if budget is not None and not budget > 0:
            raise ValueError(f"{self.name}: budget must be > 0 (a share of Retrain's work), got {budget}")
        self.epochs, self.lr, self.batch_size, self.l1, self.budget = epochs, lr, batch_size, l1, budget

    def _steps(self, task: UnlearnTask) -> int:
        if self.budget is None:
            return self.epochs * steps_per_epoch(task.retain_access, self.batch_size)
        if not task.retain_size or "epochs" not in task.train_recipe:
            raise ValueError(f"{self.name}: budget needs the task's retain_size and train_recipe['epochs']")
        retrain_samples = task.train_recipe["epochs"] * task.retain_size
        batch = min(self.batch_size, len(task.retain_access))  # what `endless` draws per step
        return max(1, math.ceil(self.budget * retrain_samples / batch))

    def unlearn(self, model: nn.Module, task: UnlearnTask) -> UnlearnResult:
        model.to(task.device).train()
        opt = make_sgd(model.parameters(), self.lr)
        total = self._steps(task)
        batches = endless(task.retain_access, self.batch_size, generator(task.seed, 2), task.device)
        for t in range(total):
            x, y = next(batches)
            loss = F.cross_entropy(model(x), y)
            if self.l1 > 0:
                loss = loss + self.l1 * (1 - t / total) * l1_norm(model)
            descend(opt, loss)
        return UnlearnResult(model, {"steps": total})


@register_method
class L1Sparse(FineTune):
    """FT with the l1 penalty on by default (linear decay, as in the paper's best schedule)."""

    name = "l1_sparse"
    search_space: ClassVar[dict[str, tuple]] = {"epochs": (10, 20), "lr": (0.05, 0.1), "l1": (1e-3, 3e-3, 1e-2)}

    def __init__(self, epochs: int = 10, lr: float = 0.05, batch_size: int = 32, l1: float = 1e-3):
        super().__init__(epochs, lr, batch_size, l1)
