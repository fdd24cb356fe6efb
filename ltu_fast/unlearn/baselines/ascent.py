"""GA and NegGrad+: gradient ascent on the forget set, alone or balanced by descent on retain data."""

from __future__ import annotations

from typing import ClassVar

import torch.nn.functional as F
from torch import nn

from ..api import UnlearnMethod, UnlearnResult, UnlearnTask, register_method
from ._loop import descend, endless, generator, make_sgd, steps_per_epoch


@register_method
class NegGradPlus(UnlearnMethod):
    """Loss ``retain_weight * CE(retain) - (1 - retain_weight) * CE(forget)`` (Kurmanji et al., 2023).

    Epochs count passes over the forget set; each step pairs a forget batch with a retain batch.
    """

    name = "neggrad_plus"
    search_space: ClassVar[dict[str, tuple]] = {"epochs": (2, 5), "lr": (0.01, 0.03, 0.1), "retain_weight": (0.5, 0.8)}

    def __init__(self, epochs: int = 2, lr: float = 0.02, batch_size: int = 32, retain_weight: float = 0.5):
        self.epochs, self.lr, self.batch_size, self.retain_weight = epochs, lr, batch_size, retain_weight

    def unlearn(self, model: nn.Module, task: UnlearnTask) -> UnlearnResult:
        model.to(task.device).train()
        opt = make_sgd(model.parameters(), self.lr)
        forget = endless(task.forget, self.batch_size, generator(task.seed, 3), task.device)
        retain = endless(task.retain_access, self.batch_size, generator(task.seed, 4), task.device)
        total = self.epochs * steps_per_epoch(task.forget, self.batch_size)
        for _ in range(total):
            xf, yf = next(forget)
            loss = -(1 - self.retain_weight) * F.cross_entropy(model(xf), yf)
            if self.retain_weight > 0:
                xr, yr = next(retain)
                loss = loss + self.retain_weight * F.cross_entropy(model(xr), yr)
            descend(opt, loss)
        return UnlearnResult(model, {"steps": total})


@register_method
class GradientAscent(NegGradPlus):
    """Pure gradient ascent on the forget set (no retain data): NegGrad+ with ``retain_weight = 0``."""

    name = "ga"
    # GA turns from no effect to collapse within a factor of ~2 in lr (digits, class-wise: 5 passes at
    # 0.01 change nothing, at 0.03 fall to chance), so the grid is finer in lr than in passes.
    search_space: ClassVar[dict[str, tuple]] = {"epochs": (2, 5), "lr": (1e-3, 2e-3, 5e-3, 1e-2, 2e-2, 5e-2)}

    def __init__(self, epochs: int = 2, lr: float = 5e-3, batch_size: int = 32):
        super().__init__(epochs, lr, batch_size, retain_weight=0.0)
