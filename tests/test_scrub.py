"""SCRUB on a model without BatchNorm/dropout: it must move (not stall at the teacher) and stay bounded."""

from __future__ import annotations

import copy

import torch
from test_methods import blobs, mlp, tiny  # noqa: F401  (tiny: the shared module fixture)

from ltu_fast.unlearn.api import METHODS
from ltu_fast.unlearn.baselines.scrub import capped_divergence, distill_kl


def forget_kl(task, original, **params) -> tuple[float, float]:
    """KL(original || unlearned) on the forget set and the unlearned model's retain accuracy."""
    model = METHODS["scrub"](**params).unlearn(copy.deepcopy(original), task).model.eval()
    with torch.no_grad():
        kl = distill_kl(model(task.forget.x), original(task.forget.x), 4.0).item()
        acc = (model(task.retain_full.x).argmax(1) == task.retain_full.y).float().mean().item()
    return kl, acc


def test_capped_divergence_ignores_samples_at_the_cap():
    teacher = torch.tensor([[4.0, 0.0, 0.0], [4.0, 0.0, 0.0]])
    student = torch.tensor([[3.9, 0.0, 0.0], [-4.0, 0.0, 0.0]], requires_grad=True)
    per_sample = distill_kl(student, teacher, 4.0, "none")
    cap = float(per_sample[0] + per_sample[1]) / 2  # between the near (first) and the far (second) sample
    assert per_sample[0] < cap < per_sample[1]
    capped_divergence(student, teacher, 4.0, cap).backward()
    assert student.grad[0].abs().sum() > 0
    assert torch.equal(student.grad[1], torch.zeros(3))
    assert torch.allclose(distill_kl(student, teacher, 4.0), per_sample.mean())


def test_max_steps_move_a_student_that_starts_at_the_teacher(tiny):  # noqa: F811
    """Without the seeded start the max-step gradient is exactly zero (KL at its minimum):
    only the min-steps' drift moves it."""
    task, original = tiny
    stalled, _ = forget_kl(task, original, epochs=1, max_epochs=1, init_noise=0.0)
    min_only, _ = forget_kl(task, original, epochs=1, max_epochs=0)
    moved, _ = forget_kl(task, original, epochs=1, max_epochs=1)
    assert moved > 3 * min_only
    assert moved > 100 * stalled


def test_capped_ascent_stays_away_from_chance_at_a_large_lr(tiny):  # noqa: F811
    task, original = tiny
    capped_kl, capped_acc = forget_kl(task, original, epochs=10, max_epochs=10, max_lr=1.0, kl_cap=0.5)
    free_kl, _ = forget_kl(task, original, epochs=10, max_epochs=10, max_lr=1.0, kl_cap=float("inf"))
    assert capped_acc > 0.8  # chance is 1/3
    assert free_kl > 10 * capped_kl


def test_scrub_is_deterministic_given_the_seed(tiny):  # noqa: F811
    task, original = tiny
    assert forget_kl(task, original) == forget_kl(task, original)
