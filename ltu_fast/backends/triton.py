"""Triton backend: the portable GPU path (kernels in ``ltu_fast.kernels``).

Same chunk layout as the CUDA backend (one program per chunk, two-stage Gram without atomics).
With ``TRITON_INTERPRET=1`` set before Triton is imported, it also runs on CPU tensors, which is
how CI tests it without a GPU.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.util
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType, SimpleNamespace

import torch

from ..aggregators import SOLVER_KINDS, SPEC_INTS
from ..plan import SegmentPlan
from ..rules import UpdateRule
from . import reference
from .base import MAX_BUFFERS, check_solver_state, combine_out, solve_buffers
from .layout import check_axpy, kernel_plan, vector_pack

name = "triton"
CHUNK = 1 << 15  # elements per program (tests lower it to exercise many chunks on small sizes)
BLOCK = 1024  # elements per loop iteration inside a program
REDUCE_BLOCK = 64  # chunk partials per iteration of the per-segment reduction
AXPY_BLOCK = 4096
GRAM_WIDE_K = 4  # beyond it the Gram's K(K+1)/2 [BLOCK] accumulators halve BLOCK (sm_90: no register spills to K=8)
_ROW_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def _load_kernels():
    """``ltu_fast.kernels``: in a source checkout (``setup.py`` beside ``kernels/``) the repository's
    ``kernels/`` registered under that name, never as top-level ``kernels``, so the kernels always
    match this copy of the package (an editable install elsewhere maps the name to *its* checkout);
    otherwise the installed subpackage."""
    root = Path(__file__).resolve().parents[2]
    source = root / "kernels" / "__init__.py"
    if not (source.exists() and (root / "setup.py").exists()):
        return importlib.import_module("ltu_fast.kernels")
    spec = importlib.util.spec_from_file_location("ltu_fast.kernels", source,
                                                  submodule_search_locations=[str(source.parent)])
    module = importlib.util.module_from_spec(spec)
    sys.modules["ltu_fast.kernels"] = module
    spec.loader.exec_module(module)
    return module


_IMPORT_ERROR = None if importlib.util.find_spec("triton") else "triton is not installed"


@functools.cache
def _kernels() -> SimpleNamespace:
    """The jitted kernels, imported on first use: ``triton.jit`` reads ``TRITON_INTERPRET`` when a
    kernel is defined (and its interpreter must be chosen before triton is first imported), so
    deferring lets a test module set it after this backend was imported."""
    _load_kernels()
    from ltu_fast.kernels import apply, axpy, gram, solve
    return SimpleNamespace(gram_partial=gram.gram_partial_kernel, gram_reduce=gram.gram_reduce_kernel,
                           combine=apply.combine_kernel, apply=apply.apply_kernel, axpy=axpy.axpy_kernel,
                           solve=solve.solve_kernel)


@functools.cache
def _rule_kernels(name: str) -> ModuleType:
    """A rule's Triton math, ``kernels/rules/<name>.py`` (imported on first use, as :func:`_kernels`)."""
    _load_kernels()
    return importlib.import_module(f"ltu_fast.kernels.rules.{name}")


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def availability() -> str | None:
    if _IMPORT_ERROR is not None:
        return _IMPORT_ERROR
    if not torch.cuda.is_available() and not _interpreting():
        return "no CUDA device (set TRITON_INTERPRET=1 before importing triton to run it on CPU)"
    return None


def supports(device: torch.device, row_dtype: torch.dtype, param_dtype: torch.dtype | None) -> bool:
    on_device = device.type == "cuda" or (device.type == "cpu" and _interpreting())
    return on_device and row_dtype in _ROW_DTYPES and (param_dtype is None or param_dtype in _ROW_DTYPES)


def _padded(k: int) -> int:
    return 1 << (k - 1).bit_length()


def _on_device(t: torch.Tensor):
    """Make ``t``'s GPU current for a launch: Triton launches on the current device and stream,
    so rows on ``cuda:1`` under current device 0 would be an illegal access (CPU: interpreter)."""
    return torch.cuda.device(t.device) if t.device.type == "cuda" else contextlib.nullcontext()


def gram(rows: torch.Tensor, plan: SegmentPlan) -> torch.Tensor:
    k = rows.shape[0]
    plan = kernel_plan(rows, plan)
    table = plan.chunk_table(CHUNK)
    if table.num_chunks == 0:  # a rank that owns no shard: nothing to launch (a 0-program grid is an error)
        return reference.gram(rows, plan)
    partial = torch.empty(table.num_chunks, k * k, dtype=torch.float32, device=rows.device)
    stats = torch.empty(plan.num_segments, k, k, dtype=torch.float32, device=rows.device)
    with _on_device(rows):
        _kernels().gram_partial[(table.num_chunks,)](
            rows, rows.stride(0), table.chunks, partial, K=k, BLOCK=BLOCK if k <= GRAM_WIDE_K else BLOCK // 2,
            ALIGN=vector_pack(plan, CHUNK, rows))
        _kernels().gram_reduce[(plan.num_segments,)](partial, table.seg_ptr, table.seg_chunks, stats,
                                                     K=k, KKP=_padded(k * k), BLOCK_C=REDUCE_BLOCK)
    return stats


def combine(rows: torch.Tensor, beta: torch.Tensor, plan: SegmentPlan, out: torch.Tensor | None = None) -> torch.Tensor:
    k = rows.shape[0]
    plan = kernel_plan(rows, plan)
    table = plan.chunk_table(CHUNK)
    out = combine_out(rows, plan, out)
    if table.num_chunks:
        with _on_device(rows):
            _kernels().combine[(table.num_chunks,)](
                rows, rows.stride(0), beta.to(torch.float32).contiguous(), table.chunks, out, K=k, KP=_padded(k),
                BLOCK=BLOCK, ALIGN=vector_pack(plan, CHUNK, rows, out))
    return out


