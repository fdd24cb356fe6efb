"""Process-group plumbing shared by the DDP and sharded paths, and the helpers a runner needs.

Everything here is cheap and runs at construction or between steps, never inside ``step()``.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from ..unlearn.api import ArraySplit

__all__ = [
    "DistInfo",
    "check_consistent",
    "init_distributed",
    "is_rank0",
    "rank0_only",
    "require_process_group",
    "shard_batch",
    "shard_split",
]

T = TypeVar("T")


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: global rank, world size, local rank and the device it should use."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device


def init_distributed(backend: str | None = None, timeout_s: float = 300.0) -> DistInfo:
    """Initialise the default process group from ``torchrun``'s environment (idempotent).

    A finite ``timeout_s`` turns a crashed peer into an error on the surviving ranks instead of a
    hang. The backend defaults to nccl when CUDA is available, else gloo.
    """
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group(backend or ("nccl" if device.type == "cuda" else "gloo"),
                                timeout=datetime.timedelta(seconds=timeout_s))
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, device)


def require_process_group(group: dist.ProcessGroup | None = None) -> tuple[int, int]:
    """(rank in ``group``, size of ``group``); a clear error when no process group exists."""
    if not (dist.is_available() and dist.is_initialized()):
        raise RuntimeError("torch.distributed is not initialised: call ltu_fast.distributed.init_distributed() "
                           "(or torch.distributed.init_process_group) in every process first")
    return dist.get_rank(group), dist.get_world_size(group)


def _collective_device(group: dist.ProcessGroup | None) -> torch.device:
    if dist.get_backend(group) == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _digest(value: Any) -> int:
    """A hash that is equal across processes (Python's ``hash`` of a str is salted per process)."""
    return int.from_bytes(hashlib.sha256(repr(value).encode()).digest()[:7], "little")


def check_consistent(fields: dict[str, Any], group: dist.ProcessGroup | None = None) -> None:
    """Raise on every rank if any field differs between ranks (one small all_gather).

    A mismatch (e.g. different objective lists) would otherwise surface as a deadlock or as a
    silent disagreement of the coefficients; all ranks see the same gathered hashes, so all raise.
    """
    _, world = require_process_group(group)
    mine = torch.tensor([_digest(v) for v in fields.values()], dtype=torch.int64, device=_collective_device(group))
    gathered = [torch.empty_like(mine) for _ in range(world)]
    dist.all_gather(gathered, mine, group=group)
    table = torch.stack(gathered).cpu()
    for j, (name, value) in enumerate(fields.items()):
        if (table[:, j] != table[0, j]).any():
            bad = [r for r in range(world) if table[r, j] != table[0, j]]
            raise ValueError(f"{name} differ across ranks (ranks {bad} disagree with rank 0); this rank has {value!r}")


def is_rank0(group: dist.ProcessGroup | None = None) -> bool:
    """True on rank 0, and in a process that runs without torch.distributed."""
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank(group) == 0


def rank0_only(fn: Callable[..., T]) -> Callable[..., T | None]:
    """Decorator: run ``fn`` on rank 0 only (others return None), for writes of results/checkpoints."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return fn(*args, **kwargs) if is_rank0() else None
    return wrapper


def _rank_world(rank: int | None, world_size: int | None) -> tuple[int, int]:
    if rank is None or world_size is None:
        r, w = require_process_group()
        rank, world_size = (r if rank is None else rank), (w if world_size is None else world_size)
    if not 0 <= rank < world_size:
        raise ValueError(f"rank={rank} is not in [0, world_size={world_size})")
    return rank, world_size


def shard_split(split: ArraySplit, rank: int | None = None, world_size: int | None = None) -> ArraySplit:
    """This rank's share of ``split``: samples ``rank, rank + W, ...``, the same count on every rank.

    The ``len(split) % W`` last samples are dropped so all ranks run the same number of steps (an
    extra step on one rank would block the others in a collective).
    """
    rank, world_size = _rank_world(rank, world_size)
    n = len(split) - len(split) % world_size
    if n == 0:
        raise ValueError(f"split: {len(split)} samples cannot be shared by {world_size} ranks")
    return split.subset(torch.arange(rank, n, world_size))


def shard_batch(tensors: Sequence[torch.Tensor], rank: int | None = None,
                world_size: int | None = None) -> list[torch.Tensor]:
    """This rank's contiguous slice of a global batch drawn identically on every rank.

    With equal slices, DDP's gradient average equals the single-process gradient of the mean loss
    on the whole batch, so a distributed run reproduces the single-process run.
    """
    rank, world_size = _rank_world(rank, world_size)
    n = tensors[0].shape[0]
    if n % world_size:
        raise ValueError(f"batch of {n} samples does not split evenly over {world_size} ranks")
    per = n // world_size
    return [t.narrow(0, rank * per, per) for t in tensors]
