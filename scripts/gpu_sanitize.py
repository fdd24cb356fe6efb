"""A small driver that runs every kernel of one backend, for compute-sanitizer (scripts/gpu_check.sh).

    compute-sanitizer --tool memcheck python scripts/gpu_sanitize.py cuda    # or: triton

Covers: the Gram (both stages), combine, the fused SGD step with and without momentum, with every
tensor touched and with one untouched (the solve's per-tensor rows skip it), the fused AdamW step
with and without amsgrad, the fused Lion step, the coefficient solve for Sum, fixed- and random-order PCGrad,
Project and MGDA (K = 3 runs Frank-Wolfe), axpy with a host and a device alpha; fp32, bf16 and fp16
rows; K = 1..4; tails (chunks of 256 elements; Triton blocks of 64, so the unmasked main loop and
the masked tail both run); 16-byte (aligned plan) and scalar (``align_bytes=4``) paths; a plan built
on the CPU; a plan without chunks. Sizes are small: the sanitizer slows every launch a hundredfold.
Without a GPU the Triton part runs in its interpreter on CPU tensors (``TRITON_INTERPRET=1``), which
checks the driver itself, not the memory accesses.
"""

from __future__ import annotations

import dataclasses
import sys

import torch

from ltu_fast.aggregators import MGDA, PCGrad, Project, Sum
from ltu_fast.backends import get_backend
from ltu_fast.functional import adamw_step, sgd_step, step
from ltu_fast.plan import SegmentPlan
from ltu_fast.rules import ADAMW, LION

DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def aggregators(k: int) -> list:
    """Every solver kind at this K: fixed and random PCGrad on every K, the others on K = 2 and 3."""
    out = [PCGrad(), PCGrad("random", seed=3)]
    if k in (2, 3):
        out += [Sum(), Project(protect=k - 1), MGDA(iterations=8)]
    return out


def sgd_steps(backend, plan: SegmentPlan, rows: torch.Tensor) -> None:
    """SGD with momentum on and off, every tensor touched or the third one not."""
    device = rows.device
    hyper = torch.tensor([[0.1, 0.01, 0.9, 0.0, 1.0, 0.0], [0.2, 0.0, 0.0, 0.0, 0.0, 1.0]], device=device)
    for aggregator in aggregators(rows.shape[0]):
        for with_momentum in (False, True):
            param = torch.randn(plan.total, device=device)
            momentum = torch.zeros(plan.total, device=device) if with_momentum else param.new_zeros(0)
            ready = torch.zeros(plan.num_tensors, device=device)
            touched = torch.tensor([1.0, 1.0, 0.0, 1.0], device=device) if with_momentum else None
            hyper[:, 2] = 0.9 if with_momentum else 0.0
            for _ in range(2):  # the second step reads the momentum history the first wrote
                stats = sgd_step(rows, plan, param, momentum, hyper, ready, aggregator, backend,
                                 weights=torch.ones(rows.shape[0], device=device), touched=touched)
            backend.combine(rows, stats.beta, plan)


def adamw_steps(backend, plan: SegmentPlan, rows: torch.Tensor) -> None:
    device = rows.device
    group = {"lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 1e-2, "maximize": 0.0}
    for amsgrad in (0.0, 1.0):
        hyper = torch.tensor([[{**group, "amsgrad": amsgrad}[c] for c in ADAMW.group_columns]] * plan.num_groups,
                             dtype=torch.float64, device=device)
        param, exp_avg, exp_avg_sq = (torch.randn(plan.total, device=device) for _ in range(3))
        exp_avg_sq.abs_()
        max_exp_avg_sq = exp_avg_sq.clone() if amsgrad else param.new_zeros(0)
        adamw_step(rows, plan, param, exp_avg, exp_avg_sq, max_exp_avg_sq, hyper,
                   torch.zeros(plan.num_tensors, device=device), PCGrad(), backend)


def lion_steps(backend, plan: SegmentPlan, rows: torch.Tensor) -> None:
    device = rows.device
    group = {"lr": 1e-4, "beta1": 0.9, "beta2": 0.99, "weight_decay": 0.1, "maximize": 0.0}
    hyper = torch.tensor([[group[c] for c in LION.group_columns]] * plan.num_groups, dtype=torch.float64,
                         device=device)
    param, exp_avg = (torch.randn(plan.total, device=device) for _ in range(2))
    step(LION, rows, plan, param, [exp_avg], hyper, torch.zeros(plan.num_tensors, 0, device=device), PCGrad(),
         backend)


def main(name: str) -> None:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    backend = get_backend(name)
    reason = backend.availability()
    if reason is not None:
        sys.exit(f"{name}: {reason}")
    backend.CHUNK = 256
    if name == "triton":
        backend.BLOCK = 64  # a 256-element chunk then runs the unmasked main loop and the masked tail
    for align in (64, 4):
        # built on the CPU, as functional users do; the third tensor is left untouched by objective 0
        plan = SegmentPlan.build([1, 1000, 37, 513], [0, 1, 0, 2], [0, 1, 1, 0], align_bytes=align)
        empty = dataclasses.replace(plan, numels=(), segments=(), groups=(), offsets=(), cache={})
        for dtype in DTYPES:
            for k in (1, 2, 3, 4):
                rows = torch.randn(k, plan.total, device=device).to(dtype)
                rows[0, plan.offsets[2]:plan.offsets[2] + plan.numels[2]] = 0
                sgd_steps(backend, plan, rows)
                adamw_steps(backend, plan, rows)
                lion_steps(backend, plan, rows)
                assert not backend.gram(rows, empty).any()
                param = torch.randn(plan.total, device=device)
                backend.axpy(param, rows[0], 0.5)
                backend.axpy(param, rows[-1], torch.tensor(0.25, device=device))
        print(f"{name}: align {align} done", flush=True)
    if device == "cuda":
        torch.cuda.synchronize()
    print(f"{name}: driver ok")


if __name__ == "__main__":
    main(sys.argv[1])
