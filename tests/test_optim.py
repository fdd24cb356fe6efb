"""HarmonizedSGD: torch.optim.SGD semantics, checkpoints, schedulers, objectives, skips, no host sync."""

import copy

import numpy as np
import pytest
import torch
from helpers import (
    assert_steps_without_host_sync,
    backward_objectives,
    hypers,
    load_through_bytes,
    pcgrad_vectors,
    per_segment,
)
from helpers import objective_losses as _losses
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from ltu_fast import HarmonizedSGD


def _mlp(seed: int = 0, dtype: torch.dtype = torch.float64) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3)).to(dtype)


def _batches(steps: int, dtype: torch.dtype = torch.float64, seed: int = 1):
    gen = torch.Generator().manual_seed(seed)
    return [(torch.randn(16, 5, generator=gen, dtype=dtype), torch.randn(16, 3, generator=gen, dtype=dtype))
            for _ in range(steps)]


def _harmonized_step(model, opt, x, y, k):
    backward_objectives(opt, _losses(model, x, y), k)
    opt.step()


def _single_step(model, opt, x, y):
    """One plain step on the first objective (works for torch.optim.SGD and HarmonizedSGD alike)."""
    opt.zero_grad()
    next(_losses(model, x, y)).backward()
    opt.step()


def _flat(model) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def _groups(model, hs):
    """Two param groups (first layer, last layer) with their own hyper-parameters."""
    return [{"params": model[0].parameters(), **hs[0]}, {"params": model[2].parameters(), **hs[1]}]


@given(hs=st.lists(hypers(), min_size=2, max_size=2), aggregator=st.sampled_from(["sum", "pcgrad"]))
def test_single_objective_equals_torch_sgd(hs, aggregator):
    a, b = _mlp(), _mlp()
    sgd = torch.optim.SGD(_groups(a, hs))
    ours = HarmonizedSGD(_groups(b, hs), aggregator=aggregator)
    for x, y in _batches(5):
        for model, opt in ((a, sgd), (b, ours)):
            _single_step(model, opt, x, y)
        torch.testing.assert_close(_flat(b), _flat(a), rtol=1e-12, atol=1e-12)
    for pa, pb in zip(a.parameters(), b.parameters()):
        if sgd.state[pa].get("momentum_buffer") is not None:
            torch.testing.assert_close(ours.state[pb]["momentum_buffer"], sgd.state[pa]["momentum_buffer"])


def test_params_are_views_of_the_flat_buffer():
    model = _mlp(dtype=torch.float32)
    opt = HarmonizedSGD(model.parameters(), lr=0.1, objectives=2)
    start, end = opt.flat_params.data_ptr(), opt.flat_params.data_ptr() + opt.flat_params.numel() * 4
    assert all(start <= p.data_ptr() < end for p in model.parameters())
    assert all(p.grad.data_ptr() >= opt.grad_rows.data_ptr() for p in model.parameters())


def _run(model, opt, batches, k):
    for x, y in batches:
        _harmonized_step(model, opt, x, y, k)


def _make(seed=0, **kw):
    model = _mlp(seed)
    kw = {"lr": 0.05, "momentum": 0.9, "objectives": 3, "aggregator": "pcgrad", **kw}
    return model, HarmonizedSGD(model.parameters(), **kw)


def test_state_dict_resume_is_bitwise_identical():
    from ltu_fast import PCGrad
    batches = _batches(8)
    model, opt = _make(aggregator=PCGrad("random", seed=5), weight_decay=1e-3)
    _run(model, opt, batches, 3)

    model2, opt2 = _make(aggregator=PCGrad("random", seed=5), weight_decay=1e-3)
    _run(model2, opt2, batches[:4], 3)
    model3, opt3 = _make(seed=123, aggregator=PCGrad("random", seed=0), weight_decay=1e-3)
    load_through_bytes((model2, opt2), (model3, opt3))
    _run(model3, opt3, batches[4:], 3)
    assert torch.equal(_flat(model3), _flat(model))
    assert torch.equal(opt3._momentum, opt._momentum)


def test_two_runs_are_bitwise_equal():
    from ltu_fast import PCGrad
    runs = []
    for _ in range(2):
        model, opt = _make(aggregator=PCGrad("random", seed=2), nesterov=True)
        _run(model, opt, _batches(5), 3)
        runs.append(_flat(model))
    assert torch.equal(*runs)


