"""Functional core: Gram -> coefficients -> one fused pass, without owning an optimizer.

``HarmonizedSGD`` is a thin stateful shell around :func:`sgd_step`; other stacks (a custom
training loop, a meta-learning inner step, DDP/FSDP code) can call these functions directly on
their own flat rows or on per-parameter gradient lists.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from .aggregators import MAX_SOLVER_K, Aggregator, as_weights, make_aggregator
from .backends import Backend, resolve_backend
from .backends.base import HYPER_MOMENTUM
from .plan import TABLE_GROUP, TABLE_SEGMENT, SegmentPlan

__all__ = [
    "StepStats", "adamw_step", "axpy", "coefficients", "harmonize", "harmonize_rows", "harmonized_coefficients",
    "segment_labels", "sgd_step", "solve", "tensor_plan", "touched_tensors",
]

ADAMW_GROUP_COLUMNS = ("lr", "beta1", "beta2", "eps", "weight_decay", "amsgrad", "maximize")


@dataclass
class StepStats:
    """Per-segment statistics of one harmonization, all device tensors (read them when needed)."""

    gram: torch.Tensor  # [L, K, K]
    beta: torch.Tensor  # [L, K] coefficients applied (objective weights and grad scale included)
    found_inf: torch.Tensor  # [1] float, nonzero: a gradient was not finite and the step was skipped

    def cosine(self) -> torch.Tensor:
        """[L, K, K] cosine similarity between objectives per segment (0 where a gradient is zero)."""
        norms = torch.diagonal(self.gram, dim1=1, dim2=2).clamp_min(0).sqrt()
        den = norms[:, :, None] * norms[:, None, :]
        return torch.where(den > 0, self.gram / den.clamp_min(torch.finfo(den.dtype).tiny), torch.zeros_like(den))

    def conflicts(self) -> torch.Tensor:
        """[L] bool: some pair of objectives has a negative inner product in this segment."""
        k = self.gram.shape[1]
        off_diagonal = ~torch.eye(k, dtype=torch.bool, device=self.gram.device)
        return ((self.gram < 0) & off_diagonal).flatten(1).any(1)

    def conflict_rate(self) -> float:
        """Share of segments in conflict (synchronises: call it for logging, not inside the step)."""
        return self.conflicts().float().mean().item()

    @property
    def skipped(self) -> bool:
        """Whether this step was skipped for non-finite gradients (synchronises)."""
        return bool(self.found_inf.item())


def coefficients(
    gram: torch.Tensor,
    aggregator: Aggregator,
    weights: torch.Tensor | None = None,
    grad_scale: torch.Tensor | None = None,
    found_inf: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Coefficients ``beta [L, K]`` and the ``found_inf [1]`` flag, computed on the device.

    Non-finite statistics mean a non-finite gradient somewhere in that segment: the whole step is
    flagged (as GradScaler does). ``grad_scale`` (a loss scale) is divided out of ``beta`` so the
    fused pass unscales for free: every aggregator here is invariant to a common gradient scale.
    An incoming ``found_inf`` (e.g. GradScaler's) is OR-ed in.
    """
    weights, grad_scale, found_inf = _solve_inputs(gram, weights, grad_scale, found_inf)
    beta = aggregator(gram, weights)
    bad = ~(torch.isfinite(gram).all() & torch.isfinite(beta).all())
    if grad_scale is not None:
        beta = beta / grad_scale.to(beta)
    flag = bad.to(torch.float32).reshape(1)
    if found_inf is not None:
        flag = torch.maximum(flag, (found_inf.reshape(1) != 0).to(flag))
    return beta.to(torch.float32) if gram.dtype != torch.float64 else beta, flag


def harmonize_rows(
    rows: torch.Tensor,
    plan: SegmentPlan,
    aggregator: str | Aggregator = "pcgrad",
    weights: Sequence[float] | torch.Tensor | None = None,
    backend: str = "auto",
) -> tuple[torch.Tensor, StepStats]:
    """Combine flat rows ``[K, P]`` laid out by ``plan`` into one harmonized flat gradient ``[P]``."""
    _check_rows(rows, plan)
    agg = make_aggregator(aggregator)
    agg.validate(rows.shape[0])
    impl = resolve_backend(backend, rows.device, rows.dtype)
    stats_plan = plan.to(rows.device)
    gram = impl.gram(rows, stats_plan)
    w = as_weights(weights, rows.shape[0])
    beta, found_inf = coefficients(gram, agg, None if w is None else w.to(rows.device))
    return impl.combine(rows, beta, stats_plan), StepStats(gram, beta, found_inf)


