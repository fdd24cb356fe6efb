"""torch.compile of HarmonizedSGD.step (custom ops, no graph break) and GradScaler integration (CPU)."""

from __future__ import annotations

import copy

import pytest
import torch
import torch._dynamo

from ltu_fast import Harmonized, HarmonizedAdamW, HarmonizedSGD
from ltu_fast.ops import plan_handle, through_ops


def _model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(6, 12), torch.nn.Tanh(), torch.nn.Linear(12, 3))


def _opt(model: torch.nn.Module, **kw) -> HarmonizedSGD:
    args = {"lr": 0.05, "momentum": 0.9, "weight_decay": 1e-3, "objectives": ("forget", "retain"),
            "aggregator": "pcgrad", "backend": "reference"}
    args.update(kw)
    return HarmonizedSGD(model.parameters(), **args)


def _backward(model, opt, x, scale=lambda loss: loss) -> None:
    opt.zero_grad()
    with opt.objective("forget"):
        scale(-(model(x) ** 2).mean()).backward()
    with opt.objective("retain"):
        scale(model(x).sum()).backward()


def _state(model, opt):
    return [p.detach().clone() for p in model.parameters()], opt._momentum.clone()


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def test_step_traces_as_one_graph_without_breaks():
    model = _model()
    opt = _opt(model)
    _backward(model, opt, torch.randn(5, 6))
    explained = torch._dynamo.explain(opt.step)()
    assert explained.graph_break_count == 0, explained.break_reasons
    assert explained.graph_count == 1
    ops = {str(n.target) for g in explained.graphs for n in g.graph.nodes if n.op == "call_function"}
    assert any("ltu_fast.gram" in o for o in ops) and any("ltu_fast.apply" in o for o in ops), ops


def test_first_compiled_step_traces_no_hyper_parameter_upload():
    """The hyper-parameter table is uploaded eagerly (at construction), so even the first compiled
    call reads it as a graph input: a host-to-device copy traced into the graph would make Inductor
    skip CUDA graphs under ``mode="reduce-overhead"`` (test_cuda_graphs.py checks that on a GPU)."""
    for opt in (_opt(_model(), aggregator="sum"),  # (PCGrad's torch path builds its visit orders as a constant)
                HarmonizedAdamW(_model().parameters(), objectives=2, aggregator="sum", backend="reference")):
        explained = torch._dynamo.explain(opt.step)()
        assert explained.graph_break_count == 0, explained.break_reasons
        created = [n.target for g in explained.graphs for n in g.graph.nodes
                   if n.op == "call_function" and getattr(n.target, "__name__", "") in ("tensor", "_to_copy", "to")]
        assert not created, created
        assert opt._hyper_tensor is opt._hyper()  # no re-upload in a step either


def test_compiled_step_matches_eager():
    eager_model = _model()
    compiled_model = copy.deepcopy(eager_model)
    eager_opt, compiled_opt = _opt(eager_model), _opt(compiled_model)
    compiled_step = torch.compile(compiled_opt.step, fullgraph=True)
    for i in range(3):
        x = torch.randn(5, 6, generator=torch.Generator().manual_seed(i))
        _backward(eager_model, eager_opt, x)
        _backward(compiled_model, compiled_opt, x)
        eager_opt.step()
        compiled_step()
    for a, b in zip(eager_model.parameters(), compiled_model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(eager_opt._momentum, compiled_opt._momentum, rtol=1e-6, atol=1e-7)


def test_compiled_training_step_matches_eager():
    """The whole step (two backward passes + optimizer) under torch.compile; breaks around backward allowed."""
    eager_model = _model(1)
    compiled_model = copy.deepcopy(eager_model)
    eager_opt, compiled_opt = _opt(eager_model), _opt(compiled_model)

    def train_step(model, opt, x):
        _backward(model, opt, x)
        opt.step()

    compiled = torch.compile(train_step)
    for i in range(2):
        x = torch.randn(4, 6, generator=torch.Generator().manual_seed(10 + i))
        train_step(eager_model, eager_opt, x)
        compiled(compiled_model, compiled_opt, x)
    for a, b in zip(eager_model.parameters(), compiled_model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_non_finite_gradient_skips_step():
    model = _model()
    opt = _opt(model)
    _backward(model, opt, torch.randn(5, 6))
    opt.step()  # momentum now holds history
    _backward(model, opt, torch.randn(5, 6))
    opt.grad_row("retain")[3] = float("nan")
    before, mom = _state(model, opt)
    opt.step()
    after, mom_after = _state(model, opt)
    assert all(torch.equal(a, b) for a, b in zip(before, after))
    assert torch.equal(mom, mom_after)
    assert opt.skipped_steps == 1


def test_grad_scaler_unscales_in_kernel():
    """scaler.step == an unscaled eager step: the scale is divided out of the coefficients."""
    ref_model = _model(2)
    amp_model = copy.deepcopy(ref_model)
    ref_opt, amp_opt = _opt(ref_model), _opt(amp_model)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    x = torch.randn(5, 6)
    _backward(ref_model, ref_opt, x)
    _backward(amp_model, amp_opt, x, scale=scaler.scale)
    ref_opt.step()
    amp_opt.scaler_step(scaler)
    scaler.update()
    for a, b in zip(ref_model.parameters(), amp_model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert scaler.get_scale() == 1024.0


@pytest.mark.parametrize("bad_row", ["forget", "retain"])
def test_grad_scaler_backs_off_when_any_row_overflows(bad_row):
    model = _model(3)
    opt = _opt(model)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 16, backoff_factor=0.5)
    x = torch.randn(5, 6)
    _backward(model, opt, x, scale=scaler.scale)
    opt.grad_row(bad_row)[0] = float("inf")
    before, _ = _state(model, opt)
    opt.scaler_step(scaler)
    scaler.update()
    assert all(torch.equal(a, b) for a, b in zip(before, _state(model, opt)[0]))
    assert scaler.get_scale() == 2.0 ** 15


def test_plain_scaler_step_misses_inactive_row_overflow():
    """Documents the gap scaler_step closes: GradScaler alone only inspects the active row."""
    model = _model(4)
    opt = _opt(model)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 16)
    _backward(model, opt, torch.randn(5, 6), scale=scaler.scale)
    assert opt.active_objective == "forget"
    opt.grad_row("retain")[0] = float("inf")
    scaler.step(opt)
    scaler.update()
    assert opt.skipped_steps == 1  # the optimizer still skipped
    assert scaler.get_scale() == 2.0 ** 16  # ...but the scaler did not back off


def test_combine_into_the_wrappers_buffer_compiles_as_one_mutating_op():
    """Compiled, the wrapper's combine writes into its static buffer (``ltu_fast::combine_into``)."""
    model = _model()
    opt = Harmonized(torch.optim.SGD(model.parameters(), lr=0.05), objectives=2, backend="reference")
    rows = torch.randn(2, opt.plan.total)
    beta = torch.rand(opt.plan.num_segments, 2)
    torch.library.opcheck(torch.ops.ltu_fast.combine_into.default,
                          (rows, beta, plan_handle(opt.plan), torch.zeros_like(opt._combined), "reference"))
    ops = through_ops(opt._backend)
    combine = torch.compile(lambda r, b: ops.combine(r, b, opt.plan, out=opt._combined), fullgraph=True)
    combine(rows, beta)
    assert torch.equal(opt._combined, opt._backend.combine(rows, beta, opt.plan))
