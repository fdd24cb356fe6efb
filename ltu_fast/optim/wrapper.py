"""``Harmonized(optimizer)``: harmonize the K objectives' gradients, then step any torch optimizer.

The wrapper reuses the base (flat rows with zero-copy ``.grad`` views, objectives, statistics,
checkpoints); its update rule is "combine, then hand over": one Gram pass and one combine pass on
the device write the harmonized gradient into one flat buffer (allocated once, a static address
for CUDA graphs), each ``param.grad`` becomes a view of it (so ``AdamW(fused=True)`` and foreach
paths read one contiguous buffer), and the wrapped optimizer's own ``step()`` runs.
``param_groups`` and ``state`` *are* the wrapped optimizer's, so LR schedulers work on either object.

Torch skips a parameter whose ``grad is None``, a host-side fact; the base keeps the same fact on
the host for every front end (which parameters autograd reached since the gradients were last
cleared, :mod:`.touched`), so the step reads nothing back from the device to decide it.

    opt = Harmonized(torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True), objectives=("a", "b"))
    with opt.objective("a"):
        loss_a.backward()
    with opt.objective("b"):
        loss_b.backward()
    opt.step()
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch.optim import Optimizer

from ..aggregators import Aggregator
from ..backends import Backend
from ..functional import StepStats, harmonized_coefficients
from .base import HarmonizedOptimizer

__all__ = ["Harmonized"]


class Harmonized(HarmonizedOptimizer):
    """Wrap ``optimizer`` so that it steps on the harmonized gradient of K objectives.

    Args:
        optimizer: any ``torch.optim.Optimizer`` (its parameters: dense, one device, one dtype).
        objectives, aggregator, granularity, weights, backend, align_bytes: as
            :class:`~ltu_fast.HarmonizedSGD`.
        skip_untouched: a parameter that no backward reached in any objective since the gradients
            were last cleared gets ``grad = None`` for the wrapped step, so torch skips it (no
            weight decay, no momentum or moment change), exactly when torch's own ``.grad`` would
            be None (docs/core.md, "Untouched parameters"). Known on the host, from autograd's
            post-accumulate-grad hooks and the pending rows: no device read. ``False``: every
            parameter gets its combined gradient (zero where untouched).

    A step whose gradients are not finite is skipped whole (the wrapped optimizer changes nothing):
    an optimizer that reads a skip flag on the device (``fused=True``, as GradScaler hands it over)
    gets the flag, so the step has no host sync at all; any other optimizer decides to step on the
    host, so for it the wrapper reads that one flag back (``[1]``, one sync per step; free on CPU).
    """

    def __init__(
        self,
        optimizer: Optimizer,
        *,
        objectives: int | Sequence[str] = 1,
        aggregator: str | Aggregator = "pcgrad",
        granularity: str | Sequence[int] = "layer",
        weights: Sequence[float] | torch.Tensor | None = None,
        backend: str = "auto",
        align_bytes: int = 64,
        skip_untouched: bool = True,
    ):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer: expected a torch.optim.Optimizer, got {type(optimizer).__name__}")
        if isinstance(optimizer, HarmonizedOptimizer):
            raise TypeError(f"optimizer: {type(optimizer).__name__} already harmonizes; wrap a plain torch optimizer")
        self.optimizer = optimizer
        self._device_skip = bool(getattr(optimizer, "_step_supports_amp_scaling", False))
        super().__init__(optimizer.param_groups, {}, objectives=objectives, aggregator=aggregator,
                         granularity=granularity, weights=weights, backend=backend, align_bytes=align_bytes,
                         skip_untouched=skip_untouched)
        # one set of groups and state: a scheduler or add_param_group on either object acts on both
        self.param_groups, self.state, self.defaults = optimizer.param_groups, optimizer.state, optimizer.defaults

    def __repr__(self) -> str:
        return f"Harmonized({self.optimizer!r}, objectives={self.objectives}, aggregator={self.aggregator!r})"

    def _check_group(self, group: dict, where: str) -> None:
        """The wrapped optimizer validated its own groups."""

    def add_param_group(self, param_group: dict) -> None:
        if not self._layout_ready:  # construction: the wrapped optimizer's groups, shared as they are
            return super().add_param_group(param_group)
        self.optimizer.add_param_group(param_group)
        self._build_layout()

    def _layout_changed(self, first: bool) -> None:
        """The combined buffer (zeros: its padding is never written)."""
        self._combined = torch.zeros(self.plan.total, dtype=self._rows.dtype, device=self._rows.device)
        self._combined_views = self.plan.views(self._combined, self._shapes)

    def _device_state(self) -> tuple[torch.Tensor, ...]:
        return (self._combined,)

    # ------------------------------------------------------------------------------- the step
    def _update(self, backend: Backend, hyper: torch.Tensor, grad_scale: torch.Tensor | None,
                found_inf: torch.Tensor | None) -> StepStats:
        gram, beta, flag = harmonized_coefficients(self._rows, self.plan, self.aggregator, backend, self.weights,
                                                   grad_scale, found_inf, self._statistics, skipped=self._skipped)
        backend.combine(self._rows, beta, self.plan, out=self._combined)
        if self.skip_untouched:
            for p, g, reached in zip(self._params, self._combined_views, self._reached.per_tensor()):
                p.grad = g if reached else None
        else:
            for p, g in zip(self._params, self._combined_views):
                p.grad = g
        if self._device_skip:  # the wrapped optimizer reads the skip flag on the device (as GradScaler hands it over)
            self.optimizer.grad_scale, self.optimizer.found_inf = None, flag.reshape(())
            try:
                self.optimizer.step()
            finally:
                del self.optimizer.grad_scale, self.optimizer.found_inf
        elif not flag.item():  # it decides on the host: the one read, for optimizers that cannot take the flag
            self.optimizer.step()
        self._point_grads()  # the next backward goes to the rows again
        return StepStats(gram, beta, flag)

    def state_dict(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer.state_dict(), "harmonized": self._harmonized_state()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        extra = state_dict.get("harmonized")
        self._check_saved_objectives(extra)
        self.optimizer.load_state_dict(state_dict.get("optimizer", state_dict))
        self._restore_harmonized(extra)

