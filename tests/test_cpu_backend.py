"""The C++ CPU backend against the float64 reference, plus determinism and argument checks.

Low-precision rows are compared with the reference run on the *same rounded* values upcast to
float64, so the bounds measure the kernels' arithmetic, not the input rounding.
"""

from __future__ import annotations

import pytest
import torch
from helpers import apply_sgd
from hypothesis import given, settings
from hypothesis import strategies as st

from ltu_fast.aggregators import make_aggregator
from ltu_fast.backends import cpu
from ltu_fast.backends import reference as ref
from ltu_fast.functional import sgd_step, tensor_plan
from ltu_fast.optim import HarmonizedSGD
from ltu_fast.plan import SegmentPlan
from ltu_fast.rules import SGD

pytestmark = pytest.mark.skipif(cpu.availability() is not None, reason=str(cpu.availability()))

ROW_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
C = cpu.CHUNK_ELEMENTS
SIZES = (1, 2, 15, 16, 17, 100, 1000, C - 1, C + 1, 2 * C + 5)
UNIT = {torch.float32: 2.0**-24, torch.bfloat16: 2.0**-8, torch.float16: 2.0**-11}  # unit round-off


@st.composite
def cases(draw, max_k: int = 4):
    """A plan (1..6 tensors, random segments and groups), K rows in a row dtype, some rows zero."""
    n = draw(st.integers(1, 6))
    numels = draw(st.lists(st.sampled_from(SIZES), min_size=n, max_size=n))
    segments = draw(st.lists(st.integers(0, n - 1), min_size=n, max_size=n))
    groups = draw(st.lists(st.integers(0, 2), min_size=n, max_size=n))
    groups = [sorted(set(groups)).index(g) for g in groups]  # dense ids, as the optimizer builds them
    plan = SegmentPlan.build(numels, segments, groups)
    k = draw(st.integers(1, max_k))
    dtype = draw(st.sampled_from(ROW_DTYPES))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    rows = torch.randn(k, plan.total, generator=gen).to(dtype)
    for j in draw(st.lists(st.integers(0, k - 1), max_size=k)):
        rows[j].zero_()
    beta = torch.randn(plan.num_segments, k, generator=gen)
    return plan, rows, beta, gen


@settings(max_examples=60, deadline=None)
@given(cases(max_k=5))
def test_gram_matches_float64_reference(case):
    plan, rows, _, _ = case
    got = cpu.gram(rows, plan)
    want = ref.gram(rows.double(), plan)
    assert got.dtype == torch.float32 and got.shape == want.shape
    assert torch.equal(got, got.transpose(1, 2))
    diag = torch.diagonal(want, dim1=1, dim2=2)
    scale = (diag[:, :, None] * diag[:, None, :]).sqrt()  # Cauchy-Schwarz bound of each entry
    assert ((got.double() - want).abs() <= 2e-7 * scale + 1e-30).all()  # double sums, one float rounding


@settings(max_examples=60, deadline=None)
@given(cases(max_k=5))
def test_combine_matches_float64_reference(case):
    plan, rows, beta, _ = case
    got = cpu.combine(rows, beta, plan)
    assert got.dtype == rows.dtype
    wide = rows.double()
    want = ref.combine(wide, beta.double(), plan)
    magnitude = ref.combine(wide.abs(), beta.double().abs(), plan)
    k = rows.shape[0]
    bound = (UNIT[rows.dtype] + k * 2.0**-24) * magnitude + 2.0**-24
    assert ((got.double() - want).abs() <= bound).all()
    padding = torch.ones(plan.total, dtype=torch.bool)
    for o, n in zip(plan.offsets, plan.numels):
        padding[o:o + n] = False
    assert (got[padding] == 0).all()


HYPER_VALUES = st.tuples(st.sampled_from([0.0, 0.1, 1.0]), st.sampled_from([0.0, 0.01]), st.sampled_from([0.0, 0.9]),
                         st.sampled_from([0.0, 0.5]), st.sampled_from([0.0, 1.0]), st.sampled_from([0.0, 1.0]))


@settings(max_examples=80, deadline=None)
@given(cases(), st.lists(HYPER_VALUES, min_size=3, max_size=3), st.lists(st.sampled_from([0.0, 1.0]), min_size=3,
                                                                          max_size=3), st.booleans(), st.booleans())
