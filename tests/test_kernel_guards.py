"""What would crash the first GPU run, checked on the CPU: the device a Triton launch runs on, plans
from another device, row layouts the 16-byte paths cannot take, and plans with no chunks."""

from __future__ import annotations

import contextlib
import dataclasses
from types import SimpleNamespace

import pytest
import torch
from helpers import apply_sgd

from ltu_fast.aggregators import PCGrad
from ltu_fast.backends import get_backend, reference
from ltu_fast.backends.layout import kernel_plan, vector_pack
from ltu_fast.functional import adamw_step, coefficients, sgd_step, solve
from ltu_fast.plan import SegmentPlan

triton_backend = pytest.importorskip("ltu_fast.backends.triton")
cuda_backend = get_backend("cuda")


class _Recorder:
    """Fake kernels: each launch records the device made current by the backend's guard."""

    def __init__(self):
        self.current, self.launches = None, []

    def guard(self, t: torch.Tensor):
        @contextlib.contextmanager
        def entered():
            self.current = t.device
            try:
                yield
            finally:
                self.current = None
        return entered()

    def kernel(self, name: str):
        recorder = self

        class Launch:
            def __getitem__(self, grid):
                return lambda *args, **kwargs: recorder.launches.append((name, grid, recorder.current, kwargs))
        return Launch()

    def kernels(self) -> SimpleNamespace:
        return SimpleNamespace(**{n: self.kernel(n) for n in ("gram_partial", "gram_reduce", "combine", "apply",
                                                             "axpy")})


def _step_inputs(plan: SegmentPlan, k: int = 2, dtype=torch.float32):
    rows = torch.randn(k, plan.total).to(dtype)
    param = torch.randn(plan.total)
    hyper = torch.tensor([[0.1, 0.0, 0.9, 0.0, 0.0, 0.0]] * plan.num_groups)
    return rows, param, torch.zeros(plan.total), hyper, torch.zeros(plan.num_tensors)


def test_triton_guard_names_the_tensors_gpu():
    guard = triton_backend._on_device(SimpleNamespace(device=torch.device("cuda", 1)))
    assert isinstance(guard, torch.cuda.device) and guard.idx == 1
    assert isinstance(triton_backend._on_device(torch.zeros(1)), contextlib.nullcontext)


def test_every_triton_launch_runs_under_the_device_guard(monkeypatch):
    recorder = _Recorder()
    monkeypatch.setattr(triton_backend, "_on_device", recorder.guard)
    monkeypatch.setattr(triton_backend, "_kernels", recorder.kernels)
    plan = SegmentPlan.build([5, 40], [0, 1])
    rows, param, momentum, hyper, _ = _step_inputs(plan)
    beta = torch.ones(2, 2)
    triton_backend.gram(rows, plan)
    triton_backend.combine(rows, beta, plan)
    apply_sgd(triton_backend, rows, beta, plan, param, momentum, hyper, torch.zeros(plan.num_groups), torch.zeros(1))
    triton_backend.axpy(param, rows[0], 0.5)
    assert [name for name, *_ in recorder.launches] == ["gram_partial", "gram_reduce", "combine", "apply", "axpy"]
    assert all(device == rows.device for _, _, device, _ in recorder.launches)


def test_triton_passes_the_16_byte_hint_only_for_aligned_plans(monkeypatch):
    recorder = _Recorder()
    monkeypatch.setattr(triton_backend, "_kernels", recorder.kernels)
    for align_bytes, dtype, expected in ((64, torch.float32, 4), (64, torch.bfloat16, 8), (4, torch.float32, 1)):
        plan = SegmentPlan.build([5, 40], element_size=dtype.itemsize, align_bytes=align_bytes)
        triton_backend.gram(torch.randn(2, plan.total).to(dtype), plan)
        assert recorder.launches[-2][3]["ALIGN"] == expected, (align_bytes, dtype)


