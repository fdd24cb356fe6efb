"""CUDA and Triton backends on a real GPU: reference agreement, determinism, CUDA-graph capture.

Everything here skips cleanly without a CUDA device (``scripts/gpu_check.sh`` runs it on one).
"""

from __future__ import annotations

import copy

import pytest
import torch
from helpers import (
    apply_sgd,
    assert_backend_matches_reference,
    capture_cuda_graph,
    hyper_table,
    hypers,
    plans,
    random_rows,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from ltu_fast import HarmonizedSGD
from ltu_fast.aggregators import PCGrad
from ltu_fast.backends import get_backend
from ltu_fast.functional import sgd_step
from ltu_fast.plan import SegmentPlan

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")

GPU_BACKENDS = ["cuda", "triton"]
ROW_DTYPES = [torch.float32, torch.bfloat16, torch.float16]
GROUPS = [
    {"lr": 0.1, "momentum": 0.9, "dampening": 0.0, "weight_decay": 0.01, "nesterov": True, "maximize": False},
    {"lr": 0.5, "momentum": 0.0, "dampening": 0.0, "weight_decay": 0.0, "nesterov": False, "maximize": True},
    {"lr": 0.05, "momentum": 0.5, "dampening": 0.3, "weight_decay": 0.0, "nesterov": False, "maximize": False},
]


def _backend(name: str):
    backend = get_backend(name)
    reason = backend.availability()
    if reason is not None:
        pytest.skip(f"{name}: {reason}")
    return backend


def _inputs(plan, k, seed, dtype, groups=GROUPS, with_momentum=True, ready_bits=5):
    gen = torch.Generator().manual_seed(seed)
    rows = random_rows(plan, k, seed, dtype).cuda()
    beta = (torch.rand(plan.num_segments, k, generator=gen) * 2 - 0.5).cuda()
    param = random_rows(plan, 1, seed + 1, torch.float32)[0].cuda()
    momentum = random_rows(plan, 1, seed + 2, torch.float32)[0].cuda() if with_momentum else param.new_zeros(0)
    hyper = hyper_table([groups[g % len(groups)] for g in range(plan.num_groups)]).cuda()
    ready = torch.tensor([float(ready_bits >> g & 1) for g in range(plan.num_groups)]).cuda()
    return rows, beta, param, momentum, hyper, ready


@pytest.mark.parametrize("name", GPU_BACKENDS)
@settings(max_examples=40, deadline=None)
@given(plan=plans(max_tensors=6, max_numel=3000), k=st.integers(1, 4), dtype=st.sampled_from(ROW_DTYPES),
       seed=st.integers(0, 2**16), groups=st.lists(hypers(), min_size=1, max_size=3),
       with_momentum=st.booleans(), ready_bits=st.integers(0, 7), chunk=st.sampled_from([256, 1 << 15]))
def test_matches_reference(name, plan, k, dtype, seed, groups, with_momentum, ready_bits, chunk):
    backend = _backend(name)
    old = backend.CHUNK
    backend.CHUNK = chunk
    try:
        assert_backend_matches_reference(
            name, plan, *_inputs(plan, k, seed, dtype, groups, with_momentum, ready_bits))
    finally:
        backend.CHUNK = old


@pytest.mark.parametrize("name", GPU_BACKENDS)
@pytest.mark.parametrize("dtype", ROW_DTYPES, ids=str)
@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_large_segments(name, dtype, k):
    """Segments spanning many chunks and tensors in different groups; odd sizes (scalar tails)."""
    _backend(name)
    plan = SegmentPlan.build([300_001, 3, 123_457, 17, 65_536], [0, 1, 0, 1, 2], [0, 1, 2, 0, 1])
    assert_backend_matches_reference(name, plan, *_inputs(plan, k, 11, dtype))


@pytest.mark.parametrize("name", GPU_BACKENDS)
def test_unaligned_plan_uses_scalar_path(name):
    _backend(name)
    plan = SegmentPlan.build([1001, 5, 77], [0, 0, 1], [0, 1, 0], align_bytes=4)
    for dtype in ROW_DTYPES:
        assert_backend_matches_reference(name, plan, *_inputs(plan, 2, 3, dtype))


@pytest.mark.parametrize("name", GPU_BACKENDS)
@pytest.mark.parametrize("k", [2, 4])
def test_bitwise_run_to_run(name, k):
    backend = _backend(name)
    plan = SegmentPlan.build([1_000_003, 4097, 250_000], [0, 1, 0], [0, 1, 0]).to("cuda")
    rows, beta, param, momentum, hyper, ready = _inputs(plan, k, 1, torch.float32)
    first = backend.gram(rows, plan)
    for _ in range(5):
        assert torch.equal(first, backend.gram(rows, plan))
    assert torch.equal(backend.combine(rows, beta, plan), backend.combine(rows, beta, plan))
    outs = []
    for _ in range(2):
        p, m = param.clone(), momentum.clone()
        apply_sgd(backend, rows, beta, plan, p, m, hyper, ready, torch.zeros(1, device="cuda"))
        outs.append((p, m))
    assert torch.equal(outs[0][0], outs[1][0]) and torch.equal(outs[0][1], outs[1][1])


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(33, 257), torch.nn.GELU(), torch.nn.Linear(257, 10)).cuda()


