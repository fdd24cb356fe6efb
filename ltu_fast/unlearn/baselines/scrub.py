"""SCRUB (Kurmanji et al., NeurIPS'23): a student, initialised from the original (the teacher),
alternates max-steps that push its outputs away from the teacher's on the forget set and
min-steps that keep them close (KL + CE) on retain data."""

from __future__ import annotations

import copy
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..api import UnlearnMethod, UnlearnResult, UnlearnTask, register_method
from ._loop import descend, endless, generator, make_sgd, steps_per_epoch


def distill_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(teacher || student) at a temperature, scaled by T^2 as in knowledge distillation."""
    log_s = F.log_softmax(student_logits / temperature, dim=1)
    log_t = F.log_softmax(teacher_logits / temperature, dim=1)
    return F.kl_div(log_s, log_t, log_target=True, reduction="batchmean") * temperature ** 2


@register_method
class SCRUB(UnlearnMethod):
    """``epochs`` rounds; the first ``max_epochs`` include a max pass over the forget set; each
    round ends with a min pass over ``retain_access`` (loss ``ce_weight*CE + kl_weight*KL``)."""

    name = "scrub"
    search_space: ClassVar[dict[str, tuple]] = {"max_epochs": (1, 2, 3), "lr": (2e-3, 5e-3, 1e-2, 2e-2)}

    def __init__(self, epochs: int = 3, max_epochs: int = 2, lr: float = 5e-3, batch_size: int = 32,
                 temperature: float = 4.0, ce_weight: float = 0.99, kl_weight: float = 1.0):
        self.epochs, self.max_epochs, self.lr, self.batch_size = epochs, max_epochs, lr, batch_size
        self.temperature, self.ce_weight, self.kl_weight = temperature, ce_weight, kl_weight

    def unlearn(self, model: nn.Module, task: UnlearnTask) -> UnlearnResult:
        model.to(task.device).train()
        teacher = copy.deepcopy(model).eval().requires_grad_(False)
        opt = make_sgd(model.parameters(), self.lr)
        forget = endless(task.forget, self.batch_size, generator(task.seed, 8), task.device)
        retain = endless(task.retain_access, self.batch_size, generator(task.seed, 9), task.device)
        n_forget = steps_per_epoch(task.forget, self.batch_size)
        n_retain = steps_per_epoch(task.retain_access, self.batch_size)
        for epoch in range(self.epochs):
            if epoch < self.max_epochs:
                for _ in range(n_forget):
                    x, _ = next(forget)
                    descend(opt, -distill_kl(model(x), teacher(x), self.temperature))
            for _ in range(n_retain):
                x, y = next(retain)
                logits = model(x)
                loss = self.ce_weight * F.cross_entropy(logits, y) + self.kl_weight * distill_kl(
                    logits, teacher(x), self.temperature)
                descend(opt, loss)
        return UnlearnResult(model, {"steps": self.max_epochs * n_forget + self.epochs * n_retain})