def test_vector_pack_needs_every_offset_aligned():
    plan = SegmentPlan.build([5, 40, 3])  # 64-byte aligned starts
    rows = torch.randn(2, plan.total)
    assert vector_pack(plan, 1 << 15, rows) == 4
    assert vector_pack(plan, 1 << 15, rows.bfloat16()) == 8
    assert vector_pack(plan, 1 << 15, rows, torch.randn(plan.total).bfloat16()) == 8  # narrowest dtype decides
    assert vector_pack(plan, 6, rows) == 1  # chunk starts inside a tensor off the pack
    assert vector_pack(SegmentPlan.build([5, 40, 3], align_bytes=4), 1 << 15, rows) == 1
    padded = torch.randn(2, plan.total + 2)[:, :plan.total]  # row stride not a multiple of the pack
    assert vector_pack(plan, 1 << 15, padded) == 1
    shifted = torch.randn(2 * plan.total + 1)[1:].view(2, plan.total)  # base address 4 bytes off
    assert vector_pack(plan, 1 << 15, shifted) == 1
    assert vector_pack(plan, 1 << 15, rows, torch.randn(plan.total + 1)[1:]) == 1
    assert vector_pack(plan, 1 << 15, rows, torch.zeros(0)) == 4  # an empty momentum buffer is never read


@pytest.mark.parametrize("backend", [triton_backend, cuda_backend], ids=["triton", "cuda"])
def test_compiled_backends_reject_strided_rows(backend):
    plan = SegmentPlan.build([5, 40])
    columns = torch.randn(plan.total, 2).t()  # [2, P] with stride(1) == 2
    with pytest.raises(ValueError, match=r"rows: .*stride\(1\) == 1"):
        backend.gram(columns, plan)
    with pytest.raises(ValueError, match="rows: expected shape"):
        backend.gram(torch.randn(2, plan.total - 1), plan)


def test_kernel_plan_moves_a_plan_to_the_rows_device():
    plan = SegmentPlan.build([5, 40], device="meta")
    moved = kernel_plan(torch.randn(2, plan.total), plan)
    assert moved.device == torch.device("cpu") and moved.chunk_table(16).chunks.device.type == "cpu"
    assert kernel_plan(torch.randn(2, plan.total), plan) is moved  # cached: no upload per step


def test_sgd_step_accepts_a_plan_from_another_device():
    """The public functional step with a plan whose tables sit elsewhere: moved, same result."""
    plan = SegmentPlan.build([5, 40, 7], [0, 1, 0])
    elsewhere = SegmentPlan.build([5, 40, 7], [0, 1, 0], device="meta")
    rows, param, momentum, hyper, ready = _step_inputs(plan)
    expected = param.clone()
    sgd_step(rows, plan, expected, momentum.clone(), hyper, ready.clone(), PCGrad(), reference)
    sgd_step(rows, elsewhere, param, momentum, hyper, ready, PCGrad(), reference)
    torch.testing.assert_close(param, expected, rtol=0, atol=0)


@pytest.mark.parametrize(("name", "bad", "message"), [
    ("param", lambda p: p[:-1], "param: expected a contiguous 1-D buffer"),
    ("param", lambda p: torch.stack([p, p], 1)[:, 0], "param: expected a contiguous 1-D buffer"),
    ("momentum", lambda m: m[:3], "momentum: expected a contiguous 1-D buffer"),
    ("param", lambda p: p.to("meta"), "param: on meta"),
    ("hyper", lambda h: h[:, :5], "hyper: expected shape"),
    ("ready", lambda r: r[:0], "ready: expected shape"),
])
def test_sgd_step_names_the_bad_buffer(name, bad, message):
    plan = SegmentPlan.build([5, 40], [0, 1], [0, 1])
    rows, param, momentum, hyper, ready = _step_inputs(plan)
    args = {"param": param, "momentum": momentum, "hyper": hyper, "ready": ready}
    args[name] = bad(args[name])
    with pytest.raises(ValueError, match=message):
        sgd_step(rows, plan, args["param"], args["momentum"], args["hyper"], args["ready"], PCGrad(), reference)


def _adamw_inputs(plan: SegmentPlan, k: int = 2):
    rows = torch.randn(k, plan.total)
    buffers = {"param": torch.randn(plan.total), "exp_avg": torch.zeros(plan.total),
               "exp_avg_sq": torch.zeros(plan.total), "max_exp_avg_sq": torch.zeros(0)}
    hyper = torch.tensor([[1e-3, 0.9, 0.999, 1e-8, 1e-2, 0.0, 0.0]] * plan.num_groups, dtype=torch.float64)
    return rows, buffers, hyper, torch.zeros(plan.num_tensors)


