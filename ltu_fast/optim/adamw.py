"""``HarmonizedAdamW``: AdamW on the harmonized combination of K objectives' gradients, fused.

Pass 1 is the shared Gram (:func:`~ltu_fast.functional.harmonized_coefficients`), whose solve also
computes each tensor's bias corrections; pass 2 combines the K rows and applies the AdamW update in
one kernel (decoupled weight decay, bias correction, amsgrad, maximize), reading K rows + param +
both moments once and writing param + moments once: (8K + 24) bytes per fp32 parameter. With one
objective and ``aggregator="sum"`` it is ``torch.optim.AdamW``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ..aggregators import Aggregator
from ..rules import ADAMW
from .base import check_betas, check_hyper
from .fused import FusedOptimizer

__all__ = ["HarmonizedAdamW"]


class HarmonizedAdamW(FusedOptimizer):
    """AdamW (decoupled weight decay, amsgrad, maximize) on harmonized gradients.

    Args:
        params: as :class:`~ltu_fast.HarmonizedSGD` (parameters, groups or named parameters;
            one device, one dtype).
        lr, betas, eps, weight_decay, amsgrad, maximize: as ``torch.optim.AdamW`` (per param
            group too); ``lr`` and the betas may be one-element tensors (read on the device).
        objectives, aggregator, granularity, weights, backend, align_bytes, skip_untouched: as
            ``HarmonizedSGD``.

    State: ``exp_avg``, ``exp_avg_sq`` (and ``max_exp_avg_sq`` with amsgrad) are float32 views of
    flat buffers (float64 for float64 parameters), ``step`` a per-parameter 0-dim device tensor,
    as torch keeps them: ``state_dict()`` loads into ``torch.optim.AdamW`` and back. A tensor no
    objective's backward reached keeps its parameter, moments and step count, as torch skips
    ``grad is None``; a step with non-finite gradients changes nothing.
    """

    rule = ADAMW
    tensor_hyper = ("lr", "betas")

    def __init__(
        self,
        params,
        lr: float | torch.Tensor = 1e-3,
        betas: tuple[float | torch.Tensor, float | torch.Tensor] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
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
        defaults = {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay, "amsgrad": amsgrad,
                    "maximize": maximize}
        super().__init__(params, defaults, objectives=objectives, aggregator=aggregator, granularity=granularity,
                         weights=weights, backend=backend, align_bytes=align_bytes, skip_untouched=skip_untouched)

    def _check_group(self, group: dict, where: str) -> None:
        check_hyper("lr", group["lr"], where, tensor_ok=True)
        check_hyper("eps", group["eps"], where)
        check_hyper("weight_decay", group["weight_decay"], where)
        check_betas(group["betas"], where)

    def _group_values(self, group: dict) -> list[Any]:
        beta1, beta2 = group["betas"]
        return [group["lr"], beta1, beta2, group["eps"], group["weight_decay"], group["amsgrad"], group["maximize"]]

    def _table_dtype(self, param_dtype: torch.dtype) -> torch.dtype:
        return torch.float64  # bias corrections in float64, as torch computes them in Python floats

    def _state_dtype(self, param_dtype: torch.dtype) -> torch.dtype:
        return torch.float64 if param_dtype == torch.float64 else torch.float32

    def _optional_buffers(self) -> tuple[str, ...]:
        return ("max_exp_avg_sq",) if any(g["amsgrad"] for g in self.param_groups) else ()

    def _layout_changed(self, first: bool) -> None:
        """The per-tensor step counts (``tensor_state``) are torch's ``state[p]["step"]`` (0-dim views)."""
        super()._layout_changed(first)
        self._point_steps()

    def _point_steps(self) -> None:
        for p, step in zip(self._params, self._tensor_state[:, 0]):
            self.state[p]["step"] = step

    def _load_extra_state(self, extra: dict[str, Any] | None) -> None:
        for i, p in enumerate(self._params):  # torch's format: a 0-dim step per parameter (absent: 0)
            loaded = self.state[p].get("step")
            self._tensor_state[i, 0] = 0.0 if loaded is None else torch.as_tensor(loaded, dtype=torch.float32)
        self._point_steps()
