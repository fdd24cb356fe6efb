"""SSD (Foster et al., AAAI'24): no training. Parameters far more important to the forget set than
to retained data (diagonal Fisher ratio above ``alpha``) are dampened by ``min(lam * I_r / I_f, 1)``."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

from ..api import ArraySplit, UnlearnMethod, UnlearnResult, UnlearnTask, register_method


def diagonal_fisher(model: nn.Module, data: ArraySplit, device: torch.device, chunk: int = 64) -> dict[str, torch.Tensor]:
    """Mean of squared per-sample gradients of the CE loss (the empirical diagonal Fisher), in eval mode."""
    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = {k: v.detach() for k, v in model.named_buffers()}

    def sample_loss(p, x, y):
        return F.cross_entropy(functional_call(model, (p, buffers), (x[None],)), y[None])

    per_sample = vmap(grad(sample_loss), in_dims=(None, 0, 0))
    fisher = {k: torch.zeros_like(v) for k, v in params.items()}
    was_training = model.training
    model.eval()
    for x, y in data.batches(chunk, device=device):
        for k, g in per_sample(params, x, y).items():
            fisher[k] += g.pow(2).sum(0)
    model.train(was_training)
    return {k: v / len(data) for k, v in fisher.items()}


@register_method
class SSD(UnlearnMethod):
    """Fisher on ``forget`` vs on ``retain_access`` (the paper uses the full training set; the access
    rules allow only the subset). ``alpha``: selection threshold, ``lam``: dampening constant."""

    name = "ssd"
    # The whole budget on alpha (lam barely moves the result; the paper's 1 is kept): a log grid from
    # class forgetting's useful range (5-30) to where random forgetting turns into a no-op (2000+).
    search_space: ClassVar[dict[str, tuple]] = {
        "alpha": (5.0, 10.0, 20.0, 30.0, 50.0, 100.0, 200.0, 300.0, 500.0, 1000.0, 1500.0, 2000.0)}

    def __init__(self, alpha: float = 100.0, lam: float = 1.0):
        self.alpha, self.lam = alpha, lam

    @torch.no_grad()
    def _dampen(self, model: nn.Module, forget_fisher, retain_fisher) -> float:
        selected = total = 0
        for k, p in model.named_parameters():
            i_f, i_r = forget_fisher[k], retain_fisher[k]
            chosen = i_f > self.alpha * i_r
            factor = (self.lam * i_r / i_f.clamp_min(torch.finfo(i_f.dtype).tiny)).clamp(max=1.0)
            p.mul_(torch.where(chosen, factor, torch.ones_like(factor)))
            selected += int(chosen.sum())
            total += chosen.numel()
        return selected / total

    def unlearn(self, model: nn.Module, task: UnlearnTask) -> UnlearnResult:
        model.to(task.device)
        with torch.enable_grad():
            forget_fisher = diagonal_fisher(model, task.forget, task.device)
            retain_fisher = diagonal_fisher(model, task.retain_access, task.device)
        share = self._dampen(model, forget_fisher, retain_fisher)
        return UnlearnResult(model, {"dampened_share": share})
