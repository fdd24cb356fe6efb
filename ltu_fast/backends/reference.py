"""Pure-torch reference backend: defines the semantics every other backend is tested against.

Works in any floating dtype (tests run it in float64). Loops over tensors in Python, so it is
slow on models with many tensors; it never synchronises with the device.
"""

from __future__ import annotations

import torch

from ..plan import SegmentPlan
from .base import (
    ADAMW_ACTIVE,
    ADAMW_AMSGRAD,
    ADAMW_BC2_SQRT,
    ADAMW_BETA2,
    ADAMW_DECAY,
    ADAMW_EPS,
    ADAMW_MAXIMIZE,
    ADAMW_ONE_MINUS_BETA2,
    ADAMW_STEP_SIZE,
    ADAMW_W1,
    HYPER_DAMPENING,
    HYPER_LR,
    HYPER_MAXIMIZE,
    HYPER_MOMENTUM,
    HYPER_NESTEROV,
    HYPER_WEIGHT_DECAY,
    combine_out,
)

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


def sgd_apply(rows, beta, plan, param, momentum, hyper, ready, found_inf) -> None:
    acc = _accumulate_dtype(param.dtype)
    keep = found_inf.reshape(()) != 0
    for o, n, seg, grp in _tensor_slices(plan):
        h = hyper[grp].to(acc)
        lr, wd, mom, damp = h[HYPER_LR], h[HYPER_WEIGHT_DECAY], h[HYPER_MOMENTUM], h[HYPER_DAMPENING]
        r = ready[grp].to(acc)
        p = param[o:o + n]
        g = _combined(rows, beta, o, n, seg)
        g = torch.where(h[HYPER_MAXIMIZE] != 0, -g, g)
        g = g + wd * p.to(acc)
        if momentum.numel() == 0:  # no group uses momentum: the caller passes an empty buffer
            p.copy_(torch.where(keep, p, (p.to(acc) - lr * g).to(p.dtype)))
            continue
        buf = momentum[o:o + n]
        new_buf = torch.where(r != 0, mom, 0.0) * buf.to(acc) + torch.where(r != 0, 1 - damp, 1.0) * g
        stepped = torch.where(h[HYPER_NESTEROV] != 0, g + mom * new_buf, new_buf)
        has_momentum = mom != 0
        g = torch.where(has_momentum, stepped, g)
        buf.copy_(torch.where(keep | ~has_momentum, buf, new_buf.to(buf.dtype)))
        p.copy_(torch.where(keep, p, (p.to(acc) - lr * g).to(p.dtype)))


def _lerp(start: torch.Tensor, end: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """torch's lerp formula (two forms, picked by the weight's size, for accuracy at both ends)."""
    return torch.where(weight.abs() < 0.5, start + weight * (end - start), end - (end - start) * (1 - weight))


def adamw_apply(rows, beta, plan, param, exp_avg, exp_avg_sq, max_exp_avg_sq, hyper, found_inf) -> None:
    acc = _accumulate_dtype(param.dtype)
    keep = found_inf.reshape(()) != 0
    for o, n, seg, row in _tensor_slices(plan):
        h = hyper[row].to(acc)
        write = ~keep & (h[ADAMW_ACTIVE] != 0)
        p, m, v = param[o:o + n], exp_avg[o:o + n], exp_avg_sq[o:o + n]
        g = _combined(rows, beta, o, n, seg)
        g = torch.where(h[ADAMW_MAXIMIZE] != 0, -g, g)
        new_p = p.to(acc) * h[ADAMW_DECAY]
        new_m = _lerp(m.to(acc), g, h[ADAMW_W1])
        new_v = v.to(acc) * h[ADAMW_BETA2] + h[ADAMW_ONE_MINUS_BETA2] * g * g
        second = new_v
        if max_exp_avg_sq.numel():  # some row has amsgrad: the caller passes the buffer
            vmax = max_exp_avg_sq[o:o + n]
            amsgrad = h[ADAMW_AMSGRAD] != 0
            new_vmax = torch.maximum(vmax.to(acc), new_v)
            second = torch.where(amsgrad, new_vmax, new_v)
            vmax.copy_(torch.where(write & amsgrad, new_vmax.to(vmax.dtype), vmax))
        denom = second.sqrt() / h[ADAMW_BC2_SQRT] + h[ADAMW_EPS]
        new_p = new_p + (-h[ADAMW_STEP_SIZE] * new_m) / denom
        for buf, new in ((p, new_p), (m, new_m), (v, new_v)):
            buf.copy_(torch.where(write, new.to(buf.dtype), buf))


def axpy(acc: torch.Tensor, x: torch.Tensor, alpha: float | torch.Tensor) -> None:
    if isinstance(alpha, torch.Tensor):
        acc.add_(x * alpha.to(acc.dtype))
    else:
        acc.add_(x, alpha=alpha)
