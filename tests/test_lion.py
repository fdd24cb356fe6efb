"""HarmonizedLion: Lion (Chen et al. 2023) applied to the harmonized gradient, on every CPU-side backend.

The oracle is Lion as the paper states it, per parameter in float64 (``_ReferenceLion``, skipping
``grad is None`` as torch optimizers do), fed the float64 harmonization of the same rows. Every
step of every backend (reference in float64; cpu and the Triton interpreter in float32) is checked
against it from the same state, so errors cannot compound; a float32 sign may differ only where the
float64 interpolation ``c`` is within rounding of zero.
"""

from __future__ import annotations

import copy

import pytest
import torch
from helpers import load_through_bytes, random_rows
from hypothesis import given, settings
from hypothesis import strategies as st
from test_adamw import _losses, _mlp, _run, _TwoHeads
from test_wrapper import SCRIPTS, _act

from ltu_fast import HarmonizedLion, PCGrad, harmonize_rows
from ltu_fast.backends import available_backends, get_backend
from ltu_fast.functional import tensor_plan
from ltu_fast.plan import SegmentPlan
from ltu_fast.rules import LION, prepare_rows

BACKENDS = [b for b in ("reference", "cpu", "triton") if available_backends()[b] is None]


class _ReferenceLion(torch.optim.Optimizer):
    """Lion per parameter: c = beta1 m + (1 - beta1) g, p <- p (1 - lr wd) - lr sign(c), m <- beta2 m + (1 - beta2) g."""

    def __init__(self, params, lr, betas=(0.9, 0.99), weight_decay=0.0, maximize=False):
        super().__init__(params, {"lr": lr, "betas": betas, "weight_decay": weight_decay, "maximize": maximize})

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = -p.grad if group["maximize"] else p.grad
                m = self.state[p].setdefault("exp_avg", torch.zeros_like(p))
                c = beta1 * m + (1 - beta1) * g
                p.mul_(1 - group["lr"] * group["weight_decay"]).add_(torch.sign(c), alpha=-group["lr"])
                m.mul_(beta2).add_(g, alpha=1 - beta2)


def _groups(model, lr=0.01):
    return [{"params": model[0].parameters(), "lr": lr, "weight_decay": 0.1},
            {"params": model[2].parameters(), "lr": 2 * lr, "betas": (0.8, 0.95), "maximize": True}]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("aggregator", ["pcgrad", "mgda", "sum"])
def test_each_step_is_float64_lion_of_the_float64_harmonization(backend, aggregator):
    dtype = torch.float64 if backend == "reference" else torch.float32
    model = _mlp(dtype=dtype)
    opt = HarmonizedLion(_groups(model), objectives=3, aggregator=aggregator, backend=backend)
    shapes = [p.shape for p in model.parameters()]
    for step, (x, y) in enumerate(_batches(4, dtype)):
        opt.zero_grad()
        for k, loss in enumerate(_losses(model, x, y)):
            with opt.objective(k):
                loss.backward()
        # the oracle: float64 copies of the same parameters, moments and rows, in the same layout
        twin = copy.deepcopy(model).double()
        oracle = _ReferenceLion(_groups(twin), lr=0.01)
        for p, q in zip(model.parameters(), twin.parameters()):
            if step:
                oracle.state[q]["exp_avg"] = opt.state[p]["exp_avg"].double().clone()
        combined, _ = harmonize_rows(opt.grad_rows.double(), opt.plan, aggregator, backend="reference")
        grads = opt.plan.views(combined, shapes)
        m_before = [oracle.state[q].get("exp_avg", torch.zeros_like(q)).clone() for q in twin.parameters()]
        for q, g in zip(twin.parameters(), grads):
            q.grad = g
        oracle.step()
        opt.step()
        for p, q, g, m, group in zip(model.parameters(), twin.parameters(), grads, m_before,
                                     [oracle.param_groups[0]] * 2 + [oracle.param_groups[1]] * 2):
            if dtype == torch.float64:
                torch.testing.assert_close(p, q, rtol=1e-14, atol=1e-15)
                continue
            beta1 = group["betas"][0]
            g = -g if group["maximize"] else g
            c = beta1 * m + (1 - beta1) * g
            near_zero = c.abs() <= 1e-5 * (beta1 * m.abs() + (1 - beta1) * g.abs()) + 1e-30
            bound = 1e-6 * q.abs() + 1e-7 + near_zero * 2.0 * group["lr"]
            assert ((p.double() - q).abs() <= bound).all(), (backend, step, (p.double() - q).abs().max())
            torch.testing.assert_close(opt.state[p]["exp_avg"].double(), oracle.state[q]["exp_avg"],
                                       rtol=1e-5, atol=1e-7)


