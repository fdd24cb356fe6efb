"""A ``torchrun`` entry point: forget/retain training with DDP + HarmonizedSGD, the runner's pattern.

    torchrun --nproc-per-node 2 --master-addr 127.0.0.1 --master-port 29500 \\
        -m ltu_fast.distributed.example --steps 20 --out run.json

init_distributed -> shard each split -> DDP -> HarmonizedSGD -> check_ddp -> per step one
forward/backward per objective, then ``step()`` -> rank 0 alone writes the result.
"""

from __future__ import annotations

import argparse
import json

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ..optim import HarmonizedSGD
from ..unlearn.api import ArraySplit
from .ddp import check_ddp
from .runtime import init_distributed, rank0_only, shard_split


def synthetic_splits(seed: int) -> tuple[ArraySplit, ArraySplit]:
    """Forget and retain splits of a 4-class problem, identical on every rank (same seed)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(512, 16, generator=g)
    y = (x[:, :2] > 0).long() @ torch.tensor([1, 2])
    return ArraySplit(x[:64], y[:64]), ArraySplit(x[64:], y[64:])


@rank0_only
def write_result(path: str, result: dict) -> None:
    with open(path, "w") as f:
        json.dump(result, f, indent=2)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=16, help="per-rank batch size of each objective")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="distributed_example.json")
    args = parser.parse_args(argv)

    info = init_distributed(timeout_s=120)
    forget, retain = (shard_split(s) for s in synthetic_splits(args.seed))
    torch.manual_seed(args.seed)  # DDP broadcasts rank 0's initial weights anyway
    model = DistributedDataParallel(nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4)).to(info.device))
    opt = HarmonizedSGD(model.module.named_parameters(), lr=0.05, momentum=0.9,
                        objectives=("forget", "retain"), aggregator="pcgrad")
    check_ddp(model, opt)
    g = torch.Generator().manual_seed(args.seed + info.rank)  # each rank draws from its own shard
    for _ in range(args.steps):
        opt.zero_grad()
        for name, split, sign in (("forget", forget, -1.0), ("retain", retain, 1.0)):
            x, y = next(split.batches(args.batch, shuffle=True, generator=g, device=info.device))
            with opt.objective(name):
                (sign * F.cross_entropy(model(x), y)).backward()
        opt.step()
    write_result(args.out, {"world_size": info.world_size, "steps": args.steps,
                            "conflict_rate_last_step": opt.conflict_rate()})
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
