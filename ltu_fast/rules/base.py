"""The update-rule descriptor every front end, the functional step and every backend read.

A fused update rule is, per language, one small file: ``ltu_fast/rules/<rule>.py`` (this
descriptor and the torch reference of its two functions, which define the semantics),
``csrc/include/ltu_fast/rules/<rule>.h`` (C++ and CUDA) and ``kernels/rules/<rule>.py`` (Triton),
plus one line registering it in each language and its optimizer class (``ltu_fast/optim``).

A step runs the rule in two places:

* ``prepare`` once per tensor, in the coefficient solve's epilogue (the compiled solve kernel, or
  torch where the solve runs in torch): from the tensor's param-group values, its per-tensor state
  (advanced in place where the tensor is *active*: some objective touched it and the step is not
  skipped) and ``active``, the row the apply pass reads. Column 0 of every row is ``active``,
  written by the epilogue itself: an inactive tensor is skipped whole by every backend.
* ``element`` per element, in the one apply pass after the K rows are combined into ``g``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from ..plan import TABLE_GROUP, SegmentPlan

__all__ = ["ROW_ACTIVE", "UpdateRule", "prepare_rows"]

ROW_ACTIVE = 0  # the first column of every rule's per-tensor row (csrc/include/ltu_fast/rule.h kRowActive)

Values = dict[str, torch.Tensor]


@dataclass(frozen=True)
class UpdateRule:
    """What a fused update rule is made of (the names are the column layouts of every language).

    ``prepare(group, state, active, dtype) -> row values``: ``group`` maps each of ``group_columns``
    to a ``[T]`` tensor (each tensor's param-group value, in the group table's dtype), ``state`` is
    the ``[T, S]`` float32 per-tensor state (advance it in place where ``active [T]`` is true),
    ``dtype`` the rows' (the parameters' precision); the result maps every row column but
    ``"active"`` to a ``[T]`` tensor, cast to ``dtype`` afterwards.
    ``element(g, p, buffers, row) -> (p, buffers)``: the update of one tensor, in the accumulation
    dtype; ``buffers`` in ``buffers`` order (None for an absent optional one), ``row`` its row values
    as 0-dim tensors by name.
    """

    name: str
    code: int  # what the compiled solve and apply dispatch on (csrc/include/ltu_fast/rules.h)
    group_columns: tuple[str, ...]  # the [G, C] group table, one row per param group
    tensor_state: tuple[str, ...]  # the [T, S] float32 per-tensor state
    row_columns: tuple[str, ...]  # the [T, R] per-tensor rows prepare writes; the first is "active"
    buffers: tuple[str, ...]  # per-element state [P], named as torch's optimizer state
    optional_buffers: tuple[str, ...]  # buffers an optimizer may leave empty (no group needs them)
    prepare: Callable[[Values, torch.Tensor, torch.Tensor, torch.dtype], Values]
    element: Callable[[torch.Tensor, torch.Tensor, list, Values], tuple[torch.Tensor, list]]

    def __post_init__(self):
        if self.row_columns[ROW_ACTIVE] != "active" or not set(self.optional_buffers) <= set(self.buffers):
            raise ValueError(f"rule {self.name}: the first row column must be 'active' and optional buffers "
                             "must be buffers")


def prepare_rows(rule: UpdateRule, group_hyper: torch.Tensor, tensor_state: torch.Tensor, plan: SegmentPlan,
                 active: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``[T, R]`` rows of ``rule`` in ``dtype`` from the ``[G, C]`` group table: the torch path of the
    solve's epilogue (the semantics the compiled ones are tested against bit for bit)."""
    group = group_hyper.index_select(0, plan.table[:, TABLE_GROUP])
    values = rule.prepare(dict(zip(rule.group_columns, group.unbind(1))), tensor_state, active, dtype)
    columns: Sequence[torch.Tensor] = [active.to(dtype)] + [values[c].to(dtype) for c in rule.row_columns[1:]]
    return torch.stack(columns, 1)
