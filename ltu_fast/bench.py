"""Benchmark table: harmonize (PCGrad, per layer) + SGD-momentum or AdamW step, ltu_fast vs plain torch.

    python -m ltu_fast.bench                       # GPU: all models, K=2 fp32, then K=3/4 and bf16; SGD and AdamW
    python -m ltu_fast.bench --device cpu --models resnet18 --reps 5
    python -m ltu_fast.bench step                  # full training step (see ltu_fast/bench_step.py)

Parameter shapes are generated in code (no torchvision/transformers). Every variant runs on the
same gradient rows (views for the torch baselines). GPU times use CUDA events around ``--batch``
back-to-back calls (median of --reps after warm-up, reported per call), so a step's host-side
launch cost overlaps the previous step's kernels as in a training loop; the ``+graph`` variants
replay the fused step captured once in a CUDA graph (no Python or launch overhead: the kernels'
own time). CPU times use perf_counter. "x floor" is the time over the memory floor, at the
device-to-device copy bandwidth measured in the same run (host memcpy on CPU): (2*K*row_bytes + 16)
B/param for SGD (K rows read twice, param and momentum read and written), (2*K*row_bytes + 24) for
AdamW (param and both moments). The torch baselines (loop, foreach, compile) exist for SGD only.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial

import torch

from . import rules
from .aggregators import PCGrad
from .backends import get_backend
from .functional import adamw_step, sgd_step
from .plan import SegmentPlan

LR, MOMENTUM = 0.01, 0.9
ADAMW = {"lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 1e-2, "amsgrad": 0.0, "maximize": 0.0}
STATE_BYTES = {"sgd": 16, "adamw": 24}  # per fp32 parameter, read + written once: param and the rule's state
FUSED = ("cuda", "triton", "cpu", "reference")


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
def time_once(device: torch.device, fn: Callable[[], object], calls: int = 1) -> float:
    """Milliseconds per call of ``calls`` back-to-back calls: CUDA events around them on a GPU (device
    time, no host sync inside), wall clock on CPU."""
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(calls):
            fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / calls
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t0) * 1e3 / calls


def _timer(device: torch.device, reps: int, warmup: int, calls: int = 1) -> Callable[[Callable[[], None]], float]:
    def run(fn: Callable[[], None]) -> float:
        for _ in range(warmup):
            fn()
        return statistics.median(time_once(device, fn, calls) for _ in range(reps))
    return run


def capture_cuda_graph(fn: Callable[[], object], warmup: int = 1) -> torch.cuda.CUDAGraph:
    """``fn`` run ``warmup`` times on a side stream (state, caches and Triton compiles set up outside
    the capture, as PyTorch's graph recipe asks), then captured once; returns the graph."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(warmup):
            fn()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    return graph


def copy_bandwidth(device: torch.device, nbytes: int) -> float:
    """Bytes/s of a large copy (read + write counted)."""
    src = torch.rand(nbytes // 4, device=device)
    dst = torch.empty_like(src)
    ms = _timer(device, 10, 3)(lambda: dst.copy_(src))
    return 2 * src.numel() * 4 / (ms * 1e-3)


def _fused_step(rule: str, rows: torch.Tensor, plan: SegmentPlan, param: torch.Tensor, backend) -> Callable[[], object]:
    """One fused step of ``rule`` on fresh state buffers (per-layer PCGrad)."""
    device, aggregator = rows.device, PCGrad()
    if rule == "sgd":
        momentum = torch.zeros(plan.total, device=device)
        hyper = torch.tensor([[LR, 0.0, MOMENTUM, 0.0, 0.0, 0.0]], device=device)
        return partial(sgd_step, rows, plan, param, momentum, hyper, torch.ones(plan.num_tensors, device=device),
                       aggregator, backend)
    hyper = torch.tensor([[ADAMW[c] for c in rules.ADAMW.group_columns]], dtype=torch.float64, device=device)
    moments = torch.zeros(2, plan.total, device=device)
    return partial(adamw_step, rows, plan, param, moments[0], moments[1], param.new_zeros(0), hyper,
                   torch.zeros(plan.num_tensors, device=device), aggregator, backend)


def _variant_step(variant: str, rule: str, rows, plan, param, grads, device, row_dtype) -> Callable[[], object] | None:
    """The callable a variant times, or None where it does not apply (a backend that cannot run
    here, a torch baseline for AdamW, a graph on the CPU)."""
    name, graphed = variant.removesuffix("+graph"), variant.endswith("+graph")
    if name in FUSED:
        backend = get_backend(name)
        if (backend.availability() is not None or not backend.supports(device, row_dtype, torch.float32)
                or (graphed and device.type != "cuda")):
            return None
        step = _fused_step(rule, rows, plan, param, backend)
        return capture_cuda_graph(step, warmup=3).replay if graphed else step
    if name not in BASELINES or graphed:
        raise ValueError(f"unknown variant {variant!r}")
    if rule != "sgd":
        return None
    shapes = [torch.Size([n]) for n in plan.numels]
    params = plan.views(param, shapes)
    bufs = plan.views(torch.zeros(plan.total, device=device), shapes)
    step = torch.compile(loop_step) if name == "compile" else BASELINES[name]
    return partial(step, grads, params, bufs, PCGrad())


def bench_model(name: str, k: int, row_dtype: torch.dtype, device: torch.device, variants: list[str],
                reps: int, warmup: int, bandwidth: float, rule: str = "sgd", calls: int = 1) -> list[dict]:
    numels = MODELS[name]()
    plan = SegmentPlan.build(numels, device=device)
    gen = torch.Generator(device=device).manual_seed(0)
    rows = torch.randn(k, plan.total, generator=gen, device=device).to(row_dtype)
    param = torch.randn(plan.total, generator=gen, device=device)
    grads = [plan.views(rows[j], [torch.Size([n]) for n in numels]) for j in range(k)]
    timer = _timer(device, reps, warmup, calls)
    floor_ms = (2 * k * rows.element_size() + STATE_BYTES[rule]) * sum(numels) / bandwidth * 1e3
    results = []
    for variant in variants:
        try:
            fn = _variant_step(variant, rule, rows, plan, param, grads, device, row_dtype)
            if fn is None:
                continue
            ms = timer(fn)
        except RuntimeError as exc:  # a baseline that cannot run here (e.g. compile without a compiler)
            print(f"  {name} K={k} {rule} {variant}: failed ({type(exc).__name__}: {str(exc)[:120]})")
            continue
        results.append({"model": name, "params_m": sum(numels) / 1e6, "tensors": len(numels), "k": k,
                        "dtype": str(row_dtype).removeprefix("torch."), "rule": rule, "variant": variant, "ms": ms,
                        "x_floor": ms / floor_ms})
    base = next((r["ms"] for r in results if r["variant"] == "foreach"), None)
    for r in results:
        r["vs_foreach"] = base / r["ms"] if base else float("nan")
    return results


def print_table(results: list[dict], header: bool = True) -> None:
    if header:
        print(f"{'model':<13}{'params':>9}{'T':>5}{'K':>3} {'dtype':<9}{'rule':<6}{'variant':<14}{'ms':>10}"
              f"{'x floor':>9}{'vs foreach':>11}")
    for r in results:
        print(f"{r['model']:<13}{r['params_m']:>8.1f}M{r['tensors']:>5}{r['k']:>3} {r['dtype']:<9}{r['rule']:<6}"
              f"{r['variant']:<14}{r['ms']:>10.3f}{r['x_floor']:>9.2f}{r['vs_foreach']:>10.2f}x")


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
                        default=["cuda", "cuda+graph", "triton", "triton+graph", "loop", "foreach", "compile"] if cuda
                        else ["cpu", "reference", "loop", "foreach"])
    parser.add_argument("--rules", nargs="+", choices=list(STATE_BYTES), default=["sgd", "adamw"] if cuda else ["sgd"])
    parser.add_argument("--k", nargs="+", type=int, default=[2])
    parser.add_argument("--extra", action=argparse.BooleanOptionalAction, default=True,
                        help="also K=3, K=4 and bf16 rows on the --extra-models")
    parser.add_argument("--extra-models", nargs="+", choices=list(MODELS),
                        default=["resnet18", "gpt2_small"] if cuda else ["resnet18"])
    parser.add_argument("--reps", type=int, default=10 if cuda else 5)
    parser.add_argument("--batch", type=int, default=20 if cuda else 1,
                        help="back-to-back calls per timing (one CUDA-event pair), reported per call")
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    bandwidth = copy_bandwidth(device, (1 << 30) if device.type == "cuda" else (1 << 27))
    print(f"device {torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}; "
          f"copy bandwidth {bandwidth / 1e9:.0f} GB/s; torch {torch.__version__}; "
          f"median of {args.reps} timings of {args.batch} back-to-back calls")
    configs = [(m, k, torch.float32) for m in args.models for k in args.k]
    if args.extra:
        configs += [(m, k, torch.float32) for m in args.extra_models for k in (3, 4) if k not in args.k]
        configs += [(m, 2, torch.bfloat16) for m in args.extra_models]
    print_table([])  # the header; each configuration's rows as soon as measured (a cut run keeps them)
    for model, k, dtype in configs:
        for rule in args.rules:
            print_table(bench_model(model, k, dtype, device, args.variants, args.reps, args.warmup, bandwidth, rule,
                                    args.batch), header=False)
            if device.type == "cuda":
                torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
