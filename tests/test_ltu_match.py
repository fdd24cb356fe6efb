"""LTU's rank-matched forgetting target (``ascent_target="match"``): targets, loss, gate, batches."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ltu_fast.unlearn.api import ArraySplit, UnlearnTask
from ltu_fast.unlearn.ltu import LTU, ForgetTarget


def task_with(forget_y: torch.Tensor, heldout_y: torch.Tensor, retain_y: torch.Tensor, c: int = 4,
              d: int = 6, seed: int = 0) -> UnlearnTask:
    g = torch.Generator().manual_seed(seed)
    split = lambda y: ArraySplit(torch.randn(len(y), d, generator=g, dtype=torch.float64), y)
    return UnlearnTask(forget=split(forget_y), retain_access=split(retain_y), heldout=split(heldout_y),
                       retain_full=split(retain_y), num_classes=c, model_factory=lambda: mlp(d, c), seed=seed)


def mlp(d: int = 6, c: int = 4) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(d, 8), nn.Tanh(), nn.Linear(8, c)).double()


def logits_with_losses(y: torch.Tensor, margins: list[float], c: int = 4) -> torch.Tensor:
    """Logits whose true class leads every other by ``margin`` (negative: misclassified)."""
    out = torch.zeros(len(y), c, dtype=torch.float64)
    out[torch.arange(len(y)), y] = torch.tensor(margins, dtype=torch.float64)
    return out


def test_matched_target_pairs_ranks_and_flips_the_misclassified_ranks():
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    task = task_with(y, y.clone(), torch.arange(4).repeat(3))
    heldout = logits_with_losses(y, [9.0, 7.0, 5.0, 3.0, 1.0, -2.0])  # the last one is misclassified
    forget = logits_with_losses(y, [8.0, 12.0, 10.0, 11.0, 9.0, 7.0])  # all fitted, in another order
    target = LTU(ascent_target="match").forget_target(task, heldout, forget)
    loss_h = F.cross_entropy(heldout, y, reduction="none")
    loss_f = F.cross_entropy(forget, y, reduction="none")
    # equal sizes: the k-th best-fitted forget sample gets the k-th smallest held-out loss
    torch.testing.assert_close(target.caps[loss_f.argsort()], loss_h.sort().values)
    assert target.flip.tolist() == [False] * 5 + [True]  # the worst-fitted forget sample
    assert target.level is None and not target.removed.any()
    work = (target.caps - loss_f)[:5]
    assert (work > 0).all()  # every fitted sample is below its unseen counterpart
    assert target.weights.argmax() == 5  # the sample to relabel has by far the most work left
    torch.testing.assert_close(target.weights[:5], work, atol=1e-5 * target.weights.max().item(), rtol=0)


def test_matched_target_spreads_ranks_over_a_larger_heldout_set():
    y_f, y_h = torch.zeros(2, dtype=torch.long), torch.zeros(6, dtype=torch.long)
    task = task_with(y_f, y_h, torch.arange(4).repeat(3))
    heldout = logits_with_losses(y_h, [6.0, 5.0, 4.0, 3.0, 2.0, 1.0])
    forget = logits_with_losses(y_f, [9.0, 8.0])
    target = LTU(ascent_target="match", forget_batches="uniform").forget_target(task, heldout, forget)
    loss_h = F.cross_entropy(heldout, y_h, reduction="none").sort().values
    torch.testing.assert_close(target.caps, torch.stack([loss_h[1], loss_h[4]]))  # quantiles 1/4 and 3/4
    assert target.weights is None  # uniform batches


def test_match_loss_stops_each_sample_at_its_own_cap_and_relabels_the_flips():
    y = torch.tensor([0, 1, 2])
    target = ForgetTarget(torch.zeros(4, dtype=torch.bool), caps=torch.tensor([0.1, 2.0, 9.0], dtype=torch.float64),
                          flip=torch.tensor([False, False, True]))
    logits = logits_with_losses(y, [3.0, 3.0, 3.0]).requires_grad_(True)
    loss = LTU(ascent_target="match").forgetting_loss(None, y, 4, torch.Generator(), target=target,
                                                       index=torch.arange(3))
    loss(lambda _: logits).backward()
    ce = F.cross_entropy(logits.detach(), y, reduction="none")
    assert ce[0] > 0.1 and ce[1] < 2.0  # sample 0 is past its cap, sample 1 below
    assert logits.grad[0].abs().max() == 0  # at its target: no push
    expected_1 = (F.softmax(logits.detach()[1], 0) - F.one_hot(y[1], 4)) / -3  # ascent on sample 1
    torch.testing.assert_close(logits.grad[1], expected_1)
    nearest = 0  # ties among the other classes: argmax takes the first
    expected_2 = (F.softmax(logits.detach()[2], 0) - F.one_hot(torch.tensor(nearest), 4)) / 3
    torch.testing.assert_close(logits.grad[2], expected_2)  # pulled towards its nearest other class


def test_match_gate_closes_only_when_every_sample_of_the_batch_is_at_its_target():
    y = torch.tensor([0, 1])
    ltu = LTU(ascent_target="match")
    target = ForgetTarget(torch.zeros(4, dtype=torch.bool), caps=torch.tensor([0.1, 0.1], dtype=torch.float64),
                          flip=torch.tensor([False, True]))
    index = torch.arange(2)
    fitted, unsure = [9.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]  # sample 0: CE 4e-4 / 0.74 (cap 0.1)
    kept, moved = [0.0, 3.0, 0.0, 0.0], [4.0, 0.0, 0.0, 0.0]  # sample 1: own class on top / class 0 holds 95%
    gate = lambda a, b: ltu.step_gate(lambda _: torch.tensor([a, b], dtype=torch.float64), None, y, target, index)
    assert gate(unsure, kept) == 1.0  # the sample to relabel is not there yet
    assert gate(fitted, moved) == 1.0  # sample 0 is still below its cap
    assert gate(unsure, moved) == 0.0  # both at their targets: the whole step is skipped


def test_work_batches_draw_the_samples_with_work_left():
    y = torch.zeros(40, dtype=torch.long)
    task = task_with(y, y.clone(), torch.arange(4).repeat(10))
    weights = torch.full((40,), 1e-9, dtype=torch.float64)
    weights[[3, 17, 29]] = 1.0
    target = ForgetTarget(torch.zeros(4, dtype=torch.bool), caps=torch.zeros(40), flip=torch.zeros(40, dtype=torch.bool),
                          weights=weights)
    ltu = LTU(ascent_target="match", batch_size=4)
    batch = ltu.sample_batch(task, torch.Generator().manual_seed(0), target=target)
    drawn = set(batch["sf_index"].tolist()) | set(batch["qf_index"].tolist())
    assert {3, 17, 29} <= drawn and not set(batch["sf_index"].tolist()) & set(batch["qf_index"].tolist())
    torch.testing.assert_close(batch["sf"][0], task.forget.x[batch["sf_index"]])


def test_class_wise_match_is_the_heldout_target_bitwise():
    """Every forget sample of a removed class: the per-sample caps are never used, batches stay
    uniform, so without the stop the two targets run the same steps."""
    forget_y = torch.zeros(12, dtype=torch.long)
    task = task_with(forget_y, torch.arange(4).repeat(6), torch.tensor([1, 2, 3]).repeat(8))
    run = lambda t: LTU(ascent_target=t, iterations=3, batch_size=4, num_mia=1, mia_steps=5,
                        stop_at_target=False).unlearn(mlp(), task).model
    flat = lambda m: torch.cat([p.detach().reshape(-1) for p in m.parameters()])
    torch.testing.assert_close(flat(run("match")), flat(run("heldout")), rtol=0, atol=0)
    assert not torch.equal(flat(run("match")), flat(mlp()))


def test_random_match_differs_from_the_mean_level_and_needs_the_forget_logits():
    task = task_with(torch.arange(4).repeat(6), torch.arange(4).repeat(6), torch.arange(4).repeat(6))
    run = lambda **kw: LTU(iterations=3, batch_size=4, num_mia=0, **kw).unlearn(mlp(), task).model
    flat = lambda m: torch.cat([p.detach().reshape(-1) for p in m.parameters()])
    assert not torch.allclose(flat(run(ascent_target="match")), flat(run(ascent_target="heldout")))
    assert not torch.allclose(flat(run(ascent_target="match")), flat(run(ascent_target="match", forget_batches="uniform")))
    with pytest.raises(ValueError, match="forget_logits"):
        LTU(ascent_target="match").forget_target(task, torch.zeros(24, 4))
    with pytest.raises(ValueError, match="forget_batches"):
        LTU(forget_batches="sorted")
    with pytest.raises(ValueError, match="index"):
        target = ForgetTarget(torch.zeros(4, dtype=torch.bool), caps=torch.zeros(3), flip=torch.zeros(3, dtype=torch.bool))
        LTU(ascent_target="match").forgetting_loss(None, torch.zeros(3, dtype=torch.long), 4, torch.Generator(),
                                                    target=target)
