"""One rank of a distributed test: ``python dist_worker.py SCENARIO...`` with RANK/WORLD_SIZE/MASTER_* set.

Launched by tests/test_distributed.py (one process per rank, 127.0.0.1 only). Several scenarios
share one launch (process start-up dominates the cost); each prints ``PASS name`` or
``FAIL name`` and the exit code is non-zero if any failed. An exception that escapes a scenario
(``rank_raises``) ends the process with it.
"""

from __future__ import annotations

import datetime
import os
import sys
import time
import traceback
from contextlib import nullcontext

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.distributed.fsdp import fully_shard
from torch.nn.parallel import DistributedDataParallel as DDP

from ltu_fast import HarmonizedAdamW, HarmonizedSGD
from ltu_fast.distributed import ShardedHarmonizedAdamW, ShardedHarmonizedSGD, check_ddp, shard_batch

STEPS = 4
OPTIONS = {"lr": 0.1, "momentum": 0.9, "weight_decay": 1e-3, "objectives": ("forget", "retain"), "aggregator": "pcgrad"}


class TwoHeads(nn.Module):
    """A body shared by both objectives and one head each: each objective leaves a head unused."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(7, 5)
        self.head = nn.ModuleDict({"forget": nn.Linear(5, 3), "retain": nn.Linear(5, 3)})

    def forward(self, x: torch.Tensor, which: str) -> torch.Tensor:
        return self.head[which](torch.tanh(self.body(x)))


class Tower(nn.Module):
    """Uneven shards over 2 ranks (5, 3 and 1 rows: the last leaves rank 1 an empty shard) plus
    ``scale``, a parameter FSDP is told not to shard."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(7, 5), nn.Tanh(), nn.Linear(5, 3), nn.Tanh(), nn.Linear(3, 1))
        self.scale = nn.Parameter(torch.tensor([1.5]))

    def forward(self, x: torch.Tensor, which: str = "") -> torch.Tensor:
        return self.layers(x).squeeze(-1) * self.scale


def batches(step: int, classes: bool) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """The global batches of one step, drawn identically on every rank."""
    g = torch.Generator().manual_seed(100 + step)
    out = {}
    for name in OPTIONS["objectives"]:
        x = torch.randn(8, 7, generator=g)
        y = torch.randint(0, 3, (8,), generator=g) if classes else torch.randn(8, generator=g)
        out[name] = (x, y)
    return out


