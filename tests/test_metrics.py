"""Metric functions against values computed by hand on tiny inputs."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from ltu_fast.unlearn.api import ArraySplit
from ltu_fast.unlearn.metrics import (
    accuracy,
    avg_gap,
    evaluate_model,
    mean_std,
    mia_efficacy,
    mia_lr,
    model_outputs,
    result_flags,
)


class _FixedLogits(nn.Module):
    """Returns row ``i`` of a fixed logit table for input ``[[i]]``."""

    def __init__(self, table):
        super().__init__()
        self.table = torch.tensor(table, dtype=torch.float32)

    def forward(self, x):
        return self.table[x[:, 0].long()]


def _split(n, labels):
    return ArraySplit(torch.arange(n, dtype=torch.float32)[:, None], torch.tensor(labels))


def test_model_outputs_by_hand():
    model = _FixedLogits([[0.0, 0.0], [math.log(3.0), 0.0], [0.0, math.log(4.0)]])
    correct, prob, loss = model_outputs(model, _split(3, [1, 0, 0]))
    # row 0: tie -> argmax 0 (wrong for label 1), p=1/2; row 1: p(0)=3/4; row 2: p(0)=1/5
    assert correct.tolist() == [False, True, False]
    np.testing.assert_allclose(prob, [0.5, 0.75, 0.2], rtol=1e-6)
    np.testing.assert_allclose(loss, -np.log([0.5, 0.75, 0.2]), rtol=1e-6)
    assert accuracy(correct) == pytest.approx(100 / 3)


def test_evaluate_model_ua_ra_ta():
    model = _FixedLogits([[5.0, 0.0]] * 4)  # always predicts class 0
    forget, retain, test = _split(4, [0, 1, 1, 1]), _split(4, [0, 0, 0, 1]), _split(4, [0, 0, 1, 1])
    out = evaluate_model(model, forget, retain, test)
    assert out["UA"] == pytest.approx(75.0) and out["RA"] == pytest.approx(75.0) and out["TA"] == pytest.approx(50.0)
    assert set(out) == {"UA", "RA", "TA", "MIA", "MIA_LR", "FC"}
    p_true = torch.softmax(torch.tensor([5.0, 0.0]), 0)
    assert out["FC"] == pytest.approx(100 * (p_true[0] + 3 * p_true[1]).item() / 4)  # forget labels 0, 1, 1, 1


def test_mia_efficacy_separable_by_hand():
    # members (retain) sit near p=1, non-members (test) near p=0.1: the SVC splits between them.
    retain = np.array([0.99, 0.98, 0.97, 0.99, 0.96, 0.98])
    test = np.array([0.10, 0.12, 0.08, 0.11])
    forget = np.array([0.97, 0.09, 0.11, 0.98, 0.10])  # 3 of 5 look like non-members
    assert mia_efficacy(retain, test, forget) == pytest.approx(60.0)
    assert mia_efficacy(retain, test, np.array([0.99, 0.98])) == pytest.approx(0.0)
    assert mia_efficacy(retain, test, np.array([0.1])) == pytest.approx(100.0)


def test_mia_lr_by_hand():
    forget = np.zeros(10)            # member losses: 0
    test = np.full(10, 5.0)          # non-member losses: 5 -> perfectly separable
    assert mia_lr(forget, test) == pytest.approx(100.0)
    same = np.full(10, 1.0)          # indistinguishable: each balanced fold is half right -> 50
    assert mia_lr(same, same.copy()) == pytest.approx(50.0)


def test_mia_lr_balances_sizes():
    # 20 forget losses but only 10 test losses: the attacker sees 10 + 10, so 100% stays reachable.
    assert mia_lr(np.zeros(20), np.full(10, 3.0)) == pytest.approx(100.0)


def test_avg_gap_by_hand():
    m = {"UA": 5.0, "RA": 99.0, "TA": 90.0, "MIA": 10.0}
    ref = {"UA": 3.0, "RA": 100.0, "TA": 92.0, "MIA": 13.0}
    assert avg_gap(m, ref) == pytest.approx((2 + 1 + 2 + 3) / 4)
    assert avg_gap(ref, ref) == 0.0


def test_mean_std_by_hand():
    assert mean_std([1.0, 2.0, 3.0]) == pytest.approx((2.0, 1.0))
    assert mean_std([5.0]) == (5.0, 0.0)
    assert mean_std([None, float("nan"), 4.0, 6.0]) == pytest.approx((5.0, math.sqrt(2.0)))
    assert mean_std([None]) is None


def test_diverged_model_is_scored_not_crashed():
    model = _FixedLogits([[float("nan"), 0.0]] * 4)
    split = _split(4, [0, 1, 0, 1])
    _, prob, loss = model_outputs(model, split)
    assert np.isfinite(prob).all() and np.isfinite(loss).all()
    assert 0.0 <= evaluate_model(model, split, split, split)["MIA"] <= 100.0


def _row(ta: float = 97.0, ra: float = 99.5, ua: float = 1.0, mia: float = 2.0, fc: float = 99.0) -> dict[str, float]:
    return {"UA": ua, "RA": ra, "TA": ta, "MIA": mia, "FC": fc}


def test_result_flags_damaged_is_relative_to_retrain_and_at_chance_wins():
    original, retrain = _row(), _row(ta=96.0, ua=3.0, fc=90.0)  # retrain's TA margin: 86 above chance 10
    line = 10.0 + 0.75 * 86.0
    assert result_flags(_row(ta=line - 0.1, ua=5.0), original, retrain, 10) == ["damaged"]
    assert result_flags(_row(ta=line + 0.1, ua=5.0), original, retrain, 10) == []
    assert result_flags(_row(ra=50.0, ua=5.0), original, retrain, 10) == ["damaged"]
    assert result_flags(_row(ta=12.0, ua=5.0), original, retrain, 10) == ["at chance"]


def test_result_flags_no_op_reads_the_forget_confidence_when_no_metric_moved():
    original, retrain = _row(fc=99.0), _row(ua=3.0, fc=89.0)
    assert result_flags(_row(fc=99.0), original, retrain, 10) == ["no-op"]
    assert result_flags(_row(fc=98.2), original, retrain, 10) == ["no-op"]  # 8% of the way
    assert result_flags(_row(fc=97.0), original, retrain, 10) == []  # 20% of the way: it unlearned
    assert result_flags(_row(fc=99.5), original, retrain, 10) == ["no-op"]  # away from Retrain
    assert result_flags(_row(fc=99.0, mia=3.0), original, retrain, 10) == []  # a metric moved
    assert result_flags(_row(fc=99.0), original, _row(fc=99.5), 10) == ["no-op"]  # Retrain no less sure