def test_loads_a_torch_sgd_state_dict_and_continues_like_it():
    batches = _batches(6)
    a, b = _mlp(), _mlp()
    sgd = torch.optim.SGD(a.parameters(), lr=0.1, momentum=0.9)
    for x, y in batches[:3]:
        _single_step(a, sgd, x, y)
    b.load_state_dict(a.state_dict())
    ours = HarmonizedSGD(b.parameters(), lr=0.1, momentum=0.9, aggregator="sum")
    ours.load_state_dict(copy.deepcopy(sgd.state_dict()))
    for x, y in batches[3:]:
        for model, opt in ((a, sgd), (b, ours)):
            _single_step(model, opt, x, y)
    torch.testing.assert_close(_flat(b), _flat(a), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("make_scheduler", [
    lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5),
    lambda opt: torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.3, total_steps=8),
], ids=["StepLR", "OneCycleLR"])
@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_lr_schedulers_match_torch_sgd(make_scheduler, momentum):
    """OneCycleLR also cycles momentum (switching it on when it starts at 0)."""
    a, b = _mlp(), _mlp()
    sgd = torch.optim.SGD(a.parameters(), lr=0.1, momentum=momentum)
    ours = HarmonizedSGD(b.parameters(), lr=0.1, momentum=momentum, aggregator="sum")
    scheds = [make_scheduler(sgd), make_scheduler(ours)]
    for x, y in _batches(8):
        for model, opt, sched in ((a, sgd, scheds[0]), (b, ours, scheds[1])):
            _single_step(model, opt, x, y)
            sched.step()
        torch.testing.assert_close(_flat(b), _flat(a), rtol=1e-12, atol=1e-12)
        assert ours.param_groups[0]["lr"] == sgd.param_groups[0]["lr"]