def apply(rule: UpdateRule, rows: torch.Tensor, beta: torch.Tensor, plan: SegmentPlan, param: torch.Tensor,
          buffers: Sequence[torch.Tensor], table: torch.Tensor, found_inf: torch.Tensor) -> None:
    k = rows.shape[0]
    plan = kernel_plan(rows, plan)
    table_chunks = plan.chunk_table(CHUNK)
    if table_chunks.num_chunks == 0:
        return
    present = [i < len(buffers) and buffers[i].numel() > 0 for i in range(MAX_BUFFERS)]
    pointers = [buffers[i] if there else param for i, there in enumerate(present)]  # an absent one is never read
    with _on_device(rows):
        _kernels().apply[(table_chunks.num_chunks,)](
            rows, rows.stride(0), beta.to(torch.float32).contiguous(), table_chunks.chunks, param, *pointers,
            table.to(torch.float32).contiguous(), found_inf.to(torch.float32), ELEMENT=_rule_kernels(rule.name).element,
            R=len(rule.row_columns), HAS=sum(1 << i for i, there in enumerate(present) if there), K=k, KP=_padded(k),
            BLOCK=BLOCK, ALIGN=vector_pack(plan, CHUNK, rows, param, *buffers))


MAX_SOLVE_K = 4  # K^2 unrolled steps in PCGrad (K^3 ops): larger K compiles for minutes, so it runs in torch
SOLVE_BLOCK_L = 64  # segments per iteration of the single solve program
SOLVE_BLOCK_T = 64  # tensors per iteration of its update-rule epilogue
_KIND_NAMES = {code: name for name, code in SOLVER_KINDS.items()}


@functools.cache
def _aggregator_kernel(kind: int):
    """The ``segment`` function of ``kernels/aggregators/<name>.py`` for a kind: an unknown kind, or one
    without a Triton module, is an error here, before anything is launched."""
    name = _KIND_NAMES.get(kind)
    try:
        module = importlib.import_module(f"ltu_fast.kernels.aggregators.{name}") if name else None
    except ModuleNotFoundError:
        module = None
    if module is None:
        raise ValueError(f"triton backend: no compiled aggregator for kind {kind} ({name or 'unknown'})")
    return module.segment


@functools.lru_cache(maxsize=64)
def _spec_floats(floats: tuple[float, ...], device: torch.device) -> torch.Tensor:
    """The spec's float slots as the float64 tensor the kernel reads (Triton passes Python floats as
    float32), made once per spec and device, so a CUDA graph replays the same address."""
    return torch.tensor(floats, dtype=torch.float64, device=device)


def solve(gram, spec, counter, state, weights, grad_scale, found_inf, skipped, rule=None, tensors=None,
          group_hyper=None, tensor_state=None, touched=None, tensor_rows=None, unscale_gram=False):
    """One single-program launch: coefficients, skip flag and the rule's per-tensor rows (see base.py)."""
    num_segments, k = gram.shape[0], gram.shape[-1]
    kernels = _kernels()  # registers the kernels package its aggregator modules are imported from
    segment = _aggregator_kernel(spec.kind)
    ints, floats = spec.slots()
    check_solver_state(state, num_segments)
    gram, beta, flag = solve_buffers(gram)
    epilogue = {"PREPARE": None, "C": 0, "S": 0, "R": 0}
    if rule is not None:
        epilogue = {"PREPARE": _rule_kernels(rule.name).prepare, "C": len(rule.group_columns),
                    "S": len(rule.tensor_state), "R": len(rule.row_columns)}
    with _on_device(gram):
        kernels.solve[(1,)](
            gram, num_segments, *(ints + [0] * (SPEC_INTS - len(ints))), _spec_floats(tuple(floats), gram.device),
            gram if counter is None else counter, gram if state is None else state,
            gram if weights is None else weights, gram if grad_scale is None else grad_scale,
            gram if found_inf is None else found_inf, beta, flag, gram if skipped is None else skipped,
            gram if tensors is None else tensors, 0 if tensors is None else tensors.shape[0],
            gram if group_hyper is None else group_hyper,
            gram if tensor_state is None or tensor_state.numel() == 0 else tensor_state,
            gram if touched is None else touched, gram if tensor_rows is None else tensor_rows,
            K=k, KP=_padded(k), SEGMENT=segment, HAS_COUNTER=counter is not None, HAS_WEIGHTS=weights is not None,
            HAS_SCALE=grad_scale is not None,
            UNSCALE=unscale_gram and grad_scale is not None, HAS_FOUND_INF=found_inf is not None, HAS_SKIPPED=skipped is not None,
            HAS_TOUCHED=touched is not None, BLOCK_L=SOLVE_BLOCK_L, BLOCK_T=SOLVE_BLOCK_T, **epilogue)
    return beta, flag


def axpy(acc: torch.Tensor, x: torch.Tensor, alpha: float | torch.Tensor) -> None:
    check_axpy(acc, x, alpha)
    n = acc.numel()
    if n == 0:
        return
    on_device = isinstance(alpha, torch.Tensor)
    alpha_t = alpha.to(device=acc.device, dtype=torch.float32).reshape(1) if on_device else acc
    with _on_device(acc):
        _kernels().axpy[(-(-n // AXPY_BLOCK),)](acc, x, alpha_t, 0.0 if on_device else float(alpha), n,
                                                ALPHA_ON_DEVICE=on_device, BLOCK=AXPY_BLOCK)
