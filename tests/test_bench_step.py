"""``ltu-fast bench step`` on a tiny case: every contender runs, the table is complete, and with the
default learning rate 0 every contender's network stays the one it started from (so the forward
and backward columns compare one network, not networks that drifted apart)."""

import math

import torch
from torch import nn

from ltu_fast.bench import training_step as bench_step


def test_every_contender_steps_and_reports(monkeypatch, capsys):
    monkeypatch.setitem(bench_step.CASES, "tiny", (lambda: nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3)),
                                                   (6,), 3, 4, 2))
    models = []
    real = bench_step._Contender.__init__

    def keep(self, *args, **kwargs):
        real(self, *args, **kwargs)
        models.append(self.model)

    monkeypatch.setattr(bench_step._Contender, "__init__", keep)
    result = bench_step.bench_case("tiny", torch.device("cpu"), rounds=2, steps=None, contenders=list(bench_step.CONTENDERS))
    assert set(result["rows"]) == set(bench_step.CONTENDERS) and result["steps"] == 2
    for name, row in result["rows"].items():
        assert row["baseline"] == bench_step.CONTENDERS[name][1]
        assert all(math.isfinite(row[k]) and row[k] > 0 for k in ("ms", "ratio", *bench_step.PHASES)), name
        assert 0 < row["held_mb"] <= row["peak_mb"], name
    first = [p.detach() for p in models[0].parameters()]
    for model in models[1:]:
        assert all(torch.equal(a, b) for a, b in zip(first, model.parameters()))
    bench_step.print_case(result)
    assert "wrapped" in capsys.readouterr().out
