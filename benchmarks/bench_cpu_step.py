"""CPU step benchmark (not a test): fused ltu_fast step vs a torch-written per-layer PCGrad + SGD.

ResNet-18 (CIFAR head) parameter shapes, K = 2 objectives, per-layer PCGrad, SGD momentum 0.9.

    PYTHONPATH=. python -m pytest benchmarks/bench_cpu_step.py --benchmark-only -p no:cacheprovider
    PYTHONPATH=. python benchmarks/bench_cpu_step.py      # interleaved rounds, prints the ratio table

On a shared machine, prefer the second form: it alternates the three contenders every round, so
bursts of load from other jobs hit all of them alike instead of whichever test ran at that time.

Also times a large float32 copy in the same run, to compare each step with the bytes-moved floor
of the fused step: (8K + 16) bytes per parameter (read K rows, param and momentum; write both).
"""

from __future__ import annotations

import statistics
import time

import pytest
import torch

from ltu_fast.aggregators import make_aggregator
from ltu_fast.backends import cpu
from ltu_fast.bench.baselines import combine_foreach, gram_loop, pcgrad_two
from ltu_fast.functional import sgd_step
from ltu_fast.plan import SegmentPlan

pytestmark = pytest.mark.skipif(cpu.availability() is not None, reason=str(cpu.availability()))

K, LR, MOMENTUM = 2, 0.01, 0.9


def resnet18_cifar_shapes(num_classes: int = 10) -> list[tuple[int, ...]]:
    """Parameter shapes of torchvision-style ResNet-18 with the CIFAR stem (3x3 conv, no max-pool)."""
    shapes: list[tuple[int, ...]] = [(64, 3, 3, 3), (64,), (64,)]
    in_planes = 64
    for planes, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        for block in range(2):
            shapes += [(planes, in_planes, 3, 3), (planes,), (planes,), (planes, planes, 3, 3), (planes,), (planes,)]
            if block == 0 and (stride != 1 or in_planes != planes):
                shapes += [(planes, in_planes, 1, 1), (planes,), (planes,)]
            in_planes = planes
    return shapes + [(num_classes, 512), (num_classes,)]


SHAPES = resnet18_cifar_shapes()
NUMELS = [torch.Size(s).numel() for s in SHAPES]
P = sum(NUMELS)
FLOOR_BYTES = (8 * K + 16) * P


def test_shapes_are_resnet18():
    assert len(SHAPES) == 62 and 11_100_000 < P < 11_200_000


def make_fused():
    """Flat buffers as HarmonizedSGD owns them; one call is the whole harmonized SGD step."""
    gen = torch.Generator().manual_seed(0)
    plan = SegmentPlan.build(NUMELS)
    rows = torch.randn(K, plan.total, generator=gen)
    param, momentum = torch.randn(plan.total, generator=gen), torch.zeros(plan.total)
    hyper = torch.tensor([[LR, 0.0, MOMENTUM, 0.0, 0.0, 0.0]])
    ready, aggregator = torch.zeros(plan.num_tensors), make_aggregator("pcgrad")
    return lambda: sgd_step(rows, plan, param, momentum, hyper, ready, aggregator, cpu)


@pytest.fixture(scope="module")
def fused():
    return make_fused()


def torch_pcgrad_grads(g1: list[torch.Tensor], g2: list[torch.Tensor]) -> list[torch.Tensor]:
    """Per-layer PCGrad for K = 2 in torch ops, no host sync (dots per layer, closed form, foreach combine)."""
    return combine_foreach([g1, g2], pcgrad_two(gram_loop([g1, g2])))


def make_unfused():
    """Per-parameter tensors and ``torch.optim.SGD(foreach=True)``, as a plain training loop has them."""
    gen = torch.Generator().manual_seed(0)
    params = [torch.randn(s, generator=gen).requires_grad_() for s in SHAPES]
    g1 = [torch.randn(s, generator=gen) for s in SHAPES]
    g2 = [torch.randn(s, generator=gen) for s in SHAPES]
    opt = torch.optim.SGD(params, lr=LR, momentum=MOMENTUM, foreach=True)

    def step():
        for p, g in zip(params, torch_pcgrad_grads(g1, g2)):
            p.grad = g
        opt.step()

    return step


@pytest.fixture(scope="module")
def unfused():
    return make_unfused()


def test_torch_pcgrad_matches_fused_coefficients():
    gen = torch.Generator().manual_seed(1)
    shapes = [(5, 3), (7,)]
    g1 = [torch.randn(s, generator=gen) for s in shapes]
    g2 = [-g + 0.1 * torch.randn(s, generator=gen) for g, s in zip(g1, shapes)]
    plan = SegmentPlan.build([torch.Size(s).numel() for s in shapes])
    rows = torch.stack([plan.flatten(g1), plan.flatten(g2)])
    beta = make_aggregator("pcgrad")(cpu.gram(rows, plan), None)
    combined = plan.views(cpu.combine(rows, beta, plan), [torch.Size(s) for s in shapes])
    for got, want in zip(combined, torch_pcgrad_grads(g1, g2)):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.benchmark(group="resnet18-pcgrad-sgd-step")
def test_fused_cpu_step(benchmark, fused):
    benchmark.extra_info.update(params=P, floor_bytes=FLOOR_BYTES, threads=torch.get_num_threads())
    benchmark.pedantic(fused, warmup_rounds=3, rounds=50)


@pytest.mark.benchmark(group="resnet18-pcgrad-sgd-step")
def test_torch_per_layer_pcgrad_then_sgd_foreach(benchmark, unfused):
    benchmark.extra_info.update(params=P, threads=torch.get_num_threads())
    benchmark.pedantic(unfused, warmup_rounds=3, rounds=50)


def make_copy():
    """A copy of FLOOR_BYTES/2 read + FLOOR_BYTES/2 written: its time is the floor's cost."""
    src = torch.randn(FLOOR_BYTES // 8)
    dst = torch.empty_like(src)
    return lambda: dst.copy_(src)


@pytest.mark.benchmark(group="resnet18-pcgrad-sgd-step")
def test_copy_bandwidth(benchmark):
    benchmark.extra_info.update(bytes_moved=FLOOR_BYTES)
    benchmark.pedantic(make_copy(), warmup_rounds=3, rounds=50)


def main(rounds: int = 40) -> None:
    """Interleaved timing of the three contenders; prints min/median and the ratios."""
    contenders = {"fused cpu step": make_fused(), "torch PCGrad + SGD foreach": make_unfused(), "copy (floor)": make_copy()}
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for r in range(rounds + 3):
        for name, run in contenders.items():
            start = time.perf_counter()
            run()
            if r >= 3:  # warm-up rounds
                times[name].append(time.perf_counter() - start)
    stats = {name: (min(t) * 1e3, statistics.median(t) * 1e3) for name, t in times.items()}
    print(f"P = {P:,} params, K = {K}, threads = {torch.get_num_threads()}, floor = {FLOOR_BYTES / 1e6:.1f} MB/step")
    for name, (lo, med) in stats.items():
        print(f"{name:28s} min {lo:8.2f} ms   median {med:8.2f} ms")
    (f_lo, f_med), (t_lo, t_med), (c_lo, c_med) = stats.values()
    print(f"speed-up torch/fused: min {t_lo / f_lo:.2f}x  median {t_med / f_med:.2f}x")
    print(f"fused/floor: min {f_lo / c_lo:.2f}x  median {f_med / c_med:.2f}x   copy bandwidth {FLOOR_BYTES / c_lo / 1e6:.1f} GB/s")


if __name__ == "__main__":
    main()
