"""Harmonized(optimizer): any torch optimizer stepped on harmonized gradients."""

import copy
import io

import pytest
import torch
from helpers import assert_steps_without_host_sync, backward_objectives
from test_adamw import _batches, _flat, _losses, _mlp, _run, _TwoHeads, check_against_oracle

from ltu_fast import Harmonized, HarmonizedSGD, PCGrad


def _step(model, opt, x, y, k):
    _run(model, opt, [(x, y)], k)


OPTIMIZERS = {
    "adamw": lambda ps: torch.optim.AdamW(ps, lr=0.01, weight_decay=0.1, amsgrad=True),
    "adamw-fused": lambda ps: torch.optim.AdamW(ps, lr=0.01, weight_decay=0.1, fused=True),
    "sgd": lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01),
    "rmsprop": lambda ps: torch.optim.RMSprop(ps, lr=0.01, momentum=0.5),
    "adagrad": lambda ps: torch.optim.Adagrad(ps, lr=0.05),
}


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_one_objective_sum_is_the_wrapped_optimizer(name):
    a, b = _mlp(), _mlp()
    plain, wrapped = OPTIMIZERS[name](a.parameters()), Harmonized(OPTIMIZERS[name](b.parameters()), aggregator="sum")
    for x, y in _batches(5):
        _step(a, plain, x, y, 1)
        _step(b, wrapped, x, y, 1)
    assert torch.equal(_flat(a), _flat(b))


@pytest.mark.parametrize("name", ["adamw", "sgd"])
@pytest.mark.parametrize("granularity", ["layer", "global"])
def test_several_objectives_equal_float64_harmonization_then_the_optimizer(name, granularity):
    aggregator = PCGrad("random", seed=4)
    check_against_oracle(OPTIMIZERS[name],
                         lambda m: Harmonized(OPTIMIZERS[name](m.parameters()), objectives=3,
                                              aggregator=copy.deepcopy(aggregator), granularity=granularity),
                         aggregator, granularity)


@pytest.mark.parametrize("name", ["adamw", "sgd", "rmsprop"])
def test_untouched_parameters_are_skipped_like_grad_none(name):
    a, b = _TwoHeads(), _TwoHeads()
    plain, wrapped = OPTIMIZERS[name](a.parameters()), Harmonized(OPTIMIZERS[name](b.parameters()), aggregator="sum")
    gen = torch.Generator().manual_seed(0)
    for head in ["head_a", "head_a", "head_b", "head_a", "head_b"]:
        x = torch.randn(8, 4, generator=gen, dtype=torch.float64)
        for model, opt in ((a, plain), (b, wrapped)):
            opt.zero_grad()
            model(x, head).pow(2).mean().backward()
            opt.step()
        assert torch.equal(_flat(a), _flat(b))


def test_param_groups_and_schedulers_are_shared():
    model = _mlp()
    inner = torch.optim.AdamW(model.parameters(), lr=0.1)
    opt = Harmonized(inner, objectives=2)
    assert opt.param_groups is inner.param_groups and opt.state is inner.state
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    for x, y in _batches(2):
        _step(model, opt, x, y, 2)
        sched.step()
    assert inner.param_groups[0]["lr"] == pytest.approx(0.025)


def test_state_dict_resume_is_bitwise_identical():
    batches = _batches(6)

    def make(seed=0):
        model = _mlp(seed)
        return model, Harmonized(torch.optim.AdamW(model.parameters(), lr=0.01), objectives=3,
                                 aggregator=PCGrad("random", seed=1))

    model, opt = make()
    for x, y in batches:
        _step(model, opt, x, y, 3)
    model2, opt2 = make()
    for x, y in batches[:3]:
        _step(model2, opt2, x, y, 3)
    buffer = io.BytesIO()
    torch.save({"model": model2.state_dict(), "opt": opt2.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer)
    model3, opt3 = make(seed=5)
    model3.load_state_dict(saved["model"])
    opt3.load_state_dict(saved["opt"])
    for x, y in batches[3:]:
        _step(model3, opt3, x, y, 3)
    assert torch.equal(_flat(model3), _flat(model))


@pytest.mark.parametrize("skip_untouched", [True, False])
def test_non_finite_gradients_skip_the_wrapped_step(skip_untouched):
    model = _mlp()
    opt = Harmonized(torch.optim.AdamW(model.parameters(), lr=0.01, fused=True), objectives=2,
                     skip_untouched=skip_untouched)
    x, y = _batches(1)[0]
    _step(model, opt, x, y, 2)
    before = _flat(model).clone()
    state = copy.deepcopy(opt.optimizer.state_dict())
    backward_objectives(opt, _losses(model, x, y), 2)
    opt.grad_row(1)[0] = float("nan")
    opt.step()
    assert opt.skipped_steps == 1 and torch.equal(_flat(model), before)
    after = opt.optimizer.state_dict()["state"]
    for i, s in state["state"].items():
        for key, value in s.items():
            assert torch.equal(after[i][key], value), key


def test_fused_without_untouched_skipping_needs_no_host_sync(monkeypatch):
    model = _mlp(dtype=torch.float32)
    opt = Harmonized(torch.optim.AdamW(model.parameters(), lr=0.01, fused=True), objectives=3, skip_untouched=False)
    x, y = _batches(1, torch.float32)[0]
    backward_objectives(opt, _losses(model, x, y))
    assert_steps_without_host_sync(opt, monkeypatch)


def test_refuses_what_it_cannot_wrap():
    with pytest.raises(TypeError, match="torch.optim.Optimizer"):
        Harmonized(object())
    with pytest.raises(TypeError, match="already harmonizes"):
        Harmonized(HarmonizedSGD(_mlp().parameters()))


def test_grad_scaler_unscales_in_the_harmonization():
    runs = []
    for scale in (None, 1024.0):
        model = _mlp(dtype=torch.float32)
        opt = Harmonized(torch.optim.AdamW(model.parameters(), lr=0.01, fused=True), objectives=2)
        scaler = torch.amp.GradScaler("cpu", init_scale=scale or 1.0, enabled=scale is not None)
        for x, y in _batches(3, torch.float32):
            opt.zero_grad()
            for j, loss in zip(range(2), _losses(model, x, y)):
                with opt.objective(j):
                    scaler.scale(loss).backward()
            opt.scaler_step(scaler)
            scaler.update()
        runs.append(_flat(model))
    torch.testing.assert_close(runs[1], runs[0], rtol=1e-5, atol=1e-6)


def test_adamw_benchmark_contenders_run():
    from ltu_fast.bench_adamw import contenders

    steps = contenders([300, 7, 64], 2, torch.device("cpu"))
    assert set(steps) == {"fused", "wrapper", "torch", "copy"}
    for fn in steps.values():
        fn()