def segment_labels(shapes_count: int, granularity: str | Sequence[int]) -> list[int]:
    """Segment label per tensor for ``"layer"`` / ``"global"`` or an explicit sequence."""
    if isinstance(granularity, str):
        if granularity == "layer":
            return list(range(shapes_count))
        if granularity == "global":
            return [0] * shapes_count
        raise ValueError(f"granularity: {granularity!r} needs parameter names or is unknown; "
                         "use 'layer', 'global', or a sequence of segment ids")
    labels = list(granularity)
    if len(labels) != shapes_count:
        raise ValueError(f"granularity: expected {shapes_count} segment ids, got {len(labels)}")
    return labels


def harmonize(
    grads: Sequence[Sequence[torch.Tensor]],
    aggregator: str | Aggregator = "pcgrad",
    weights: Sequence[float] | torch.Tensor | None = None,
    granularity: str | Sequence[int] = "layer",
    backend: str = "auto",
) -> list[torch.Tensor]:
    """Harmonize per-parameter gradient lists: ``grads[k][i]`` is objective k's gradient of tensor i.

    Returns one combined gradient per tensor. Copies into flat rows once; use
    :func:`harmonize_rows` on rows you already own to avoid the copy.
    """
    if len(grads) == 0:
        raise ValueError("grads: need at least one objective")
    first = list(grads[0])
    if not first:
        raise ValueError("grads[0]: empty gradient list")
    for k, per_objective in enumerate(grads):
        if len(per_objective) != len(first):
            raise ValueError(f"grads[{k}]: expected {len(first)} tensors like grads[0], got {len(per_objective)}")
        for i, (g, ref) in enumerate(zip(per_objective, first)):
            if g.is_sparse:
                raise TypeError(f"grads[{k}][{i}]: sparse gradients are not supported")
            if g.shape != ref.shape or g.dtype != ref.dtype or g.device != ref.device:
                raise ValueError(f"grads[{k}][{i}]: shape/dtype/device {tuple(g.shape)}/{g.dtype}/{g.device} "
                                 f"differs from grads[0][{i}] {tuple(ref.shape)}/{ref.dtype}/{ref.device}")
    dtype, device = first[0].dtype, first[0].device
    plan = SegmentPlan.build([g.numel() for g in first], segment_labels(len(first), granularity),
                             element_size=first[0].element_size(), device=device)
    rows = torch.stack([plan.flatten(list(per_objective), dtype=dtype) for per_objective in grads])
    combined, _ = harmonize_rows(rows, plan, aggregator, weights, backend)
    return [v.clone() for v in plan.views(combined, [g.shape for g in first])]


