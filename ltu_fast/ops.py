"""``torch.library`` custom ops (namespace ``ltu_fast``) over the backend contract.

``torch.compile`` sees each op as one opaque node with a fake (meta) implementation, so a training
step that calls :meth:`HarmonizedSGD.step` compiles without graph breaks in the optimizer math,
and the ops are CUDA-graph capturable (no host sync, torch allocates every temporary).
Each op resolves its backend by the tensors' device at run time (cpu: C++ or reference; cuda:
cuda, triton or reference), honouring a backend name the caller fixed.

Plans are not tensors: an op receives an integer handle from :func:`plan_handle` (a constant
while the plan lives, so compiled graphs specialise on it).
"""

from __future__ import annotations

import itertools
import weakref

import torch

from .aggregators import MAX_SOLVE_K, SolverSpec
from .backends import get_backend, resolve_backend
from .plan import SegmentPlan
from .rules import RULES

__all__ = ["OpBackend", "plan_handle", "through_ops"]

_PLANS: weakref.WeakValueDictionary[int, SegmentPlan] = weakref.WeakValueDictionary()
_NEXT_HANDLE = itertools.count(1)


@torch.compiler.assume_constant_result
def plan_handle(plan: SegmentPlan) -> int:
    """A process-wide integer naming ``plan`` for the ops (assigned once, cached on the plan).

    Run eagerly even while tracing (a constant to the compiler), so registering a plan never
    breaks a graph."""
    handle = plan.cache.get("op_handle")
    if handle is None:
        handle = next(_NEXT_HANDLE)
        plan.cache["op_handle"] = handle
        _PLANS[handle] = plan
    return handle


def _plan(handle: int, device: torch.device) -> SegmentPlan:
    plan = _PLANS.get(handle)
    if plan is None:
        raise RuntimeError(f"ltu_fast ops: plan handle {handle} is unknown (the plan was freed)")
    return plan.to(device)


def _stats_dtype(rows: torch.Tensor) -> torch.dtype:
    return torch.float64 if rows.dtype == torch.float64 else torch.float32


@torch.library.custom_op("ltu_fast::gram", mutates_args=())
def gram(rows: torch.Tensor, plan: int, backend: str) -> torch.Tensor:
    return resolve_backend(backend, rows.device, rows.dtype).gram(rows, _plan(plan, rows.device))


@gram.register_fake
def _(rows, plan, backend):
    k = rows.shape[0]
    return rows.new_empty((_plan(plan, rows.device).num_segments, k, k), dtype=_stats_dtype(rows))


@torch.library.custom_op("ltu_fast::combine", mutates_args=())
def combine(rows: torch.Tensor, beta: torch.Tensor, plan: int, backend: str) -> torch.Tensor:
    return resolve_backend(backend, rows.device, rows.dtype).combine(rows, beta, _plan(plan, rows.device))


@combine.register_fake
def _(rows, beta, plan, backend):
    return rows.new_empty(rows.shape[1:])


@torch.library.custom_op("ltu_fast::combine_into", mutates_args=("out",))
def combine_into(rows: torch.Tensor, beta: torch.Tensor, plan: int, out: torch.Tensor, backend: str) -> None:
    resolve_backend(backend, rows.device, rows.dtype).combine(rows, beta, _plan(plan, rows.device), out)


@combine_into.register_fake
def _(rows, beta, plan, out, backend):
    return None


@torch.library.custom_op("ltu_fast::apply", mutates_args=("param", "buffers"))
def apply(rule: int, rows: torch.Tensor, beta: torch.Tensor, plan: int, param: torch.Tensor,
          buffers: list[torch.Tensor], table: torch.Tensor, found_inf: torch.Tensor, backend: str) -> None:
    impl = resolve_backend(backend, rows.device, rows.dtype, param.dtype)
    impl.apply(RULES[rule], rows, beta, _plan(plan, rows.device), param, buffers, table, found_inf)


@apply.register_fake
def _(rule, rows, beta, plan, param, buffers, table, found_inf, backend):
    return None


@torch.library.custom_op("ltu_fast::axpy", mutates_args=("acc",))
def axpy(acc: torch.Tensor, x: torch.Tensor, alpha: float, alpha_tensor: torch.Tensor | None, backend: str) -> None:
    impl = resolve_backend(backend, acc.device, x.dtype, acc.dtype)
    impl.axpy(acc, x, alpha if alpha_tensor is None else alpha_tensor)