def _batches(steps, dtype, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return [(torch.randn(16, 5, generator=gen, dtype=dtype), torch.randn(16, 3, generator=gen, dtype=dtype))
            for _ in range(steps)]


def _flat(model) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


@pytest.mark.parametrize("backend", BACKENDS)
def test_state_dict_resume_is_bitwise_identical(backend):
    dtype = torch.float64 if backend == "reference" else torch.float32
    batches = _batches(6, dtype)

    def make(seed=0):
        model = _mlp(seed, dtype)
        return model, HarmonizedLion(model.parameters(), lr=0.01, weight_decay=0.1, objectives=3,
                                     aggregator=PCGrad("random", seed=1), backend=backend)

    model, opt = make()
    _run(model, opt, batches)
    model2, opt2 = make()
    _run(model2, opt2, batches[:3])
    model3, opt3 = make(seed=5)
    load_through_bytes((model2, opt2), (model3, opt3))
    _run(model3, opt3, batches[3:])
    assert torch.equal(_flat(model3), _flat(model))
    for p, q in zip(model.parameters(), model3.parameters()):
        assert torch.equal(opt.state[p]["exp_avg"], opt3.state[q]["exp_avg"])


@pytest.mark.parametrize("backend", BACKENDS)
def test_non_finite_gradients_skip_the_step(backend):
    dtype = torch.float64 if backend == "reference" else torch.float32
    model = _mlp(dtype=dtype)
    opt = HarmonizedLion(model.parameters(), lr=0.01, weight_decay=0.1, objectives=2, backend=backend)
    _run(model, opt, _batches(2, dtype), k=2)
    before = _flat(model).clone()
    moments = [opt.state[p]["exp_avg"].clone() for p in model.parameters()]
    opt.zero_grad()
    for k, loss in zip(range(2), _losses(model, *_batches(1, dtype, seed=3)[0])):
        with opt.objective(k):
            loss.backward()
    opt.grad_row(1)[0] = float("nan")
    opt.step()
    assert opt.skipped_steps == 1 and torch.equal(_flat(model), before)
    assert all(torch.equal(opt.state[p]["exp_avg"], m) for p, m in zip(model.parameters(), moments))


@pytest.mark.parametrize("script", list(SCRIPTS))
@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_untouched_parameters_are_skipped_like_grad_none(script, backend):
    """Lion on the wrapper's five scripts equals the reference Lion, which skips ``grad is None``."""
    if available_backends()[backend] is not None:
        pytest.skip(available_backends()[backend])
    dtype = torch.float64 if backend == "reference" else torch.float32
    a, b = _TwoHeads(dtype), _TwoHeads(dtype)
    plain = _ReferenceLion(a.parameters(), lr=0.01, weight_decay=0.1)
    ours = HarmonizedLion(b.parameters(), lr=0.01, weight_decay=0.1, objectives=2, aggregator="sum", backend=backend)
    gen = torch.Generator().manual_seed(0)
    for action in SCRIPTS[script]:
        x = torch.randn(8, 4, generator=gen, dtype=dtype)
        for model, opt in ((a, plain), (b, ours)):
            _act(action, model, opt, x)
        torch.testing.assert_close(_flat(b), _flat(a), rtol=1e-6 if dtype == torch.float32 else 1e-14, atol=1e-7,
                                   msg=action)


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "reference"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16], ids=str)
@settings(max_examples=6, deadline=None)
@given(numels=st.lists(st.integers(1, 300), min_size=1, max_size=5), k=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_apply_matches_the_reference_in_float64(backend, dtype, numels, k, seed):
    """The compiled apply of rows the solve would write (3 in 4 tensors active) vs the reference in float64."""
    if backend == "triton":
        get_backend("triton").CHUNK, get_backend("triton").BLOCK = 48, 16  # interpreter-sized, tails everywhere
    plan = tensor_plan(SegmentPlan.build(numels, [i % 2 for i in range(len(numels))]))
    gen = torch.Generator().manual_seed(seed)
    rows = random_rows(plan, k, seed, dtype)
    beta = torch.rand(plan.num_segments, k, generator=gen) * 2 - 0.5
    param, m = (random_rows(plan, 1, seed + i, torch.float32)[0] for i in (1, 2))
    group = torch.tensor([[0.01, 0.9, 0.99, 0.1, float(seed % 2)]], dtype=torch.float64)
    active = torch.arange(plan.num_tensors) % 4 != 3
    table = prepare_rows(LION, group.expand(plan.num_tensors, -1), torch.zeros(plan.num_tensors, 0), plan, active,
                         torch.float32)
    try:
        for skip in (1.0, 0.0):
            p, mm = param.clone(), m.clone()
            get_backend(backend).apply(LION, rows, beta, plan, p, [mm], table, torch.tensor([skip]))
            if skip:
                assert torch.equal(p, param) and torch.equal(mm, m)
                continue
            p64, m64 = param.double(), m.double()
            get_backend("reference").apply(LION, rows.double(), beta.double(), plan, p64, [m64], table.double(),
                                           torch.zeros(1))
            eps = {torch.float32: 2e-7, torch.bfloat16: 8e-3, torch.float16: 1e-3}[dtype]
            torch.testing.assert_close(mm.double(), m64, rtol=4 * eps + 1e-5, atol=1e-6)
            flipped = (p.double() - p64).abs() > 1e-5  # a sign within rounding of zero: 2 lr apart at most
            assert ((p.double() - p64).abs()[flipped] <= 0.02 + 1e-6).all() and flipped.float().mean() < 0.01
    finally:
        if backend == "triton":
            get_backend("triton").CHUNK, get_backend("triton").BLOCK = 1 << 15, 1024


@pytest.mark.parametrize("bad,match", [
    ({"betas": (0.9, 1.0)}, r"betas\[1\]"), ({"lr": -1.0}, "lr"), ({"weight_decay": "x"}, "weight_decay"),
    ({"betas": (0.9,)}, "betas"),
])
def test_bad_hyper_parameters_name_the_culprit(bad, match):
    with pytest.raises((ValueError, TypeError), match=match):
        HarmonizedLion(_mlp().parameters(), **bad)


def test_tensor_learning_rate_and_betas_are_read_on_the_device():
    a, b = _mlp(), _mlp()
    floats = HarmonizedLion(a.parameters(), lr=0.01, betas=(0.9, 0.99), objectives=3, backend="reference")
    tensors = HarmonizedLion(b.parameters(), lr=torch.tensor(0.01, dtype=torch.float64),
                             betas=(torch.tensor(0.9, dtype=torch.float64), 0.99), objectives=3, backend="reference")
    batches = _batches(3, torch.float64)
    _run(a, floats, batches)
    _run(b, tensors, batches)
    assert torch.equal(_flat(a), _flat(b))