def solve(
    gram: torch.Tensor,
    aggregator: Aggregator,
    backend: Backend,
    weights: torch.Tensor | None = None,
    grad_scale: torch.Tensor | None = None,
    found_inf: torch.Tensor | None = None,
    *,
    hyper: torch.Tensor | None = None,
    ready: torch.Tensor | None = None,
    ready_before: torch.Tensor | None = None,
    skipped: torch.Tensor | None = None,
    tensors: SegmentPlan | None = None,
    tensor_hyper: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(beta, found_inf)`` from the Gram batch, plus the optimizer's per-step bookkeeping.

    A compiled backend does it all in one call (one single-block kernel on a GPU); the reference,
    a custom aggregator or K beyond the backend's ``SOLVE_MAX_K`` (8; Triton 4) run
    :func:`coefficients` in torch, which defines the semantics.
    With ``ready [G]`` (and ``hyper [G, 6]``, ``ready_before [G]``): ``ready_before`` receives
    ``ready`` as it was (what the update pass must read) and ``ready`` is set for the groups with
    momentum unless the step is skipped. ``skipped [1]`` (int64) counts skipped steps.
    With ``tensors`` (the step's plan) the bookkeeping is per tensor, ``ready`` and ``ready_before``
    ``[T]``: ``tensor_hyper [T, 6]`` (``hyper``'s dtype) receives the rows of
    :func:`_untouched_sgd_hyper` for :func:`touched_tensors`, and ``ready`` advances with them.
    """
    weights, grad_scale, found_inf = _solve_inputs(gram, weights, grad_scale, found_inf)
    spec = aggregator.solver_spec()
    compiled = getattr(backend, "solve", None)
    max_k = getattr(backend, "SOLVE_MAX_K", MAX_SOLVER_K)
    if (compiled is not None and spec is not None and gram.shape[-1] <= max_k and gram.dtype == torch.float32
            and (tensor_hyper is None or tensor_hyper.dtype == torch.float32)):
        per_tensor = {} if tensors is None else {"tensors": tensors.table, "tensor_hyper": tensor_hyper}
        return compiled(gram, spec, aggregator.step_counter(gram.device), _f32(weights), _f32(grad_scale),
                        _f32(found_inf), hyper, ready, ready_before, skipped, **per_tensor)
    beta, flag = coefficients(gram, aggregator, weights, grad_scale, found_inf)
    if tensors is not None:
        ready_before.copy_(ready)
        tensor_hyper.copy_(_untouched_sgd_hyper(hyper.index_select(0, tensors.table[:, TABLE_GROUP]), ready,
                                                touched_tensors(gram, tensors), tensors))
        torch.maximum(ready, tensor_hyper[:, HYPER_MOMENTUM].ne(0) & flag.eq(0), out=ready)
    elif ready is not None:
        ready_before.copy_(ready)
        stepped = (1 - flag.to(ready)) * (hyper[:, HYPER_MOMENTUM] != 0).to(ready)
        torch.maximum(ready, stepped, out=ready)
    if skipped is not None:
        skipped += flag.to(skipped.dtype)
    return beta, flag


def _solve_inputs(gram: torch.Tensor, weights: torch.Tensor | None, grad_scale: torch.Tensor | None,
                  found_inf: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:
    """``weights [K]`` and one-element ``grad_scale`` / ``found_inf`` checked and moved to the Gram's
    device: a compiled solve reads them by address (a CPU tensor is an illegal address on a GPU),
    and torch would broadcast a wrongly shaped one silently."""
    out = []
    for name, t, numel in (("weights", weights, gram.shape[-1]), ("grad_scale", grad_scale, 1),
                           ("found_inf", found_inf, 1)):
        if t is None:
            out.append(None)
            continue
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name}: expected a tensor or None, got {type(t).__name__}")
        if t.numel() != numel or t.dim() > 1 or (name == "weights" and t.dim() != 1):
            wanted = f"[{numel}] (one per objective)" if name == "weights" else "one element"
            raise ValueError(f"{name}: expected shape {wanted}, got {tuple(t.shape)}")
        if t.is_complex() or not (t.is_floating_point() or name == "found_inf"):
            raise TypeError(f"{name}: expected a {'real' if name == 'found_inf' else 'floating point'} dtype, "
                            f"got {t.dtype}")
        out.append(t.to(gram.device))
    return tuple(out)


def _f32(t: torch.Tensor | None) -> torch.Tensor | None:
    """An optional scalar/vector input as the float32 [n] the compiled solvers read."""
    if t is None or (t.dtype == torch.float32 and t.dim() == 1 and t.is_contiguous()):
        return t
    return t.to(torch.float32).reshape(-1).contiguous()


def harmonized_coefficients(
    rows: torch.Tensor,
    plan: SegmentPlan,
    aggregator: Aggregator,
    backend: Backend,
    weights: torch.Tensor | None = None,
    grad_scale: torch.Tensor | None = None,
    found_inf: torch.Tensor | None = None,
    statistics: Callable[[torch.Tensor, SegmentPlan], torch.Tensor] | None = None,
    *,
    hyper: torch.Tensor | None = None,
    ready: torch.Tensor | None = None,
    ready_before: torch.Tensor | None = None,
    skipped: torch.Tensor | None = None,
    tensors: SegmentPlan | None = None,
    tensor_hyper: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pass 1 of every fused step (SGD or any other update rule): ``(gram, beta, found_inf)``.

    The one place where the Gram statistics become coefficients, so every update rule shares it.
    ``statistics(rows, plan) -> [L, K, K]`` replaces ``backend.gram`` where the Gram must see more
    than the local rows (sharded training sums per-rank partials across processes). The keyword
    arguments are the optimizer bookkeeping of :func:`solve`, done in the same kernel.
    """
    gram = backend.gram(rows, plan) if statistics is None else statistics(rows, plan)
    beta, flag = solve(gram, aggregator, backend, weights, grad_scale, found_inf, hyper=hyper, ready=ready,
                       ready_before=ready_before, skipped=skipped, tensors=tensors, tensor_hyper=tensor_hyper)
    return gram, beta, flag


def tensor_plan(plan: SegmentPlan) -> SegmentPlan:
    """The same layout with one hyper-parameter row per tensor (group ``i`` = tensor ``i``), cached.

    Update rules whose per-tensor state differs (torch keeps a step count and a "buffer exists"
    bit per parameter, and skips a parameter without gradient) apply with this plan and a
    ``[T, C]`` table built on the device from the ``[G, C]`` group table."""
    found = plan.cache.get("tensor_plan")
    if found is None:
        t = plan.num_tensors
        found = dataclasses.replace(plan, groups=tuple(range(t)), num_groups=t, cache={})
        plan.cache["tensor_plan"] = found
    return found


def touched_tensors(gram: torch.Tensor, plan: SegmentPlan) -> torch.Tensor:
    """[T] bool: some objective's gradient is nonzero in the tensor's segment (device, no sync).

    The Gram diagonal holds each objective's squared norm per segment, so this costs no pass over
    memory. With one segment per tensor (``granularity="layer"``) it is exactly "some row of this
    tensor is nonzero"; with coarser segments, a tensor counts as touched when its segment is.
    """
    per_segment = torch.diagonal(gram, dim1=1, dim2=2).any(1)  # any(): nonzero, NaN included
    return per_segment.index_select(0, plan.table[:, TABLE_SEGMENT])


def _untouched_sgd_hyper(hyper: torch.Tensor, ready: torch.Tensor, touched: torch.Tensor,
                         plan: SegmentPlan) -> torch.Tensor:
    """Per-tensor SGD rows that leave an untouched tensor exactly as it is, through the same kernel.

    Its combined gradient is exactly zero, so with lr = weight_decay = 0 the parameter is
    ``p - 0 * g = p``; a momentum buffer with history keeps ``1 * buf + 0`` (momentum := 1), one
    without history is not touched at all (momentum := ready = 0, so ``ready`` stays 0 too; a
    group without momentum never has history)."""
    key = ("sgd_idle_momentum", hyper.dtype)
    unit = plan.cache.get(key)
    if unit is None:  # built once per plan: a step dispatches no op for it
        unit = plan.cache[key] = torch.zeros(hyper.shape[1], dtype=hyper.dtype, device=hyper.device)
        unit[HYPER_MOMENTUM] = 1.0
    return torch.where(touched.view(-1, 1), hyper, torch.outer(ready.to(hyper), unit))


def sgd_step(
    rows: torch.Tensor,
    plan: SegmentPlan,
    param: torch.Tensor,
    momentum: torch.Tensor,
    hyper: torch.Tensor,
    ready: torch.Tensor,
    aggregator: Aggregator,
    backend: Backend,
    weights: torch.Tensor | None = None,
    grad_scale: torch.Tensor | None = None,
    found_inf: torch.Tensor | None = None,
    statistics: Callable[[torch.Tensor, SegmentPlan], torch.Tensor] | None = None,
    skipped: torch.Tensor | None = None,
    *,
    check: bool = True,
    skip_untouched: bool = False,
) -> StepStats:
    """One harmonized SGD step on flat buffers: two passes over memory, no host sync.

    ``ready`` marks buffers that hold history; it is set where momentum is on after a step that
    was not skipped, so SGD's "first step copies the gradient" rule survives skipped steps and
    momentum switched on later. It is per group ``[G]`` (updated inside the coefficient solve),
    or per tensor ``[T]`` with ``skip_untouched``: then a tensor no objective touched
    (:func:`touched_tensors`) is left exactly as it is, buffer included, as ``torch.optim.SGD``
    skips ``grad is None`` (the per-tensor rows need the Gram: the solve writes them, see
    :func:`solve`). ``statistics``: see :func:`harmonized_coefficients`; ``skipped [1]`` (int64), if given,
    counts skipped steps. ``plan`` may live on another device (its tables are copied once to
    ``rows``' device and cached). ``check=False`` skips the argument checks, for callers that built
    the buffers and the plan on one device themselves (the optimizers: the checks cost
    microseconds every step).
    """
    if check:
        plan = plan.to(rows.device)
        _check_step_buffers(rows, plan, param, momentum, hyper, ready, per_tensor=skip_untouched)
    ready_before = torch.empty_like(ready)
    tensors = tensor_hyper = None
    if skip_untouched:  # the per-tensor rows need the Gram: the solve writes them
        tensors = plan
        tensor_hyper = torch.empty(plan.num_tensors, hyper.shape[1], dtype=hyper.dtype, device=hyper.device)
    gram, beta, flag = harmonized_coefficients(rows, plan, aggregator, backend, weights, grad_scale, found_inf,
                                               statistics, hyper=hyper, ready=ready, ready_before=ready_before,
                                               skipped=skipped, tensors=tensors, tensor_hyper=tensor_hyper)
    apply_plan, apply_hyper = (tensor_plan(plan), tensor_hyper) if skip_untouched else (plan, hyper)
    backend.sgd_apply(rows, beta, apply_plan, param, momentum, apply_hyper, ready_before, flag)
    return StepStats(gram, beta, flag)


def adamw_table(hyper: torch.Tensor, steps: torch.Tensor, active: torch.Tensor, plan: SegmentPlan,
                dtype: torch.dtype) -> torch.Tensor:
    """The kernel's ``[T, ADAMW_COLUMNS]`` rows from the group table ``[G, ADAMW_GROUP_COLUMNS]``.

    Bias corrections use each tensor's own step count in float64, as torch computes them in
    Python floats; then one cast to the kernel's dtype."""
    h = hyper.to(torch.float64).index_select(0, plan.table[:, TABLE_GROUP])
    lr, beta1, beta2, eps, weight_decay, amsgrad, maximize = h.unbind(1)
    t = steps.to(torch.float64).clamp_min(1)  # an inactive tensor at step 0 gets finite, unused rows
    columns = (lr / (1 - beta1.pow(t)), (1 - beta2.pow(t)).sqrt(), 1 - lr * weight_decay, 1 - beta1, beta2,
               1 - beta2, eps, amsgrad, maximize, active.to(torch.float64))
    return torch.stack(columns, 1).to(dtype)


def adamw_step(
    rows: torch.Tensor,
    plan: SegmentPlan,
    param: torch.Tensor,
    exp_avg: torch.Tensor,
    exp_avg_sq: torch.Tensor,
    max_exp_avg_sq: torch.Tensor,
    hyper: torch.Tensor,
    steps: torch.Tensor,
    aggregator: Aggregator,
    backend: Backend,
    weights: torch.Tensor | None = None,
    grad_scale: torch.Tensor | None = None,
    found_inf: torch.Tensor | None = None,
    statistics: Callable[[torch.Tensor, SegmentPlan], torch.Tensor] | None = None,
    *,
    check: bool = True,
) -> StepStats:
    """One harmonized AdamW step on flat buffers: the Gram pass, then one fused pass; no host sync.

    ``hyper [G, 7]``: columns ``ADAMW_GROUP_COLUMNS`` per param group (float64 keeps torch's
    Python-float bias corrections). ``steps [T]``: each tensor's step count, advanced on the
    device only for tensors some objective touched and only when the step is not skipped, so a
    skipped or untouched step changes no state (as torch skips ``grad is None``).
    ``max_exp_avg_sq`` may be empty when no group uses amsgrad. ``plan`` and ``check``: as
    :func:`sgd_step`.
    """
    if check:
        plan = plan.to(rows.device)
        _check_flat_buffers(rows, plan, {"param": param, "exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq},
                            {"max_exp_avg_sq": max_exp_avg_sq})
        _check_group_table(hyper, rows, plan, len(ADAMW_GROUP_COLUMNS))
        if steps.device != rows.device or tuple(steps.shape) != (plan.num_tensors,):
            raise ValueError(f"steps: expected shape ({plan.num_tensors},) on {rows.device}, got "
                             f"{tuple(steps.shape)} on {steps.device}")
    gram, beta, flag = harmonized_coefficients(rows, plan, aggregator, backend, weights, grad_scale, found_inf,
                                               statistics)
    active = touched_tensors(gram, plan) & (flag == 0)
    steps.add_(active.to(steps.dtype))
    table = adamw_table(hyper, steps, active, plan, torch.float64 if param.dtype == torch.float64 else torch.float32)
    backend.adamw_apply(rows, beta, tensor_plan(plan), param, exp_avg, exp_avg_sq, max_exp_avg_sq, table, flag)
    return StepStats(gram, beta, flag)


def axpy(acc: torch.Tensor, x: torch.Tensor, alpha: float | torch.Tensor = 1.0, backend: str = "auto") -> None:
    """``acc += alpha * x`` on flat buffers (meta-gradient accumulation), in place."""
    if acc.shape != x.shape or acc.device != x.device:
        raise ValueError(f"x: shape/device {tuple(x.shape)}/{x.device} must match acc {tuple(acc.shape)}/{acc.device}")
    resolve_backend(backend, acc.device, x.dtype, acc.dtype).axpy(acc, x, alpha)


def _check_step_buffers(rows: torch.Tensor, plan: SegmentPlan, param: torch.Tensor, momentum: torch.Tensor,
                        hyper: torch.Tensor, ready: torch.Tensor, *, per_tensor: bool = False) -> None:
    """What a compiled kernel would otherwise turn into an illegal memory access."""
    _check_flat_buffers(rows, plan, {"param": param}, {"momentum": momentum})
    groups = _check_group_table(hyper, rows, plan, 6)
    expected = plan.num_tensors if per_tensor else groups  # skip_untouched keeps the history bits per tensor
    if ready.device != rows.device or tuple(ready.shape) != (expected,):
        raise ValueError(f"ready: expected shape ({expected},) on {rows.device}, got {tuple(ready.shape)} on "
                         f"{ready.device}")


def _check_flat_buffers(rows: torch.Tensor, plan: SegmentPlan, required: dict[str, torch.Tensor],
                        optional: dict[str, torch.Tensor]) -> None:
    """``rows [K, P]``, and each buffer a contiguous ``[P]`` on the rows' device (``optional`` ones may be empty)."""
    if rows.dim() != 2 or rows.shape[1] != plan.total:
        raise ValueError(f"rows: expected shape [K, {plan.total}], got {tuple(rows.shape)}")
    for name, t in (*required.items(), *optional.items()):
        numels = (0, plan.total) if name in optional else (plan.total,)
        if t.device != rows.device:
            raise ValueError(f"{name}: on {t.device}, but rows are on {rows.device}")
        if t.dim() != 1 or t.numel() not in numels or (t.numel() and t.stride(0) != 1):
            raise ValueError(f"{name}: expected a contiguous 1-D buffer of {plan.total} elements, "
                             f"got shape {tuple(t.shape)} strides {t.stride()}")


def _check_group_table(hyper: torch.Tensor, rows: torch.Tensor, plan: SegmentPlan, columns: int) -> int:
    """``hyper [>= G, columns]`` on the rows' device; returns its row count."""
    groups = hyper.shape[0] if hyper.dim() == 2 else -1
    if hyper.device != rows.device or groups < plan.num_groups or hyper.shape[1] != columns:
        raise ValueError(f"hyper: expected shape [>= {plan.num_groups}, {columns}] on {rows.device}, "
                         f"got {tuple(hyper.shape)} on {hyper.device}")
    return groups


def _check_rows(rows: torch.Tensor, plan: SegmentPlan) -> None:
    if rows.layout != torch.strided:
        raise TypeError(f"rows: only dense tensors are supported, got layout {rows.layout}")
    if not rows.dtype.is_floating_point:
        raise TypeError(f"rows: expected a floating point dtype, got {rows.dtype}")
    if rows.dim() != 2 or rows.shape[1] != plan.total or rows.shape[0] < 1:
        raise ValueError(f"rows: expected shape [K >= 1, {plan.total}], got {tuple(rows.shape)}")
    if not rows.is_contiguous():
        raise ValueError("rows: must be contiguous")