@axpy.register_fake
def _(acc, x, alpha, alpha_tensor, backend):
    return None


@torch.library.custom_op("ltu_fast::solve",
                         mutates_args=("counter", "aggregator_state", "skipped", "tensor_state", "tensor_rows"))
def solve(gram: torch.Tensor, kind: int, ints: list[int], floats: list[float], preference: list[float],
          counter: torch.Tensor | None, aggregator_state: torch.Tensor | None, weights: torch.Tensor | None,
          grad_scale: torch.Tensor | None, found_inf: torch.Tensor | None, skipped: torch.Tensor | None, rule: int,
          tensors: torch.Tensor | None, group_hyper: torch.Tensor | None, tensor_state: torch.Tensor | None,
          touched: torch.Tensor | None, tensor_rows: torch.Tensor | None, unscale_gram: bool,
          backend: str) -> tuple[torch.Tensor, torch.Tensor]:
    impl = resolve_backend(backend, gram.device, torch.float32)
    return impl.solve(gram, SolverSpec(kind, tuple(ints), tuple(floats), tuple(preference)), counter, aggregator_state,
                      weights, grad_scale, found_inf, skipped, None if rule < 0 else RULES[rule], tensors, group_hyper,
                      tensor_state, touched, tensor_rows, unscale_gram)


@solve.register_fake
def _(gram, kind, ints, floats, preference, counter, aggregator_state, weights, grad_scale, found_inf, skipped, rule,
      tensors, group_hyper, tensor_state, touched, tensor_rows, unscale_gram, backend):
    return gram.new_empty(gram.shape[:2], dtype=torch.float32), gram.new_empty((1,), dtype=torch.float32)


class OpBackend:
    """A :class:`~ltu_fast.backends.Backend` that calls through the custom ops (for compiled code)."""

    def __init__(self, backend_name: str):
        self.name = backend_name
        self.MAX_SOLVE_K = getattr(get_backend(backend_name), "MAX_SOLVE_K", MAX_SOLVE_K)
        if not hasattr(get_backend(backend_name), "solve"):
            self.solve = None  # the reference: functional.solve traces the torch aggregators instead

    def availability(self) -> str | None:
        return None

    def supports(self, device, row_dtype, param_dtype) -> bool:
        return True

    def gram(self, rows: torch.Tensor, plan: SegmentPlan) -> torch.Tensor:
        return torch.ops.ltu_fast.gram(rows, plan_handle(plan), self.name)

    def combine(self, rows: torch.Tensor, beta: torch.Tensor, plan: SegmentPlan,
                out: torch.Tensor | None = None) -> torch.Tensor:
        if out is None:
            return torch.ops.ltu_fast.combine(rows, beta, plan_handle(plan), self.name)
        torch.ops.ltu_fast.combine_into(rows, beta, plan_handle(plan), out, self.name)
        return out

    def apply(self, rule, rows, beta, plan, param, buffers, table, found_inf) -> None:
        torch.ops.ltu_fast.apply(rule.code, rows, beta, plan_handle(plan), param, list(buffers), table, found_inf,
                                 self.name)

    def solve(self, gram, spec, counter, state, weights, grad_scale, found_inf, skipped, rule=None, tensors=None,
              group_hyper=None, tensor_state=None, touched=None, tensor_rows=None, unscale_gram=False):
        return torch.ops.ltu_fast.solve(gram, spec.kind, [int(i) for i in spec.ints], [float(f) for f in spec.floats],
                                        [float(p) for p in spec.preference], counter, state, weights, grad_scale,
                                        found_inf, skipped, -1 if rule is None else rule.code, tensors, group_hyper,
                                        tensor_state, touched, tensor_rows, bool(unscale_gram), self.name)

    def axpy(self, acc: torch.Tensor, x: torch.Tensor, alpha: float | torch.Tensor) -> None:
        if isinstance(alpha, torch.Tensor):
            torch.ops.ltu_fast.axpy(acc, x, 0.0, alpha, self.name)
        else:
            torch.ops.ltu_fast.axpy(acc, x, float(alpha), None, self.name)


_OP_BACKENDS: dict[str, OpBackend] = {}


def through_ops(backend) -> OpBackend:
    """The op-calling twin of a resolved backend module (same backend name, so the same kernels)."""
    name = backend.name
    if name not in _OP_BACKENDS:
        _OP_BACKENDS[name] = OpBackend(name)
    return _OP_BACKENDS[name]
