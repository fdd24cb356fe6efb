"""The optimizer step per aggregator: every registered aggregator at K = 2, 4, 8 on one layout.

    ltu-fast bench aggregators                               # CPU: ResNet-18 layout, SGD with momentum
    ltu-fast bench aggregators --device cuda --model gpt2_small --k 2 4 8

Each aggregator's fused harmonize + SGD-momentum step (``functional.sgd_step`` on the backend
``auto`` picks) runs on the same K gradient rows; rounds interleave the aggregators (one timing of
each per round, median over rounds), so load from other processes hits all alike. "x floor" is the
time over the bytes-moved floor of the SGD step, (2 K row_bytes + 16) B/param at the copy bandwidth
measured in the same run; "x pcgrad" is the time over PCGrad's at the same K (issue #16's target:
at most 1.2). Aggregators without a compiled solve run their torch solve on the [L, K, K] Gram
and the compiled Gram and apply around it.
"""

from __future__ import annotations

import argparse
import statistics

import torch

from ..aggregators import AGGREGATORS
from ..backends import resolve_backend
from ..plan import SegmentPlan
from .optimizer_step import STATE_BYTES, fused_step
from .shapes import PARAMETER_SIZES
from .timing import copy_bandwidth, time_once


def bench(model: str, k: int, names: list[str], device: torch.device, reps: int, warmup: int,
          bandwidth: float) -> list[dict]:
    """Median ms per aggregator at K = ``k`` on ``model``'s layout, with x floor and x pcgrad."""
    numels = PARAMETER_SIZES[model]()
    plan = SegmentPlan.build(numels, device=device)
    gen = torch.Generator(device=device).manual_seed(0)
    rows = torch.randn(k, plan.total, generator=gen, device=device)
    param = torch.randn(plan.total, generator=gen, device=device)
    backend = resolve_backend("auto", device, rows.dtype, param.dtype)
    steps = {name: fused_step("sgd", rows, plan, param, backend, AGGREGATORS[name]()) for name in names}
    for step in steps.values():
        for _ in range(warmup):
            step()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(reps):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            times[name].append(time_once(device, steps[name]))
    floor_ms = (2 * k * rows.element_size() + STATE_BYTES["sgd"]) * sum(numels) / bandwidth * 1e3
    ms = {name: statistics.median(t) for name, t in times.items()}
    pcgrad = ms.get("pcgrad")
    return [{"aggregator": name, "k": k, "ms": ms[name], "x_floor": ms[name] / floor_ms,
             "x_pcgrad": ms[name] / pcgrad if pcgrad else float("nan"), "backend": backend.name} for name in names]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="ltu-fast bench aggregators", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--model", choices=list(PARAMETER_SIZES), default="resnet18")
    parser.add_argument("--k", nargs="+", type=int, default=[2, 4, 8])
    parser.add_argument("--aggregators", nargs="+", choices=sorted(AGGREGATORS), default=sorted(AGGREGATORS))
    parser.add_argument("--reps", type=int, default=7, help="interleaved rounds (median over them)")
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    names = list(dict.fromkeys(["pcgrad", *args.aggregators]))  # PCGrad is every row's yardstick
    bandwidth = copy_bandwidth(device, (1 << 30) if device.type == "cuda" else (1 << 27))
    print(f"device {torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}; "
          f"threads {torch.get_num_threads()}; copy bandwidth {bandwidth / 1e9:.0f} GB/s; torch {torch.__version__}; "
          f"{args.model}; SGD with momentum; median of {args.reps} interleaved rounds")
    print(f"{'aggregator':<13}{'K':>3}{'backend':>10}{'ms':>10}{'x floor':>9}{'x pcgrad':>10}")
    for k in args.k:
        for r in bench(args.model, k, names, device, args.reps, args.warmup, bandwidth):
            print(f"{r['aggregator']:<13}{r['k']:>3}{r['backend']:>10}{r['ms']:>10.2f}{r['x_floor']:>9.2f}"
                  f"{r['x_pcgrad']:>10.2f}")