def test_momentum_switched_on_later_and_group_added_later_match_torch_sgd():
    a, b = _mlp(), _mlp()
    sgd = torch.optim.SGD(a[0].parameters(), lr=0.1)
    ours = HarmonizedSGD(b[0].parameters(), lr=0.1, aggregator="sum")
    for t, (x, y) in enumerate(_batches(7)):
        if t == 2:
            for opt in (sgd, ours):
                opt.param_groups[0]["momentum"] = 0.9
        if t == 4:
            sgd.add_param_group({"params": a[2].parameters(), "lr": 0.3, "momentum": 0.5, "nesterov": True})
            ours.add_param_group({"params": b[2].parameters(), "lr": 0.3, "momentum": 0.5, "nesterov": True})
        for model, opt in ((a, sgd), (b, ours)):
            _single_step(model, opt, x, y)
        torch.testing.assert_close(_flat(b), _flat(a), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("granularity", ["layer", "module", "global", [0, 1, 1, 0]])
def test_granularity_matches_per_segment_oracle(granularity):
    model = _mlp()
    opt = HarmonizedSGD(model.named_parameters(), lr=1.0, objectives=3, granularity=granularity)
    expected_segments = {"layer": 4, "module": 2, "global": 1}.get(granularity, 2) if isinstance(granularity, str) \
        else 2
    assert opt.plan.num_segments == expected_segments
    before = opt.flat_params.clone()
    x, y = _batches(1)[0]
    _harmonized_step(model, opt, x, y, 3)
    rows = opt.grad_rows.numpy()
    orders = [[j for j in range(3) if j != i] for i in range(3)]
    combined = per_segment(rows, opt.plan, lambda g: pcgrad_vectors(g, orders))
    np.testing.assert_allclose((before - opt.flat_params).numpy(), combined, rtol=1e-10, atol=1e-12)


def test_module_granularity_needs_names():
    with pytest.raises(ValueError, match="granularity"):
        HarmonizedSGD(_mlp().parameters(), granularity="module")


def test_objective_rows_hold_each_losses_gradient():
    model = _mlp()
    opt = HarmonizedSGD(model.parameters(), objectives=("a", "b", "c"))
    x, y = _batches(1)[0]
    expected = [torch.cat([g.flatten() for g in torch.autograd.grad(loss, list(model.parameters()))])
                for loss in _losses(model, x, y)]
    for name, loss in zip("abc", _losses(model, x, y)):
        with opt.objective(name) as row:
            loss.backward()
        assert row.data_ptr() == opt.grad_row(name).data_ptr()
    assert opt.active_objective == "a"
    for name, grad in zip("abc", expected):
        got = torch.cat([v.flatten() for v in opt.plan.views(opt.grad_row(name), [p.shape for p in model.parameters()])])
        torch.testing.assert_close(got, grad)
    opt.zero_grad()
    assert not opt.grad_rows.any() and all(p.grad is not None for p in model.parameters())


def test_model_zero_grad_and_create_graph_are_absorbed():
    """model.zero_grad() (grads set to None) then per-objective backward == opt.zero_grad() path."""
    batches = _batches(4)
    model_a, opt_a = _make(objectives=2)
    _run(model_a, opt_a, batches, 2)
    model_b, opt_b = _make(objectives=2)
    for x, y in batches:
        model_b.zero_grad()
        for j, loss in zip(range(2), _losses(model_b, x, y)):
            with opt_b.objective(j):
                loss.backward(create_graph=j == 1)
        opt_b.step()
    assert torch.equal(_flat(model_b), _flat(model_a))


def test_non_finite_gradient_skips_the_whole_step():
    batches = _batches(3)
    model, opt = _make(objectives=2)
    ref_model = _mlp()
    ref = torch.optim.SGD(ref_model.parameters(), lr=0.05, momentum=0.9)
    x, y = batches[0]
    _harmonized_step(model, opt, x, y, 2)
    opt.grad_row(1)[3] = float("nan")
    params, momentum = opt.flat_params.clone(), opt._momentum.clone()
    opt.step()
    assert torch.equal(opt.flat_params, params) and torch.equal(opt._momentum, momentum)
    assert opt.skipped_steps == 1 and opt.step_skipped.item() == 1 and opt.last_stats.skipped

    # a skipped *first* step leaves momentum history empty: the next good step copies the gradient
    model, opt = _make(objectives=1, aggregator="sum")
    opt.zero_grad()
    next(_losses(model, x, y)).backward()
    opt.grad_row(0)[0] = float("inf")
    opt.step()
    assert opt.skipped_steps == 1 and torch.equal(_flat(model), _flat(ref_model))
    for x, y in batches[1:]:
        for m, o in ((model, opt), (ref_model, ref)):
            _single_step(m, o, x, y)
        torch.testing.assert_close(_flat(model), _flat(ref_model), rtol=1e-12, atol=1e-12)
    assert opt.skipped_steps == 1 and opt.step_skipped.item() == 0


def test_step_does_not_synchronise(monkeypatch):
    from ltu_fast import PCGrad
    model, opt = _make(aggregator=PCGrad("random", seed=1), objectives=3, weights=[1.0, 0.5, 2.0],
                       lr=torch.tensor(0.05, dtype=torch.float64))
    x, y = _batches(1)[0]
    backward_objectives(opt, _losses(model, x, y))
    assert_steps_without_host_sync(opt, monkeypatch)
    assert opt.skipped_steps == 0


def test_conflict_rate_reports_the_last_step():
    model, opt = _make(objectives=2, granularity="global")
    with pytest.raises(RuntimeError, match="conflict_rate"):
        opt.conflict_rate()
    x, y = _batches(1)[0]
    _harmonized_step(model, opt, x, y, 2)
    g = opt.grad_rows
    assert opt.conflict_rate() == float((g[0] @ g[1]) < 0)


def test_grad_scaler_unscales_every_row_in_the_fused_pass():
    batches = _batches(3, torch.float32)
    model_a, model_b = _mlp(dtype=torch.float32), _mlp(dtype=torch.float32)
    opt_a = HarmonizedSGD(model_a.parameters(), lr=0.05, momentum=0.9, objectives=2)
    opt_b = HarmonizedSGD(model_b.parameters(), lr=0.05, momentum=0.9, objectives=2)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    for x, y in batches:
        _harmonized_step(model_a, opt_a, x, y, 2)
        opt_b.zero_grad()
        for j, loss in zip(range(2), _losses(model_b, x, y)):
            with opt_b.objective(j):
                scaler.scale(loss).backward()
        scaler.step(opt_b)
        scaler.update()
    torch.testing.assert_close(_flat(model_b), _flat(model_a), rtol=1e-5, atol=1e-6)
    scaler.unscale_(opt_b)
    with pytest.raises(RuntimeError, match="unscale_"):
        scaler.step(opt_b)
