"""Every registered method on a tiny task: same architecture back, data-access rules, determinism."""

from __future__ import annotations

import copy
import importlib.util
import os

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import ltu_fast.unlearn.ltu  # noqa: F401  (registers LTU and every baseline)
from ltu_fast.unlearn.api import METHODS, ArraySplit, UnlearnTask
from ltu_fast.unlearn.train import TrainRecipe, train_model

if importlib.util.find_spec("ltu_fast.backends.cpu") is None:  # this branch may lack the compiled backend
    os.environ.setdefault("LTU_FAST_BACKEND", "reference")

# Small budgets so each method runs in well under a second on the tiny task.
TINY = {
    "ltu": {"iterations": 4, "batch_size": 8, "mia_steps": 30, "num_mia": 2},
    "retrain": {},
}


class Forbidden:
    """Stands in for ``retain_full``: any use by a method that may not read it raises."""

    def __getattr__(self, name):
        raise AssertionError(f"retain_full.{name} accessed by an approximate method")

    def __len__(self):
        raise AssertionError("len(retain_full) called by an approximate method")


def mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))


def blobs(n: int, seed: int) -> ArraySplit:
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    centers = torch.randn(3, 8, generator=torch.Generator().manual_seed(123)) * 1.5
    return ArraySplit(centers[y] + torch.randn(n, 8, generator=g), y)


@pytest.fixture(scope="module")
def tiny():
    forget, retain, heldout = blobs(24, 1), blobs(120, 2), blobs(40, 3)
    task = UnlearnTask(forget=forget, retain_access=ArraySplit(retain.x[:40], retain.y[:40]), heldout=heldout,
                       retain_full=retain, num_classes=3, model_factory=mlp,
                       train_recipe={"epochs": 3, "lr": 0.05, "batch_size": 16}, seed=0)
    torch.manual_seed(0)
    original = train_model(mlp(), ArraySplit(torch.cat([forget.x, retain.x]), torch.cat([forget.y, retain.y])),
                           TrainRecipe(epochs=5, lr=0.05, batch_size=16, schedule="constant"), seed=0, progress=False)
    return task, original


def run(name: str, task: UnlearnTask, original: nn.Module):
    method = METHODS[name](**TINY.get(name, {}))
    if not method.uses_full_retain:
        task = copy.copy(task)
        task.retain_full = Forbidden()
    return method.unlearn(copy.deepcopy(original), task)


def state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_all_expected_methods_are_registered():
    expected = {"retrain", "ft", "ga", "neggrad_plus", "rl", "l1_sparse", "salun", "scrub", "ssd", "iau", "ltu"}
    assert expected <= set(METHODS)
    assert [n for n in METHODS if METHODS[n].uses_full_retain] == ["retrain"]


@pytest.mark.parametrize("name", sorted(METHODS))
def test_method_contract(name, tiny):
    task, original = tiny
    first = run(name, task, original)
    second = run(name, task, original)
    before, after = state(original), state(first.model)
    assert {k: v.shape for k, v in after.items()} == {k: v.shape for k, v in before.items()}
    assert all(torch.isfinite(v).all() for v in after.values())
    assert any(not torch.equal(before[k], after[k]) for k in before), "the method left the model unchanged"
    again = state(second.model)
    assert all(torch.equal(after[k], again[k]) for k in after), "not deterministic given task.seed"
    out = first.model(task.forget.x)
    assert out.shape == (len(task.forget), task.num_classes)


def test_retrain_ignores_the_given_model(tiny):
    task, original = tiny
    poisoned = copy.deepcopy(original)
    with torch.no_grad():
        for p in poisoned.parameters():
            p.fill_(float("nan"))
    result = METHODS["retrain"]().unlearn(poisoned, task)
    assert all(torch.isfinite(p).all() for p in result.model.parameters())


def test_ft_budget_is_a_share_of_retrains_sample_gradients(tiny):
    task, original = tiny
    task = copy.copy(task)
    task.retain_size, task.retain_full = len(task.retain_full), Forbidden()  # the count, never the data
    # Retrain: 3 epochs over 120 samples = 360 sample-gradients; a quarter of it in batches of 16 -> 6 steps
    assert METHODS["ft"](budget=0.25, batch_size=16).unlearn(copy.deepcopy(original), task).info["steps"] == 6
    assert METHODS["ft"](epochs=2, batch_size=16).unlearn(copy.deepcopy(original), task).info["steps"] == 4
    with pytest.raises(ValueError, match="budget"):
        METHODS["ft"](budget=-1.0)
    task.retain_size = 0
    with pytest.raises(ValueError, match="retain_size"):
        METHODS["ft"](budget=0.5).unlearn(copy.deepcopy(original), task)


