"""Distributed tests on CPU: 2 processes, gloo, 127.0.0.1 only, every launch bounded by a timeout.

The multi-process scenarios live in ``dist_worker.py``; one launch runs them all, the last one
checking that a crashing rank brings the other down (gloo reports the closed connection at once;
the process-group timeout and the launch timeout are the backstops against a hang).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from ltu_fast import HarmonizedSGD
from ltu_fast.distributed import ShardedHarmonizedSGD, check_ddp, rank0_only, shard_batch, shard_split
from ltu_fast.unlearn.api import ArraySplit

WORKER = Path(__file__).with_name("dist_worker.py")
ROOT = Path(__file__).resolve().parents[1]
WORLD = 2
PG_TIMEOUT_S = 60  # a collective waiting on a dead peer gives up after this
LAUNCH_TIMEOUT_S = 120  # a hang fails the test instead of blocking CI
pytestmark = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs gloo")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(logs: Path, *scenarios: str) -> list[tuple[subprocess.Popen, Path]]:
    """Start ``dist_worker.py scenarios`` on WORLD local ranks (returns at once); output goes to
    files under ``logs``, so a chatty rank can never block on a full pipe."""
    env = dict(os.environ, WORLD_SIZE=str(WORLD), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()),
               GLOO_SOCKET_IFNAME="lo", PG_TIMEOUT=str(PG_TIMEOUT_S), OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    ranks = []
    for r in range(WORLD):
        path = logs / f"rank{r}.log"
        with path.open("w") as log:  # the child keeps its own copy of the descriptor
            ranks.append((subprocess.Popen([sys.executable, str(WORKER), *scenarios], env=dict(env, RANK=str(r)),
                                           stdout=log, stderr=subprocess.STDOUT), path))
    return ranks


def collect(ranks: list[tuple[subprocess.Popen, Path]]) -> list[tuple[int | None, str]]:
    """(exit code, output) per rank; a rank still running at the deadline is killed (exit code None)."""
    deadline = time.monotonic() + LAUNCH_TIMEOUT_S
    results = []
    for proc, path in ranks:
        try:
            code = proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            code = None
        results.append((code, path.read_text()))
    return results


@pytest.fixture(scope="module")
def launch(tmp_path_factory) -> list[tuple[int | None, str]]:
    """One launch for every scenario (starting a process that imports torch dominates the cost);
    ``rank_raises`` comes last because it ends both processes."""
    return collect(start(tmp_path_factory.mktemp("dist"), "ddp_parity", "fsdp_parity", "fsdp_adamw_parity",
                         "bad_inputs", "rank_raises"))


@pytest.mark.parametrize("name", ["ddp_parity", "fsdp_parity", "fsdp_adamw_parity", "bad_inputs"])
def test_scenario(launch, name):
    """DDP / FSDP2 match a single process on the union of the batches; bad set-ups raise clearly."""
    for rank, (_, out) in enumerate(launch):
        assert f"PASS {name}" in out, f"rank {rank}:\n{out}"


def test_crashing_rank_does_not_hang_the_others(launch):
    """Rank 1 raises before a step; rank 0, waiting in the step's all-reduce, must exit with an error."""
    (rc0, out0), (rc1, out1) = launch
    assert rc1 not in (0, None) and "rank 1 failed on purpose" in out1, out1
    assert rc0 not in (0, None) and "in rank_raises" in out0, f"rank 0 should fail when its peer dies:\n{out0}"


def test_no_process_group_is_a_clear_error():
    if dist.is_initialized():
        pytest.skip("another test initialised a process group in this pytest process")
    model = torch.nn.Linear(3, 2)
    with pytest.raises(RuntimeError, match="not initialised"):
        ShardedHarmonizedSGD(model.parameters(), module=model, lr=0.1)
    with pytest.raises(RuntimeError, match="not initialised"):
        check_ddp(model, HarmonizedSGD(model.parameters(), lr=0.1))
    with pytest.raises(RuntimeError, match="not initialised"):
        shard_split(ArraySplit(torch.zeros(4, 1), torch.zeros(4, dtype=torch.int64)))


def test_shard_split_is_an_equal_partition():
    split = ArraySplit(torch.arange(11.0)[:, None], torch.arange(11))
    parts = [shard_split(split, r, 3) for r in range(3)]
    assert [len(p) for p in parts] == [3, 3, 3]
    assert sorted(torch.cat([p.y for p in parts]).tolist()) == list(range(9))
    with pytest.raises(ValueError, match="rank=3"):
        shard_split(split, 3, 3)


def test_shard_batch_slices_the_global_batch():
    x, y = torch.arange(8.0), torch.arange(8)
    got = [shard_batch([x, y], r, 2) for r in range(2)]
    assert torch.equal(torch.cat([g[0] for g in got]), x) and torch.equal(got[1][1], y[4:])
    with pytest.raises(ValueError, match="evenly"):
        shard_batch([torch.zeros(5)], 0, 2)


def test_rank0_only_runs_without_a_process_group():
    assert rank0_only(lambda: 7)() == 7
