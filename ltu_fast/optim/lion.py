"""``HarmonizedLion``: Lion (Chen et al. 2023) on the harmonized combination of K objectives' gradients.

Pass 1 is the shared Gram; pass 2 combines the K rows and applies the Lion update in one kernel
(``ltu_fast/rules/lion.py``): it reads K rows + param + momentum once and writes param + momentum
once, (8K + 16) bytes per fp32 parameter.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ..aggregators import Aggregator
from ..rules import LION
from .base import check_betas, check_hyper
from .fused import FusedOptimizer

__all__ = ["HarmonizedLion"]


class HarmonizedLion(FusedOptimizer):
    """Lion (sign of an interpolated momentum, decoupled weight decay, maximize) on harmonized gradients.

    Per element, with ``g`` the harmonized gradient: ``c = beta1 * m + (1 - beta1) * g``,
    ``p = p * (1 - lr * weight_decay) - lr * sign(c)``, ``m = beta2 * m + (1 - beta2) * g``.

    Args:
        params: as :class:`~ltu_fast.HarmonizedSGD`.
        lr, betas, weight_decay, maximize: per param group too; ``lr`` and the betas may be
            one-element tensors (read on the device). Lion's update has the size of ``lr`` in every
            coordinate: its ``lr`` is typically 3-10x smaller than AdamW's, its weight decay larger.
        objectives, aggregator, granularity, weights, backend, align_bytes, skip_untouched: as
            ``HarmonizedSGD``.

    State: ``exp_avg`` per parameter, a view of a flat buffer (float32; float64 for float64
    parameters). An untouched parameter (no objective's backward reached it) keeps its value and
    momentum; a step with non-finite gradients changes nothing.
    """

    rule = LION
    tensor_hyper = ("lr", "betas")

    def __init__(
        self,
        params,
        lr: float | torch.Tensor = 1e-4,
        betas: tuple[float | torch.Tensor, float | torch.Tensor] = (0.9, 0.99),
        weight_decay: float = 0.0,
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
        defaults = {"lr": lr, "betas": betas, "weight_decay": weight_decay, "maximize": maximize}
        super().__init__(params, defaults, objectives=objectives, aggregator=aggregator, granularity=granularity,
                         weights=weights, backend=backend, align_bytes=align_bytes, skip_untouched=skip_untouched)

    def _check_group(self, group: dict, where: str) -> None:
        check_hyper("lr", group["lr"], where, tensor_ok=True)
        check_hyper("weight_decay", group["weight_decay"], where)
        check_betas(group["betas"], where)

    def _group_values(self, group: dict) -> list[Any]:
        beta1, beta2 = group["betas"]
        return [group["lr"], beta1, beta2, group["weight_decay"], group["maximize"]]

    def _table_dtype(self, param_dtype: torch.dtype) -> torch.dtype:
        return torch.float64  # 1 - lr * weight_decay in float64, as a Python-float implementation computes it

    def _state_dtype(self, param_dtype: torch.dtype) -> torch.dtype:
        return torch.float64 if param_dtype == torch.float64 else torch.float32
