"""Distributed training with harmonized gradients: DDP (:func:`check_ddp`), FSDP2
(:class:`ShardedHarmonizedSGD`, :class:`ShardedHarmonizedAdamW`) and the runner's helpers (process
group, data sharding, rank-0 writes).

See ``docs/distributed.md`` for the patterns.
"""

from .ddp import check_ddp, uses_fsdp
from .runtime import (
                      DistInfo,
                      check_consistent,
                      init_distributed,
                      is_rank0,
                      rank0_only,
                      require_process_group,
                      shard_batch,
                      shard_split,
)
from .sharded import ShardedHarmonizedAdamW, ShardedHarmonizedSGD

__all__ = [
                      "DistInfo",
                      "ShardedHarmonizedAdamW",
                      "ShardedHarmonizedSGD",
                      "check_consistent",
                      "check_ddp",
                      "init_distributed",
                      "is_rank0",
                      "rank0_only",
                      "require_process_group",
                      "shard_batch",
                      "shard_split",
                      "uses_fsdp",
]
