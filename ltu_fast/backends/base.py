"""The contract every backend implements (reference, cpu, cuda, triton).

Five ops over flat rows laid out by a :class:`~ltu_fast.plan.SegmentPlan` (one of them, ``solve``,
optional); all tensors are on one device and owned by torch (backends never allocate behind
torch's back):

``gram(rows[K, P], plan) -> stats[L, K, K]``
    Per-segment Gram matrix of the K rows, accumulated in at least float32, summed over each
    segment's tensors in a fixed order (bitwise repeatable run to run).
``combine(rows, beta[L, K], plan, out=None) -> out[P]``
    ``out[e] = sum_k beta[seg(e), k] * rows[k, e]`` (rows' dtype; padding left zero). Into a new
    row, or into ``out`` (contiguous ``[P]``, rows' dtype and device; only elements of tensors
    are written, so a caller that reuses it keeps its zero padding).
``apply(rule, rows, beta, plan, param[P], buffers, table[T, R], found_inf[1])``
    The fused update of ``rule`` (an :class:`~ltu_fast.rules.UpdateRule`), in place on ``param`` and
    ``buffers`` (``rule.buffers`` in order, each ``[P]`` or empty where optional and absent). The
    chunk table's group column picks each tensor's row of ``table`` (``plan`` from
    :func:`~ltu_fast.functional.tensor_plan`; the rows are what the solve's epilogue wrote, see
    ``solve``). With ``g`` the combined gradient of an element and ``h`` its tensor's row: nothing
    when ``h["active"] == 0`` (the tensor is skipped whole), else ``rule.element(g, p, buffers, h)``
    (the reference backend runs exactly that; the compiled ones the same math per language).
    ``param``, ``buffers`` and ``table`` are float32 (float64 for float64 parameters).
    If ``found_inf[0] != 0`` nothing is written (read on the device: no host sync).
``solve(gram[L, K, K], spec, counter, state, weights, grad_scale, found_inf, skipped, rule=None, tensors=None,
group_hyper=None, tensor_state=None, touched=None, tensor_rows=None)``
    Optional (the reference has none: ``functional.solve`` runs the torch aggregators, which are
    the semantics). Coefficients ``beta [L, K]`` float32 and the skip flag ``[1]`` of the
    aggregator described by ``spec`` (:class:`~ltu_fast.aggregators.SolverSpec`; K up to the
    module's ``MAX_SOLVE_K``, default 8), in one call: objective ``weights [K]``, ``grad_scale [1]``
    divided out, ``found_inf [1]`` OR-ed in, the aggregator's ``counter [1]`` (int64) read then
    advanced by one and its per-segment ``state [L, S]`` (float64, contiguous) updated in place
    (both from :meth:`~ltu_fast.aggregators.Aggregator.solver_tensors`), ``skipped [1]`` (int64) += flag. Then, with ``rule``, its epilogue per tensor ``t`` of
    ``tensors`` (a ``SegmentPlan.table [T, 4]``): ``active = touched[t] != 0 and not flag``
    (``touched [T]`` float32, None: every tensor), ``rule.prepare`` on the tensor's row of
    ``group_hyper [G, C]`` (float32 or float64) advancing ``tensor_state [T, S]`` (float32) in place,
    and its row written to ``tensor_rows [T, R]`` (float32), ``active`` first
    (:func:`~ltu_fast.rules.prepare_rows` is the semantics, bit for bit). Every optional tensor may be None.
``axpy(acc[P], x[P], alpha)``
    ``acc += alpha * x`` for meta-gradient accumulation; ``alpha`` a float or a 0-dim tensor.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch

from ..plan import SegmentPlan
from ..rules import UpdateRule

__all__ = ["DTYPE_CODES", "MAX_BUFFERS", "Backend", "buffer_addresses", "check_solver_state", "combine_out",
           "solve_buffers"]

# Codes of the element dtypes the compiled kernels take (csrc/include/ltu_fast/codes.h DType).
DTYPE_CODES = {torch.float32: 0, torch.bfloat16: 1, torch.float16: 2}
MAX_BUFFERS = 3  # per-element buffers a rule may keep (csrc/include/ltu_fast/rule.h kMaxBuffers)


class Backend(Protocol):
    name: str

    def availability(self) -> str | None:
        """None when usable in this process, else the reason it is not (shown in errors)."""

    def supports(self, device: torch.device, row_dtype: torch.dtype, param_dtype: torch.dtype | None) -> bool:
        """Whether the ops run for these tensors (``param_dtype`` None: no parameter involved)."""

    def gram(self, rows: torch.Tensor, plan: SegmentPlan) -> torch.Tensor: ...

    def combine(self, rows: torch.Tensor, beta: torch.Tensor, plan: SegmentPlan,
                out: torch.Tensor | None = None) -> torch.Tensor: ...

    def apply(
        self,
        rule: UpdateRule,
        rows: torch.Tensor,
        beta: torch.Tensor,
        plan: SegmentPlan,
        param: torch.Tensor,
        buffers: Sequence[torch.Tensor],
        table: torch.Tensor,
        found_inf: torch.Tensor,
    ) -> None: ...

    def axpy(self, acc: torch.Tensor, x: torch.Tensor, alpha: float | torch.Tensor) -> None: ...


def combine_out(rows: torch.Tensor, plan: SegmentPlan, out: torch.Tensor | None) -> torch.Tensor:
    """The row every ``combine`` writes: ``out`` after checking it fits (a kernel trusts what it is
    told), else a new one whose padding (only) is zero."""
    if out is None:
        return plan.to(rows.device).empty_row(rows.dtype) if rows.shape[1] == plan.total \
            else rows.new_zeros(rows.shape[1])
    if out.shape != rows.shape[1:] or out.dtype != rows.dtype or out.device != rows.device \
            or not out.is_contiguous():
        raise ValueError(f"out: expected a contiguous {rows.dtype} tensor of shape {tuple(rows.shape[1:])} on "
                         f"{rows.device}, got {out.dtype} {tuple(out.shape)} on {out.device}")
    return out


def buffer_addresses(buffers: Sequence[torch.Tensor]) -> list[int]:
    """A rule's buffers as the ``MAX_BUFFERS`` addresses the compiled apply takes (0: absent)."""
    return [t.data_ptr() if t.numel() else 0 for t in buffers] + [0] * (MAX_BUFFERS - len(buffers))


def check_solver_state(state: torch.Tensor | None, num_segments: int) -> None:
    """An aggregator's per-segment state as the compiled solves read it: float64 ``[L, S]``, contiguous,
    on the Gram's device (a wrong one would be read out of bounds, never reported)."""
    if state is None:
        return
    if state.dtype != torch.float64 or state.dim() != 2 or state.shape[0] != num_segments \
            or not state.is_contiguous():
        raise ValueError(f"aggregator state: expected a contiguous float64 [{num_segments}, S] tensor, got "
                         f"{state.dtype} {tuple(state.shape)} (contiguous: {state.is_contiguous()})")


def solve_buffers(gram: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """What every compiled ``solve`` starts from: the contiguous Gram, new float32 ``beta [L, K]``
    and ``flag [1]``."""
    gram = gram.contiguous()
    beta = torch.empty(gram.shape[0], gram.shape[-1], dtype=torch.float32, device=gram.device)
    flag = torch.empty(1, dtype=torch.float32, device=gram.device)
    return gram, beta, flag
