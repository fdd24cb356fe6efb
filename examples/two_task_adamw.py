"""Embedding the harmonizer in an ordinary training loop: two tasks, one trunk, ``torch.optim.AdamW``.

The two regression targets pull the shared trunk in partly opposite directions. ``Harmonized``
keeps the user's optimizer (here AdamW) and only changes which gradient it sees: per layer, the
PCGrad combination of the two tasks' gradients. Runs on CPU in a few seconds:

    python examples/two_task_adamw.py
"""

from __future__ import annotations

import torch
from torch import nn

from ltu_fast import Harmonized


class TwoTaskNet(nn.Module):
    def __init__(self, d_in: int = 16, hidden: int = 64):
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(d_in, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU())
        self.head_a, self.head_b = nn.Linear(hidden, 1), nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.trunk(x)
        return self.head_a(h).squeeze(-1), self.head_b(h).squeeze(-1)


def make_data(n: int, d_in: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Task a: a smooth function of x; task b: a partly opposed one (shared and conflicting structure).
    The functions are fixed; ``seed`` draws the inputs."""
    w = torch.randn(d_in, generator=torch.Generator().manual_seed(1234))
    x = torch.randn(n, d_in, generator=torch.Generator().manual_seed(seed))
    y_a = torch.sin(x @ w / 4)
    y_b = -0.5 * torch.sin(x @ w / 4) + torch.cos(x[:, 0])
    return x, y_a, y_b


def main(steps: int = 300, seed: int = 0, verbose: bool = True) -> dict[str, float]:
    torch.manual_seed(seed)
    x, y_a, y_b = make_data(2048, seed=seed)
    x_test, ya_test, yb_test = make_data(512, seed=seed + 1)
    model = TwoTaskNet()
    opt = Harmonized(torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-2),
                     objectives=("task_a", "task_b"), aggregator="pcgrad")
    gen = torch.Generator().manual_seed(seed)
    for step in range(steps):
        idx = torch.randint(0, len(x), (128,), generator=gen)
        opt.zero_grad()
        pred_a, pred_b = model(x[idx])
        with opt.objective("task_a"):
            nn.functional.mse_loss(pred_a, y_a[idx]).backward(retain_graph=True)
        with opt.objective("task_b"):
            nn.functional.mse_loss(pred_b, y_b[idx]).backward()
        opt.step()
        if verbose and step % 100 == 0:
            print(f"step {step:4d}: conflicting layers {opt.conflict_rate():.0%}")
    with torch.no_grad():
        pred_a, pred_b = model(x_test)
        result = {"test_mse_a": nn.functional.mse_loss(pred_a, ya_test).item(),
                  "test_mse_b": nn.functional.mse_loss(pred_b, yb_test).item(),
                  "baseline_mse_a": ya_test.var().item(), "baseline_mse_b": yb_test.var().item()}
    if verbose:
        print(f"test MSE task a {result['test_mse_a']:.4f} (predicting the mean: {result['baseline_mse_a']:.4f}), "
              f"task b {result['test_mse_b']:.4f} (mean: {result['baseline_mse_b']:.4f})")
    return result


if __name__ == "__main__":
    torch.set_num_threads(1)  # a model this small only pays for thread start-up
    main()