def test_sgd_apply_matches_float64_reference(case, hyper_rows, ready_values, with_momentum, skip):
    plan, rows, beta, gen = case
    g = plan.num_groups
    hyper = torch.tensor(hyper_rows[:g], dtype=torch.float32)
    ready = torch.tensor(ready_values[:g], dtype=torch.float32)
    found_inf = torch.tensor([1.0 if skip else 0.0])
    param = torch.randn(plan.total, generator=gen)
    momentum = torch.randn(plan.total, generator=gen) if with_momentum else torch.empty(0)
    p_got, m_got = param.clone(), momentum.clone()
    apply_sgd(cpu, rows, beta, plan, p_got, m_got, hyper, ready, found_inf)
    if skip:
        assert torch.equal(p_got, param) and torch.equal(m_got, momentum)
        return
    p_want, m_want = param.double(), momentum.double()
    apply_sgd(ref, rows.double(), beta.double(), plan, p_want, m_want, hyper.double(), ready.double(), found_inf)
    # Every quantity is O(1..10) here, so an absolute bound of a few float32 ulps of 10 is tight.
    torch.testing.assert_close(p_got.double(), p_want, rtol=1e-6, atol=1e-5)
    torch.testing.assert_close(m_got.double(), m_want, rtol=1e-6, atol=1e-5)


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(ROW_DTYPES), st.sampled_from([1, 17, C + 3]), st.booleans())
def test_axpy_matches_reference(dtype, n, tensor_alpha):
    gen = torch.Generator().manual_seed(n)
    acc = torch.randn(n, generator=gen)
    x = torch.randn(n, generator=gen).to(dtype)
    alpha = torch.tensor(-0.37) if tensor_alpha else -0.37
    got = acc.clone()
    cpu.axpy(got, x, alpha)
    want = acc.double() + (-0.37) * x.double()
    torch.testing.assert_close(got.double(), want, rtol=0, atol=4e-7)


def _all_bit_patterns(dtype: torch.dtype) -> torch.Tensor:
    return torch.arange(-(2**15), 2**15, dtype=torch.int32).to(torch.int16).view(dtype)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_decoding_every_16bit_value_is_exact(dtype):
    x = _all_bit_patterns(dtype)
    acc = torch.zeros(x.numel())
    cpu.axpy(acc, x, 1.0)
    torch.testing.assert_close(acc, x.float(), rtol=0, atol=0, equal_nan=True)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("scale", [1.0, 0.3, 3.7, 1e-3, 7e-6, 1e3, 300.0])
def test_encoding_rounds_like_torch(dtype, scale):
    """K = 1 combine is one float product then one rounding: it must match torch bit for bit."""
    x = _all_bit_patterns(dtype)
    plan = SegmentPlan.build([x.numel()], element_size=2)
    got = cpu.combine(x[None], torch.tensor([[scale]]), plan)
    want = (x.float() * torch.tensor(scale)).to(dtype)
    nan = want.isnan()
    assert torch.equal(got.isnan(), nan)
    assert torch.equal(got[~nan].view(torch.int16), want[~nan].view(torch.int16))


def _big_case(dtype: torch.dtype, k: int):
    plan = SegmentPlan.build([3 * C + 7, 5, C, 2 * C + 1], [0, 1, 0, 2], [0, 1, 0, 1])
    gen = torch.Generator().manual_seed(k)
    rows = torch.randn(k, plan.total, generator=gen).to(dtype)
    beta = torch.randn(plan.num_segments, k, generator=gen)
    hyper = torch.tensor([[0.1, 0.01, 0.9, 0.1, 0, 0], [0.05, 0, 0.9, 0, 1, 0]])
    return plan, rows, beta, hyper, torch.randn(plan.total, generator=gen)


def _run_all(plan, rows, beta, hyper, param):
    p, m = param.clone(), param.clone().flip(0)
    apply_sgd(cpu, rows, beta, plan, p, m, hyper, torch.ones(2), torch.zeros(1))
    return cpu.gram(rows, plan), cpu.combine(rows, beta, plan), p, m


@pytest.mark.parametrize("dtype", ROW_DTYPES)
@pytest.mark.parametrize("k", [2, 3, 5])
def test_bitwise_deterministic_for_any_thread_count(dtype, k):
    case = _big_case(dtype, k)
    before = torch.get_num_threads()
    try:
        results = []
        for threads in (1, 2, 3, 1):
            torch.set_num_threads(threads)
            results.append(_run_all(*case))
    finally:
        torch.set_num_threads(before)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert torch.equal(a.view(torch.uint8), b.view(torch.uint8))


