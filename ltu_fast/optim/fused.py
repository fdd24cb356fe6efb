"""The base of the fused front ends: one update rule (:mod:`ltu_fast.rules`) on the shared base.

A fused optimizer is its rule plus a few lines: which hyper-parameters a group holds and how they
are checked, which optional buffers the groups need, and how torch names its state. This class
builds the rest from the rule's descriptor: the per-element buffers (views of flat buffers under
torch's names), the ``[T, S]`` per-tensor state kept across re-layouts, and the step, one
:func:`~ltu_fast.functional.step` (Gram, coefficients and the rule's per-tensor rows in one solve,
then one apply pass).
"""

from __future__ import annotations

import torch

from ..backends import Backend
from ..functional import StepStats, step
from ..rules import UpdateRule
from .base import HarmonizedOptimizer

__all__ = ["FusedOptimizer"]


class FusedOptimizer(HarmonizedOptimizer):
    """A harmonizing optimizer whose update is one fused :class:`~ltu_fast.rules.UpdateRule` (``rule``)."""

    rule: UpdateRule

    @property
    def hyper_columns(self) -> tuple[str, ...]:
        return self.rule.group_columns

    def _optional_buffers(self) -> tuple[str, ...]:
        """The rule's optional buffers the current param groups need (none by default)."""
        return ()

    def _state_buffers(self) -> tuple[str, ...]:
        needed = self._optional_buffers()
        return tuple(b for b in self.rule.buffers if b not in self.rule.optional_buffers or b in needed)

    def _layout_changed(self, first: bool) -> None:
        """The ``[T, S]`` float32 per-tensor state, kept for the tensors it already had; an empty
        stand-in for absent buffers (allocated once, so a step allocates nothing)."""
        old = {} if first else {id(p): row for p, row in zip(self._state_params, self._tensor_state)}
        state = torch.zeros(len(self._params), len(self.rule.tensor_state), dtype=torch.float32,
                            device=self._flat_params.device)
        for i, p in enumerate(self._params):
            if id(p) in old:
                state[i] = old[id(p)]
        self._state_params, self._tensor_state = list(self._params), state
        self._absent = self._empty_buffer()

    def _device_state(self) -> tuple[torch.Tensor, ...]:
        return (self._tensor_state,)

    def _update(self, backend: Backend, hyper: torch.Tensor, grad_scale: torch.Tensor | None,
                found_inf: torch.Tensor | None) -> StepStats:
        buffers = [self._buffers.get(name, self._absent) for name in self.rule.buffers]
        return step(self.rule, self._rows, self.plan, self._flat_params, buffers, hyper, self._tensor_state,
                    self.aggregator, backend, self.weights, grad_scale, found_inf, self._statistics, self._skipped,
                    self._touched_on_device(), check=False)
