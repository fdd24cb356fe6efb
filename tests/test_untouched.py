"""One rule for untouched parameters in every front end: torch's ``grad is None``, kept on the host.

The fused optimizers (HarmonizedSGD, HarmonizedAdamW) equal ``torch.optim.SGD`` / ``AdamW`` on the
wrapper's five scripts (zero_grad every step, none between steps, in place, ``model.zero_grad()``,
a hand-assigned ``.grad``): with aggregator "sum" and both backwards in their objectives, a
parameter steps exactly when torch's ``.grad`` is not None, also for a gradient that is really
computed and exactly zero (the Gram-diagonal rule of the functional ``touched_tensors`` would skip it).
"""

from __future__ import annotations

import pytest
import torch
from test_adamw import _TwoHeads
from test_wrapper import SCRIPTS, _act

from ltu_fast import HarmonizedAdamW, HarmonizedSGD

FUSED = {
    "sgd": (torch.optim.SGD, HarmonizedSGD, {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.1, "nesterov": True}),
    "adamw": (torch.optim.AdamW, HarmonizedAdamW, {"lr": 0.05, "weight_decay": 0.1, "amsgrad": True}),
}


def _flat(model) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


@pytest.mark.parametrize("script", list(SCRIPTS))
@pytest.mark.parametrize("rule", list(FUSED))
@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_fused_optimizers_follow_torchs_grad_none_rule(script, rule, backend):
    torch_cls, ours_cls, kwargs = FUSED[rule]
    dtype = torch.float64 if backend == "reference" else torch.float32
    a, b = _TwoHeads(dtype), _TwoHeads(dtype)
    plain = torch_cls(a.parameters(), **kwargs)
    ours = ours_cls(b.parameters(), objectives=2, aggregator="sum", backend=backend, **kwargs)
    gen = torch.Generator().manual_seed(0)
    tol = {"rtol": 1e-12, "atol": 1e-14} if dtype == torch.float64 else {"rtol": 1e-6, "atol": 1e-7}
    for action in SCRIPTS[script]:
        x = torch.randn(8, 4, generator=gen, dtype=dtype)
        for model, opt in ((a, plain), (b, ours)):
            _act(action, model, opt, x)
        torch.testing.assert_close(_flat(b), _flat(a), **tol, msg=action)
    for p, q in zip(a.parameters(), b.parameters()):
        for key, value in plain.state[p].items():
            torch.testing.assert_close(torch.as_tensor(ours.state[q][key]).to(value), torch.as_tensor(value), **tol)


@pytest.mark.parametrize("rule", list(FUSED))
def test_a_computed_exact_zero_gradient_steps_as_in_torch(rule):
    """A backward that reaches a parameter with an exactly zero gradient: torch applies weight decay
    (its .grad is a zero tensor, not None), so do we."""
    torch_cls, ours_cls, kwargs = FUSED[rule]
    a, b = _TwoHeads(), _TwoHeads()
    plain, ours = torch_cls(a.parameters(), **kwargs), ours_cls(b.parameters(), aggregator="sum", **kwargs)
    x = torch.randn(8, 4, dtype=torch.float64)
    for model, opt in ((a, plain), (b, ours)):
        opt.zero_grad()
        (model(x, "head_a").pow(2).mean() + 0.0 * model(x, "head_b").sum()).backward()
        opt.step()
    torch.testing.assert_close(_flat(b), _flat(a), rtol=1e-12, atol=1e-14)
    assert not torch.equal(b.head_b.weight, _TwoHeads().head_b.weight)  # decayed: it was reached


@pytest.mark.parametrize("rule", list(FUSED))
def test_skip_untouched_false_steps_every_parameter(rule):
    """``skip_untouched=False``: an untouched parameter steps on a zero gradient (torch with zero ``.grad``)."""
    torch_cls, ours_cls, kwargs = FUSED[rule]
    a, b = _TwoHeads(), _TwoHeads()
    plain = torch_cls(a.parameters(), **kwargs)
    ours = ours_cls(b.parameters(), aggregator="sum", skip_untouched=False, **kwargs)
    for _ in range(2):
        x = torch.randn(8, 4, dtype=torch.float64)
        for model, opt in ((a, plain), (b, ours)):
            opt.zero_grad()
            model(x, "head_a").pow(2).mean().backward()
            if opt is plain:
                for p in a.head_b.parameters():
                    p.grad = torch.zeros_like(p)
            opt.step()
        torch.testing.assert_close(_flat(b), _flat(a), rtol=1e-12, atol=1e-14)
