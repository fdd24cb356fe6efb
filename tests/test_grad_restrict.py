"""IAU's gradient restriction of the reference training (``TrainRecipe.grad_restrict``)."""

from __future__ import annotations

from dataclasses import asdict

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from ltu_fast.cli import main
from ltu_fast.unlearn import train
from ltu_fast.unlearn.api import ArraySplit
from ltu_fast.unlearn.train import TrainRecipe, batch_loss, cache_key, train_model

ALPHA = 0.3  # large enough that the restriction visibly changes the step


def _data(n=12, d=3, classes=2, dtype=torch.float64):
    g = torch.Generator().manual_seed(1)
    return ArraySplit(torch.randn(n, d, generator=g, dtype=dtype), torch.randint(0, classes, (n,), generator=g))


def _hand_loss(w: torch.Tensor, b: torch.Tensor, x: torch.Tensor, y: torch.Tensor, alpha: float) -> torch.Tensor:
    """Linear softmax regression written out: mean CE + alpha * (|dCE/dW| + |dCE/db|), gradients in closed form."""
    logits = x @ w.T + b
    log_p = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    onehot = torch.zeros_like(logits).scatter_(1, y[:, None], 1.0)
    ce = -(onehot * log_p).sum() / len(y)
    residual = (log_p.exp() - onehot) / len(y)  # dCE/dlogits
    return ce + alpha * ((residual.T @ x).square().sum().sqrt() + residual.sum(0).square().sum().sqrt())


def test_loss_matches_the_closed_form_in_float64():
    data, model = _data(), nn.Linear(3, 2).double()
    got = batch_loss(model, data.x, data.y, list(model.parameters()), ALPHA)
    want = _hand_loss(model.weight, model.bias, data.x, data.y, ALPHA)
    assert got.item() == pytest.approx(want.item(), rel=1e-12)
    assert got.item() > F.cross_entropy(model(data.x), data.y).item()


def test_restricted_step_follows_the_gradient_of_the_closed_form():
    """One full-batch SGD step (no momentum history, decay, clipping or warm-up) moves by -lr * grad."""
    data, model = _data(), nn.Linear(3, 2).double()
    w, b = (p.detach().clone().requires_grad_() for p in model.parameters())
    _hand_loss(w, b, data.x, data.y, ALPHA).backward()
    recipe = TrainRecipe(epochs=1, batch_size=len(data), lr=0.5, weight_decay=0.0, schedule="constant",
                         warmup_epochs=0, clip_norm=0.0, grad_restrict=ALPHA)
    train_model(model, data, recipe, seed=0, progress=False)
    torch.testing.assert_close(model.weight.detach(), w.detach() - 0.5 * w.grad, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(model.bias.detach(), b.detach() - 0.5 * b.grad, rtol=1e-12, atol=1e-12)


def test_double_backward_through_a_hidden_layer_passes_gradcheck():
    data = _data(n=6)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    params = list(model.parameters())

    def loss(*values):
        named = dict(zip((n for n, _ in model.named_parameters()), values))
        out = torch.func.functional_call(model, named, (data.x,))
        ce = F.cross_entropy(out, data.y)
        grads = torch.autograd.grad(ce, values, create_graph=True)
        return ce + ALPHA * torch.stack([g.norm() for g in grads]).sum()

    values = tuple(p.detach().clone().requires_grad_() for p in params)
    assert torch.autograd.gradcheck(loss, values)  # double backward agrees with finite differences
    loss(*values).backward()
    batch_loss(model, data.x, data.y, params, ALPHA).backward()
    for p, v in zip(params, values):
        torch.testing.assert_close(p.grad, v.grad, rtol=1e-12, atol=1e-12)


def test_default_recipe_trains_exactly_on_plain_cross_entropy(monkeypatch):
    assert TrainRecipe().grad_restrict == 0.0
    data = _data(n=40, dtype=torch.float32)
    recipe = TrainRecipe(epochs=2, batch_size=8)

    def run() -> list[torch.Tensor]:
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 2))
        return [p.detach() for p in train_model(model, data, recipe, seed=0, progress=False).parameters()]

    default = run()
    monkeypatch.setattr(train, "batch_loss", lambda model, x, y, params, weight: F.cross_entropy(model(x), y))
    assert all(torch.equal(a, b) for a, b in zip(default, run()))


def test_cache_key_covers_the_restriction():
    def key(recipe):
        return cache_key(role="original", recipe=asdict(recipe), seed=0)

    assert key(TrainRecipe()) == key(TrainRecipe(grad_restrict=0.0)) == key(TrainRecipe(grad_restrict=0))
    assert key(TrainRecipe(grad_restrict=0.005)) != key(TrainRecipe())
    assert key(TrainRecipe(grad_restrict=0.005)) != key(TrainRecipe(grad_restrict=0.01))


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf")])
def test_bad_weight_names_the_parameter(bad):
    with pytest.raises(ValueError, match="grad_restrict"):
        TrainRecipe(grad_restrict=bad)


def test_cli_rejects_a_negative_weight(tmp_path, capsys):
    assert main(["--quick", "--recipe", "grad_restrict=-1", "--out", str(tmp_path)]) == 2
    assert "grad_restrict" in capsys.readouterr().err
