"""RL and SalUn: train on the forget set with random wrong labels while descending on retain data;
SalUn (Fan et al., ICLR'24) restricts the update to the weights most salient for the forget loss."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..api import Split, UnlearnMethod, UnlearnResult, UnlearnTask, register_method
from ._loop import descend, endless, generator, make_sgd, random_other_labels, steps_per_epoch


def saliency_mask(model: nn.Module, forget: Split, keep: float, batch_size: int,
                  device: torch.device) -> list[torch.Tensor]:
    """1 for the ``keep`` share of weights with the largest |grad of the forget loss| (one global
    ranking over all tensors, as in SalUn), else 0. Ranking rather than a ``>=`` threshold: on a
    confident model most forget gradients are exactly zero, and a zero threshold would keep them all."""
    model.zero_grad(set_to_none=True)
    for x, y in forget.batches(batch_size, device=device):
        F.cross_entropy(model(x), y, reduction="sum").backward()
    grads = [p.grad.abs() for p in model.parameters()]
    flat = torch.cat([g.flatten() for g in grads])
    mask = torch.zeros_like(flat)
    mask[flat.topk(max(1, int(keep * flat.numel()))).indices] = 1.0
    model.zero_grad(set_to_none=True)
    return [m.view_as(g) for m, g in zip(mask.split([g.numel() for g in grads]), grads)]


@register_method
class RandomLabel(UnlearnMethod):
    """Each step: CE on a forget batch with random wrong labels + CE on a retain batch.
    ``saliency`` in (0, 1] masks gradients to that share of weights (SalUn); 1 means no mask."""

    name = "rl"
    search_space: ClassVar[dict[str, tuple]] = {"epochs": (1, 2, 5), "lr": (3e-5, 1e-4, 3e-4, 1e-3)}

    def __init__(self, epochs: int = 2, lr: float = 1e-4, batch_size: int = 32, saliency: float = 1.0):
        self.epochs, self.lr, self.batch_size, self.saliency = epochs, lr, batch_size, saliency

    def unlearn(self, model: nn.Module, task: UnlearnTask) -> UnlearnResult:
        model.to(task.device).train()
        hook = None
        if self.saliency < 1.0:
            mask = saliency_mask(model, task.forget, self.saliency, 256, task.device)

            def hook() -> None:
                for p, m in zip(model.parameters(), mask):
                    p.grad.mul_(m)
        opt = make_sgd(model.parameters(), self.lr, weight_decay=0.0 if hook else 5e-4)  # decay would move masked weights
        labels_gen = generator(task.seed, 5)
        forget = endless(task.forget, self.batch_size, generator(task.seed, 6), task.device)
        retain = endless(task.retain_access, self.batch_size, generator(task.seed, 7), task.device)
        total = self.epochs * steps_per_epoch(task.forget, self.batch_size)
        for _ in range(total):
            (xf, yf), (xr, yr) = next(forget), next(retain)
            wrong = random_other_labels(yf, task.num_classes, labels_gen)
            loss = F.cross_entropy(model(xf), wrong) + F.cross_entropy(model(xr), yr)
            descend(opt, loss, hook)
        return UnlearnResult(model, {"steps": total})


@register_method
class SalUn(RandomLabel):
    """RL on the 50% most forget-salient weights (the paper's default sparsity)."""

    name = "salun"
    search_space: ClassVar[dict[str, tuple]] = {"epochs": (1, 2, 5), "lr": (3e-5, 1e-4, 3e-4, 1e-3)}

    def __init__(self, epochs: int = 2, lr: float = 2e-4, batch_size: int = 32, saliency: float = 0.5):
        super().__init__(epochs, lr, batch_size, saliency)
