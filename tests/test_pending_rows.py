"""``zero_grad`` leaves rows pending: backward writes ``.grad`` and the optimizer copies it once.

Every scenario must give the same rows, bit for bit, as the filled path (``set_to_none=False``),
which is the plain "zero the rows, accumulate into views" semantics.
"""

from __future__ import annotations

import pytest
import torch

from ltu_fast import HarmonizedSGD


class _TwoHeads(torch.nn.Module):
    """A shared trunk and one head per objective: each objective leaves some parameters untouched."""

    def __init__(self):
        super().__init__()
        self.trunk = torch.nn.Linear(5, 7)
        self.a = torch.nn.Linear(7, 1)
        self.b = torch.nn.Linear(7, 1)

    def forward(self, x, head):
        return getattr(self, head)(torch.tanh(self.trunk(x))).sum()


def _scenario(defer: bool, script: str) -> tuple[torch.Tensor, list[torch.Tensor]]:
    torch.manual_seed(0)
    model = _TwoHeads()
    opt = HarmonizedSGD(model.parameters(), lr=0.1, momentum=0.9, objectives=("a", "b", "c"), backend="reference")
    for step in range(3):
        x = torch.randn(4, 5, generator=torch.Generator().manual_seed(step))
        opt.zero_grad(set_to_none=defer)
        if defer:
            assert all(p.grad is None for p in model.parameters())
        if script == "contexts":
            with opt.objective("a"):
                model(x, "a").backward()
            with opt.objective("b"):
                model(x, "b").backward()
                model(2 * x, "b").backward()  # accumulates within the objective
        elif script == "set_objective":
            opt.set_objective("b")
            model(x, "b").backward()
            opt.set_objective("a")
            model(x, "a").backward()
            model(x, "b").backward()  # row a gets b's head gradient too
            opt.set_objective("a")
        elif script == "rows_between":
            with opt.objective("c"):
                model(x, "a").backward()
            opt.grad_row("a").add_(1.0)  # reading a pending row materialises it (zeros) first
            with opt.objective("a"):
                model(x, "b").backward()
        opt.step()
    rows = opt.grad_rows  # padding is never read, and a write into it lives on until a fill: compare data
    data = torch.stack([torch.cat([v.reshape(-1) for v in opt.plan.views(row, opt._shapes)]) for row in rows])
    return data, [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("script", ["contexts", "set_objective", "rows_between"])
def test_pending_rows_equal_filled_rows(script):
    rows_deferred, params_deferred = _scenario(True, script)
    rows_filled, params_filled = _scenario(False, script)
    assert torch.equal(rows_deferred, rows_filled)
    for a, b in zip(params_deferred, params_filled):
        assert torch.equal(a, b)
    assert rows_deferred.abs().sum() > 0


def test_pending_row_copies_once_instead_of_accumulating():
    """After the first objective's backward, ``.grad`` holds autograd's own tensor, not a row view."""
    model = torch.nn.Linear(3, 2)
    opt = HarmonizedSGD(model.parameters(), lr=0.1, objectives=2, backend="reference")
    opt.zero_grad()
    with opt.objective(0):
        model(torch.ones(1, 3)).sum().backward()
        row = opt._rows[0]
        assert all(p.grad is not None and p.grad.data_ptr() != row.data_ptr() for p in model.parameters())
    with opt.objective(1):
        assert all(p.grad is None for p in model.parameters())
    torch.testing.assert_close(opt.grad_row(0)[:6].view(2, 3), torch.ones(2, 3))
    assert opt.grad_row(1).abs().sum() == 0
