"""C++/OpenMP CPU backend: the ops of :mod:`ltu_fast.backends.base` over the ``ltu_fast._C`` kernels.

The extension takes raw pointers, so this wrapper owns every check (device, dtype, shape,
contiguity) and every allocation (outputs and scratch come from torch). Work is split into
fixed-size chunks of each tensor (:meth:`SegmentPlan.chunk_table`, built once per plan). Each
chunk is reduced by one thread in a fixed order and segments sum their chunks in table order, so
results are bitwise identical for any thread count. Threads follow ``torch.get_num_threads()``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..aggregators import SolverSpec
from ..plan import SegmentPlan
from ..rules import UpdateRule
from .base import DTYPE_CODES, buffer_addresses, check_solver_state, combine_out

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


def availability() -> str | None:
    if _C is None:
        return f"the C++ extension ltu_fast._C is not built ({_IMPORT_ERROR})"
    return None


def supports(device: torch.device, row_dtype: torch.dtype, param_dtype: torch.dtype | None) -> bool:
    return (torch.device(device).type == "cpu" and row_dtype in DTYPE_CODES
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
    if rows.dtype not in DTYPE_CODES:
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
    _C.gram(rows.data_ptr(), DTYPE_CODES[rows.dtype], k, rows.shape[1], tables.chunks.data_ptr(), tables.num_chunks,
            tables.seg_ptr.data_ptr(), tables.seg_chunks.data_ptr(), plan.num_segments,
            partials.data_ptr(), stats.data_ptr(), torch.get_num_threads())
    return stats


def combine(rows: torch.Tensor, beta: torch.Tensor, plan: SegmentPlan, out: torch.Tensor | None = None) -> torch.Tensor:
    _available()
    _check_rows(rows, plan)
    _check_beta(beta, rows, plan)
    tables = plan.chunk_table(CHUNK_ELEMENTS)
    out = combine_out(rows, plan, out)
    _C.combine(rows.data_ptr(), DTYPE_CODES[rows.dtype], rows.shape[0], rows.shape[1], tables.chunks.data_ptr(),
               tables.num_chunks, beta.data_ptr(), out.data_ptr(), torch.get_num_threads())
    return out


def apply(rule: UpdateRule, rows: torch.Tensor, beta: torch.Tensor, plan: SegmentPlan, param: torch.Tensor,
          buffers: Sequence[torch.Tensor], table: torch.Tensor, found_inf: torch.Tensor) -> None:
    _available()
    _check_rows(rows, plan)
    _check_beta(beta, rows, plan)
    _check("param", param, (plan.total,), (torch.float32,))
    if len(buffers) != len(rule.buffers):
        raise ValueError(f"buffers: {rule.name} keeps {rule.buffers}, got {len(buffers)} buffers")
    for name, t in zip(rule.buffers, buffers):
        if t.numel() or name not in rule.optional_buffers:
            _check(name, t, (plan.total,), (torch.float32,))
        else:
            _check_cpu(name, t)
    _check("table", table, (plan.num_groups, len(rule.row_columns)), (torch.float32,))
    _check("found_inf", found_inf, (1,), (torch.float32,))
    tables = plan.chunk_table(CHUNK_ELEMENTS)
    _C.apply(rule.code, rows.data_ptr(), DTYPE_CODES[rows.dtype], rows.shape[0], rows.shape[1],
             tables.chunks.data_ptr(), tables.num_chunks, beta.data_ptr(), param.data_ptr(), *buffer_addresses(buffers),
             table.data_ptr(), found_inf.data_ptr(), torch.get_num_threads())


def _address(arg: str, t: torch.Tensor | None, shape: tuple[int, ...], dtype: torch.dtype) -> int:
    """An optional tensor's address for the kernels (0: absent), after the usual checks."""
    if t is None:
        return 0
    _check(arg, t, shape, (dtype,))
    return t.data_ptr()


def solve(gram: torch.Tensor, spec: SolverSpec, counter: torch.Tensor | None, state: torch.Tensor | None,
          weights: torch.Tensor | None, grad_scale: torch.Tensor | None, found_inf: torch.Tensor | None, skipped: torch.Tensor | None,
          rule: UpdateRule | None = None, tensors: torch.Tensor | None = None, group_hyper: torch.Tensor | None = None,
          tensor_state: torch.Tensor | None = None, touched: torch.Tensor | None = None,
          tensor_rows: torch.Tensor | None = None, unscale_gram: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    _available()
    _check_cpu("gram", gram)
    num_segments, k = gram.shape[0], gram.shape[-1]
    _check("gram", gram, (num_segments, k, k), (torch.float32,))
    epilogue = {"rule": -1, "tensors": 0, "num_tensors": 0, "group_f32": 0, "group_f64": 0, "state": 0,
                "touched": 0, "rows": 0}
    if rule is not None:
        t = tensors.shape[0]
        groups = group_hyper.shape[0] if group_hyper.dim() == 2 else -1
        _check("group_hyper", group_hyper, (groups, len(rule.group_columns)), (torch.float32, torch.float64))
        f64 = group_hyper.dtype == torch.float64
        epilogue = {"rule": rule.code, "tensors": _address("tensors", tensors, (t, 4), torch.int64), "num_tensors": t,
                    "group_f32": 0 if f64 else group_hyper.data_ptr(), "group_f64": group_hyper.data_ptr() if f64 else 0,
                    "state": _address("tensor_state", tensor_state, (t, len(rule.tensor_state)), torch.float32),
                    "touched": _address("touched", touched, (t,), torch.float32),
                    "rows": _address("tensor_rows", tensor_rows, (t, len(rule.row_columns)), torch.float32)}
    beta = torch.empty(num_segments, k, dtype=torch.float32)
    flag = torch.empty(1, dtype=torch.float32)
    ints, floats = spec.slots()
    check_solver_state(state, num_segments)
    width = 0 if state is None else state.shape[-1]
    _C.solve(gram.data_ptr(), num_segments, k, spec.kind, ints, floats, _address("counter", counter, (1,), torch.int64),
             _address("state", state, (num_segments, width), torch.float64), width,
             _address("weights", weights, (k,), torch.float32),
             _address("grad_scale", grad_scale, (1,), torch.float32), bool(unscale_gram),
             _address("found_inf", found_inf, (1,), torch.float32), beta.data_ptr(), flag.data_ptr(),
             _address("skipped", skipped, (1,), torch.int64), **epilogue)
    return beta, flag


def axpy(acc: torch.Tensor, x: torch.Tensor, alpha: float | torch.Tensor) -> None:
    _available()
    _check("acc", acc, tuple(acc.shape), (torch.float32,))
    _check("x", x, tuple(acc.shape), tuple(DTYPE_CODES))
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
    _C.axpy(acc.data_ptr(), x.data_ptr(), DTYPE_CODES[x.dtype], acc.numel(), alpha_address, alpha_value,
            torch.get_num_threads())
