"""HarmonizedSGD (HarmonizedAdamW, Harmonized) under DDP: one forward/backward per objective, no new code path.

DDP's reducer all-reduces each backward's gradients and writes the average back into
``param.grad``. With ``gradient_as_bucket_view=False`` (the default) it copies into the existing
``.grad`` tensor, which is the optimizer's view of the active objective's row, so the row ends up
averaged in place. With ``gradient_as_bucket_view=True`` DDP replaces ``.grad`` by its bucket view;
the optimizer copies it back into the row when the objective changes or at ``step()``
(``_absorb_foreign_grads``). Either way every rank holds identical rows, computes identical
coefficients and applies an identical update. :func:`check_ddp` catches the set-up mistakes.
"""

from __future__ import annotations

import torch.distributed as dist
from torch import nn
from torch.distributed.tensor import DTensor
from torch.nn.parallel import DistributedDataParallel

from ..optim import HarmonizedOptimizer
from .runtime import check_consistent, require_process_group

__all__ = ["check_ddp", "uses_fsdp"]


def uses_fsdp(module: nn.Module) -> bool:
    """Whether any part of ``module`` is managed by FSDP2 (``fully_shard``) or holds DTensors."""
    from torch.distributed.fsdp import FSDPModule

    return any(isinstance(m, FSDPModule) for m in module.modules()) or any(
        isinstance(p, DTensor) for p in module.parameters())


def check_ddp(model: nn.Module, optimizer: HarmonizedOptimizer, group: dist.ProcessGroup | None = None) -> None:
    """Validate a DDP + harmonizing optimizer set-up once (HarmonizedSGD, HarmonizedAdamW or Harmonized),
    after both are built (collective: call on all ranks).

    Raises if no process group exists, if ``model`` is not DDP-wrapped or mixes DDP with FSDP, if
    the optimizer is the sharded variant or holds parameters DDP does not synchronise, and (on
    every rank) if the ranks disagree on the objectives or the aggregator.
    """
    require_process_group(group)
    from .sharded import _Sharded

    if not isinstance(model, DistributedDataParallel):
        raise TypeError(f"model: expected a DistributedDataParallel module, got {type(model).__name__}")
    if uses_fsdp(model.module):
        raise TypeError("model: DDP wraps a module managed by FSDP (fully_shard / DTensor parameters); "
                        "use FSDP alone with ShardedHarmonizedSGD")
    if isinstance(optimizer, _Sharded):
        raise TypeError(f"optimizer: {type(optimizer).__name__} is for FSDP-sharded models; use HarmonizedSGD, "
                        "HarmonizedAdamW or Harmonized with DDP")
    if not isinstance(optimizer, HarmonizedOptimizer):
        raise TypeError(f"optimizer: expected a HarmonizedSGD, HarmonizedAdamW or Harmonized, got "
                        f"{type(optimizer).__name__}")
    synced = {id(p) for p in model.parameters() if p.requires_grad}
    synced -= {id(p) for n, p in model.module.named_parameters() if n in model.parameters_to_ignore}
    trained = [p for group in optimizer.param_groups for p in group["params"] if p.requires_grad]
    stray = [i for i, p in enumerate(trained) if id(p) not in synced]
    if stray:
        raise ValueError(f"optimizer: parameters {stray} are not synchronised by this DDP model "
                         "(not in it, or in parameters_to_ignore); their gradients would differ across ranks")
    check_consistent({"objectives": optimizer.objectives, "aggregator": repr(optimizer.aggregator)}, group)
