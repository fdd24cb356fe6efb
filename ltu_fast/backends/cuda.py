"""CUDA C++ backend: thin wrapper over ``ltu_fast._C_cuda`` (raw pointers, torch owns memory).

Each tensor of a plan is cut into chunks of at most ``CHUNK`` elements
(:meth:`SegmentPlan.chunk_table`); one block handles one chunk, so a launch covers every tensor.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch

from ..plan import SegmentPlan
from ..rules import UpdateRule
from . import reference
from .base import DTYPE_CODES, buffer_addresses, check_solver_state, combine_out, solve_buffers
from .layout import check_axpy, kernel_plan, vector_pack

name = "cuda"
CHUNK = 1 << 15  # elements per block: 16 iterations of 512 threads x 4 fp32
MAX_CHUNK_K = 4  # the chunk kernels are instantiated for K = 1..4; larger K runs the reference on the device

try:
    from .. import _C_cuda
except ImportError as exc:  # not built (no nvcc at build time, or LTU_FAST_CUDA=0)
    _C_cuda = None
    _IMPORT_ERROR = f"ltu_fast._C_cuda is not built ({exc}); rebuild with nvcc on PATH and LTU_FAST_CUDA=1"


def availability() -> str | None:
    if _C_cuda is None:
        return _IMPORT_ERROR
    if not torch.cuda.is_available():
        return "no CUDA device is visible to torch (torch.cuda.is_available() is False)"
    return _version_problem()


@functools.cache
def _version_problem() -> str | None:
    """Checked once per process, on first use (the import stays free of CUDA calls)."""
    return version_problem(*_C_cuda.versions())


def _release(version: int) -> str:
    return f"{version // 1000}.{version % 1000 // 10}"


def version_problem(driver: int, runtime: int) -> str | None:
    """Why a module with CUDA runtime ``runtime`` statically linked cannot run on ``driver``
    (versions as 1000 * major + 10 * minor), or None.

    Within one major release a newer runtime runs on an older driver (CUDA minor-version
    compatibility; the module ships sm_80/sm_90 machine code, so A100/H100 need no PTX JIT); across
    a major release it does not: a CUDA 13 build beside a CUDA 12 torch on a CUDA 12 driver.
    """
    if driver <= 0:
        return "no CUDA driver is installed (cudaDriverGetVersion reports none)"
    if driver // 1000 < runtime // 1000:
        return (f"the CUDA driver ({_release(driver)}) is older than the CUDA {_release(runtime)} runtime "
                f"ltu_fast._C_cuda was built with; update the driver, or rebuild with the toolkit matching "
                f"torch.version.cuda ({torch.version.cuda}) first on PATH or in CUDACXX; triton is used meanwhile")
    return None


def supports(device: torch.device, row_dtype: torch.dtype, param_dtype: torch.dtype | None) -> bool:
    return (device.type == "cuda" and row_dtype in DTYPE_CODES
            and (param_dtype is None or param_dtype == torch.float32))


def _common(rows: torch.Tensor, plan: SegmentPlan) -> dict:
    table = plan.chunk_table(CHUNK)
    return {"rows": rows.data_ptr(), "row_dtype": DTYPE_CODES[rows.dtype], "k": rows.shape[0],
            "row_stride": rows.stride(0), "chunks": table.chunks.data_ptr(), "num_chunks": table.num_chunks,
            "device": rows.device.index if rows.device.index is not None else torch.cuda.current_device(),
            "stream": torch.cuda.current_stream(rows.device).cuda_stream}


def gram(rows: torch.Tensor, plan: SegmentPlan) -> torch.Tensor:
    k = rows.shape[0]
    plan = kernel_plan(rows, plan)
    table = plan.chunk_table(CHUNK)
    if k > MAX_CHUNK_K or table.num_chunks == 0:  # no chunks: a rank that owns no shard (a 0-block grid is an error)
        return reference.gram(rows, plan)
    partial = torch.empty(table.num_chunks, k * (k + 1) // 2, dtype=torch.float32, device=rows.device)
    stats = torch.empty(plan.num_segments, k, k, dtype=torch.float32, device=rows.device)
    _C_cuda.gram(**_common(rows, plan), vec=vector_pack(plan, CHUNK, rows) > 1, seg_ptr=table.seg_ptr.data_ptr(),
                 seg_chunks=table.seg_chunks.data_ptr(), num_segments=plan.num_segments,
                 partial=partial.data_ptr(), stats=stats.data_ptr())
    return stats


def combine(rows: torch.Tensor, beta: torch.Tensor, plan: SegmentPlan, out: torch.Tensor | None = None) -> torch.Tensor:
    plan = kernel_plan(rows, plan)
    if rows.shape[0] > MAX_CHUNK_K or plan.chunk_table(CHUNK).num_chunks == 0:
        return reference.combine(rows, beta, plan, out)
    beta = beta.to(torch.float32).contiguous()
    out = combine_out(rows, plan, out)
    _C_cuda.combine(**_common(rows, plan), vec=vector_pack(plan, CHUNK, rows, out) > 1,
                    beta=beta.data_ptr(), out=out.data_ptr())
    return out


def apply(rule: UpdateRule, rows: torch.Tensor, beta: torch.Tensor, plan: SegmentPlan, param: torch.Tensor,
          buffers: Sequence[torch.Tensor], table: torch.Tensor, found_inf: torch.Tensor) -> None:
    plan = kernel_plan(rows, plan)
    if rows.shape[0] > MAX_CHUNK_K or plan.chunk_table(CHUNK).num_chunks == 0:
        return reference.apply(rule, rows, beta, plan, param, buffers, table, found_inf)
    beta = beta.to(torch.float32).contiguous()
    table = table.to(torch.float32).contiguous()
    found_inf = found_inf.to(torch.float32)
    _C_cuda.apply(rule=rule.code, **_common(rows, plan), vec=vector_pack(plan, CHUNK, rows, param, *buffers) > 1,
                  beta=beta.data_ptr(), param=param.data_ptr(),
                  **dict(zip(("buffer0", "buffer1", "buffer2"), buffer_addresses(buffers))), table=table.data_ptr(),
                  found_inf=found_inf.data_ptr())


def _address(t: torch.Tensor | None) -> int:
    return 0 if t is None else t.data_ptr()


def solve(gram, spec, counter, state, weights, grad_scale, found_inf, skipped, rule=None, tensors=None,
          group_hyper=None, tensor_state=None, touched=None, tensor_rows=None, unscale_gram=False):
    """One single-block kernel: coefficients, skip flag and the rule's per-tensor rows (see base.py)."""
    num_segments, k = gram.shape[0], gram.shape[-1]
    gram, beta, flag = solve_buffers(gram)
    f64 = group_hyper is not None and group_hyper.dtype == torch.float64
    ints, floats = spec.slots()
    check_solver_state(state, num_segments)
    _C_cuda.solve(gram=gram.data_ptr(), num_segments=num_segments, k=k, kind=spec.kind, ints=ints, floats=floats,
                  counter=_address(counter), aggregator_state=_address(state),
                  state_width=0 if state is None else state.shape[-1], weights=_address(weights), grad_scale=_address(grad_scale), unscale_gram=bool(unscale_gram),
                  found_inf=_address(found_inf), beta=beta.data_ptr(), flag=flag.data_ptr(), skipped=_address(skipped),
                  rule=-1 if rule is None else rule.code, tensors=_address(tensors),
                  num_tensors=0 if tensors is None else tensors.shape[0],
                  group_f32=0 if f64 else _address(group_hyper), group_f64=_address(group_hyper) if f64 else 0,
                  state=_address(tensor_state), touched=_address(touched), rows=_address(tensor_rows),
                  device=gram.device.index if gram.device.index is not None else torch.cuda.current_device(),
                  stream=torch.cuda.current_stream(gram.device).cuda_stream)
    return beta, flag


def axpy(acc: torch.Tensor, x: torch.Tensor, alpha: float | torch.Tensor) -> None:
    check_axpy(acc, x, alpha)
    if acc.dtype not in DTYPE_CODES or x.dtype not in DTYPE_CODES:
        return reference.axpy(acc, x, alpha)
    on_device = isinstance(alpha, torch.Tensor)
    alpha_t = alpha.to(device=acc.device, dtype=torch.float32).reshape(1) if on_device else None
    _C_cuda.axpy(acc=acc.data_ptr(), acc_dtype=DTYPE_CODES[acc.dtype], x=x.data_ptr(),
                 x_dtype=DTYPE_CODES[x.dtype], n=acc.numel(), alpha_ptr=alpha_t.data_ptr() if on_device else 0,
                 alpha=0.0 if on_device else float(alpha),
                 device=acc.device.index if acc.device.index is not None else torch.cuda.current_device(),
                 stream=torch.cuda.current_stream(acc.device).cuda_stream)
