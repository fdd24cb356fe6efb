"""``ShardedHarmonizedSGD`` / ``ShardedHarmonizedAdamW``: the fused optimizers on FSDP2 (``fully_shard``)
shards, one tiny all-reduce per step.

Each rank lays out only its local shards. The shard of every parameter occupies FSDP's *padded*
shard size (``ceil(dim0 / W)`` rows), identical on all ranks, so every rank builds the same plan
from the global parameter identities; padding is zero in the parameter, gradient and momentum
buffers and stays zero, so it adds nothing to a Gram matrix. A step is:

    local Gram partials [L, K, K] of the shards -> one all_reduce (sum) -> identical coefficients
    on every rank -> the fused update of the local shards.

FSDP's own shard storage is re-pointed into the optimizer's flat parameter buffer (the update is
in place, zero copies), and each sharded ``.grad`` is a DTensor over a view of the active
objective's row, into which FSDP accumulates after its reduce-scatter. Parameters that FSDP does
not shard (plain tensors, e.g. ``ignored_params``) are replicated: their rows are averaged across
ranks in the step and their Gram partials are counted once (on rank 0).
"""

from __future__ import annotations

import dataclasses

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.tensor import DTensor, Shard
from torch.nn.parallel import DistributedDataParallel

from ..functional import touched_tensors
from ..optim import HarmonizedAdamW, HarmonizedSGD
from ..plan import SegmentPlan
from .runtime import check_consistent, require_process_group

__all__ = ["ShardedHarmonizedAdamW", "ShardedHarmonizedSGD"]


def _fsdp_params(module: nn.Module) -> dict[int, object]:
    """id(sharded parameter) -> FSDP2's FSDPParam, for every ``fully_shard``-ed submodule."""
    from torch.distributed.fsdp import FSDPModule

    found = {}
    for m in module.modules():
        if isinstance(m, FSDPModule):
            param_group = m._get_fsdp_state()._fsdp_param_group  # private FSDP2 API (torch >= 2.6)
            for fp in param_group.fsdp_params if param_group is not None else ():
                found[id(fp.sharded_param)] = fp
    return found


def _as_groups(params) -> list[dict]:
    params = list(params)
    if not params:
        raise ValueError("params: empty parameter list")
    return [dict(g) for g in params] if isinstance(params[0], dict) else [{"params": params}]