def _opt(model, backend):
    return HarmonizedSGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4,
                         objectives=("forget", "retain"), aggregator="pcgrad", backend=backend)


def _fill(opt, seed):
    gen = torch.Generator(device="cuda").manual_seed(seed)
    opt.grad_rows.copy_(torch.randn(opt.grad_rows.shape, generator=gen, device="cuda"))


@pytest.mark.parametrize("name", GPU_BACKENDS)
def test_step_is_cuda_graph_capturable(name):
    _backend(name)
    eager_model = _model()
    graph_model = copy.deepcopy(eager_model)
    eager, graphed = _opt(eager_model, name), _opt(graph_model, name)
    _fill(eager, 0)
    _fill(graphed, 0)
    eager.step()
    graph = capture_cuda_graph(graphed.step)  # warm-up: chunk tables and hyper tensor built outside capture
    for seed in (1, 2, 3):
        _fill(eager, seed)
        _fill(graphed, seed)
        eager.step()
        graph.replay()
    torch.cuda.synchronize()
    for a, b in zip(eager_model.parameters(), graph_model.parameters()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("name", GPU_BACKENDS)
def test_compiled_step_matches_eager(name):
    _backend(name)
    eager_model = _model()
    compiled_model = copy.deepcopy(eager_model)
    eager, compiled = _opt(eager_model, name), _opt(compiled_model, name)
    step = torch.compile(compiled.step, fullgraph=True)
    for seed in range(3):
        _fill(eager, seed)
        _fill(compiled, seed)
        eager.step()
        step()
    for a, b in zip(eager_model.parameters(), compiled_model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", GPU_BACKENDS)
def test_non_finite_row_skips_on_device(name):
    _backend(name)
    model = _model()
    opt = _opt(model, name)
    _fill(opt, 0)
    opt.grad_row("retain")[5] = float("inf")
    before = opt.flat_params.clone()
    opt.step()
    assert torch.equal(before, opt.flat_params)
    assert opt.skipped_steps == 1


def test_cuda_gram_launcher_guards_zero_sizes():
    """``_C_cuda.gram`` itself (the Python wrapper routes these to the reference today): no chunks
    writes zero statistics for every segment, no segments launches nothing; neither is a launch error."""
    cuda = _backend("cuda")
    rows = torch.zeros(2, 8, device="cuda")
    seg_ptr = torch.zeros(4, dtype=torch.int64, device="cuda")
    empty = torch.zeros(0, dtype=torch.int64, device="cuda")
    device, stream = torch.cuda.current_device(), torch.cuda.current_stream().cuda_stream
    for segments, expected in ((3, 0.0), (0, float("nan"))):  # zeros for every segment; nothing written
        stats = torch.full((3, 2, 2), float("nan"), device="cuda")
        cuda._C_cuda.gram(rows=rows.data_ptr(), row_dtype=0, k=2, row_stride=8, chunks=empty.data_ptr(), num_chunks=0,
                          vec=False, seg_ptr=seg_ptr.data_ptr(), seg_chunks=empty.data_ptr(), num_segments=segments,
                          partial=empty.data_ptr(), stats=stats.data_ptr(), device=device, stream=stream)
        torch.cuda.synchronize()
        torch.testing.assert_close(stats, torch.full_like(stats, expected), equal_nan=True)


@pytest.mark.parametrize("name", GPU_BACKENDS)
def test_host_weights_scale_and_flag_reach_the_device_solve(name):
    """CPU ``weights`` / ``grad_scale`` / ``found_inf`` are moved to the Gram's device (read by
    address in the compiled solve they would be an illegal access): the same step as device ones."""
    backend = _backend(name)
    plan = SegmentPlan.build([1000, 37, 4096], [0, 1, 0], [0, 1, 0]).to("cuda")
    rows, _, param, momentum, hyper, ready = _inputs(plan, 3, 4, torch.float32)
    results = []
    for where in ("cuda", "cpu"):
        p, m, r = param.clone(), momentum.clone(), ready[list(plan.groups)].clone()  # per tensor
        sgd_step(rows, plan, p, m, hyper, r, PCGrad(), backend, weights=torch.tensor([1.0, 0.5, 2.0], device=where),
                 grad_scale=torch.tensor([4.0], device=where), found_inf=torch.zeros(1, device=where))
        results.append((p, m, r))
    torch.cuda.synchronize()
    for a, b in zip(*results):
        assert torch.equal(a, b)
