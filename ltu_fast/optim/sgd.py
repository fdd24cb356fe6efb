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
from ..backends import Backend
from ..backends.base import HYPER_COLUMNS
from ..functional import StepStats, sgd_step
from .base import HarmonizedOptimizer, check_hyper

__all__ = ["HarmonizedSGD"]


class HarmonizedSGD(HarmonizedOptimizer):
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
        skip_untouched: leave a tensor no objective touched (all its rows exactly zero) exactly as
            it is, as torch skips ``grad is None`` (docs/core.md). ``False``: every tensor steps
            (weight decay and momentum move untouched ones) and the step dispatches ~10 fewer small
            device ops (momentum history then tracked per group inside the compiled solve).

    After ``step()``, ``last_stats`` holds per-segment device tensors (Gram, coefficients,
    skip flag); ``conflict_rate()`` and ``skipped_steps`` read them on demand. A step whose
    gradients contain NaN/Inf in any row leaves parameters and momentum untouched.
    """

    hyper_columns = HYPER_COLUMNS
    _update_counts_skips = True  # sgd_step counts skipped steps inside the coefficient solve

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
        self.skip_untouched = skip_untouched
        defaults = {"lr": lr, "momentum": momentum, "dampening": dampening, "weight_decay": weight_decay,
                    "nesterov": nesterov, "maximize": maximize}
        super().__init__(params, defaults, objectives=objectives, aggregator=aggregator, granularity=granularity,
                         weights=weights, backend=backend, align_bytes=align_bytes)

    def _check_group(self, group: dict, where: str) -> None:
        for name in ("lr", "momentum", "dampening", "weight_decay"):
            check_hyper(name, group[name], where, tensor_ok=name in self.tensor_hyper)
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(f"nesterov{where}: requires momentum > 0 and zero dampening")

    def _state_buffers(self) -> tuple[str, ...]:
        return ("momentum_buffer",) if any(g["momentum"] != 0 for g in self.param_groups) else ()

    def _layout_changed(self, first: bool) -> None:
        # ready: momentum buffers hold history (torch.optim.SGD's "buffer is not None"), per tensor
        # with skip_untouched (torch's rule is per parameter), else per group (all the compiled solve
        # tracks); kept across a re-layout
        keys = [id(p) for p in self._params] if self.skip_untouched else list(range(len(self.param_groups)))
        old = {} if first else dict(zip(self._ready_keys, self._ready.tolist()))
        self._ready_keys = keys
        self._ready = torch.tensor([old.get(key, 0.0) for key in keys], dtype=torch.float32,
                                   device=self._flat_params.device)

    def _device_state(self) -> tuple[torch.Tensor, ...]:
        return (self._ready,)

    @property
    def _momentum(self) -> torch.Tensor:
        """The flat momentum buffer ``[P]`` (empty while no group uses momentum)."""
        buf = self._buffers.get("momentum_buffer")  # not .get(key, default): that allocates every step
        return buf if buf is not None else self._empty_buffer()

    def _update(self, backend: Backend, hyper: torch.Tensor, grad_scale: torch.Tensor | None,
                found_inf: torch.Tensor | None) -> StepStats:
        return sgd_step(self._rows, self.plan, self._flat_params, self._momentum, hyper, self._ready,
                        self.aggregator, backend, self.weights, grad_scale, found_inf, self._statistics,
                        skipped=self._skipped, check=False, skip_untouched=self.skip_untouched)

    def _extra_state(self) -> dict[str, Any]:
        return {"ready": self._ready.clone()}

    def _load_extra_state(self, extra: dict[str, Any] | None) -> None:
        if extra is not None:
            self._ready.copy_(extra["ready"])
            return
        # e.g. torch.optim.SGD's: a parameter whose buffer exists has history (a group: all of them)
        has = [self.state[p].get("momentum_buffer") is not None for p in self._params]
        if not self.skip_untouched:
            groups = self.plan.groups
            has = [all(h for h, q in zip(has, groups) if q == g) for g in range(len(self.param_groups))]
        self._ready.copy_(torch.tensor(has, dtype=torch.float32))
