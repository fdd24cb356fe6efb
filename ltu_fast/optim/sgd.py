"""``HarmonizedSGD``: SGD on the harmonized combination of K objectives' gradients.

    opt = HarmonizedSGD(model.parameters(), lr=0.1, momentum=0.9, objectives=("forget", "retain"))
    opt.zero_grad()
    with opt.objective("forget"):
        loss_f.backward()
    with opt.objective("retain"):
        loss_r.backward()
    opt.step()        # Gram per layer -> coefficients -> one fused update pass

With one objective and ``aggregator="sum"`` it is ``torch.optim.SGD``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ..aggregators import Aggregator
from ..rules import SGD
from .base import check_hyper
from .fused import FusedOptimizer

__all__ = ["HarmonizedSGD"]


class HarmonizedSGD(FusedOptimizer):
    """SGD (momentum, dampening, Nesterov, weight decay, maximize) on harmonized gradients.

    Args:
        params: parameters, param groups, or ``model.named_parameters()`` (names are needed for
            ``granularity="module"``). All must be dense, floating point, on one device, one dtype.
        lr, momentum, dampening, weight_decay, nesterov, maximize: as ``torch.optim.SGD``
            (per param group too); ``lr`` may be a float or a one-element tensor, the others are numbers.
        objectives: K, or K distinct names (e.g. ``("forget", "retain")``).
        aggregator: a registered name (``ltu_fast.aggregators.AGGREGATORS``: ``"sum"``, ``"pcgrad"``,
            ``"upgrad"``, ...) or an :class:`~ltu_fast.aggregators.Aggregator` instance (e.g. ``Project(protect=1)``).
        granularity: ``"layer"`` (one segment per tensor), ``"module"`` (per owning module),
            ``"global"`` (the whole model), or a sequence of segment ids, one per parameter.
        weights: K non-negative objective weights (as if each loss were scaled).
        backend: ``"auto"``, ``"reference"``, ``"cpu"``, ``"cuda"`` or ``"triton"``.
        align_bytes: alignment of each tensor in the flat buffers.
        skip_untouched: a parameter no objective's backward reached since the gradients were last
            cleared is left exactly as it is, momentum buffer included, as torch skips ``grad is
            None`` (docs/core.md). ``False``: every tensor steps (weight decay and momentum move
            untouched ones).

    After ``step()``, ``last_stats`` holds per-segment device tensors (Gram, coefficients,
    skip flag); ``conflict_rate()`` and ``skipped_steps`` read them on demand. A step whose
    gradients contain NaN/Inf in any row leaves parameters and momentum untouched.
    """

    rule = SGD

    def __init__(
        self,
        params,
        lr: float | torch.Tensor = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
        objectives: int | Sequence[str] = 1,
        aggregator: str | Aggregator = "pcgrad",
        granularity: str | Sequence[int] = "layer",
        weights: Sequence[float] | torch.Tensor | None = None,
        backend: str = "auto",
        align_bytes: int = 64,
        skip_untouched: bool = True,
    ):
        defaults = {"lr": lr, "momentum": momentum, "dampening": dampening, "weight_decay": weight_decay,
                    "nesterov": nesterov, "maximize": maximize}
        super().__init__(params, defaults, objectives=objectives, aggregator=aggregator, granularity=granularity,
                         weights=weights, backend=backend, align_bytes=align_bytes, skip_untouched=skip_untouched)

    def _check_group(self, group: dict, where: str) -> None:
        for name in ("lr", "momentum", "dampening", "weight_decay"):
            check_hyper(name, group[name], where, tensor_ok=name in self.tensor_hyper)
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(f"nesterov{where}: requires momentum > 0 and zero dampening")

    def _optional_buffers(self) -> tuple[str, ...]:
        return ("momentum_buffer",) if any(g["momentum"] != 0 for g in self.param_groups) else ()

    @property
    def _ready(self) -> torch.Tensor:
        """``[T, 1]``: each tensor's momentum buffer holds history (torch's "buffer is not None")."""
        return self._tensor_state

    @property
    def _momentum(self) -> torch.Tensor:
        """The flat momentum buffer ``[P]`` (empty while no group uses momentum)."""
        return self._buffers.get("momentum_buffer", self._absent)

    def _extra_state(self) -> dict[str, Any]:
        return {"ready": self._tensor_state[:, 0].clone()}

    def _load_extra_state(self, extra: dict[str, Any] | None) -> None:
        if extra is None:  # e.g. torch.optim.SGD's: a parameter whose buffer exists has history
            ready = torch.tensor([self.state[p].get("momentum_buffer") is not None for p in self._params])
        else:
            ready = extra["ready"].reshape(-1)
            if ready.numel() == len(self.param_groups) != len(self._params):  # saved per group (skip_untouched=False)
                ready = ready[list(self.plan.groups)]
        self._tensor_state[:, 0].copy_(ready)
