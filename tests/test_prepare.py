"""Every update rule's per-tensor bookkeeping in the compiled solves' epilogue (``prepare``).

Every backend with a ``solve`` (cpu; triton in its interpreter or on a GPU; cuda on a GPU) must
write exactly the per-tensor rows and state of the torch ``prepare`` (:func:`ltu_fast.rules.prepare_rows`,
which ``functional.solve``'s torch path runs), bit for bit, for every rule, a float32 or float64
group table, untouched tensors and skipped steps; and the same coefficients as its solve without a
rule: a step's numbers cannot change with where the bookkeeping runs. (AdamW's float64 bias
corrections use each language's ``pow``; they agree to the float32 rows the kernels read.)
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from test_solve import SOLVERS

from ltu_fast.aggregators import MGDA, PCGrad, Project, Sum
from ltu_fast.backends import get_backend
from ltu_fast.functional import solve
from ltu_fast.plan import SegmentPlan
from ltu_fast.rules import RULES

AGGREGATORS = {"sum": Sum, "pcgrad": PCGrad, "pcgrad_random": lambda: PCGrad("random", seed=5),
               "project": lambda: Project(protect=0), "mgda": lambda: MGDA(method="frank_wolfe")}
FLAGS = {"nesterov", "maximize", "amsgrad"}  # group columns that are booleans


def _case(rule, seed: int, k: int, tensors: int, segments: int, groups: int, bad: bool, dtype: torch.dtype):
    """A plan, a Gram batch, a group table of plausible values, per-tensor state and touched flags."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, segments, (tensors,), generator=gen).tolist()
    plan = SegmentPlan.build([3] * tensors, labels, torch.randint(0, groups, (tensors,), generator=gen).tolist())
    x = torch.randn(plan.num_segments, k, 4, generator=gen, dtype=torch.float64)
    gram = (x @ x.transpose(1, 2)).float()
    if bad:
        gram[torch.randint(0, plan.num_segments, (1,), generator=gen).item(), 0, 0] = float("nan")
    hyper = torch.rand(groups, len(rule.group_columns), generator=gen, dtype=torch.float64)
    for c, name in enumerate(rule.group_columns):
        if name in FLAGS or name == "momentum":  # on or off (SGD: momentum 0 keeps no history)
            hyper[:, c] = hyper[:, c].ge(0.4).double() * (hyper[:, c] if name == "momentum" else 1)
    state = torch.stack([torch.randint(0, 2 if name == "ready" else 3000, (tensors,), generator=gen).float()
                         for name in rule.tensor_state], 1) if rule.tensor_state else torch.zeros(tensors, 0)
    touched = (torch.rand(tensors, generator=gen) < 0.7).float()
    return plan, gram, hyper.to(dtype), state, touched


def _run(backend, rule, plan, gram, make, hyper, state, touched, found_inf, device):
    plan = plan.to(device)
    state = state.clone().to(device)
    rows = torch.full((plan.num_tensors, len(rule.row_columns)), -1.0, device=device)
    skipped = torch.zeros(1, dtype=torch.int64, device=device)
    beta, flag = solve(gram.to(device), make(), backend, None, None, found_inf.to(device), skipped=skipped, rule=rule,
                       tensors=plan, group_hyper=hyper.to(device), tensor_state=state,
                       touched=None if touched is None else touched.to(device), tensor_rows=rows)
    return [t.cpu() for t in (beta, flag, rows, state, skipped)]


@pytest.mark.skipif(not SOLVERS, reason="no compiled backend with a solver is available")
@pytest.mark.parametrize("backend_name,device", SOLVERS)
@pytest.mark.parametrize("rule", list(RULES.values()), ids=lambda r: r.name)
@settings(max_examples=25, deadline=None)
@given(kind=st.sampled_from(sorted(AGGREGATORS)), k=st.integers(1, 4), tensors=st.integers(1, 9),
       segments=st.integers(1, 5), groups=st.integers(1, 3), seed=st.integers(0, 2**16), bad=st.booleans(),
       incoming=st.sampled_from([0.0, 1.0]), all_touched=st.booleans(), f64=st.booleans())
def test_rule_epilogue_matches_the_torch_prepare_bitwise(backend_name, device, rule, kind, k, tensors, segments,
                                                         groups, seed, bad, incoming, all_touched, f64):
    plan, gram, hyper, state, touched = _case(rule, seed, k, tensors, segments, groups, bad,
                                              torch.float64 if f64 else torch.float32)
    touched = None if all_touched else touched
    found_inf, make = torch.tensor([incoming]), AGGREGATORS[kind]
    got = _run(get_backend(backend_name), rule, plan, gram, make, hyper, state, touched, found_inf, device)
    want = _run(get_backend("reference"), rule, plan, gram, make, hyper, state, touched, found_inf, device)
    for name, a, b in zip(("flag", "tensor_rows", "tensor_state", "skipped"), got[1:], want[1:]):
        assert torch.equal(a, b), f"{rule.name} {name}: {a} != {b}"
    beta, _ = solve(gram.to(device), make(), get_backend(backend_name), None, None, found_inf.to(device))
    torch.testing.assert_close(got[0], beta.cpu(), rtol=0, atol=0, equal_nan=True)  # as without a rule (NaN: G was)


@pytest.mark.skipif(not SOLVERS, reason="no compiled backend with a solver is available")
@pytest.mark.parametrize("backend_name,device", SOLVERS)
@pytest.mark.parametrize("rule", list(RULES.values()), ids=lambda r: r.name)
def test_untouched_or_skipped_tensors_are_inactive_and_keep_their_state(backend_name, device, rule):
    """Tensor 1 was not touched: active 0, state as it was; a skipped step makes every tensor inactive."""
    plan, gram, hyper, state, _ = _case(rule, 0, 2, 3, 2, 1, False, torch.float32)
    hyper[:, [c for c, name in enumerate(rule.group_columns) if name == "momentum"]] = 0.9
    for incoming in (0.0, 1.0):
        _, flag, rows, new_state, _ = _run(get_backend(backend_name), rule, plan, gram, Sum, hyper, state,
                                           torch.tensor([1.0, 0.0, 1.0]), torch.tensor([incoming]), device)
        active = torch.tensor([1.0, 0.0, 1.0]) * (1 - incoming)
        assert flag.item() == incoming and torch.equal(rows[:, 0], active)
        assert torch.equal(new_state[1], state[1]) and (incoming == 0.0 or torch.equal(new_state, state))
