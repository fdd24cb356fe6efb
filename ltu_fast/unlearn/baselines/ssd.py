"""SSD (Foster et al., AAAI'24): no training. Parameters far more important to the forget set than
to the training data (diagonal Fisher ratio above ``alpha``) are dampened by ``min(lam * I_D / I_f, 1)``."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

from ..api import Split, UnlearnMethod, UnlearnResult, UnlearnTask, register_method


def diagonal_fisher(model: nn.Module, data: Split, device: torch.device, chunk: int = 64) -> dict[str, torch.Tensor]:
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
    """Fisher on ``forget`` (I_f) vs on the training data a method may read (I_D: ``retain_access`` and
    ``forget`` together, size-weighted; the paper takes all of D, which contains D_f).

    Because D contains D_f, ``I_f / I_D`` is at most ``|D| / |D_f|`` and a selected parameter keeps at
    least ``lam * |D_f| / |D|`` of its value. Estimating I_D on the retain subset alone (as an earlier
    version did) makes the ratio unbounded: a parameter whose retain importance is near zero by
    chance in a small subset was zeroed, which wrecked the model on some seeds and left it untouched
    on others (no alpha was safe on digits). ``alpha``: selection threshold, ``lam``: dampening.
    """

    name = "ssd"
    # Tuned through ``share`` (below): one grid that means the same selection rule in every setting.
    search_space: ClassVar[dict[str, tuple]] = {"share": (0.5, 0.7, 0.8, 0.9, 0.95, 0.98), "lam": (0.5, 1.0)}

    def __init__(self, alpha: float = 1.2, lam: float = 1.0, share: float | None = None):
        """``share``, when given, replaces ``alpha`` by ``share * |D| / |D_f|``: a parameter is selected
        when more than ``share`` of its (size-weighted) importance comes from the forget set. The
        paper's alpha means a different share at every retain-access level (alpha must stay below
        ``|D| / |D_f|``: about 1.1 at 1% access, 3.5 at 25%), so a fixed alpha grid would waste
        most of its points on settings where they select nothing."""
        if not alpha > 0 or not lam > 0:
            raise ValueError(f"SSD: alpha and lam must be > 0, got alpha={alpha}, lam={lam}")
        if share is not None and not 0 < share < 1:
            raise ValueError(f"SSD: share must lie in (0, 1), got {share}")
        self.alpha, self.lam, self.share = alpha, lam, share

    @torch.no_grad()
    def _dampen(self, model: nn.Module, forget_fisher, data_fisher, alpha: float) -> float:
        selected = total = 0
        for k, p in model.named_parameters():
            i_f, i_d = forget_fisher[k], data_fisher[k]
            chosen = i_f > alpha * i_d
            factor = (self.lam * i_d / i_f.clamp_min(torch.finfo(i_f.dtype).tiny)).clamp(max=1.0)
            p.mul_(torch.where(chosen, factor, torch.ones_like(factor)))
            selected += int(chosen.sum())
            total += chosen.numel()
        return selected / total

    def unlearn(self, model: nn.Module, task: UnlearnTask) -> UnlearnResult:
        model.to(task.device)
        with torch.enable_grad():
            forget_fisher = diagonal_fisher(model, task.forget, task.device)
            retain_fisher = diagonal_fisher(model, task.retain_access, task.device)
        n_f, n_r = len(task.forget), len(task.retain_access)
        data_fisher = {k: (n_f * forget_fisher[k] + n_r * retain_fisher[k]) / (n_f + n_r) for k in forget_fisher}
        alpha = self.alpha if self.share is None else self.share * (n_f + n_r) / n_f
        dampened = self._dampen(model, forget_fisher, data_fisher, alpha)
        return UnlearnResult(model, {"dampened_share": dampened, "alpha": alpha})