def _adamw(rows, plan, buffers, hyper, steps, backend=reference):
    return adamw_step(rows, plan, buffers["param"], buffers["exp_avg"], buffers["exp_avg_sq"],
                      buffers["max_exp_avg_sq"], hyper, steps, PCGrad(), backend)


def test_adamw_step_accepts_a_plan_from_another_device():
    """As sgd_step: a plan whose tables sit elsewhere is moved to the rows' device, same result."""
    plan = SegmentPlan.build([5, 40, 7], [0, 1, 0])
    elsewhere = SegmentPlan.build([5, 40, 7], [0, 1, 0], device="meta")
    rows, buffers, hyper, steps = _adamw_inputs(plan)
    expected = {name: t.clone() for name, t in buffers.items()}
    _adamw(rows, plan, expected, hyper, steps.clone())
    _adamw(rows, elsewhere, buffers, hyper, steps)
    for name in buffers:
        torch.testing.assert_close(buffers[name], expected[name], rtol=0, atol=0)


@pytest.mark.parametrize(("name", "bad", "message"), [
    ("param", lambda p: p[:-1], "param: expected a contiguous 1-D buffer"),
    ("exp_avg", lambda m: torch.stack([m, m], 1)[:, 0], "exp_avg: expected a contiguous 1-D buffer"),
    ("exp_avg_sq", lambda v: v.to("meta"), "exp_avg_sq: on meta"),
    ("max_exp_avg_sq", lambda v: torch.zeros(3), "max_exp_avg_sq: expected a contiguous 1-D buffer"),
    ("hyper", lambda h: h[:, :6], "hyper: expected shape"),
    ("steps", lambda s: s[:1], "steps: expected shape"),
])
def test_adamw_step_names_the_bad_buffer(name, bad, message):
    plan = SegmentPlan.build([5, 40], [0, 1], [0, 1])
    rows, buffers, hyper, steps = _adamw_inputs(plan)
    if name == "hyper":
        hyper = bad(hyper)
    elif name == "steps":
        steps = bad(steps)
    else:
        buffers[name] = bad(buffers[name])
    with pytest.raises(ValueError, match=message):
        _adamw(rows, plan, buffers, hyper, steps)


class _RecordingSolver:
    """A compiled backend's ``solve`` that records what it was handed (device and dtype of each input)."""

    MAX_SOLVE_K = 8

    def __init__(self):
        self.seen = {}

    def solve(self, gram, spec, counter, state, weights, grad_scale, found_inf, *rest, **kwargs):
        self.seen = {"weights": weights, "grad_scale": grad_scale, "found_inf": found_inf}
        return gram.new_zeros(gram.shape[:2]), gram.new_zeros(1)


def test_solve_moves_weights_scale_and_flag_to_the_gram_device():
    """A CPU tensor handed to a GPU solve is an illegal address: they follow the Gram ("meta" here)."""
    solver = _RecordingSolver()
    gram = torch.zeros(4, 3, 3, device="meta")
    solve(gram, PCGrad(), solver, torch.ones(3, dtype=torch.float64), torch.tensor(2.0), torch.zeros(1))
    for name, t in solver.seen.items():
        assert t.device.type == "meta" and t.dtype == torch.float32 and t.dim() == 1, (name, t)


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"weights": torch.ones(2)}, ValueError, r"weights: expected shape \[3\]"),
    ({"weights": torch.ones(1, 3)}, ValueError, r"weights: expected shape \[3\]"),
    ({"weights": torch.ones(3, dtype=torch.int64)}, TypeError, "weights: expected a floating point dtype"),
    ({"grad_scale": torch.ones(2)}, ValueError, "grad_scale: expected shape one element"),
    ({"grad_scale": torch.ones(1, dtype=torch.int32)}, TypeError, "grad_scale: expected a floating point"),
    ({"found_inf": torch.zeros(3)}, ValueError, "found_inf: expected shape one element"),
    ({"found_inf": torch.zeros(1, dtype=torch.complex64)}, TypeError, "found_inf: expected a real dtype"),
    ({"weights": [1.0, 1.0, 1.0]}, TypeError, "weights: expected a tensor"),
])
@pytest.mark.parametrize("path", ["compiled", "torch"])
def test_solve_names_a_bad_weight_scale_or_flag(kwargs, error, message, path):
    gram = torch.eye(3).expand(2, 3, 3).contiguous()
    backend = _RecordingSolver() if path == "compiled" else reference
    with pytest.raises(error, match=message):
        solve(gram, PCGrad(), backend, **kwargs)
    with pytest.raises(error, match=message):
        coefficients(gram, PCGrad(), **kwargs)


