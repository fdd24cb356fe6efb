"""C++/OpenMP CPU backend: the ops of :mod:`ltu_fast.backends.base` over the ``ltu_fast._C`` kernels.

The extension takes raw pointers, so this wrapper owns every check (device, dtype, shape,
contiguity) and every allocation (outputs and scratch come from torch). Work is split into
fixed-size chunks of each tensor (:meth:`SegmentPlan.chunk_table`, built once per plan). Each
chunk is reduced by one thread in a fixed order and segments sum their chunks in table order, so
results are bitwise identical for any thread count. Threads follow ``torch.get_num_threads()``.
"""

from __future__ import annotations

import torch

from ..aggregators import SolverSpec
from ..plan import SegmentPlan
from .base import ADAMW_COLUMNS, HYPER_COLUMNS, combine_out

name = "cpu"

# Elements per chunk: large enough to amortise scheduling, small enough to balance 2+ threads
# on layers of ~1e5 elements. Changing it changes the summation order (and so the last bits).
CHUNK_ELEMENTS = 16384

try:
    from .. import _C
except ImportError as error:  # not built: `python setup.py build_ext --inplace` or `pip install .`
    _C, _IMPORT_ERROR = None, error
else:
    _IMPORT_ERROR = None

_ROW_DTYPES = {torch.float32: 0, torch.bfloat16: 1, torch.float16: 2}


def availability() -> str | None:
    if _C is None:
        return f"the C++ extension ltu_fast._C is not built ({_IMPORT_ERROR})"
    return None


def supports(device: torch.device, row_dtype: torch.dtype, param_dtype: torch.dtype | None) -> bool:
    return (torch.device(device).type == "cpu" and row_dtype in _ROW_DTYPES
            and param_dtype in (None, torch.float32))


def _check_cpu(arg: str, t: torch.Tensor) -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{arg}: expected a tensor, got {type(t).__name__}")
    if t.device.type != "cpu":
        raise ValueError(f"{arg}: the cpu backend needs CPU tensors, got device {t.device}")
    if t.layout != torch.strided:
        raise TypeError(f"{arg}: only dense tensors are supported, got layout {t.layout}")
    if not t.is_contiguous():
        raise ValueError(f"{arg}: must be contiguous")


def _check(arg: str, t: torch.Tensor, shape: tuple[int, ...], dtypes: tuple[torch.dtype, ...]) -> None:
    _check_cpu(arg, t)
    if t.dtype not in dtypes:
        raise TypeError(f"{arg}: expected dtype {' or '.join(map(str, dtypes))}, got {t.dtype}")
    if tuple(t.shape) != shape:
        raise ValueError(f"{arg}: expected shape {shape}, got {tuple(t.shape)}")


def _check_rows(rows: torch.Tensor, plan: SegmentPlan) -> None:
    _check_cpu("rows", rows)
    if rows.dtype not in _ROW_DTYPES:
        raise TypeError(f"rows: expected dtype float32, bfloat16 or float16, got {rows.dtype}")
    if rows.dim() != 2 or rows.shape[0] < 1 or rows.shape[1] != plan.total:
        raise ValueError(f"rows: expected shape [K >= 1, {plan.total}], got {tuple(rows.shape)}")


def _check_beta(beta: torch.Tensor, rows: torch.Tensor, plan: SegmentPlan) -> None:
    _check("beta", beta, (plan.num_segments, rows.shape[0]), (torch.float32,))


def _available() -> None:
    if _C is None:
        raise RuntimeError(availability())


