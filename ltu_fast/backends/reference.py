"""Pure-torch reference backend: defines the semantics every other backend is tested against.

Works in any floating dtype (tests run it in float64). Loops over tensors in Python, so it is
slow on models with many tensors; it never synchronises with the device.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..plan import SegmentPlan
from ..rules import UpdateRule
from .base import combine_out

name = "reference"


def _accumulate_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def availability() -> str | None:
    return None


def supports(device: torch.device, row_dtype: torch.dtype, param_dtype: torch.dtype | None) -> bool:
    return row_dtype.is_floating_point and (param_dtype is None or param_dtype.is_floating_point)


def _tensor_slices(plan: SegmentPlan):
    return zip(plan.offsets, plan.numels, plan.segments, plan.groups)


def gram(rows: torch.Tensor, plan: SegmentPlan) -> torch.Tensor:
    acc = _accumulate_dtype(rows.dtype)
    k = rows.shape[0]
    per_tensor = [rows[:, o:o + n].to(acc) for o, n, _, _ in _tensor_slices(plan)]
    stats = torch.zeros(plan.num_segments, k, k, dtype=acc, device=rows.device)
    for x, seg in zip(per_tensor, plan.segments):
        stats[seg] += x @ x.T
    return stats


def _combined(rows: torch.Tensor, beta: torch.Tensor, offset: int, numel: int, seg: int) -> torch.Tensor:
    acc = _accumulate_dtype(rows.dtype)
    return (beta[seg].to(acc)[:, None] * rows[:, offset:offset + numel].to(acc)).sum(0)


def combine(rows: torch.Tensor, beta: torch.Tensor, plan: SegmentPlan, out: torch.Tensor | None = None) -> torch.Tensor:
    out = combine_out(rows, plan, out)
    for o, n, seg, _ in _tensor_slices(plan):
        out[o:o + n] = _combined(rows, beta, o, n, seg).to(rows.dtype)
    return out


def apply(rule: UpdateRule, rows: torch.Tensor, beta: torch.Tensor, plan: SegmentPlan, param: torch.Tensor,
          buffers: Sequence[torch.Tensor], table: torch.Tensor, found_inf: torch.Tensor) -> None:
    acc = _accumulate_dtype(param.dtype)
    keep = found_inf.reshape(()) != 0
    for o, n, seg, row in _tensor_slices(plan):
        h = dict(zip(rule.row_columns, table[row].to(acc).unbind()))
        write = ~keep & (h["active"] != 0)
        stored = [param[o:o + n]] + [b[o:o + n] if b.numel() else None for b in buffers]
        g = _combined(rows, beta, o, n, seg)
        new_p, new_buffers = rule.element(g, stored[0].to(acc), [None if b is None else b.to(acc) for b in stored[1:]],
                                          h)
        for old, new in zip(stored, [new_p, *new_buffers]):
            if old is not None:
                old.copy_(torch.where(write, new.to(old.dtype), old))


def axpy(acc: torch.Tensor, x: torch.Tensor, alpha: float | torch.Tensor) -> None:
    if isinstance(alpha, torch.Tensor):
        acc.add_(x * alpha.to(acc.dtype))
    else:
        acc.add_(x, alpha=alpha)
