"""HarmonizedAdamW (and HarmonizedSGD): torch.optim.AdamW / SGD on PyTorch's own test inputs, harmonization, resume, skips, state."""

import copy

import pytest
import torch
from helpers import assert_steps_without_host_sync, backward_objectives, load_through_bytes, random_rows
from helpers import objective_losses as _losses
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from ltu_fast import HarmonizedAdamW, HarmonizedSGD, PCGrad, harmonize_rows
from ltu_fast.backends import available_backends, get_backend
from ltu_fast.optim import HarmonizedOptimizer
from ltu_fast.plan import SegmentPlan
from ltu_fast.rules import ADAMW

optim_db = pytest.importorskip("torch.testing._internal.common_optimizers").optim_db

CPU_BUILT = available_backends()["cpu"] is None


def _optim_db_inputs(cls) -> list[tuple[str, type, dict]]:
    """Every configuration of torch's optim_db for ``cls`` (CPU and CUDA lists); ``capturable``
    dropped: it only chooses how torch computes on the device, which these optimizers always do."""
    info = next(o for o in optim_db if o.optim_cls is cls)
    out = {}
    for device in ("cpu", "cuda"):
        for oi in info.optim_inputs_func(device=device):
            kwargs = {k: v for k, v in oi.kwargs.items() if k != "capturable"}
            out.setdefault(repr(kwargs), (f"{cls.__name__}: {oi.desc}", cls, kwargs))
    return list(out.values())


OPTIM_DB_INPUTS = _optim_db_inputs(torch.optim.AdamW) + _optim_db_inputs(torch.optim.SGD)
OURS = {torch.optim.AdamW: HarmonizedAdamW, torch.optim.SGD: HarmonizedSGD}


def _mlp(seed=0, dtype=torch.float64):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3)).to(dtype)