def loss_of(model: nn.Module, name: str, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    out = model(x, name)
    loss = F.cross_entropy(out, y) if out.dim() == 2 else F.mse_loss(out, y)
    return -loss if name == "forget" else loss  # ascent on the forget set: conflicts with retain


def train(model: nn.Module, opt: HarmonizedSGD, classes: bool, shard: bool, micro: int = 1) -> None:
    """STEPS steps; each objective's batch in ``micro`` micro-batches, all but the last under DDP's no_sync."""
    for step in range(STEPS):
        opt.zero_grad()
        for name, (x, y) in batches(step, classes).items():
            if shard:
                x, y = shard_batch([x, y])
            with opt.objective(name):
                for i, (xs, ys) in enumerate(zip(x.chunk(micro), y.chunk(micro))):
                    with nullcontext() if i == micro - 1 else model.no_sync():
                        (loss_of(model, name, xs, ys) / micro).backward()
        opt.step()


def reference(factory, classes: bool, rule=HarmonizedSGD, **options) -> dict[str, torch.Tensor]:
    """Single-process run on the union of the ranks' batches."""
    torch.manual_seed(0)
    model = factory()
    train(model, rule(model.named_parameters(), **options), classes, shard=False)
    return dict(model.named_parameters())


def assert_close(name: str, got: torch.Tensor, want: torch.Tensor) -> None:
    if not torch.allclose(got, want, rtol=1e-5, atol=1e-6):
        raise AssertionError(f"{name}: max |diff| {(got - want).abs().max().item():.3g}\n{got}\n{want}")


def assert_projected(opt: HarmonizedSGD) -> None:
    """The parity checks mean something only if PCGrad actually projected in some segment."""
    if not opt.last_stats.conflicts().any():
        raise AssertionError("no segment had conflicting gradients: the test exercises no projection")


def assert_same_on_all_ranks(flat: torch.Tensor) -> None:
    gathered = [torch.empty_like(flat) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, flat)
    if not all(torch.equal(g, gathered[0]) for g in gathered):
        raise AssertionError("parameters differ across ranks")


DDP_VARIANTS = ({"bucket_view": False, "optimizer_first": False, "micro": 1},
                {"bucket_view": True, "optimizer_first": False, "micro": 1},
                {"bucket_view": False, "optimizer_first": True, "micro": 2})


def ddp_parity() -> None:
    want = reference(TwoHeads, classes=True, **OPTIONS)
    for variant in DDP_VARIANTS:
        torch.manual_seed(dist.get_rank())  # rank 1 starts elsewhere: DDP broadcasts rank 0's (seed 0) weights
        net = TwoHeads()
        if variant["optimizer_first"]:  # DDP's broadcast then writes into the optimizer's flat buffer
            opt = HarmonizedSGD(net.named_parameters(), **OPTIONS)
        model = DDP(net, find_unused_parameters=True, gradient_as_bucket_view=variant["bucket_view"])
        if not variant["optimizer_first"]:
            opt = HarmonizedSGD(model.module.named_parameters(), **OPTIONS)
        check_ddp(model, opt)
        train(model, opt, classes=True, shard=True, micro=variant["micro"])
        for name, p in model.module.named_parameters():
            assert_close(f"ddp{variant} {name}", p.detach(), want[name].detach())
        assert_projected(opt)
        assert_same_on_all_ranks(opt.flat_params)


def fsdp_model() -> nn.Module:
    torch.manual_seed(0)
    model = Tower()
    for layer in model.layers:
        if isinstance(layer, nn.Linear):
            fully_shard(layer)
    fully_shard(model, ignored_params={model.scale})
    return model


def fsdp_parity() -> None:
    for granularity in ("layer", "module"):  # "module": segments span a weight and a bias shard
        want = reference(Tower, classes=False, granularity=granularity, **OPTIONS)
        model = fsdp_model()
        opt = ShardedHarmonizedSGD(model.named_parameters(), module=model, granularity=granularity, **OPTIONS)
        if dist.get_rank() == 1 and model.layers[4].weight.to_local().numel() != 0:
            raise AssertionError("the test model should leave rank 1 an empty shard")
        train(model, opt, classes=False, shard=True)
        for name, p in model.named_parameters():
            full = p.full_tensor() if hasattr(p, "full_tensor") else p
            assert_close(f"fsdp({granularity}) {name}", full.detach(), want[name].detach())
        assert_projected(opt)
        assert_same_on_all_ranks(opt.last_stats.beta)


# ``scale`` shares the last layer's segment: alone, PCGrad would leave the one-element parameter a
# combined gradient of pure rounding noise (two opposite scalars project to ~1e-9), which Adam
# normalises into full-size steps that differ between any two summation orders (SGD scales the
# noise by lr and never shows it).
ADAMW_OPTIONS = {"lr": 0.01, "weight_decay": 1e-2, "amsgrad": True, "objectives": ("forget", "retain"),
                 "aggregator": "pcgrad", "granularity": [0, 0, 1, 1, 2, 2, 2]}


def fsdp_adamw_parity() -> None:
    """The sharded AdamW equals the single-process one (rank 1 owns an empty shard: touched rules
    and step counts come from the all-reduced Gram, identical on every rank)."""
    want = reference(Tower, classes=False, rule=HarmonizedAdamW, **ADAMW_OPTIONS)
    model = fsdp_model()
    opt = ShardedHarmonizedAdamW(model.named_parameters(), module=model, **ADAMW_OPTIONS)
    projected = []
    opt.register_step_post_hook(lambda o, args, kwargs: projected.append(bool(o.last_stats.conflicts().any())))
    train(model, opt, classes=False, shard=True)
    for name, p in model.named_parameters():
        full = p.full_tensor() if hasattr(p, "full_tensor") else p
        assert_close(f"fsdp adamw {name}", full.detach(), want[name].detach())
    if not any(projected):
        raise AssertionError("no step had conflicting gradients: the test exercises no projection")


def expect_error(kind: type[Exception], text: str, fn) -> None:
    try:
        fn()
    except kind as e:
        if text not in str(e):
            raise AssertionError(f"expected {text!r} in the error, got: {e}") from e
        return
    raise AssertionError(f"expected {kind.__name__} containing {text!r}")


def bad_inputs() -> None:
    rank = dist.get_rank()
    names = ("forget", "retain") if rank == 0 else ("retain", "forget")
    model = DDP(TwoHeads(), find_unused_parameters=True)
    expect_error(ValueError, "objectives differ across ranks",
                 lambda: check_ddp(model, HarmonizedSGD(model.parameters(), lr=0.1, objectives=names)))
    sharded = fsdp_model()
    expect_error(ValueError, "objectives differ across ranks",
                 lambda: ShardedHarmonizedSGD(sharded.named_parameters(), module=sharded, lr=0.1, objectives=names))
    other = TwoHeads()
    expect_error(ValueError, "not synchronised", lambda: check_ddp(model, HarmonizedSGD(other.parameters())))
    expect_error(TypeError, "DistributedDataParallel", lambda: check_ddp(other, HarmonizedSGD(other.parameters())))
    even = nn.Linear(4, 4)
    fully_shard(even)  # without init_sync=False, DDP's own constructor fails on DTensors
    expect_error(TypeError, "FSDP", lambda: check_ddp(DDP(even, init_sync=False), HarmonizedSGD(model.parameters())))
    expect_error(TypeError, "cannot be mixed",
                 lambda: ShardedHarmonizedSGD(sharded.parameters(), module=DDP(TwoHeads()), lr=0.1))


def rank_raises() -> None:
    """Rank 1 fails before the step; rank 0 must leave its collective with an error, not hang."""
    model = fsdp_model()
    opt = ShardedHarmonizedSGD(model.parameters(), module=model, lr=0.1)
    if dist.get_rank() == 1:
        raise RuntimeError("rank 1 failed on purpose")
    loss_of(model, "retain", torch.randn(4, 7), torch.randn(4)).backward()
    opt.step()


def main(names: list[str]) -> int:
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=float(os.environ.get("PG_TIMEOUT", "30"))))
    failed = 0
    for name in names:
        if name == "rank_raises":
            rank_raises()
            continue
        try:
            start = time.perf_counter()
            globals()[name]()
            print(f"PASS {name} ({time.perf_counter() - start:.1f} s)", flush=True)
        except AssertionError:  # a failed check: report it and go on (collectives stay matched)
            failed += 1
            print(f"FAIL {name}\n{traceback.format_exc()}", flush=True)
    dist.destroy_process_group()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
