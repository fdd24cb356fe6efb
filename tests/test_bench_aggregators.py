"""``ltu-fast bench aggregators`` runs every registered aggregator and prints one row each."""

from __future__ import annotations

import math

import torch

from ltu_fast.aggregators import AGGREGATORS
from ltu_fast.bench import aggregators as bench
from ltu_fast.bench import shapes


def test_every_aggregator_gets_a_finite_row_against_pcgrad(monkeypatch, capsys):
    monkeypatch.setitem(shapes.PARAMETER_SIZES, "tiny", lambda: [40, 7, 12])
    rows = bench.bench("tiny", 3, sorted(AGGREGATORS), torch.device("cpu"), reps=2, warmup=1, bandwidth=1e10)
    assert [r["aggregator"] for r in rows] == sorted(AGGREGATORS)
    assert all(math.isfinite(r[c]) and r[c] > 0 for r in rows for c in ("ms", "x_floor", "x_pcgrad"))
    assert next(r for r in rows if r["aggregator"] == "pcgrad")["x_pcgrad"] == 1.0
    bench.main(["--model", "tiny", "--k", "2", "--aggregators", "upgrad", "--reps", "1", "--warmup", "0"])
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in out[2:]] == ["pcgrad", "upgrad"]
