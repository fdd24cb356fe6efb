"""Benchmark table: harmonize (PCGrad, per layer) + SGD-momentum step, ltu_fast vs plain torch.

    python -m ltu_fast.bench                       # GPU: all models, K=2 fp32, then K=3/4 and bf16
    python -m ltu_fast.bench --device cpu --models resnet18 --reps 5
    python -m ltu_fast.bench step                  # full training step (see ltu_fast/bench_step.py)

Parameter shapes are generated in code (no torchvision/transformers). Every variant runs on the
same gradient rows (views for the torch baselines). GPU times use CUDA events (median of --reps
after warm-up), CPU times perf_counter. "x floor" is the time over the memory floor
(2*K*row_bytes + 16) B/param at the device-to-device copy bandwidth measured in the same run
(host memcpy on CPU).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial

import torch

from .aggregators import PCGrad
from .backends import get_backend
from .functional import sgd_step
from .plan import SegmentPlan

LR, MOMENTUM = 0.01, 0.9


# ----------------------------------------------------------------------------- parameter shapes
def _resnet18_cifar() -> list[int]:
    numels, cin = [64 * 3 * 9, 64, 64], 64
    for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        for block in range(2):
            first_in = cin if block == 0 else cout
            numels += [cout * first_in * 9, cout, cout, cout * cout * 9, cout, cout]
            if block == 0 and (stride != 1 or first_in != cout):
                numels += [cout * first_in, cout, cout]
        cin = cout
    return numels + [10 * 512, 10]


def _vit_b16() -> list[int]:
    d = 768
    numels = [d * 3 * 16 * 16, d, d, 197 * d]
    for _ in range(12):
        numels += [d, d, 3 * d * d, 3 * d, d * d, d, d, d, 4 * d * d, 4 * d, 4 * d * d, d]
    return numels + [d, d, 1000 * d, 1000]


def _gpt(d: int, layers: int, vocab: int = 50257, ctx: int = 1024) -> list[int]:
    numels = [vocab * d, ctx * d]
    for _ in range(layers):
        numels += [d, d, 3 * d * d, 3 * d, d * d, d, d, d, 4 * d * d, 4 * d, 4 * d * d, d]
    return numels + [d, d]


MODELS: dict[str, Callable[[], list[int]]] = {
    "resnet18": _resnet18_cifar,
    "vit_b16": _vit_b16,
    "gpt2_small": lambda: _gpt(768, 12),
    "gpt2_medium": lambda: _gpt(1024, 24),
    "synthetic_1b": lambda: _gpt(2048, 20),
}


# ----------------------------------------------------------------------------------- baselines
def _gram_loop(grads: list[list[torch.Tensor]]) -> torch.Tensor:
    """[L, K, K] with one dot per pair per tensor (the plain per-layer loop)."""
    k = len(grads)
    out = []
    for i in range(len(grads[0])):
        dots = [[None] * k for _ in range(k)]
        for a in range(k):
            for b in range(a + 1):
                dots[a][b] = dots[b][a] = torch.dot(grads[a][i], grads[b][i]).float()
        out.append(torch.stack([torch.stack(row) for row in dots]))
    return torch.stack(out)


def _gram_foreach(grads: list[list[torch.Tensor]]) -> torch.Tensor:
    """[L, K, K] from _foreach_norm: <a,b> = (|a+b|^2 - |a|^2 - |b|^2) / 2."""
    k = len(grads)
    sq = [torch.stack(torch._foreach_norm(g)).float() ** 2 for g in grads]
    rows = [[None] * k for _ in range(k)]
    for a in range(k):
        rows[a][a] = sq[a]
        for b in range(a):
            both = torch.stack(torch._foreach_norm(torch._foreach_add(grads[a], grads[b]))).float() ** 2
            rows[a][b] = rows[b][a] = (both - sq[a] - sq[b]) / 2
    return torch.stack([torch.stack(r, -1) for r in rows], -2)


def loop_step(grads, params, bufs, aggregator) -> None:
    beta = aggregator(_gram_loop(grads))
    for i, (p, buf) in enumerate(zip(params, bufs)):
        g = sum(beta[i, k] * grads[k][i] for k in range(len(grads)))
        buf.mul_(MOMENTUM).add_(g)
        p.add_(buf, alpha=-LR)


def foreach_step(grads, params, bufs, aggregator) -> None:
    beta = aggregator(_gram_foreach(grads)).to(params[0].dtype)
    combined = None
    for k, g in enumerate(grads):
        scaled = torch._foreach_mul(g, list(beta[:, k].unbind()))
        combined = scaled if combined is None else torch._foreach_add(combined, scaled)
    torch._foreach_mul_(bufs, MOMENTUM)
    torch._foreach_add_(bufs, combined)
    torch._foreach_add_(params, bufs, alpha=-LR)


BASELINES: dict[str, Callable] = {"loop": loop_step, "foreach": foreach_step, "compile": loop_step}


# --------------------------------------------------------------------------------------- timing
def time_once(device: torch.device, fn: Callable[[], object]) -> float:
    """Milliseconds of one call: CUDA events on a GPU (device time, no host sync inside), wall clock on CPU."""
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end)
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1e3


def _timer(device: torch.device, reps: int, warmup: int) -> Callable[[Callable[[], None]], float]:
    def run(fn: Callable[[], None]) -> float:
        for _ in range(warmup):
            fn()
        return statistics.median(time_once(device, fn) for _ in range(reps))
    return run


def copy_bandwidth(device: torch.device, nbytes: int) -> float:
    """Bytes/s of a large copy (read + write counted)."""
    src = torch.rand(nbytes // 4, device=device)
    dst = torch.empty_like(src)
    ms = _timer(device, 10, 3)(lambda: dst.copy_(src))
    return 2 * src.numel() * 4 / (ms * 1e-3)


def bench_model(name: str, k: int, row_dtype: torch.dtype, device: torch.device, variants: list[str],
                reps: int, warmup: int, bandwidth: float) -> list[dict]:
    numels = MODELS[name]()
    plan = SegmentPlan.build(numels, device=device)
    gen = torch.Generator(device=device).manual_seed(0)
    rows = torch.randn(k, plan.total, generator=gen, device=device).to(row_dtype)
    param = torch.randn(plan.total, generator=gen, device=device)
    momentum = torch.zeros(plan.total, device=device)
    hyper = torch.tensor([[LR, 0.0, MOMENTUM, 0.0, 0.0, 0.0]], device=device)
    ready = torch.ones(1, device=device)
    shapes = [torch.Size([n]) for n in numels]
    grads = [plan.views(rows[j], shapes) for j in range(k)]
    params, bufs = plan.views(param, shapes), plan.views(momentum, shapes)
    aggregator = PCGrad()
    timer = _timer(device, reps, warmup)
    floor_ms = (2 * k * rows.element_size() + 16) * sum(numels) / bandwidth * 1e3
    results = []
    for variant in variants:
        if variant in ("cuda", "triton", "cpu", "reference"):
            backend = get_backend(variant)
            if backend.availability() is not None or not backend.supports(device, row_dtype, torch.float32):
                continue
            fn = partial(sgd_step, rows, plan, param, momentum, hyper, ready, aggregator, backend)
        elif variant in BASELINES:
            step = torch.compile(loop_step) if variant == "compile" else BASELINES[variant]
            fn = partial(step, grads, params, bufs, aggregator)
        else:
            raise ValueError(f"unknown variant {variant!r}")
        try:
            ms = timer(fn)
        except RuntimeError as exc:  # a baseline that cannot run here (e.g. compile without a compiler)
            print(f"  {name} K={k} {variant}: failed ({type(exc).__name__}: {str(exc)[:120]})")
            continue
        results.append({"model": name, "params_m": sum(numels) / 1e6, "tensors": len(numels), "k": k,
                        "dtype": str(row_dtype).removeprefix("torch."), "variant": variant, "ms": ms,
                        "x_floor": ms / floor_ms})
    base = next((r["ms"] for r in results if r["variant"] == "foreach"), None)
    for r in results:
        r["vs_foreach"] = base / r["ms"] if base else float("nan")
    return results


def print_table(results: list[dict]) -> None:
    print(f"{'model':<13}{'params':>9}{'T':>5}{'K':>3} {'dtype':<9}{'variant':<10}{'ms':>10}{'x floor':>9}"
          f"{'vs foreach':>11}")
    for r in results:
        print(f"{r['model']:<13}{r['params_m']:>8.1f}M{r['tensors']:>5}{r['k']:>3} {r['dtype']:<9}{r['variant']:<10}"
              f"{r['ms']:>10.3f}{r['x_floor']:>9.2f}{r['vs_foreach']:>10.2f}x")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "step":  # ltu-fast bench step: the full training step (bench_step.py)
        from .bench_step import main as step_main
        return step_main(argv[1:])
    cuda = torch.cuda.is_available()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if cuda else "cpu")
    parser.add_argument("--models", nargs="+", choices=list(MODELS),
                        default=list(MODELS) if cuda else ["resnet18"])
    parser.add_argument("--variants", nargs="+",
                        default=["cuda", "triton", "loop", "foreach", "compile"] if cuda
                        else ["cpu", "reference", "loop", "foreach"])
    parser.add_argument("--k", nargs="+", type=int, default=[2])
    parser.add_argument("--extra", action=argparse.BooleanOptionalAction, default=True,
                        help="also K=3, K=4 and bf16 rows on the first --extra-models")
    parser.add_argument("--extra-models", nargs="+", default=["gpt2_small"] if cuda else ["resnet18"])
    parser.add_argument("--reps", type=int, default=20 if cuda else 5)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    bandwidth = copy_bandwidth(device, (1 << 30) if device.type == "cuda" else (1 << 27))
    print(f"device {torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}; "
          f"copy bandwidth {bandwidth / 1e9:.0f} GB/s; torch {torch.__version__}")
    configs = [(m, k, torch.float32) for m in args.models for k in args.k]
    if args.extra:
        configs += [(m, k, torch.float32) for m in args.extra_models for k in (3, 4) if k not in args.k]
        configs += [(m, 2, torch.bfloat16) for m in args.extra_models]
    results = []
    for model, k, dtype in configs:
        results += bench_model(model, k, dtype, device, args.variants, args.reps, args.warmup, bandwidth)
        if device.type == "cuda":
            torch.cuda.empty_cache()
    print_table(results)


if __name__ == "__main__":
    main()
