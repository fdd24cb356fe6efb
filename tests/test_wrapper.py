"""Harmonized(optimizer): any torch optimizer stepped on harmonized gradients."""

import copy
import gc
import weakref

import pytest
import torch
from helpers import assert_steps_without_host_sync, backward_objectives, load_through_bytes, no_host_sync
from test_adamw import _batches, _flat, _losses, _mlp, _run, _TwoHeads, check_against_oracle
from torch.profiler import ProfilerActivity, profile

from ltu_fast import Harmonized, HarmonizedSGD, PCGrad
from ltu_fast.optim import HarmonizedOptimizer


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
    model3, opt3 = make(seed=5)
    load_through_bytes((model2, opt2), (model3, opt3))
    for x, y in batches[3:]:
        _step(model3, opt3, x, y, 3)
    assert torch.equal(_flat(model3), _flat(model))


# torch's own rule, script by script: with aggregator "sum" the wrapper (objective a, objective b)
# is the plain optimizer (both backwards into .grad), untouched parameters included
SCRIPTS = {
    "zero_grad every step": ["zero", "a", "step", "zero", "b", "step", "zero", "a", "b", "step"],
    "no zero_grad between steps": ["zero", "a", "step", "b", "step", "step", "zero", "b", "step"],
    "zero_grad in place": ["zero", "a", "step", "zero_in_place", "b", "step", "zero_in_place", "step"],
    "model.zero_grad": ["a", "step", "model_zero", "b", "step", "model_zero", "a", "b", "step"],
    "assigned .grad": ["zero", "assign", "b", "step", "zero", "a", "assign", "step"],
}


def _act(action, model, opt, x):
    harmonized = isinstance(opt, HarmonizedOptimizer)
    if action in ("a", "b"):
        loss = model(x, "head_" + action).pow(2).mean()
        if harmonized:
            with opt.objective("ab".index(action)):
                loss.backward()
        else:
            loss.backward()
    elif action == "assign":  # written by hand, no backward: torch steps it (it is not None)
        grad = torch.full_like(model.head_b.bias, 0.5)
        model.head_b.bias.grad = grad if model.head_b.bias.grad is None else model.head_b.bias.grad + grad
    elif action == "step":
        opt.step()
    elif action == "model_zero":
        model.zero_grad()
    else:
        opt.zero_grad(set_to_none=action == "zero")


@pytest.mark.parametrize("script", list(SCRIPTS))
@pytest.mark.parametrize("name", ["adamw", "adamw-fused", "sgd"])
def test_untouched_parameters_follow_torchs_grad_none_rule(script, name):
    a, b = _TwoHeads(), _TwoHeads()
    plain = OPTIMIZERS[name](a.parameters())
    wrapped = Harmonized(OPTIMIZERS[name](b.parameters()), objectives=2, aggregator="sum")
    gen = torch.Generator().manual_seed(0)
    for action in SCRIPTS[script]:
        x = torch.randn(8, 4, generator=gen, dtype=torch.float64)
        for model, opt in ((a, plain), (b, wrapped)):
            _act(action, model, opt, x)
        assert torch.equal(_flat(a), _flat(b)), action
    for p, q in zip(a.parameters(), b.parameters()):
        for key, value in plain.state[p].items():
            assert torch.equal(torch.as_tensor(wrapped.state[q][key]), torch.as_tensor(value)), key


def test_a_group_added_mid_step_keeps_what_was_reached():
    """Re-layout between two objectives' backwards: reached flags survive, new parameters start unreached."""
    a, b = _TwoHeads(), _TwoHeads()
    first = lambda m: [*m.body.parameters(), *m.head_a.parameters()]
    plain = OPTIMIZERS["adamw"](first(a))
    wrapped = Harmonized(OPTIMIZERS["adamw"](first(b)), objectives=2, aggregator="sum")
    gen = torch.Generator().manual_seed(0)
    for action in ["zero", "a", "add_b", "b", "step", "zero", "a", "step", "b", "step"]:
        x = torch.randn(8, 4, generator=gen, dtype=torch.float64)
        for model, opt in ((a, plain), (b, wrapped)):
            if action == "add_b":
                opt.add_param_group({"params": list(model.head_b.parameters())})
            else:
                _act(action, model, opt, x)
        assert torch.equal(_flat(a), _flat(b)), action


@pytest.mark.parametrize("name", ["adamw-fused", "adamw", "sgd"])
@pytest.mark.parametrize("skip_untouched", [True, False])
def test_non_finite_gradients_skip_the_wrapped_step(name, skip_untouched):
    """Fused: the flag is read on the device; the others decide on the host (one read): both exact."""
    model = _mlp()
    opt = Harmonized(OPTIMIZERS[name](model.parameters()), objectives=2, skip_untouched=skip_untouched)
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
            assert torch.equal(torch.as_tensor(after[i][key]), torch.as_tensor(value)), key


@pytest.mark.parametrize("skip_untouched", [True, False])
def test_fused_training_loop_reads_nothing_back(skip_untouched, monkeypatch):
    """zero_grad, objective switches and step with every host-synchronising method made to raise."""
    model = _TwoHeads(torch.float32)
    opt = Harmonized(torch.optim.AdamW(model.parameters(), lr=0.01, fused=True), objectives=2,
                     skip_untouched=skip_untouched)
    x = torch.randn(8, 4)
    for step in range(3):
        losses = [model(x, head).pow(2).mean() for head in ("head_a", "head_b")]
        with no_host_sync(monkeypatch):
            opt.zero_grad()
            for j, loss in enumerate(losses[:1 + step % 2]):  # every other step, head_b is untouched
                with opt.objective(j):
                    loss.backward()
            opt.step()
    assert_steps_without_host_sync(opt, monkeypatch)


def test_wrapped_step_reuses_one_combined_buffer():
    """Every step hands the wrapped optimizer views of the same buffer and allocates nothing its size."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.Tanh(), torch.nn.Linear(128, 3))
    seen = []

    class Spy(torch.optim.AdamW):
        def step(self, closure=None):
            seen.append([p.grad.data_ptr() for group in self.param_groups for p in group["params"]])
            return super().step(closure)

    opt = Harmonized(Spy(model.parameters(), lr=0.01, fused=True), objectives=2)
    combined = opt._combined
    x = torch.randn(16, 64)
    for _ in range(3):
        backward_objectives(opt, [model(x).pow(2).mean(), model(x).abs().mean()])
        opt.step()
    assert opt._combined is combined and all(ptrs == seen[0] for ptrs in seen)
    assert all(combined.data_ptr() <= ptr < combined.data_ptr() + combined.nbytes for ptr in seen[0])
    backward_objectives(opt, [model(x).pow(2).mean(), model(x).abs().mean()])
    opt._materialize_rows()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        opt.step()
    sizes = [e.nbytes() for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    assert max(sizes, default=0) < min(p.numel() for p in model.parameters() if p.dim() > 1) * 4


def test_hooks_do_not_keep_the_wrapper_alive():
    model = _mlp()
    opt = Harmonized(torch.optim.AdamW(model.parameters()), objectives=2)
    ref = weakref.ref(opt)
    del opt
    gc.collect()
    assert ref() is None
    model(torch.randn(2, 5, dtype=torch.float64)).sum().backward()  # a hook of a freed wrapper does nothing


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
    from ltu_fast.bench.adamw import contenders

    steps = contenders([300, 7, 64], 2, torch.device("cpu"))
    assert set(steps) == {"fused", "wrapper", "torch", "copy"}
    for fn in steps.values():
        fn()
