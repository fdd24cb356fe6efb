"""Functional core: Gram -> coefficients -> one fused pass, without owning an optimizer.

The fused optimizers are thin stateful shells around :func:`step` (one update rule of
:mod:`ltu_fast.rules`; :func:`sgd_step` and :func:`adamw_step` name two); other stacks (a custom
training loop, a meta-learning inner step, DDP/FSDP code) can call these functions directly on
their own flat rows or on per-parameter gradient lists.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from .aggregators import MAX_SOLVE_K, Aggregator, as_weights, make_aggregator
from .backends import Backend, resolve_backend
from .plan import TABLE_SEGMENT, SegmentPlan
from .rules import ADAMW, SGD, UpdateRule, prepare_rows

__all__ = [
    "StepStats", "adamw_step", "axpy", "coefficients", "harmonize", "harmonize_rows", "harmonized_coefficients",
    "segment_labels", "sgd_step", "solve", "step", "tensor_plan", "touched_tensors",
]


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
    fused pass unscales for free; an aggregator that is not invariant to a common gradient scale
    (``scale_invariant = False``: absolute thresholds, or weights that shrink as the gradients grow,
    as Nash-MTL's) sees the unscaled Gram ``G / scale^2``.
    An incoming ``found_inf`` (e.g. GradScaler's) is OR-ed in.
    """
    weights, grad_scale, found_inf = _solve_inputs(gram, weights, grad_scale, found_inf)
    seen = gram
    if grad_scale is not None and not aggregator.scale_invariant:
        seen = gram / grad_scale.to(gram).reshape(()) ** 2
    beta = aggregator(seen, weights)
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
    skipped: torch.Tensor | None = None,
    rule: UpdateRule | None = None,
    tensors: SegmentPlan | None = None,
    group_hyper: torch.Tensor | None = None,
    tensor_state: torch.Tensor | None = None,
    touched: torch.Tensor | None = None,
    tensor_rows: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(beta, found_inf)`` from the Gram batch, plus an update rule's per-tensor bookkeeping.

    A compiled backend does it all in one call (one single-block kernel on a GPU); the reference,
    a custom aggregator or K beyond the backend's ``MAX_SOLVE_K`` (8; Triton 4) run
    :func:`coefficients` and the rule's ``prepare`` in torch, which define the semantics.
    ``skipped [1]`` (int64) counts skipped steps. With ``rule`` (its epilogue): for every tensor of
    ``tensors`` (the step's plan), ``active = touched != 0`` (``touched [T]``; None: every tensor)
    and the step not skipped; the rule's ``prepare`` advances ``tensor_state [T, S]`` (float32) where
    active and writes ``tensor_rows [T, R]`` (``active`` first) from ``group_hyper [G, C]``.
    """
    weights, grad_scale, found_inf = _solve_inputs(gram, weights, grad_scale, found_inf)
    spec = aggregator.solver_spec(gram.shape[-1])
    compiled = getattr(backend, "solve", None)
    max_k = getattr(backend, "MAX_SOLVE_K", MAX_SOLVE_K)
    epilogue = {}
    if rule is not None:
        epilogue = {"rule": rule, "tensors": tensors.table, "group_hyper": group_hyper, "tensor_state": tensor_state,
                    "touched": _f32(touched), "tensor_rows": tensor_rows}
    if (compiled is not None and spec is not None and gram.shape[-1] <= max_k and gram.dtype == torch.float32
            and (tensor_rows is None or tensor_rows.dtype == torch.float32)):
        counter, state = aggregator.solver_tensors(gram)
        # as coefficients(): an aggregator that is not scale invariant sees G / grad_scale^2 (in the kernel)
        return compiled(gram, spec, counter, state, _f32(weights), _f32(grad_scale), _f32(found_inf), skipped,
                        **epilogue, unscale_gram=grad_scale is not None and not aggregator.scale_invariant)
    beta, flag = coefficients(gram, aggregator, weights, grad_scale, found_inf)
    if rule is not None:
        active = flag.eq(0).expand(tensors.num_tensors)
        if touched is not None:
            active = active & touched.ne(0)
        tensor_rows.copy_(prepare_rows(rule, group_hyper, tensor_state, tensors, active, tensor_rows.dtype))
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
    **bookkeeping,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pass 1 of every fused step (any update rule, or the wrapper's combine): ``(gram, beta, found_inf)``.

    The one place where the Gram statistics become coefficients, so every update rule shares it.
    ``statistics(rows, plan) -> [L, K, K]`` replaces ``backend.gram`` where the Gram must see more
    than the local rows (sharded training sums per-rank partials across processes). The keyword
    arguments are the bookkeeping of :func:`solve` (skip count, an update rule's per-tensor rows),
    done in the same kernel.
    """
    gram = backend.gram(rows, plan) if statistics is None else statistics(rows, plan)
    beta, flag = solve(gram, aggregator, backend, weights, grad_scale, found_inf, **bookkeeping)
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


def step(
    rule: UpdateRule,
    rows: torch.Tensor,
    plan: SegmentPlan,
    param: torch.Tensor,
    buffers: Sequence[torch.Tensor],
    group_hyper: torch.Tensor,
    tensor_state: torch.Tensor,
    aggregator: Aggregator,
    backend: Backend,
    weights: torch.Tensor | None = None,
    grad_scale: torch.Tensor | None = None,
    found_inf: torch.Tensor | None = None,
    statistics: Callable[[torch.Tensor, SegmentPlan], torch.Tensor] | None = None,
    skipped: torch.Tensor | None = None,
    touched: torch.Tensor | None = None,
    *,
    check: bool = True,
) -> StepStats:
    """One harmonized step of ``rule`` on flat buffers: the Gram pass, then one fused pass; no host sync.

    ``buffers``: the rule's per-element state, ``rule.buffers`` in order (an optional one may be
    empty). ``group_hyper [G, C]``: ``rule.group_columns`` per param group (float32, or float64
    where the rule computes in float64). ``tensor_state [T, S]`` float32: ``rule.tensor_state`` per
    tensor, advanced on the device only for active tensors. ``touched [T]``: nonzero where some
    objective's backward reached the tensor (as torch's ``grad is not None``); an untouched tensor is
    skipped whole (no weight decay, no state change), as torch skips it; None: every tensor steps.
    A step with a non-finite gradient in any row changes nothing (its flag is in the result).
    ``statistics``: see :func:`harmonized_coefficients`; ``skipped [1]`` (int64), if given, counts
    skipped steps. ``plan`` may live on another device (its tables are copied once to ``rows``'
    device and cached). ``check=False`` skips the argument checks, for callers that built the
    buffers and the plan on one device themselves (the optimizers: the checks cost microseconds).
    """
    if check:
        plan = plan.to(rows.device)
        _check_step(rule, rows, plan, {"param": param, **dict(zip(rule.buffers, buffers))}, group_hyper,
                    ("tensor_state", tensor_state), touched)
    table = torch.empty(plan.num_tensors, len(rule.row_columns), device=rows.device,
                        dtype=torch.float64 if param.dtype == torch.float64 else torch.float32)
    gram, beta, flag = harmonized_coefficients(rows, plan, aggregator, backend, weights, grad_scale, found_inf,
                                               statistics, skipped=skipped, rule=rule, tensors=plan,
                                               group_hyper=group_hyper, tensor_state=tensor_state, touched=touched,
                                               tensor_rows=table)
    backend.apply(rule, rows, beta, tensor_plan(plan), param, buffers, table, flag)
    return StepStats(gram, beta, flag)


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
    touched: torch.Tensor | None = None,
    *,
    check: bool = True,
) -> StepStats:
    """:func:`step` of :data:`~ltu_fast.rules.SGD` (``torch.optim.SGD``'s semantics).

    ``hyper [G, 6]``: the ``SGD.group_columns`` per param group. ``ready [T]`` float32: each tensor's
    momentum buffer holds history (torch's "buffer is not None"), set where momentum is on after a
    step that touched the tensor and was not skipped, so SGD's "first step copies the gradient" rule
    survives skipped steps and momentum switched on later. ``momentum`` may be empty when no group
    uses momentum.
    """
    if check:
        plan = plan.to(rows.device)
        _check_step(SGD, rows, plan, {"param": param, "momentum": momentum}, hyper, ("ready", ready), touched)
    return step(SGD, rows, plan, param, (momentum,), hyper, ready.view(-1, 1), aggregator, backend, weights,
                grad_scale, found_inf, statistics, skipped, touched, check=False)


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
    skipped: torch.Tensor | None = None,
    touched: torch.Tensor | None = None,
    *,
    check: bool = True,
) -> StepStats:
    """:func:`step` of :data:`~ltu_fast.rules.ADAMW` (``torch.optim.AdamW``'s semantics).

    ``hyper [G, 7]``: the ``ADAMW.group_columns`` per param group (float64 keeps torch's Python-float
    bias corrections). ``steps [T]`` float32: each tensor's step count, advanced on the device only
    for active tensors. ``max_exp_avg_sq`` may be empty when no group uses amsgrad.
    """
    if check:
        plan = plan.to(rows.device)
        _check_step(ADAMW, rows, plan, {"param": param, "exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq,
                                        "max_exp_avg_sq": max_exp_avg_sq}, hyper, ("steps", steps), touched)
    return step(ADAMW, rows, plan, param, (exp_avg, exp_avg_sq, max_exp_avg_sq), hyper, steps.view(-1, 1), aggregator,
                backend, weights, grad_scale, found_inf, statistics, skipped, touched, check=False)