def gram(rows: torch.Tensor, plan: SegmentPlan) -> torch.Tensor:
    _available()
    _check_rows(rows, plan)
    k = rows.shape[0]
    tables = plan.chunk_table(CHUNK_ELEMENTS)
    partials = torch.empty(tables.num_chunks * (k * (k + 1) // 2), dtype=torch.float64)
    stats = torch.empty(plan.num_segments, k, k, dtype=torch.float32)
    _C.gram(rows.data_ptr(), _ROW_DTYPES[rows.dtype], k, rows.shape[1], tables.chunks.data_ptr(), tables.num_chunks,
            tables.seg_ptr.data_ptr(), tables.seg_chunks.data_ptr(), plan.num_segments,
            partials.data_ptr(), stats.data_ptr(), torch.get_num_threads())
    return stats


def combine(rows: torch.Tensor, beta: torch.Tensor, plan: SegmentPlan, out: torch.Tensor | None = None) -> torch.Tensor:
    _available()
    _check_rows(rows, plan)
    _check_beta(beta, rows, plan)
    tables = plan.chunk_table(CHUNK_ELEMENTS)
    out = combine_out(rows, plan, out)
    _C.combine(rows.data_ptr(), _ROW_DTYPES[rows.dtype], rows.shape[0], rows.shape[1], tables.chunks.data_ptr(),
               tables.num_chunks, beta.data_ptr(), out.data_ptr(), torch.get_num_threads())
    return out


def sgd_apply(
    rows: torch.Tensor,
    beta: torch.Tensor,
    plan: SegmentPlan,
    param: torch.Tensor,
    momentum: torch.Tensor,
    hyper: torch.Tensor,
    ready: torch.Tensor,
    found_inf: torch.Tensor,
) -> None:
    _available()
    _check_rows(rows, plan)
    _check_beta(beta, rows, plan)
    _check("param", param, (plan.total,), (torch.float32,))
    if momentum.numel():
        _check("momentum", momentum, (plan.total,), (torch.float32,))
    else:
        _check_cpu("momentum", momentum)
    _check("hyper", hyper, (plan.num_groups, len(HYPER_COLUMNS)), (torch.float32,))
    _check("ready", ready, (plan.num_groups,), (torch.float32,))
    _check("found_inf", found_inf, (1,), (torch.float32,))
    tables = plan.chunk_table(CHUNK_ELEMENTS)
    _C.sgd_apply(rows.data_ptr(), _ROW_DTYPES[rows.dtype], rows.shape[0], rows.shape[1], tables.chunks.data_ptr(),
                 tables.num_chunks, beta.data_ptr(), param.data_ptr(), momentum.data_ptr() if momentum.numel() else 0,
                 hyper.data_ptr(), ready.data_ptr(), found_inf.data_ptr(), torch.get_num_threads())


def _address(arg: str, t: torch.Tensor | None, shape: tuple[int, ...], dtype: torch.dtype) -> int:
    """An optional tensor's address for the kernels (0: absent), after the usual checks."""
    if t is None:
        return 0
    _check(arg, t, shape, (dtype,))
    return t.data_ptr()


def solve(gram: torch.Tensor, spec: SolverSpec, counter: torch.Tensor | None, weights: torch.Tensor | None,
          grad_scale: torch.Tensor | None, found_inf: torch.Tensor | None, hyper: torch.Tensor | None,
          ready: torch.Tensor | None, ready_before: torch.Tensor | None,
          skipped: torch.Tensor | None, tensors: torch.Tensor | None = None,
          tensor_hyper: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    _available()
    _check_cpu("gram", gram)
    num_segments, k = gram.shape[0], gram.shape[-1]
    _check("gram", gram, (num_segments, k, k), (torch.float32,))
    num_groups = num_ready = 0 if ready is None else ready.shape[0]
    per_tensor = {}
    if tensors is not None:  # ready is per tensor; the group table keeps its own rows
        num_groups = hyper.shape[0]
        per_tensor = {"tensors": _address("tensors", tensors, (num_ready, 4), torch.int64), "num_tensors": num_ready,
                      "tensor_hyper": _address("tensor_hyper", tensor_hyper, (num_ready, len(HYPER_COLUMNS)),
                                               torch.float32)}
    beta = torch.empty(num_segments, k, dtype=torch.float32)
    flag = torch.empty(1, dtype=torch.float32)
    _C.solve(gram.data_ptr(), num_segments, k, spec.kind, spec.protect, spec.iterations, spec.random_order,
             spec.seed, _address("counter", counter, (1,), torch.int64), _address("weights", weights, (k,), torch.float32),
             _address("grad_scale", grad_scale, (1,), torch.float32),
             _address("found_inf", found_inf, (1,), torch.float32), beta.data_ptr(), flag.data_ptr(),
             _address("hyper", hyper, (num_groups, len(HYPER_COLUMNS)), torch.float32) if ready is not None else 0,
             num_groups, _address("ready", ready, (num_ready,), torch.float32),
             _address("ready_before", ready_before, (num_ready,), torch.float32) if ready is not None else 0,
             _address("skipped", skipped, (1,), torch.int64), **per_tensor)
    return beta, flag

def adamw_apply(rows, beta, plan, param, exp_avg, exp_avg_sq, max_exp_avg_sq, hyper, found_inf) -> None:
    _available()
    _check_rows(rows, plan)
    _check_beta(beta, rows, plan)
    for arg, t in (("param", param), ("exp_avg", exp_avg), ("exp_avg_sq", exp_avg_sq)):
        _check(arg, t, (plan.total,), (torch.float32,))
    if max_exp_avg_sq.numel():
        _check("max_exp_avg_sq", max_exp_avg_sq, (plan.total,), (torch.float32,))
    _check("hyper", hyper, (plan.num_groups, len(ADAMW_COLUMNS)), (torch.float32,))
    _check("found_inf", found_inf, (1,), (torch.float32,))
    tables = plan.chunk_table(CHUNK_ELEMENTS)
    _C.adamw_apply(rows.data_ptr(), _ROW_DTYPES[rows.dtype], rows.shape[0], rows.shape[1], tables.chunks.data_ptr(),
                   tables.num_chunks, beta.data_ptr(), param.data_ptr(), exp_avg.data_ptr(), exp_avg_sq.data_ptr(),
                   max_exp_avg_sq.data_ptr() if max_exp_avg_sq.numel() else 0, hyper.data_ptr(),
                   found_inf.data_ptr(), torch.get_num_threads())


def axpy(acc: torch.Tensor, x: torch.Tensor, alpha: float | torch.Tensor) -> None:
    _available()
    _check("acc", acc, tuple(acc.shape), (torch.float32,))
    _check("x", x, tuple(acc.shape), tuple(_ROW_DTYPES))
    alpha_address, alpha_value = 0, 0.0
    if isinstance(alpha, torch.Tensor):
        if alpha.numel() != 1 or alpha.device.type != "cpu":
            raise ValueError(f"alpha: expected a 0-dim CPU tensor, got shape {tuple(alpha.shape)} on {alpha.device}")
        alpha = alpha.detach().to(torch.float32).contiguous()  # a local: alive until the call returns
        alpha_address = alpha.data_ptr()
    elif isinstance(alpha, (int, float)) and not isinstance(alpha, bool):
        alpha_value = float(alpha)
    else:
        raise TypeError(f"alpha: expected a float or a 0-dim tensor, got {type(alpha).__name__}")
    _C.axpy(acc.data_ptr(), x.data_ptr(), _ROW_DTYPES[x.dtype], acc.numel(), alpha_address, alpha_value,
            torch.get_num_threads())