class _Sharded:
    """The sharding of a harmonizing optimizer (mixed in before the rule): FSDP's shard storage
    re-pointed into the flat buffers, sharded ``.grad`` DTensors over row views, and the global Gram
    from per-rank partials. The update rule itself runs unchanged on the local shards.

    Args:
        params: ``model.named_parameters()`` (or parameters / param groups) of the FSDP model, in
            the same order on every rank.
        module: the FSDP root module (needed to reach FSDP's shard storage).
        group: the process group FSDP shards over (default: the world).
        **kwargs: as the rule (:class:`~ltu_fast.optim.HarmonizedSGD`, :class:`~ltu_fast.optim.HarmonizedAdamW`).

    Only 1-D meshes with ``Shard(0)`` placements (FSDP2's default) are supported. The result of a
    step equals the unsharded step on the same global gradients up to float32 summation order.
    """

    def __init__(self, params, *, module: nn.Module, group: dist.ProcessGroup | None = None, **kwargs):
        self.rank, self.world_size = require_process_group(group)
        self.group = group
        if any(isinstance(m, DistributedDataParallel) for m in module.modules()):
            raise TypeError("module: contains a DistributedDataParallel wrapper; FSDP and DDP cannot be mixed "
                            "under one optimizer (use HarmonizedSGD + check_ddp for DDP)")
        self._shards: list[tuple[DTensor, nn.Parameter, object]] = []  # (global param, local proxy, FSDPParam)
        self._grad_wrappers: list[list[DTensor]] | None = None
        fsdp = _fsdp_params(module)
        groups = []
        for group_dict in _as_groups(params):
            group_dict["params"] = [self._local(item, fsdp) for item in group_dict["params"]]
            groups.append(group_dict)
        super().__init__(groups, **kwargs)
        self._replicated_index = self._replicated_positions()
        check_consistent({"objectives": self.objectives, "aggregator": repr(self.aggregator),
                          "parameter layout": (self.plan.numels, self.plan.segments, self.plan.groups)}, group)

    # ------------------------------------------------------------------------------ the shards
    def _local(self, item, fsdp: dict[int, object]):
        """The tensor laid out for ``item``: a padded local proxy for a shard, the parameter itself if replicated."""
        name, p = item if isinstance(item, tuple) else (None, item)
        if isinstance(p, DTensor) and p.requires_grad:  # frozen parameters are skipped by the layout
            fp = fsdp.get(id(p))
            if fp is None:
                raise ValueError(f"params: DTensor parameter {name or ''} is not managed by fully_shard under module")
            if p.device_mesh.ndim != 1 or tuple(p.placements) != (Shard(0),):
                raise ValueError(f"params: {name or 'a parameter'} has placements {p.placements} on a "
                                 f"{p.device_mesh.ndim}-D mesh; only 1-D Shard(0) (FSDP2's default) is supported")
            if fp.offload_to_cpu:
                raise NotImplementedError(f"params: {name or 'a parameter'} uses FSDP CPU offload, which re-creates "
                                          "the shard storage the optimizer updates in place")
            if p.device_mesh.size() != self.world_size:
                raise ValueError(f"group: has {self.world_size} ranks but FSDP shards over {p.device_mesh.size()}")
            proxy = nn.Parameter(fp._sharded_param_data.view(fp.padded_sharded_param_size))
            self._shards.append((p, proxy, fp))
            p = proxy
        return (name, p) if name is not None else p

    _defer_zero_grad = False  # .grad of the shards are DTensor wrappers of the rows: keep them pointed
    # autograd reaches FSDP's unsharded parameters, not these proxies: untouched is decided from the
    # all-reduced Gram instead (a tensor all of whose rows are exactly zero), identical on every rank
    _touched_from_hooks = False

    def _build_layout(self) -> None:
        super()._build_layout()
        for p, proxy, fp in self._shards:  # point FSDP's shard storage into the flat parameter buffer
            fp._sharded_param_data = proxy.detach().view(-1)
            p._local_tensor = proxy.detach().narrow(0, 0, p._local_tensor.size(0))
        index = {id(q): i for i, q in enumerate(self._params)}
        self._grad_wrappers = [
            [DTensor.from_local(views[index[id(proxy)]].narrow(0, 0, p._local_tensor.size(0)), p.device_mesh,
                                p.placements, run_check=False, shape=p.shape, stride=p.stride())
             for p, proxy, _ in self._shards]
            for views in self._row_views]
        self._stats_plan = self._owned_plan()
        self._point_grads()

    def _owned_plan(self) -> SegmentPlan:
        """The plan restricted to what this rank owns for statistics: shards always, replicas on rank 0."""
        if self.rank == 0:
            return self.plan
        sharded = {id(proxy) for _, proxy, _ in self._shards}
        keep = [i for i, p in enumerate(self._params) if id(p) in sharded]
        plan = self.plan
        return dataclasses.replace(
            plan, numels=tuple(plan.numels[i] for i in keep), segments=tuple(plan.segments[i] for i in keep),
            groups=tuple(plan.groups[i] for i in keep), offsets=tuple(plan.offsets[i] for i in keep), cache={})

    def _replicated_positions(self) -> torch.Tensor:
        """Flat indices into ``rows.view(-1)`` of every replicated parameter, all objectives."""
        sharded = {id(proxy) for _, proxy, _ in self._shards}
        spans = [torch.arange(o, o + n) for p, o, n in zip(self._params, self.plan.offsets, self.plan.numels)
                 if id(p) not in sharded]
        if not spans:
            return torch.empty(0, dtype=torch.int64)
        one_row = torch.cat(spans)
        rows = torch.arange(len(self.objectives))[:, None] * self.plan.total
        return (rows + one_row).reshape(-1).to(self._rows.device)

    # ------------------------------------------------------------------ gradients of the shards
    def _point_grads(self) -> None:
        super()._point_grads()
        if self._grad_wrappers is not None:
            for (p, _, _), wrapper in zip(self._shards, self._grad_wrappers[self._active]):
                p.grad = wrapper

    def _absorb_foreign_grads(self) -> None:
        """As the base class, for the global DTensor ``.grad`` too (FSDP assigns a fresh one after
        ``model.zero_grad()``)."""
        for (p, _, _), wrapper in zip(self._shards, self._grad_wrappers[self._active]):
            g = p.grad
            if g is wrapper:
                continue
            local = wrapper.to_local()
            if g is None:
                local.zero_()
            else:
                local.copy_(g.to_local() if isinstance(g, DTensor) else g)
            p.grad = wrapper
        super()._absorb_foreign_grads()

    def add_param_group(self, param_group: dict) -> None:
        if self._layout_ready:
            raise NotImplementedError(f"{type(self).__name__}: param groups cannot be added after construction")
        super().add_param_group(param_group)

    # ------------------------------------------------------------------------------- the step
    def _statistics(self, rows: torch.Tensor, plan: SegmentPlan) -> torch.Tensor:
        """Global Gram: replicated rows averaged first, then local partials summed over ranks.

        ``plan`` is the full local layout; the partials use this rank's owned plan instead, so a
        replicated parameter is counted once (on rank 0)."""
        if self._replicated_index.numel():
            flat = rows.view(-1)
            packed = flat.index_select(0, self._replicated_index)
            dist.all_reduce(packed, group=self.group)
            flat.index_copy_(0, self._replicated_index, packed.div_(self.world_size))
        gram = self._backend.gram(rows, self._stats_plan)
        dist.all_reduce(gram, group=self.group)
        if self.skip_untouched:  # read by the solve that follows (see _touched_on_device)
            self._touched.copy_(touched_tensors(gram, plan))
        return gram

    def _touched_on_device(self) -> torch.Tensor | None:
        return self._touched if self.skip_untouched else None


class ShardedHarmonizedSGD(_Sharded, HarmonizedSGD):
    """HarmonizedSGD for a model sharded with ``fully_shard``; the same API and the same step
    (arguments: see :class:`_Sharded`)."""


class ShardedHarmonizedAdamW(_Sharded, HarmonizedAdamW):
    """HarmonizedAdamW for a model sharded with ``fully_shard``; the same API and the same step
    (arguments: see :class:`_Sharded`). Step counts are per tensor and identical on every rank
    (a tensor counts as touched from the all-reduced Gram); FSDP's zero padding stays zero."""
