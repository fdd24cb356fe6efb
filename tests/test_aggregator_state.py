"""Per-segment aggregator state (GradVac's targets, Nash-MTL's weights): made for the layout's L
segments on the gradients' device, updated in place, saved in the optimizer's state_dict so a
resumed run continues bitwise, reset like torchjd's, refused when a checkpoint does not fit."""

from __future__ import annotations

import copy

import pytest
import torch

from ltu_fast import GradVac, HarmonizedSGD, NashMTL, available_backends
from ltu_fast.aggregators import AGGREGATORS, StatefulAggregator

STATEFUL = {"gradvac": lambda: GradVac(order="random", seed=3),
            "nash_mtl": lambda: NashMTL(update_weights_every=2, max_norm=0.5)}
BACKENDS = {"reference": torch.float64, **({"cpu": torch.float32} if available_backends()["cpu"] is None else {})}


def test_every_stateful_aggregator_is_covered():
    assert {n for n, cls in AGGREGATORS.items() if issubclass(cls, StatefulAggregator)} == set(STATEFUL)


def _setup(make, dtype, backend):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 3)).to(dtype)
    opt = HarmonizedSGD(model.parameters(), lr=0.1, momentum=0.9, objectives=3, aggregator=make(), backend=backend)
    return model, opt


def _step(model, opt, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(5, 4, generator=gen).to(next(model.parameters()).dtype)
    opt.zero_grad()
    for i in range(3):
        with opt.objective(i):
            (model(x)[:, i] - torch.sin(x[:, i])).pow(2).mean().backward()
    opt.step()


@pytest.mark.parametrize("backend", sorted(BACKENDS))
@pytest.mark.parametrize("name", sorted(STATEFUL))
def test_state_dict_resumes_bitwise(name, backend):
    dtype = BACKENDS[backend]
    model, opt = _setup(STATEFUL[name], dtype, backend)
    for seed in range(3):
        _step(model, opt, seed)
    saved_model, saved_opt = copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict())
    assert set(saved_opt["harmonized"]["aggregator"]) >= {"step"}
    for seed in range(3, 6):
        _step(model, opt, seed)
    model2, opt2 = _setup(STATEFUL[name], dtype, backend)
    model2.load_state_dict(saved_model)
    opt2.load_state_dict(saved_opt)
    for seed in range(3, 6):
        _step(model2, opt2, seed)
    for a, b in zip(model.parameters(), model2.parameters()):
        assert torch.equal(a, b)
    fresh, fresh_opt = _setup(STATEFUL[name], dtype, backend)  # and the state matters: without it, another run
    fresh.load_state_dict(saved_model)
    for seed in range(3, 6):
        _step(fresh, fresh_opt, seed)
    assert any(not torch.equal(a, b) for a, b in zip(model.parameters(), fresh.parameters()))


@pytest.mark.parametrize("name", sorted(STATEFUL))
def test_state_is_made_for_the_layout_and_updated_in_place(name, monkeypatch):
    marked = []
    monkeypatch.setattr(torch._dynamo, "mark_static_address", lambda t, *a, **k: marked.append(t))
    model, opt = _setup(STATEFUL[name], torch.float64, "reference")
    state = opt.aggregator._state
    assert all(t.shape[0] in (1, opt.plan.num_segments) for t in state.values())
    assert all(any(t is m for m in marked) for t in state.values())  # static addresses for CUDA graphs
    pointers = {k: t.data_ptr() for k, t in state.items()}
    before = {k: t.clone() for k, t in state.items()}
    _step(model, opt, 0)
    assert {k: t.data_ptr() for k, t in opt.aggregator._state.items()} == pointers
    assert any(not torch.equal(before[k], t) for k, t in opt.aggregator._state.items())


@pytest.mark.parametrize("name", sorted(STATEFUL))
def test_loaded_state_that_does_not_fit_is_refused(name):
    model, opt = _setup(STATEFUL[name], torch.float64, "reference")
    _step(model, opt, 0)
    saved = opt.state_dict()
    wider = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 3), torch.nn.Linear(3, 3))
    other = HarmonizedSGD(wider.double().parameters(), lr=0.1, objectives=3, aggregator=STATEFUL[name]())
    with pytest.raises(ValueError, match="state"):
        other.aggregator.load_state_dict(saved["harmonized"]["aggregator"])
    lone = STATEFUL[name]()  # not in an optimizer yet: the state is adopted, and checked on first use
    lone.load_state_dict(saved["harmonized"]["aggregator"])
    with pytest.raises(ValueError, match="K = 2"):
        lone(torch.eye(2, dtype=torch.float64).repeat(opt.plan.num_segments, 1, 1))


@pytest.mark.parametrize("name", sorted(STATEFUL))
def test_reset_restarts_like_a_fresh_instance(name):
    """torchjd's test_nash_mtl_reset: the outputs after reset() repeat those of a fresh instance."""
    gen = torch.Generator().manual_seed(2)
    grams = [(j @ j.transpose(1, 2)) for j in torch.randn(4, 5, 3, 6, generator=gen, dtype=torch.float64)]
    agg = STATEFUL[name]()
    first = [agg(g) for g in grams]
    agg.reset()
    assert all(torch.equal(a, agg(g)) for a, g in zip(first, grams))
    assert not torch.equal(first[0], first[1])


def test_a_new_layout_starts_fresh_state():
    agg = GradVac()
    agg(torch.eye(3, dtype=torch.float64).repeat(2, 1, 1))
    agg(torch.eye(3, dtype=torch.float64).repeat(5, 1, 1))  # other L: fresh targets, as torchjd after a change of K
    assert agg._state["targets"].shape == (5, 3, 3)
