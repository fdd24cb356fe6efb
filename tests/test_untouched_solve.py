"""The compiled solve's per-tensor bookkeeping (``HarmonizedSGD(skip_untouched=True)``).

Every backend with a ``solve`` (cpu; triton in its interpreter or on a GPU; cuda on a GPU) must
write exactly the per-tensor rows, ``ready`` and ``ready_before`` of ``functional.solve``'s torch
path (``touched_tensors`` + ``_untouched_sgd_hyper``), bit for bit, and the same coefficients as
its own per-group solve: the SGD step's numbers cannot change with where the bookkeeping runs.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from test_solve import SOLVERS

from ltu_fast.aggregators import MGDA, PCGrad, Project, Sum
from ltu_fast.backends import get_backend
from ltu_fast.backends.base import HYPER_COLUMNS, HYPER_LR, HYPER_MOMENTUM, HYPER_WEIGHT_DECAY
from ltu_fast.functional import solve
from ltu_fast.plan import SegmentPlan

AGGREGATORS = {"sum": Sum, "pcgrad": PCGrad, "pcgrad_random": lambda: PCGrad("random", seed=5),
               "project": lambda: Project(protect=0), "mgda": lambda: MGDA(method="frank_wolfe")}


def _case(seed: int, k: int, tensors: int, segments: int, groups: int, bad: bool):
    """A plan, a Gram batch where random objectives leave random segments alone, group rows, ready bits."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, segments, (tensors,), generator=gen).tolist()
    plan = SegmentPlan.build([3] * tensors, labels, torch.randint(0, groups, (tensors,), generator=gen).tolist())
    x = torch.randn(plan.num_segments, k, 4, generator=gen, dtype=torch.float64)
    x *= (torch.rand(plan.num_segments, k, 1, generator=gen) < 0.5).double()  # untouched objective/segment pairs
    gram = (x @ x.transpose(1, 2)).float()
    if bad:
        gram[torch.randint(0, plan.num_segments, (1,), generator=gen).item(), 0, 0] = float("nan")
    hyper = torch.rand(groups, len(HYPER_COLUMNS), generator=gen)
    hyper[:, HYPER_MOMENTUM] *= (torch.rand(groups, generator=gen) < 0.6).float()  # momentum on or off
    ready = (torch.rand(tensors, generator=gen) < 0.5).float()
    return plan, gram, hyper, ready


def _run(backend, plan, gram, make, hyper, ready, found_inf, device):
    plan = plan.to(device)
    r = ready.clone().to(device)
    before = torch.full_like(r, -1.0)
    rows = torch.full((plan.num_tensors, len(HYPER_COLUMNS)), -1.0, device=device)
    skipped = torch.zeros(1, dtype=torch.int64, device=device)
    beta, flag = solve(gram.to(device), make(), backend, None, None, found_inf.to(device), hyper=hyper.to(device),
                       ready=r, ready_before=before, skipped=skipped, tensors=plan, tensor_hyper=rows)
    return [t.cpu() for t in (beta, flag, rows, r, before, skipped)]


@pytest.mark.skipif(not SOLVERS, reason="no compiled backend with a solver is available")
@pytest.mark.parametrize("backend_name,device", SOLVERS)
@settings(max_examples=40, deadline=None)
@given(kind=st.sampled_from(sorted(AGGREGATORS)), k=st.integers(1, 4), tensors=st.integers(1, 9),
       segments=st.integers(1, 5), groups=st.integers(1, 3), seed=st.integers(0, 2**16), bad=st.booleans(),
       incoming=st.sampled_from([0.0, 1.0]))
def test_per_tensor_bookkeeping_matches_the_torch_path_bitwise(backend_name, device, kind, k, tensors, segments,
                                                               groups, seed, bad, incoming):
    plan, gram, hyper, ready = _case(seed, k, tensors, segments, groups, bad)
    found_inf = torch.tensor([incoming])
    make = AGGREGATORS[kind]
    got = _run(get_backend(backend_name), plan, gram, make, hyper, ready, found_inf, device)
    want = _run(get_backend("reference"), plan, gram, make, hyper, ready, found_inf, device)
    for name, a, b in zip(("flag", "tensor_hyper", "ready", "ready_before", "skipped"), got[1:], want[1:]):
        assert torch.equal(a, b), f"{name}: {a} != {b}"
    # the coefficients are those of the per-group solve, so the step's numbers do not move
    backend = get_backend(backend_name)
    beta, _ = solve(gram.to(device), make(), backend, None, None, found_inf.to(device))
    assert torch.equal(got[0], beta.cpu())


@pytest.mark.skipif(not SOLVERS, reason="no compiled backend with a solver is available")
@pytest.mark.parametrize("backend_name,device", SOLVERS)
def test_untouched_tensor_gets_the_leave_as_is_row(backend_name, device):
    """Tensor 1 lives in a segment no objective touched: lr = wd = 0, momentum := its ready bit."""
    plan = SegmentPlan.build([3, 3, 3], [0, 1, 0])
    gram = torch.zeros(2, 2, 2)
    gram[0] = torch.tensor([[2.0, 0.5], [0.5, 1.0]])
    hyper = torch.tensor([[0.1, 0.01, 0.9, 0.0, 0.0, 0.0]])
    for ready_bit in (0.0, 1.0):
        ready = torch.tensor([0.0, ready_bit, 1.0])
        _, flag, rows, r, before, _ = _run(get_backend(backend_name), plan, gram, Sum, hyper, ready,
                                           torch.zeros(1), device)
        assert flag.item() == 0.0 and torch.equal(before, ready)
        assert torch.equal(rows[[0, 2]], hyper.expand(2, -1))
        assert rows[1, HYPER_LR] == 0.0 and rows[1, HYPER_WEIGHT_DECAY] == 0.0
        assert rows[1, HYPER_MOMENTUM] == ready_bit
        assert torch.equal(r, torch.tensor([1.0, ready_bit, 1.0]))  # touched with momentum: history starts
