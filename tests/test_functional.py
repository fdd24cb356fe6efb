"""Functional API: harmonize on per-parameter lists, coefficients, sgd_step, StepStats, axpy."""

import numpy as np
import pytest
import torch
from helpers import hyper_table, pcgrad_vectors, per_segment, plans, random_rows, sgd_reference
from hypothesis import given
from hypothesis import strategies as st

from ltu_fast import PCGrad, Sum, axpy, harmonize, harmonize_rows
from ltu_fast.backends import get_backend
from ltu_fast.functional import StepStats, coefficients, sgd_step
from ltu_fast.plan import SegmentPlan


@pytest.mark.parametrize("granularity", ["layer", "global", [0, 1, 0]])
def test_harmonize_lists_equals_rows(granularity):
    gen = torch.Generator().manual_seed(0)
    shapes = [(3, 2), (5,), (2, 2, 2)]
    grads = [[torch.randn(s, generator=gen, dtype=torch.float64) for s in shapes] for _ in range(3)]
    out = harmonize(grads, "pcgrad", granularity=granularity, backend="reference")
    assert [o.shape for o in out] == [torch.Size(s) for s in shapes]
    labels = {"layer": [0, 1, 2], "global": [0, 0, 0]}.get(granularity, granularity) \
        if isinstance(granularity, str) else granularity
    plan = SegmentPlan.build([int(np.prod(s)) for s in shapes], labels, element_size=8)
    rows = torch.stack([plan.flatten(g) for g in grads])
    orders = [[j for j in range(3) if j != i] for i in range(3)]
    expected = per_segment(rows.numpy(), plan, lambda g: pcgrad_vectors(g, orders))
    np.testing.assert_allclose(torch.cat([o.flatten() for o in out]).numpy(),
                               np.concatenate([expected[o:o + n] for o, n in zip(plan.offsets, plan.numels)]),
                               rtol=1e-12, atol=1e-12)


@given(plan=plans(), k=st.integers(1, 4), seed=st.integers(0, 999))
def test_float32_rows_track_float64(plan, k, seed):
    rows = random_rows(plan, k, seed)
    out64, _ = harmonize_rows(rows, plan, backend="reference")
    out32, stats = harmonize_rows(rows.float(), plan, backend="reference")
    assert stats.beta.dtype == torch.float32 and out32.dtype == torch.float32
    scale = per_segment(rows.abs().numpy(), plan, lambda g: g.sum(0) * 4)  # generous: PCGrad |beta| stays small
    assert ((out32.double() - out64).abs().numpy() <= 1e-4 * (scale + 1)).all()


def test_coefficients_unscale_and_merge_found_inf():
    gram = torch.tensor([[[4.0, -2.0], [-2.0, 1.0]]])
    beta, flag = coefficients(gram, PCGrad())
    scaled, flag2 = coefficients(gram * 64**2, PCGrad(), grad_scale=torch.tensor(64.0))
    torch.testing.assert_close(scaled, beta / 64)
    assert flag.item() == 0 and flag2.item() == 0
    _, merged = coefficients(gram, PCGrad(), found_inf=torch.tensor([1.0]))
    assert merged.item() == 1
    _, bad = coefficients(gram * float("nan"), PCGrad())
    assert bad.item() == 1


def test_step_stats_cosine_and_conflicts():
    gram = torch.tensor([[[4.0, -2.0], [-2.0, 4.0]], [[1.0, 0.5], [0.5, 1.0]], [[0.0, 0.0], [0.0, 1.0]]])
    stats = StepStats(gram, Sum()(gram), torch.zeros(1))
    torch.testing.assert_close(stats.cosine()[:, 0, 1], torch.tensor([-0.5, 0.5, 0.0]))
    assert stats.conflicts().tolist() == [True, False, False]
    assert stats.conflict_rate() == pytest.approx(1 / 3) and not stats.skipped


def test_sgd_step_first_step_rule_and_skip():
    """ready flips only for groups with momentum and only after a step that was not skipped."""
    plan = SegmentPlan.build([4, 3], groups=[0, 1], element_size=8)
    rows = random_rows(plan, 2, 0)
    param = random_rows(plan, 1, 1)[0]
    momentum = torch.zeros(plan.total, dtype=torch.float64)
    groups = [{"lr": 0.1, "momentum": 0.9, "dampening": 0.5, "weight_decay": 0.0, "nesterov": False,
               "maximize": False},
              {"lr": 0.2, "momentum": 0.0, "dampening": 0.0, "weight_decay": 0.1, "nesterov": False,
               "maximize": True}]
    hyper = hyper_table(groups, torch.float64)
    ready = torch.zeros(2)
    backend = get_backend("reference")
    before = param.clone()
    sgd_step(rows, plan, param, momentum, hyper, ready, Sum(), backend, found_inf=torch.ones(1))
    assert torch.equal(param, before) and ready.tolist() == [0.0, 0.0]
    sgd_step(rows, plan, param, momentum, hyper, ready, Sum(), backend)
    assert ready.tolist() == [1.0, 0.0]
    g = rows.sum(0).numpy()
    for (o, n), h in zip(zip(plan.offsets, plan.numels), groups):
        p, _ = sgd_reference(before.numpy()[o:o + n], None, g[o:o + n], **h)
        np.testing.assert_allclose(param.numpy()[o:o + n], p, rtol=1e-14)


@pytest.mark.parametrize("alpha", [0.5, torch.tensor(-2.0)])
def test_axpy(alpha):
    acc, x = torch.ones(5), torch.arange(5.0)
    axpy(acc, x, alpha, backend="reference")
    torch.testing.assert_close(acc, 1 + float(alpha) * torch.arange(5.0))
