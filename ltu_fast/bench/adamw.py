"""Benchmark: harmonize (PCGrad, per layer) + AdamW step, fused vs torch-written vs the wrapper.

    ltu-fast bench adamw                              # CPU: ResNet-18 shapes, K = 2, fp32
    ltu-fast bench adamw --device cuda --models gpt2_small resnet18 --rounds 30

Contenders, on the same gradient rows, in interleaved rounds (A, B, C, copy, A, B, ...; medians):
  fused      ``functional.adamw_step``: one Gram pass, then combine + AdamW in one kernel
  wrapper    ``Harmonized(torch.optim.AdamW(fused=True))``: Gram, combine, torch's fused AdamW
  torch      per-layer PCGrad written in torch (foreach norms, coefficients, foreach combine into
             ``.grad``), then ``torch.optim.AdamW(foreach=True)``
  copy       a copy moving the fused step's floor, (8K + 24) bytes per fp32 parameter: K rows
             read twice, param and both moments read and written once
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable

import torch
from torch import nn

from ..aggregators import PCGrad
from ..backends import resolve_backend
from ..functional import adamw_step
from ..optim import Harmonized
from ..plan import SegmentPlan
from ..rules import ADAMW
from .baselines import combine_foreach, gram_foreach
from .shapes import PARAMETER_SIZES
from .timing import time_once

LR, BETAS, EPS, WEIGHT_DECAY = 1e-3, (0.9, 0.999), 1e-8, 1e-2


def contenders(numels: list[int], k: int, device: torch.device) -> dict[str, Callable[[], object]]:
    """One zero-argument step per contender, all on copies of the same random rows."""
    gen = torch.Generator(device=device).manual_seed(0)
    plan = SegmentPlan.build(numels, device=device)
    rows = torch.randn(k, plan.total, generator=gen, device=device)
    aggregator = PCGrad()

    param = torch.randn(plan.total, generator=gen, device=device)
    exp_avg, exp_avg_sq = torch.zeros_like(param), torch.zeros_like(param)
    group = {"lr": LR, "beta1": BETAS[0], "beta2": BETAS[1], "eps": EPS, "weight_decay": WEIGHT_DECAY,
             "amsgrad": 0.0, "maximize": 0.0}
    hyper = torch.tensor([[group[c] for c in ADAMW.group_columns]], dtype=torch.float64, device=device)
    steps = torch.zeros(len(numels), device=device)
    backend = resolve_backend("auto", device, rows.dtype, param.dtype)
    empty = param.new_zeros(0)

    def fused():
        adamw_step(rows, plan, param, exp_avg, exp_avg_sq, empty, hyper, steps, aggregator, backend)

    wrapped_params = [nn.Parameter(torch.randn(n, generator=gen, device=device)) for n in numels]
    wrapper = Harmonized(torch.optim.AdamW(wrapped_params, lr=LR, betas=BETAS, eps=EPS, weight_decay=WEIGHT_DECAY,
                                           fused=True), objectives=k, aggregator=PCGrad())
    wrapper.grad_rows.copy_(rows)

    torch_params = [nn.Parameter(torch.randn(n, generator=gen, device=device)) for n in numels]
    torch_opt = torch.optim.AdamW(torch_params, lr=LR, betas=BETAS, eps=EPS, weight_decay=WEIGHT_DECAY, foreach=True)
    grads = [plan.views(rows[j], [torch.Size([n]) for n in numels]) for j in range(k)]

    def torch_written():
        for p, g in zip(torch_params, combine_foreach(grads, aggregator(gram_foreach(grads)))):
            p.grad = g
        torch_opt.step()

    floor = torch.empty((8 * k + 24) * sum(numels) // 8, device=device)  # read + write = the floor's bytes
    floor_dst = torch.empty_like(floor)
    return {"fused": fused, "wrapper": wrapper.step, "torch": torch_written, "copy": lambda: floor_dst.copy_(floor)}


def run(model: str, k: int, device: torch.device, rounds: int, warmup: int) -> dict[str, float]:
    """Median ms per contender over interleaved rounds."""
    steps = contenders(PARAMETER_SIZES[model](), k, device)
    for fn in steps.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, fn in steps.items():
            times[name].append(time_once(device, fn))
    return {name: statistics.median(t) for name, t in times.items()}


def main(argv: list[str] | None = None) -> None:
    cuda = torch.cuda.is_available()
    parser = argparse.ArgumentParser(prog="ltu-fast bench adamw", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if cuda else "cpu")
    parser.add_argument("--models", nargs="+", choices=list(PARAMETER_SIZES), default=["resnet18"])
    parser.add_argument("--k", nargs="+", type=int, default=[2])
    parser.add_argument("--rounds", type=int, default=30 if cuda else 15)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    print(f"device {torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}; "
          f"torch {torch.__version__}; threads {torch.get_num_threads()}; medians of {args.rounds} interleaved rounds")
    print(f"{'model':<13}{'params':>9}{'K':>3}{'fused ms':>10}{'wrapper ms':>12}{'torch ms':>10}{'floor ms':>10}"
          f"{'torch/fused':>12}{'fused/floor':>12}")
    for model in args.models:
        for k in args.k:
            ms = run(model, k, device, args.rounds, args.warmup)
            print(f"{model:<13}{sum(PARAMETER_SIZES[model]()) / 1e6:>8.1f}M{k:>3}{ms['fused']:>10.2f}{ms['wrapper']:>12.2f}"
                  f"{ms['torch']:>10.2f}{ms['copy']:>10.2f}{ms['torch'] / ms['fused']:>11.2f}x"
                  f"{ms['fused'] / ms['copy']:>11.2f}x")
            if device.type == "cuda":
                torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