def test_ga_raises_forget_loss_and_salun_masks_half_the_weights(tiny):
    task, original = tiny
    loss = lambda m: F.cross_entropy(m(task.forget.x), task.forget.y).item()
    ga = run("ga", task, original).model
    assert loss(ga) > loss(original)
    salun = METHODS["salun"](saliency=0.25).unlearn(copy.deepcopy(original), task).model
    moved = torch.cat([(a != b).flatten() for a, b in zip(salun.parameters(), original.parameters())])
    assert 0 < moved.float().mean() <= 0.3


def test_ssd_dampens_only_forget_specific_parameters(tiny):
    task, original = tiny
    result = METHODS["ssd"](alpha=1.0).unlearn(copy.deepcopy(original), task)
    for new, old in zip(result.model.parameters(), original.parameters()):
        ratio = torch.where(old != 0, new / old, torch.ones_like(old))
        assert ((ratio >= 0) & (ratio <= 1 + 1e-6)).all()  # only shrinks toward zero, never flips or grows
    assert 0 < result.info["dampened_share"] < 1


@pytest.mark.parametrize("lam", [0.5, 1.0])
def test_ssd_dampening_is_bounded_because_the_data_importance_contains_the_forget_set(tiny, lam):
    """I_D includes D_f, so I_f / I_D <= |D| / |D_f| and no parameter shrinks below lam * |D_f| / |D|."""
    task, original = tiny
    floor = lam * len(task.forget) / (len(task.forget) + len(task.retain_access))
    result = METHODS["ssd"](alpha=1.0, lam=lam).unlearn(copy.deepcopy(original), task)
    ratios = torch.cat([torch.where(old != 0, new / old, torch.ones_like(old)).flatten()
                        for new, old in zip(result.model.parameters(), original.parameters())])
    assert ratios.min() >= floor * (1 - 1e-5) and (ratios < 1).any()
    ceiling = (len(task.forget) + len(task.retain_access)) / len(task.forget)
    untouched = METHODS["ssd"](alpha=ceiling * 1.001).unlearn(copy.deepcopy(original), task)
    assert untouched.info["dampened_share"] == 0  # above the bound nothing can be selected
    with pytest.raises(ValueError, match="alpha"):
        METHODS["ssd"](alpha=0.0)


def test_ssd_share_is_alpha_in_units_of_the_ratio_bound(tiny):
    task, original = tiny
    bound = (len(task.forget) + len(task.retain_access)) / len(task.forget)
    by_share = METHODS["ssd"](share=0.6).unlearn(copy.deepcopy(original), task)
    by_alpha = METHODS["ssd"](alpha=0.6 * bound).unlearn(copy.deepcopy(original), task)
    assert by_share.info["alpha"] == pytest.approx(0.6 * bound)
    for a, b in zip(by_share.model.parameters(), by_alpha.model.parameters()):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="share"):
        METHODS["ssd"](share=1.0)


def test_iau_is_one_adam_step_from_both_full_gradients(tiny):
    task, original = tiny
    lr, w = 1e-3, 2.0
    result = METHODS["iau"](lr=lr, forget_weight=w).unlearn(copy.deepcopy(original), task)
    ref = copy.deepcopy(original)
    ref.zero_grad()
    loss = F.cross_entropy(ref(task.retain_access.x), task.retain_access.y) - w * F.cross_entropy(
        ref(task.forget.x), task.forget.y)
    loss.backward()
    for new, old, p in zip(result.model.parameters(), original.parameters(), ref.parameters()):
        g = p.grad
        expected = old - lr * g / (g.abs() + 1e-8)  # Adam's first bias-corrected step
        torch.testing.assert_close(new, expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", sorted(n for n in METHODS if n != "retrain" and not n.endswith("_test")))
def test_every_method_has_a_search_space_of_at_least_the_default_budget(name):
    from ltu_fast.unlearn.tune import DEFAULT_BUDGET, candidates

    space = METHODS[name].search_space
    assert space and all(len(v) >= 1 for v in space.values())
    picked = candidates(METHODS[name], DEFAULT_BUDGET)
    assert len(picked) == DEFAULT_BUDGET and len({tuple(sorted(c.items())) for c in picked}) == DEFAULT_BUDGET
    assert picked == candidates(METHODS[name], DEFAULT_BUDGET)  # reproducible draw
    assert len(candidates(METHODS[name], 5)) == 5
    METHODS[name](**picked[0])  # every knob is a constructor argument