def axpy(acc: torch.Tensor, x: torch.Tensor, alpha: float | torch.Tensor = 1.0, backend: str = "auto") -> None:
    """``acc += alpha * x`` on flat buffers (meta-gradient accumulation), in place."""
    if acc.shape != x.shape or acc.device != x.device:
        raise ValueError(f"x: shape/device {tuple(x.shape)}/{x.device} must match acc {tuple(acc.shape)}/{acc.device}")
    resolve_backend(backend, acc.device, x.dtype, acc.dtype).axpy(acc, x, alpha)


def _check_step(rule: UpdateRule, rows: torch.Tensor, plan: SegmentPlan, buffers: dict[str, torch.Tensor],
                hyper: torch.Tensor, state: tuple[str, torch.Tensor], touched: torch.Tensor | None) -> None:
    """What a compiled kernel would otherwise turn into an illegal memory access. ``buffers``: the
    parameter first, then the rule's buffers in order under the caller's names; ``state``: the
    per-tensor state under the caller's name ([T, S], or [T] for a rule with one state column)."""
    names = list(buffers)
    if len(names) != 1 + len(rule.buffers):
        raise ValueError(f"buffers: {rule.name} keeps {rule.buffers}, got {len(names) - 1} buffers")
    optional = {names[1 + rule.buffers.index(b)] for b in rule.optional_buffers}
    _check_flat_buffers(rows, plan, {n: t for n, t in buffers.items() if n not in optional},
                        {n: t for n, t in buffers.items() if n in optional})
    _check_group_table(hyper, rows, plan, len(rule.group_columns))
    name, t = state
    shapes = {(plan.num_tensors, len(rule.tensor_state))} | ({(plan.num_tensors,)} if len(rule.tensor_state) == 1
                                                             else set())
    if t.device != rows.device or tuple(t.shape) not in shapes or t.dtype != torch.float32 or not t.is_contiguous():
        raise ValueError(f"{name}: expected shape {min(shapes, key=len)} (contiguous float32) on {rows.device}, got "
                         f"{tuple(t.shape)} ({t.dtype}) on {t.device}")
    if touched is not None and (touched.device != rows.device or tuple(touched.shape) != (plan.num_tensors,)):
        raise ValueError(f"touched: expected shape ({plan.num_tensors},) on {rows.device}, got "
                         f"{tuple(touched.shape)} on {touched.device}")


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