@pytest.mark.parametrize("backend", [triton_backend, cuda_backend], ids=["triton", "cuda"])
@pytest.mark.parametrize(("acc", "x", "alpha", "message"), [
    (torch.zeros(8, 2)[:, 0], torch.zeros(8), 1.0, "acc: axpy needs a contiguous"),
    (torch.zeros(8), torch.zeros(8, 2)[:, 1], 1.0, "x: axpy needs a contiguous"),
    (torch.zeros(8), torch.zeros(7), 1.0, "x: shape/device"),
    (torch.zeros(8), torch.zeros(8), torch.ones(2), "alpha: expected a one-element"),
])
def test_compiled_axpy_refuses_what_its_flat_kernel_would_misread(backend, acc, x, alpha, message, monkeypatch):
    """The kernels index one flat range: a strided buffer would be read wrongly, as the cpu backend refuses."""
    monkeypatch.setattr(triton_backend, "_kernels", lambda: pytest.fail("launched"))
    monkeypatch.setattr(cuda_backend, "_C_cuda", None)  # a launch would raise AttributeError
    with pytest.raises(ValueError, match=message):
        backend.axpy(acc, x, alpha)


def _no_chunks(plan: SegmentPlan) -> SegmentPlan:
    """What a rank that owns no shard builds for its statistics (ShardedHarmonizedSGD._owned_plan)."""
    return dataclasses.replace(plan, numels=(), segments=(), groups=(), offsets=(), cache={})


@pytest.mark.parametrize("backend", [triton_backend, cuda_backend], ids=["triton", "cuda"])
def test_a_plan_without_chunks_launches_nothing(backend, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a launch for a plan without chunks")
    monkeypatch.setattr(triton_backend, "_kernels", refuse)
    monkeypatch.setattr(cuda_backend, "_C_cuda", SimpleNamespace(gram=refuse, combine=refuse, apply=refuse))
    plan = _no_chunks(SegmentPlan.build([5, 40, 7], [0, 1, 0]))
    rows, param, momentum, hyper, ready = _step_inputs(plan)
    stats = backend.gram(rows, plan)
    assert stats.shape == (2, 2, 2) and stats.dtype == torch.float32 and not stats.any()
    assert not backend.combine(rows, torch.ones(2, 2), plan).any()
    before = param.clone()
    apply_sgd(backend, rows, torch.ones(2, 2), plan, param, momentum, hyper, ready, torch.zeros(1))
    assert torch.equal(param, before)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices")
@pytest.mark.parametrize("name", ["cuda", "triton"])
def test_rows_on_the_second_gpu_with_the_first_current(name):
    backend = get_backend(name)
    if backend.availability() is not None:
        pytest.skip(f"{name}: {backend.availability()}")
    plan = SegmentPlan.build([5, 4000, 7], [0, 1, 0])  # on the CPU, as functional users build it
    rows, param, momentum, hyper, ready = (t.to("cuda:1") for t in _step_inputs(plan, k=3))
    expected = param.clone()
    sgd_step(rows, plan, expected, momentum.clone(), hyper, ready.clone(), PCGrad(), reference)
    with torch.cuda.device(0):
        sgd_step(rows, plan, param, momentum, hyper, ready, PCGrad(), backend)
    torch.cuda.synchronize(1)
    torch.testing.assert_close(param, expected, rtol=1e-5, atol=1e-6)