def test_functional_step_and_optimizer_match_reference():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(7, 33), torch.nn.ReLU(), torch.nn.Linear(33, 3))
    twin = torch.nn.Sequential(torch.nn.Linear(7, 33), torch.nn.ReLU(), torch.nn.Linear(33, 3))
    twin.load_state_dict(model.state_dict())
    kwargs = {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-3, "objectives": ("forget", "retain")}
    opts = [HarmonizedSGD(m.parameters(), backend=b, **kwargs) for m, b in ((model, "cpu"), (twin, "reference"))]
    x, y = torch.randn(16, 7), torch.randint(0, 3, (16,))
    for _ in range(3):
        for m, opt in zip((model, twin), opts):
            opt.zero_grad()
            with opt.objective("forget"):
                (-torch.nn.functional.cross_entropy(m(x[:8]), y[:8])).backward()
            with opt.objective("retain"):
                torch.nn.functional.cross_entropy(m(x[8:]), y[8:]).backward()
            opt.step()
    assert opts[0]._backend is cpu
    for a, b in zip(model.parameters(), twin.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_nonfinite_gradient_skips_the_step():
    plan, rows, _, hyper, param = _big_case(torch.float32, 2)
    rows[1, 5] = float("nan")
    momentum, ready = torch.zeros(plan.total), torch.zeros(plan.num_tensors)
    before = param.clone()
    stats = sgd_step(rows, plan, param, momentum, hyper, ready, make_aggregator("pcgrad"), cpu)
    assert stats.found_inf.item() == 1.0
    assert torch.equal(param, before) and (momentum == 0).all() and (ready == 0).all()


def test_supports_only_cpu_and_the_row_dtypes():
    cpu_device = torch.device("cpu")
    assert all(cpu.supports(cpu_device, d, torch.float32) for d in ROW_DTYPES)
    assert cpu.supports(cpu_device, torch.bfloat16, None)
    assert not cpu.supports(cpu_device, torch.float64, None)
    assert not cpu.supports(cpu_device, torch.float32, torch.float64)
    assert not cpu.supports(torch.device("meta"), torch.float32, torch.float32)


def test_arguments_are_validated_by_name():
    plan, rows, beta, _, param = _big_case(torch.float32, 2)
    momentum, found_inf = torch.zeros(plan.total), torch.zeros(1)
    table = torch.zeros(plan.num_tensors, len(SGD.row_columns))
    tensors = tensor_plan(plan)
    with pytest.raises(ValueError, match="rows"):
        cpu.gram(rows[:, : plan.total - 1], plan)
    with pytest.raises(ValueError, match="rows"):
        cpu.gram(torch.randn(plan.total, 2).T, plan)
    with pytest.raises(TypeError, match="rows"):
        cpu.gram(rows.double(), plan)
    with pytest.raises(ValueError, match="rows"):
        cpu.gram(rows.to("meta"), plan)
    with pytest.raises(ValueError, match="beta"):
        cpu.combine(rows, beta[:, :1].contiguous(), plan)
    with pytest.raises(TypeError, match="param"):
        cpu.apply(SGD, rows, beta, tensors, param.double(), [momentum], table, found_inf)
    with pytest.raises(ValueError, match="momentum"):
        cpu.apply(SGD, rows, beta, tensors, param, [momentum[:-1]], table, found_inf)
    with pytest.raises(ValueError, match="table"):
        cpu.apply(SGD, rows, beta, tensors, param, [momentum], table[:1], found_inf)
    with pytest.raises(ValueError, match="buffers"):
        cpu.apply(SGD, rows, beta, tensors, param, [momentum, momentum], table, found_inf)
    with pytest.raises(TypeError, match="found_inf"):
        cpu.apply(SGD, rows, beta, tensors, param, [momentum], table, found_inf.bool())
    with pytest.raises(ValueError, match="x"):
        cpu.axpy(param, param[:-1], 1.0)
    with pytest.raises(ValueError, match="alpha"):
        cpu.axpy(param, param, torch.ones(2))
    with pytest.raises(TypeError, match="alpha"):
        cpu.axpy(param, param, "1")
