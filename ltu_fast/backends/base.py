"""The contract every backend implements (reference, cpu, cuda, triton).

Five ops over flat rows laid out by a :class:`~ltu_fast.plan.SegmentPlan`; all tensors are on one
device and owned by torch (backends never allocate behind torch's back):

``gram(rows[K, P], plan) -> stats[L, K, K]``
    Per-segment Gram matrix of the K rows, accumulated in at least float32, summed over each
    segment's tensors in a fixed order (bitwise repeatable run to run).
``combine(rows, beta[L, K], plan, out=None) -> out[P]``
    ``out[e] = sum_k beta[seg(e), k] * rows[k, e]`` (rows' dtype; padding left zero). Into a new
    row, or into ``out`` (contiguous ``[P]``, rows' dtype and device; only elements of tensors
    are written, so a caller that reuses it keeps its zero padding).
``sgd_apply(rows, beta, plan, param[P], momentum[P], hyper[G, 6], ready[G], found_inf[1])``
    The fused update, in place on ``param`` and ``momentum``. With ``g`` the combined gradient of
    an element in group ``q``, ``h = hyper[q]`` (columns ``HYPER_*``) and ``r = ready[q]``:
        g = -g if maximize;   g += weight_decay * p
        if momentum != 0:     buf = (r ? momentum : 0) * buf + (r ? 1 - dampening : 1) * g
                              g = g + momentum * buf if nesterov else buf
        p -= lr * g
    exactly ``torch.optim.SGD``'s semantics (``r = 0`` is its first step, buffer := gradient).
    ``hyper`` and ``ready`` are float32, except ``hyper`` is float64 for float64 parameters.
    ``momentum`` may be empty (numel 0) only when no group uses momentum.
    If ``found_inf[0] != 0`` nothing is written (read on the device: no host sync).
``solve(gram[L, K, K], spec, counter, weights, grad_scale, found_inf, hyper, ready, ready_before, skipped,
tensors=None, tensor_hyper=None)``
    Optional (the reference has none: ``functional.solve`` runs the torch aggregators, which are
    the semantics). Coefficients ``beta [L, K]`` float32 and the skip flag ``[1]`` of the
    aggregator described by ``spec`` (:class:`~ltu_fast.aggregators.SolverSpec`; K up to the
    module's ``SOLVE_MAX_K``, default 8), in one call: objective ``weights [K]``, ``grad_scale [1]`` divided out, ``found_inf [1]`` OR-ed in,
    PCGrad's ``counter [1]`` (int64) read then advanced. With ``ready`` given: ``ready_before``
    receives it and ``ready`` is updated as ``max(ready, (1 - flag) * (hyper[:, momentum] != 0))``;
    ``skipped [1]`` (int64) += flag. Every optional tensor may be None. With ``tensors`` (a
    ``SegmentPlan.table [T, 4]``) the bookkeeping is per tensor (``ready``, ``ready_before`` [T]):
    ``tensor_hyper [T, 6]`` float32 receives each tensor's row (its group's, or the "leave it as
    it is" row of ``functional.touched_tensors`` / ``_untouched_sgd_hyper`` when no Gram diagonal
    entry of its segment is nonzero), and ``ready`` advances with those rows.
``adamw_apply(rows, beta, plan, param[P], exp_avg[P], exp_avg_sq[P], max_exp_avg_sq[P], hyper[R, 10], found_inf[1])``
    The fused AdamW update, in place on ``param`` and the state buffers (float32; float64 for
    float64 parameters). The chunk table's group column picks the row ``h = hyper[q]`` (columns
    ``ADAMW_*``, precomputed per tensor on the device: see ``functional.adamw_step``):
        if not active: nothing (the tensor is skipped, as torch skips ``grad is None``)
        g = -g if maximize;   p *= decay                       (decay = 1 - lr * weight_decay)
        m = lerp(m, g, w1);   v = v * beta2 + (1 - beta2) * g * g      (w1 = 1 - beta1)
        vmax = max(vmax, v) if amsgrad;   denom = sqrt(amsgrad ? vmax : v) / bc2_sqrt + eps
        p += (-step_size * m) / denom                          (step_size = lr / (1 - beta1^t))
    torch's ``lerp`` (``m + w (g - m)`` if ``|w| < 0.5`` else ``g - (g - m)(1 - w)``) and the
    operation order of ``torch.optim.AdamW``'s single-tensor path. ``max_exp_avg_sq`` may be
    empty when no row has amsgrad. If ``found_inf[0] != 0`` nothing is written.
``axpy(acc[P], x[P], alpha)``
    ``acc += alpha * x`` for meta-gradient accumulation; ``alpha`` a float or a 0-dim tensor.
"""

