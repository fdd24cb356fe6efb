"""Layout checks every compiled backend (cuda, triton) runs before it hands addresses to a kernel.

A kernel trusts what it is told: a plan whose chunk table lives on another device, rows whose
elements are not contiguous, or a 16-byte path on addresses that are not 16-byte aligned is an
illegal memory access on the GPU, not a Python error. These checks turn them into clear errors
(or, for the plan, a cached copy on the right device) and decide the vector width once.
"""

from __future__ import annotations

import torch

from ..plan import SegmentPlan

__all__ = ["check_axpy", "kernel_plan", "vector_pack"]

VECTOR_BYTES = 16


def kernel_plan(rows: torch.Tensor, plan: SegmentPlan) -> SegmentPlan:
    """``plan`` with its tables on ``rows``' device, after checking that ``rows`` fits it."""
    if rows.dim() != 2 or rows.shape[1] < plan.total:
        raise ValueError(f"rows: expected shape [K, >= {plan.total}] for this plan, got {tuple(rows.shape)}")
    if not rows.is_contiguous():  # the common case costs one call; views of wider rows are fine too
        if rows.shape[1] > 1 and rows.stride(1) != 1:
            raise ValueError(f"rows: elements of a row must be contiguous (stride(1) == 1), got strides {rows.stride()}")
        if rows.shape[0] > 1 and rows.stride(0) < plan.total:
            raise ValueError(f"rows: row stride {rows.stride(0)} overlaps the plan's {plan.total} elements")
    return plan.to(rows.device)


def check_axpy(acc: torch.Tensor, x: torch.Tensor, alpha: float | torch.Tensor) -> None:
    """The kernels index ``acc`` and ``x`` as one flat range of ``acc.numel()`` elements and read a
    tensor ``alpha`` as one scalar: refuse what they would read wrongly, as the cpu backend does."""
    for name, t in (("acc", acc), ("x", x)):
        if t.layout != torch.strided or not t.is_contiguous():
            raise ValueError(f"{name}: axpy needs a contiguous dense buffer, got layout {t.layout} "
                             f"strides {t.stride() if t.layout == torch.strided else None}")
    if x.shape != acc.shape or x.device != acc.device:
        raise ValueError(f"x: shape/device {tuple(x.shape)}/{x.device} must match acc {tuple(acc.shape)}/{acc.device}")
    if isinstance(alpha, torch.Tensor) and alpha.numel() != 1:
        raise ValueError(f"alpha: expected a one-element tensor, got shape {tuple(alpha.shape)}")


def vector_pack(plan: SegmentPlan, chunk: int, rows: torch.Tensor, *tensors: torch.Tensor) -> int:
    """Elements per 16-byte access that every chunk start, block and row may assume, else 1.

    Vector loads need each tensor's base address 16-byte aligned, and every element offset the
    kernels form (chunk starts = plan offsets + multiples of ``chunk``, row starts = multiples of
    the row stride) a multiple of the pack of the narrowest dtype involved.
    """
    size = rows.element_size()
    if rows.data_ptr() % VECTOR_BYTES:
        return 1
    for t in tensors:
        if t.numel():  # an empty buffer (momentum no group uses) is never read
            if t.data_ptr() % VECTOR_BYTES:
                return 1
            size = min(size, t.element_size())
    pack = VECTOR_BYTES // size
    aligned = plan.align % pack == 0 and chunk % pack == 0 and rows.stride(0) % pack == 0
    return pack if aligned else 1
