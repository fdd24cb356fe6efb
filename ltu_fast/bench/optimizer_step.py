"""The optimizer-step table: harmonize (PCGrad, per layer) + SGD-momentum or AdamW, ltu_fast vs plain torch.

    ltu-fast bench                                 # GPU: all models, K=2 fp32, then K=3/4 and bf16; SGD and AdamW
    ltu-fast bench --device cpu --models resnet18 --reps 5

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
from collections.abc import Callable
from functools import partial

import torch

from .. import rules
from ..aggregators import PCGrad
from ..backends import get_backend
from ..functional import adamw_step, sgd_step
from ..plan import SegmentPlan
from .baselines import foreach_step, loop_step
from .shapes import PARAMETER_SIZES
from .timing import capture_cuda_graph, copy_bandwidth, timer

LR, MOMENTUM = 0.01, 0.9
ADAMW = {"lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 1e-2, "amsgrad": 0.0, "maximize": 0.0}
STATE_BYTES = {"sgd": 16, "adamw": 24}  # per fp32 parameter, read + written once: param and the rule's state
FUSED = ("cuda", "triton", "cpu", "reference")
BASELINES: dict[str, Callable] = {"loop": loop_step, "foreach": foreach_step, "compile": loop_step}


def fused_step(rule: str, rows: torch.Tensor, plan: SegmentPlan, param: torch.Tensor, backend,
               aggregator: Callable | None = None) -> Callable[[], object]:
    """One fused step of ``rule`` on fresh state buffers (per-layer, PCGrad unless ``aggregator``)."""
    device, aggregator = rows.device, aggregator or PCGrad()
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
        step = fused_step(rule, rows, plan, param, backend)
        return capture_cuda_graph(step, warmup=3).replay if graphed else step
    if name not in BASELINES or graphed:
        raise ValueError(f"unknown variant {variant!r}")
    if rule != "sgd":
        return None
    shapes = [torch.Size([n]) for n in plan.numels]
    params = plan.views(param, shapes)
    bufs = plan.views(torch.zeros(plan.total, device=device), shapes)
    step = torch.compile(loop_step) if name == "compile" else BASELINES[name]
    return partial(step, grads, params, bufs, PCGrad(), LR, MOMENTUM)


def bench_model(name: str, k: int, row_dtype: torch.dtype, device: torch.device, variants: list[str],
                reps: int, warmup: int, bandwidth: float, rule: str = "sgd", calls: int = 1) -> list[dict]:
    numels = PARAMETER_SIZES[name]()
    plan = SegmentPlan.build(numels, device=device)
    gen = torch.Generator(device=device).manual_seed(0)
    rows = torch.randn(k, plan.total, generator=gen, device=device).to(row_dtype)
    param = torch.randn(plan.total, generator=gen, device=device)
    grads = [plan.views(rows[j], [torch.Size([n]) for n in numels]) for j in range(k)]
    time_it = timer(device, reps, warmup, calls)
    floor_ms = (2 * k * rows.element_size() + STATE_BYTES[rule]) * sum(numels) / bandwidth * 1e3
    results = []
    for variant in variants:
        try:
            fn = _variant_step(variant, rule, rows, plan, param, grads, device, row_dtype)
            if fn is None:
                continue
            ms = time_it(fn)
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
    cuda = torch.cuda.is_available()
    parser = argparse.ArgumentParser(prog="ltu-fast bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if cuda else "cpu")
    parser.add_argument("--models", nargs="+", choices=list(PARAMETER_SIZES),
                        default=list(PARAMETER_SIZES) if cuda else ["resnet18"])
    parser.add_argument("--variants", nargs="+",
                        default=["cuda", "cuda+graph", "triton", "triton+graph", "loop", "foreach", "compile"] if cuda
                        else ["cpu", "reference", "loop", "foreach"])
    parser.add_argument("--rules", nargs="+", choices=list(STATE_BYTES), default=["sgd", "adamw"] if cuda else ["sgd"])
    parser.add_argument("--k", nargs="+", type=int, default=[2])
    parser.add_argument("--extra", action=argparse.BooleanOptionalAction, default=True,
                        help="also K=3, K=4 and bf16 rows on the --extra-models")
    parser.add_argument("--extra-models", nargs="+", choices=list(PARAMETER_SIZES),
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
