"""SCRUB (Kurmanji et al., NeurIPS'23): a student, initialised from the original (the teacher),
alternates max-steps that push its outputs away from the teacher's on the forget set and
min-steps that keep them close (KL + CE) on retain data.

Three changes make it usable on models without BatchNorm or dropout (the project's ``cnn``/``mlp``),
where the authors' train-mode noise is absent and the student starts *identical* to the teacher:

* the student starts at a small seeded perturbation of the teacher (``init_noise``, relative to each
  tensor's RMS): at the teacher itself KL(t||s) is at its minimum and the max-step gradient is exactly
  zero, so without it the student only leaves the teacher by the min-steps' drift;
* the max-step objective is bounded: each forget sample's KL counts up to ``kl_cap`` only, so ascent
  stops on samples already far from the teacher instead of growing without bound to a collapse;
* max-steps use their own plain SGD (``max_lr``, gradient norm clipped at ``max_grad_norm``; no
  momentum, whose velocity would carry the ascent past the cap), min-steps the shared SGD at ``lr``:
  with one lr, any lr at which the ascent moved the model also made the retain steps diverge.
"""

from __future__ import annotations

import copy
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..api import UnlearnMethod, UnlearnResult, UnlearnTask, register_method
from ._loop import descend, endless, generator, make_sgd, steps_per_epoch


def distill_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float,
               reduction: str = "batchmean") -> torch.Tensor:
    """KL(teacher || student) at a temperature, scaled by T^2 as in knowledge distillation;
    ``reduction="none"`` gives one value per sample."""
    log_s = F.log_softmax(student_logits / temperature, dim=1)
    log_t = F.log_softmax(teacher_logits / temperature, dim=1)
    kl = F.kl_div(log_s, log_t, log_target=True, reduction="none").sum(1) * temperature ** 2
    return kl if reduction == "none" else kl.mean()


def capped_divergence(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float,
                      cap: float) -> torch.Tensor:
    """Mean per-sample KL clipped at ``cap``: a sample at the cap contributes no gradient."""
    return distill_kl(student_logits, teacher_logits, temperature, "none").clamp(max=cap).mean()


@torch.no_grad()
def perturb_(model: nn.Module, scale: float, gen: torch.Generator) -> None:
    """Add seeded Gaussian noise of ``scale`` times each parameter tensor's RMS (drawn on the CPU)."""
    for p in model.parameters():
        rms = p.detach().pow(2).mean().sqrt()
        p.add_(torch.randn(p.shape, generator=gen, dtype=p.dtype).to(p.device) * rms * scale)


@register_method
class SCRUB(UnlearnMethod):
    """``epochs`` rounds; the first ``max_epochs`` include a max pass over the forget set (capped KL,
    at ``max_lr``); each round ends with a min pass over ``retain_access`` (loss
    ``ce_weight*CE + kl_weight*KL``, at ``lr``)."""

    name = "scrub"
    search_space: ClassVar[dict[str, tuple]] = {"kl_cap": (0.1, 0.5, 2.0), "max_lr": (0.1, 0.2, 0.5, 1.0)}

    def __init__(self, epochs: int = 3, max_epochs: int = 2, lr: float = 5e-3, batch_size: int = 32,
                 temperature: float = 4.0, ce_weight: float = 0.99, kl_weight: float = 1.0,
                 kl_cap: float = 0.5, init_noise: float = 0.01, max_grad_norm: float = 1.0,
                 max_lr: float = 0.2):
        self.epochs, self.max_epochs, self.lr, self.batch_size = epochs, max_epochs, lr, batch_size
        self.temperature, self.ce_weight, self.kl_weight = temperature, ce_weight, kl_weight
        self.kl_cap, self.init_noise, self.max_grad_norm, self.max_lr = kl_cap, init_noise, max_grad_norm, max_lr

    def unlearn(self, model: nn.Module, task: UnlearnTask) -> UnlearnResult:
        model.to(task.device).train()
        teacher = copy.deepcopy(model).eval().requires_grad_(False)
        perturb_(model, self.init_noise, generator(task.seed, 10))
        opt = make_sgd(model.parameters(), self.lr)
        max_opt = make_sgd(model.parameters(), self.max_lr, momentum=0.0, weight_decay=0.0)
        forget = endless(task.forget, self.batch_size, generator(task.seed, 8), task.device)
        retain = endless(task.retain_access, self.batch_size, generator(task.seed, 9), task.device)
        n_forget = steps_per_epoch(task.forget, self.batch_size)
        n_retain = steps_per_epoch(task.retain_access, self.batch_size)
        for epoch in range(self.epochs):
            if epoch < self.max_epochs:
                for _ in range(n_forget):
                    x, _ = next(forget)
                    descend(max_opt, -capped_divergence(model(x), teacher(x), self.temperature, self.kl_cap),
                            lambda: nn.utils.clip_grad_norm_(model.parameters(), self.max_grad_norm))
            for _ in range(n_retain):
                x, y = next(retain)
                logits = model(x)
                loss = self.ce_weight * F.cross_entropy(logits, y) + self.kl_weight * distill_kl(
                    logits, teacher(x), self.temperature)
                descend(opt, loss)
        return UnlearnResult(model, {"steps": self.max_epochs * n_forget + self.epochs * n_retain})