def _batches(steps, dtype=torch.float64, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return [(torch.randn(16, 5, generator=gen, dtype=dtype), torch.randn(16, 3, generator=gen, dtype=dtype))
            for _ in range(steps)]


def _flat(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def _kwargs_copy(kwargs, dtype):
    """Fresh hyper-parameter tensors per optimizer (torch keeps references to them)."""
    return {k: (tuple(b.clone() for b in v) if k == "betas" and isinstance(v[0], torch.Tensor)
                else v.clone() if isinstance(v, torch.Tensor) else v) for k, v in kwargs.items()}


@pytest.mark.parametrize("desc,cls,kwargs", OPTIM_DB_INPUTS, ids=[d for d, _, _ in OPTIM_DB_INPUTS])
@pytest.mark.parametrize("backend,dtype", [("reference", torch.float64), ("cpu", torch.float32)])
def test_one_objective_equals_torch_on_optim_db_inputs(desc, cls, kwargs, backend, dtype):
    if backend == "cpu" and not CPU_BUILT:
        pytest.skip(available_backends()["cpu"])
    a, b = _mlp(dtype=dtype), _mlp(dtype=dtype)
    torch_opt = cls(a.parameters(), **_kwargs_copy(kwargs, dtype))
    ours = OURS[cls](b.parameters(), aggregator="sum", backend=backend, **_kwargs_copy(kwargs, dtype))
    # torch computes tensor hyper-parameters in their float32 dtype; float64 parameters see that rounding
    tol = {"rtol": 1e-6, "atol": 1e-7} if dtype == torch.float32 or "Tensor" in desc else {"rtol": 1e-12, "atol": 1e-14}
    for x, y in _batches(8, dtype):
        for model, opt in ((a, torch_opt), (b, ours)):
            opt.zero_grad()
            next(_losses(model, x, y)).backward()
            opt.step()
        torch.testing.assert_close(_flat(b), _flat(a), **tol)
    for pa, pb in zip(a.parameters(), b.parameters()):
        for key, value in torch_opt.state[pa].items():
            torch.testing.assert_close(ours.state[pb][key].to(value), value, **tol)


def check_against_oracle(make_plain, make_ours, aggregator, granularity, steps=4):
    """``make_ours(model)`` on K = 3 objectives steps like the float64 harmonization of the same rows
    followed by ``make_plain(params)``'s torch optimizer."""
    a, b = _mlp(), _mlp()
    plain, ours = make_plain(a.parameters()), make_ours(b)
    oracle = HarmonizedSGD(a.parameters(), objectives=3, granularity=granularity)  # layout and rows only
    for x, y in _batches(steps):
        oracle.zero_grad()
        for k, loss in enumerate(_losses(a, x, y)):
            with oracle.objective(k):
                loss.backward()
        combined, _ = harmonize_rows(oracle.grad_rows, oracle.plan, aggregator, backend="reference")
        for p, view in zip(a.parameters(), oracle.plan.views(combined, [p.shape for p in a.parameters()])):
            p.grad = view.clone()
        plain.step()
        oracle._point_grads()
        _run(b, ours, [(x, y)])
        torch.testing.assert_close(_flat(b), _flat(a), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("aggregator", ["pcgrad", "mgda", PCGrad("random", seed=3)])
@pytest.mark.parametrize("granularity", ["layer", "global"])
def test_several_objectives_equal_float64_harmonization_then_torch_adamw(aggregator, granularity):
    # a seeded order advances per call: each side gets its own copy
    check_against_oracle(lambda ps: torch.optim.AdamW(ps, lr=0.01, weight_decay=0.1, amsgrad=True),
                         lambda m: HarmonizedAdamW(m.parameters(), lr=0.01, weight_decay=0.1, amsgrad=True,
                                                   objectives=3, aggregator=copy.deepcopy(aggregator),
                                                   granularity=granularity),
                         copy.deepcopy(aggregator), granularity, steps=5)


def _run(model, opt, batches, k=3):
    for x, y in batches:
        opt.zero_grad()
        for j, loss in zip(range(k), _losses(model, x, y)):
            if isinstance(opt, HarmonizedOptimizer):
                with opt.objective(j):
                    loss.backward()
            else:
                loss.backward()
        opt.step()


def _make(seed=0, **kw):
    model = _mlp(seed)
    kw = {"lr": 0.01, "objectives": 3, "aggregator": PCGrad("random", seed=5), "amsgrad": True, **kw}
    return model, HarmonizedAdamW(model.parameters(), **kw)


def test_state_dict_resume_is_bitwise_identical():
    batches = _batches(8)
    model, opt = _make()
    _run(model, opt, batches)
    model2, opt2 = _make()
    _run(model2, opt2, batches[:4])
    model3, opt3 = _make(seed=9, aggregator=PCGrad("random", seed=0))
    load_through_bytes((model2, opt2), (model3, opt3))
    _run(model3, opt3, batches[4:])
    assert torch.equal(_flat(model3), _flat(model))
    for p, q in zip(model.parameters(), model3.parameters()):
        for key in ("step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
            assert torch.equal(opt.state[p][key], opt3.state[q][key]), key


def test_state_dict_moves_between_torch_adamw_and_ours():
    batches = _batches(6)
    a, b = _mlp(), _mlp()
    torch_opt = torch.optim.AdamW(a.parameters(), lr=0.02, amsgrad=True)
    ours = HarmonizedAdamW(b.parameters(), lr=0.02, amsgrad=True, aggregator="sum")
    for model, opt in ((a, torch_opt), (b, ours)):
        _run(model, opt, batches[:3], k=1)
    torch_opt.load_state_dict(copy.deepcopy(ours.state_dict()))  # ours -> torch, then torch -> ours
    ours.load_state_dict(copy.deepcopy(torch_opt.state_dict()))
    for model, opt in ((a, torch_opt), (b, ours)):
        _run(model, opt, batches[3:], k=1)
    torch.testing.assert_close(_flat(b), _flat(a), rtol=1e-12, atol=1e-14)


class _TwoHeads(nn.Module):
    def __init__(self, dtype=torch.float64):
        super().__init__()
        torch.manual_seed(0)
        self.body, self.head_a, self.head_b = nn.Linear(4, 6), nn.Linear(6, 2), nn.Linear(6, 2)
        self.to(dtype)

    def forward(self, x, head):
        return getattr(self, head)(torch.tanh(self.body(x)))


_RULES = {
    "adamw": (torch.optim.AdamW, HarmonizedAdamW, {"lr": 0.05, "weight_decay": 0.1, "amsgrad": True}),
    "sgd": (torch.optim.SGD, HarmonizedSGD, {"lr": 0.05, "momentum": 0.9, "dampening": 0.3, "weight_decay": 0.1}),
    "nesterov": (torch.optim.SGD, HarmonizedSGD, {"lr": 0.05, "momentum": 0.9, "nesterov": True,
                                                 "weight_decay": 0.1}),
}


@pytest.mark.parametrize("rule", list(_RULES))
def test_untouched_parameters_are_skipped_like_torch_grad_none(rule):
    """A head no loss reached this step: torch skips it (grad None); so do we (its rows are zero)."""
    torch_cls, ours_cls, kwargs = _RULES[rule]
    a, b = _TwoHeads(), _TwoHeads()
    torch_opt, ours = torch_cls(a.parameters(), **kwargs), ours_cls(b.parameters(), aggregator="sum", **kwargs)
    gen = torch.Generator().manual_seed(0)
    for head in ["head_a", "head_a", "head_b", "head_a", "head_b", "head_b"]:
        x = torch.randn(8, 4, generator=gen, dtype=torch.float64)
        for model, opt in ((a, torch_opt), (b, ours)):
            opt.zero_grad()
            model(x, head).pow(2).mean().backward()
            opt.step()
        torch.testing.assert_close(_flat(b), _flat(a), rtol=1e-12, atol=1e-14)


def test_skipped_step_changes_nothing_and_does_not_count():
    model, opt = _make(objectives=2)
    _run(model, opt, _batches(2), k=2)
    before = _flat(model).clone()
    state = {k: v.clone() for k, v in opt.state[next(model.parameters())].items()}
    x, y = _batches(1, seed=3)[0]
    backward_objectives(opt, _losses(model, x, y), 2)
    opt.grad_row(1)[0] = float("nan")
    opt.step()
    assert opt.skipped_steps == 1 and torch.equal(_flat(model), before)
    for key, value in opt.state[next(model.parameters())].items():
        assert torch.equal(value, state[key]), key
    assert opt.state[next(model.parameters())]["step"].item() == 2


def test_step_does_not_synchronise(monkeypatch):
    model, opt = _make(lr=torch.tensor(0.01, dtype=torch.float64), weights=[1.0, 0.5, 2.0])
    x, y = _batches(1)[0]
    backward_objectives(opt, _losses(model, x, y))
    assert_steps_without_host_sync(opt, monkeypatch)
    assert opt.skipped_steps == 0


def test_amsgrad_switched_on_later_and_schedulers_match_torch():
    a, b = _mlp(), _mlp()
    torch_opt = torch.optim.AdamW(a.parameters(), lr=0.05)
    ours = HarmonizedAdamW(b.parameters(), lr=0.05, aggregator="sum")
    scheds = [torch.optim.lr_scheduler.StepLR(o, step_size=2, gamma=0.5) for o in (torch_opt, ours)]
    for i, (x, y) in enumerate(_batches(6)):
        if i == 3:
            for opt in (torch_opt, ours):
                opt.param_groups[0]["amsgrad"] = True
                for p in opt.param_groups[0]["params"]:  # torch allocates max_exp_avg_sq on first use only
                    opt.state[p].setdefault("max_exp_avg_sq", torch.zeros_like(p))
        for model, opt, sched in ((a, torch_opt, scheds[0]), (b, ours, scheds[1])):
            opt.zero_grad()
            next(_losses(model, x, y)).backward()
            opt.step()
            sched.step()
        torch.testing.assert_close(_flat(b), _flat(a), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("bad,match", [
    ({"betas": (0.9, 1.0)}, r"betas\[1\]"), ({"lr": -1.0}, "lr"), ({"eps": "x"}, "eps"), ({"betas": (0.9,)}, "betas"),
])
def test_bad_hyper_parameters_name_the_culprit(bad, match):
    with pytest.raises((ValueError, TypeError), match=match):
        HarmonizedAdamW(_mlp().parameters(), **bad)


@pytest.mark.filterwarnings("ignore:optimizer contains a parameter group with duplicate parameters")
@pytest.mark.parametrize("cls", [HarmonizedSGD, HarmonizedAdamW])
def test_duplicate_parameters_are_refused(cls):
    model = _mlp()
    with pytest.raises(ValueError, match="pass each parameter once"):
        cls([model[0].weight, model[0].bias, model[0].weight])


# ------------------------------------------------------------------ the backends' AdamW apply


def _adamw_hyper(plan, seed):
    """Random rows in ``ADAMW.row_columns`` order, one per tensor (``active`` first: 3 in 4 active)."""
    gen = torch.Generator().manual_seed(seed)
    t = plan.num_groups
    beta1 = torch.rand(t, generator=gen) * 0.9
    beta2 = 0.9 + torch.rand(t, generator=gen) * 0.099
    step = torch.randint(1, 20, (t,), generator=gen).double()
    lr = torch.rand(t, generator=gen).double() * 0.1
    cols = [(torch.arange(t) % 4 != 3).double(), lr / (1 - beta1.double() ** step), (1 - beta2.double() ** step).sqrt(),
            1 - lr * (torch.rand(t, generator=gen).double() * 0.2), 1 - beta1.double(), beta2.double(),
            1 - beta2.double(), torch.full((t,), 1e-8, dtype=torch.float64),
            (torch.arange(t) % 2).double(), (torch.arange(t) % 3 == 1).double()]
    return torch.stack(cols, 1).float()


def adamw_inputs(plan, k, seed, dtype, device, amsgrad=True):
    rows = random_rows(plan, k, seed, dtype).to(device)
    gen = torch.Generator().manual_seed(seed + 1)
    beta = (torch.rand(plan.num_segments, k, generator=gen) * 2 - 0.5).to(device)
    param, m = (random_rows(plan, 1, seed + i, torch.float32)[0].to(device) for i in (2, 3))
    v = random_rows(plan, 1, seed + 4, torch.float32)[0].abs().to(device)
    vmax = (v * 1.1).where(torch.arange(plan.total) % 2 == 0, v * 0.9) if amsgrad else param.new_zeros(0)
    return rows, beta, param, m, v, vmax.to(device), _adamw_hyper(plan, seed).to(device)


def assert_adamw_matches_reference(name, plan, rows, beta, param, m, v, vmax, hyper):
    """``name``'s AdamW apply against the reference in float64 on the same inputs."""
    backend, ref = get_backend(name), get_backend("reference")
    plan = plan.to(rows.device)
    for skip in (1.0, 0.0):
        outs = [t.clone() for t in (param, m, v, vmax)]
        backend.apply(ADAMW, rows, beta, plan, outs[0], outs[1:], hyper, torch.tensor([skip], device=rows.device))
        if skip:
            assert all(torch.equal(o, t) for o, t in zip(outs, (param, m, v, vmax))), f"{name} wrote on found_inf"
            continue
        expected = [t.double() for t in (param, m, v, vmax)]
        ref.apply(ADAMW, rows.double(), beta.double(), plan, expected[0], expected[1:], hyper.double(),
                  torch.zeros(1, device=rows.device))
        row_eps = {torch.float32: 2e-7, torch.bfloat16: 8e-3, torch.float16: 1e-3}[rows.dtype]
        for what, got, want in zip(("param", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"), outs, expected):
            torch.testing.assert_close(got.double(), want, rtol=4 * row_eps + 1e-5, atol=1e-6, msg=f"{name} {what}")


@pytest.mark.skipif(not CPU_BUILT, reason="the C++ extension is not built")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16], ids=str)
@given(numels=st.lists(st.integers(1, 300), min_size=1, max_size=5), k=st.integers(1, 5),
       seed=st.integers(0, 2**16), amsgrad=st.booleans())
def test_cpu_adamw_apply_matches_reference(dtype, numels, k, seed, amsgrad):
    plan = SegmentPlan.build(numels, [i % 2 for i in range(len(numels))], list(range(len(numels))))
    assert_adamw_matches_reference("cpu", plan, *adamw_inputs(plan, k, seed, dtype, "cpu", amsgrad))


def test_step_traces_as_one_graph_and_matches_eager():
    import torch._dynamo

    torch._dynamo.reset()
    models = [_mlp(dtype=torch.float32) for _ in range(2)]
    opts = [HarmonizedAdamW(m.parameters(), lr=0.01, amsgrad=True, objectives=2) for m in models]
    for model, opt in zip(models, opts):
        x, y = _batches(1, torch.float32)[0]
        for j, loss in zip(range(2), _losses(model, x, y)):
            with opt.objective(j):
                loss.backward()
    explained = torch._dynamo.explain(opts[1].step)()
    assert explained.graph_break_count == 0, explained.break_reasons
    ops = {str(n.target) for g in explained.graphs for n in g.graph.nodes if n.op == "call_function"}
    assert any("ltu_fast.apply" in o for o in ops), ops
    opts[0].step()  # explain() ran one step of opts[1]; now one more each, the second one compiled
    opts[0].step()
    torch.compile(opts[1].step, fullgraph=True)()
    torch._dynamo.reset()
    torch.testing.assert_close(_flat(models[1]), _flat(models[0]), rtol=1e-6, atol=1e-7)
    assert opts[1].state[models[1][0].weight]["step"].item() == 2
