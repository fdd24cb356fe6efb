"""IAU ("Efficient Machine Unlearning via Influence Approximation", 2025): one update along the
influence-style direction ``grad L(retain_access) - forget_weight * grad L(forget)``, each gradient
the mean cross-entropy over the whole set, with no Hessian. As in the authors' public code the
update is one Adam step (so, from fresh Adam state, about ``lr`` per weight in the sign direction)."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..api import Split, UnlearnMethod, UnlearnResult, UnlearnTask, register_method


def accumulate_mean_grad(model: nn.Module, data: Split, weight: float, device: torch.device,
                         chunk: int = 512) -> None:
    """Add ``weight * grad(mean CE over data)`` into the ``.grad`` fields, in chunks (bounded memory)."""
    for x, y in data.batches(chunk, device=device):
        (F.cross_entropy(model(x), y, reduction="sum") * (weight / len(data))).backward()


@register_method
class IAU(UnlearnMethod):
    """One Adam step of size ``lr`` on ``mean CE(retain_access) - forget_weight * mean CE(forget)``.

    The paper's optional gradient restriction acts on the training of the original, not on this
    step, so it is a recipe field: ``TrainRecipe.grad_restrict`` (``--recipe grad_restrict=W``),
    applied to the original and to Retrain alike. Whether it helps IAU is measured in
    docs/methods.md (IAU paragraph).
    """

    name = "iau"
    search_space: ClassVar[dict[str, tuple]] = {"lr": (3e-4, 1e-3, 3e-3, 1e-2), "forget_weight": (0.5, 1.0, 2.0)}

    def __init__(self, lr: float = 3e-4, forget_weight: float = 1.0):
        self.lr, self.forget_weight = lr, forget_weight

    def unlearn(self, model: nn.Module, task: UnlearnTask) -> UnlearnResult:
        model.to(task.device).train()
        opt = torch.optim.Adam(model.parameters(), lr=self.lr)
        opt.zero_grad(set_to_none=True)
        accumulate_mean_grad(model, task.retain_access, 1.0, task.device)
        accumulate_mean_grad(model, task.forget, -self.forget_weight, task.device)
        opt.step()
        return UnlearnResult(model.eval(), {"steps": 1})