from __future__ import annotations

from typing import Protocol

import torch

from ..plan import SegmentPlan

__all__ = [
    "ADAMW_COLUMNS",
    "HYPER_COLUMNS",
    "HYPER_DAMPENING",
    "HYPER_LR",
    "HYPER_MAXIMIZE",
    "HYPER_MOMENTUM",
    "HYPER_NESTEROV",
    "HYPER_WEIGHT_DECAY",
    "Backend",
    "combine_out",
    "solve_buffers",
]

ADAMW_COLUMNS = ("step_size", "bc2_sqrt", "decay", "w1", "beta2", "one_minus_beta2", "eps", "amsgrad", "maximize",
                 "active")
(ADAMW_STEP_SIZE, ADAMW_BC2_SQRT, ADAMW_DECAY, ADAMW_W1, ADAMW_BETA2, ADAMW_ONE_MINUS_BETA2, ADAMW_EPS, ADAMW_AMSGRAD,
 ADAMW_MAXIMIZE, ADAMW_ACTIVE) = range(len(ADAMW_COLUMNS))

HYPER_COLUMNS = ("lr", "weight_decay", "momentum", "dampening", "nesterov", "maximize")
HYPER_LR, HYPER_WEIGHT_DECAY, HYPER_MOMENTUM, HYPER_DAMPENING, HYPER_NESTEROV, HYPER_MAXIMIZE = range(6)


class Backend(Protocol):
    name: str

    def availability(self) -> str | None:
        """None when usable in this process, else the reason it is not (shown in errors)."""

    def supports(self, device: torch.device, row_dtype: torch.dtype, param_dtype: torch.dtype | None) -> bool:
        """Whether the ops run for these tensors (``param_dtype`` None: no parameter involved)."""

    def gram(self, rows: torch.Tensor, plan: SegmentPlan) -> torch.Tensor: ...

    def combine(self, rows: torch.Tensor, beta: torch.Tensor, plan: SegmentPlan,
                out: torch.Tensor | None = None) -> torch.Tensor: ...

    def sgd_apply(
        self,
        rows: torch.Tensor,
        beta: torch.Tensor,
        plan: SegmentPlan,
        param: torch.Tensor,
        momentum: torch.Tensor,
        hyper: torch.Tensor,
        ready: torch.Tensor,
        found_inf: torch.Tensor,
    ) -> None: ...

    def adamw_apply(
        self,
        rows: torch.Tensor,
        beta: torch.Tensor,
        plan: SegmentPlan,
        param: torch.Tensor,
        exp_avg: torch.Tensor,
        exp_avg_sq: torch.Tensor,
        max_exp_avg_sq: torch.Tensor,
        hyper: torch.Tensor,
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


def solve_buffers(gram: torch.Tensor, hyper: torch.Tensor | None
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """What every compiled ``solve`` starts from: the contiguous Gram, new float32 ``beta [L, K]``
    and ``flag [1]``, and ``hyper`` as the float32 contiguous table the kernels read (or None)."""
    gram = gram.contiguous()
    beta = torch.empty(gram.shape[0], gram.shape[-1], dtype=torch.float32, device=gram.device)
    flag = torch.empty(1, dtype=torch.float32, device=gram.device)
    if hyper is not None and (hyper.dtype != torch.float32 or not hyper.is_contiguous()):
        hyper = hyper.to(torch.float32).contiguous()
    return gram, beta, flag, hyper
