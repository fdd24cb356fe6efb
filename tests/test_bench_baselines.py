"""The benches' torch-written contenders compute what they claim: per-layer PCGrad (and any
aggregator) equal to the float64 reference harmonization, so a bench never times a wrong baseline."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ltu_fast import harmonize_rows
from ltu_fast.aggregators import PCGrad
from ltu_fast.bench.baselines import foreach_step, gram_foreach, gram_loop, loop_step, pcgrad_foreach
from ltu_fast.plan import SegmentPlan


def _layers(numels: list[int], k: int, seed: int, conflict: float):
    """Rows of K objectives over tensors of the given sizes, every other one pulled against the first."""
    gen = torch.Generator().manual_seed(seed)
    plan = SegmentPlan.build(numels)
    rows = torch.randn(k, plan.total, generator=gen, dtype=torch.float64)
    rows[1:] -= conflict * rows[:1]
    shapes = [torch.Size([n]) for n in numels]
    return plan, rows, [plan.views(rows[j], shapes) for j in range(k)], shapes


@settings(max_examples=30, deadline=None)
@given(numels=st.lists(st.integers(1, 30), min_size=1, max_size=5), seed=st.integers(0, 2**16),
       conflict=st.sampled_from([0.0, 0.5, 1.5]))
def test_pcgrad_foreach_is_per_layer_pcgrad(numels, seed, conflict):
    plan, rows, grads, shapes = _layers(numels, 2, seed, conflict)
    want, _ = harmonize_rows(rows, plan, "pcgrad", backend="reference")
    for got, ref in zip(pcgrad_foreach(grads), plan.views(want, shapes)):
        torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-6 * float(rows.abs().max()))


def test_both_grams_equal_the_dot_products():
    *_, grads, _ = _layers([7, 3, 12], 3, 0, 0.7)
    want = torch.stack([torch.stack([torch.stack([a.dot(b) for b in (g[i] for g in grads)])
                                     for a in (g[i] for g in grads)]) for i in range(3)]).float()
    torch.testing.assert_close(gram_loop(grads), want)
    torch.testing.assert_close(gram_foreach(grads), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("step", [loop_step, foreach_step])
def test_sgd_baselines_step_on_the_harmonized_gradient(step):
    plan, rows, grads, shapes = _layers([9, 4, 6], 3, 1, 0.8)
    params = [torch.zeros(s, dtype=torch.float64) for s in shapes]
    bufs = [torch.zeros(s, dtype=torch.float64) for s in shapes]
    for _ in range(2):  # the second step reads the momentum the first one left
        step(grads, params, bufs, PCGrad(), 0.1, 0.9)
    combined, _ = harmonize_rows(rows, plan, "pcgrad", backend="reference")
    want = [-(0.1 * (1 + 1.9)) * g for g in plan.views(combined, shapes)]
    for got, ref in zip(params, want):
        torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-6)
