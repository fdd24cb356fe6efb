"""Retain-access sweep and LTU ablations: every method at several shares of accessible retain data.

The original and Retrain models do not depend on how much of the retain set a method may read (the
forget/retain cut is drawn before ``retain_access`` in :func:`~ltu_fast.unlearn.data.build_splits`),
so they are trained once per (forget mode, seed) and cached under a key that leaves the access share
out (:func:`~ltu_fast.unlearn.references.reference_pair`, shared with the runner and the tuner); each
level then only reruns the unlearning methods. ``score="val"`` scores every model without
the test split (:data:`~ltu_fast.unlearn.assess.VAL`, the tuner's metrics): the criterion for
choosing hyper-parameters on tuning seeds.

    ltu-fast sweep access --seeds 0 1 2 3 4 --out runs/access    (= python -m ltu_fast.unlearn.sweep ...)
    ltu-fast sweep ablate --seeds 0 1 2 3 4 --out runs/ablate

Sweeps of different modes or seeds may share one ``--out`` side by side (the file is merged under a
lock); a last run over everything then only renders the summary and the plot.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from .api import resolve_methods
from .assess import SCORINGS, Baseline, assess
from .filelock import locked, replace_text
from .runner import ExperimentConfig
from .stats import paired_interval

__all__ = ["ABLATIONS", "LEVELS", "MODES", "run_grid", "summary"]

LEVELS = (0.01, 0.02, 0.05, 0.1, 0.25)
FLAG_MARKS = {"at chance": "†", "damaged": "‡", "no-op": "°"}
MODES: dict[str, dict[str, Any]] = {"random": {"forget_mode": "random"},
                                    "class": {"forget_mode": "class", "forget_classes": (3,)}}
UNTOUCHED = "original"  # a row of its own (the original model, no unlearning), not a method: never "best other"
# The paper's ablations and this design's choices, as LTU keyword overrides of its (tuned) defaults;
# "ltu" is the default, pcgrad harmonization. "removed class: capped ascent" also changes random
# forgetting: the matched target's samples to flip are handled as a removed class's. "stop at the
# target" and "uniform forget batches" change class-wise forgetting little or not at all (a removed
# class keeps the gate open; its batches are uniform either way).
ABLATIONS: dict[str, dict[str, Any]] = {
    "ltu": {},
    "no meta step (inner_lr 0)": {"inner_lr": 0.0},
    "no harmonization (sum)": {"aggregator": "sum"},
    "no MIA feedback (num_mia 0)": {"num_mia": 0},
    "second order": {"second_order": True},
    "project instead of pcgrad": {"aggregator": "project"},  # ltu itself is pcgrad (symmetric)
    "upgrad instead of pcgrad": {"aggregator": "upgrad"},  # torchjd's flagship (issue #16)
    "mgda instead of pcgrad": {"aggregator": "mgda"},
    "removed class: capped ascent": {"class_target": "ascent"},
    "stop at the target": {"stop_at_target": True},  # the tuner's space holds stop_at_target False
    "mean held-out level (the earlier target)": {"ascent_target": "heldout", "ascent_bound": 0.3},
    "uniform forget batches": {"forget_batches": "uniform"},
    "momentum 0.9": {"momentum": 0.9},
}


def run_grid(config: ExperimentConfig, cells: dict[str, tuple[str, dict[str, Any]]], levels: Sequence[float],
             modes: Sequence[str], out: Path, how: str = "test") -> dict[str, Any]:
    """Every cell (a label -> (method, kwargs)) at every level, mode and seed; resumable via ``out``."""
    path = out / "sweep.json"
    runs: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    torch.set_num_threads(config.threads or 1)
    for seed in config.seeds:  # seed-major: an interrupted run has every level and mode of its first seeds
        for mode in modes:
            for level in levels:
                cfg = replace(config, **MODES[mode], retain_access=level)
                tuned = cfg.resolved_kwargs()[0]  # the defaults `ltu-fast tune` chose for this setting
                base = None
                for label, (method, kwargs) in cells.items():
                    key = f"{mode}|{level}|{seed}|{label}"
                    if key in runs:
                        continue
                    base = base or Baseline.of(replace(cfg, progress=False), seed, SCORINGS[how])
                    runs[key] = (base.untouched() if method == UNTOUCHED else
                                 assess(base, method, {**tuned.get(method, {}), **kwargs}, config.device))
                    runs = _save(path, runs)
                    print(key, f"gap {runs[key]['gap']:.2f}", flush=True)
    return runs


def _save(path: Path, runs: dict[str, Any]) -> dict[str, Any]:
    """Merge ``runs`` into ``path`` under its lock and return the union, so that sweeps of different
    modes or seeds can share one ``--out`` side by side (every cell is deterministic given its seed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with locked(path):
        merged = {**(json.loads(path.read_text()) if path.exists() else {}), **runs}
        replace_text(path, json.dumps(merged, indent=1))
    return merged


def summary(runs: dict[str, Any], labels: Sequence[str], levels: Sequence[float], modes: Sequence[str],
            seeds: Sequence[int], focus: str = "ltu") -> str:
    """Markdown: mean ± std Avg. Gap per label and level (marked with how many seeds carry each flag
    of ``metrics.result_flags``: †k at chance, ‡k damaged, °k no-op; averaged in, not dropped), rank
    of ``focus`` and its paired interval against the best other label (smallest mean gap; the
    untouched original is a row, not a competitor) and against the untouched original at each
    (mode, level), its seed spread against the median label's, and its time as a share of Retrain's."""
    lines = []
    for mode in modes:
        lines += [f"\n**{mode} forgetting** (Avg. Gap, mean ± std over seeds {list(seeds)})\n",
                  "| method | " + " | ".join(f"{lv:g}" for lv in levels) + " |", "|---" * (len(levels) + 1) + "|"]
        gaps = {(lb, lv): [runs.get(f"{mode}|{lv}|{s}|{lb}", {}).get("gap") for s in seeds]
                for lb in labels for lv in levels}
        for lb in labels:
            cells = []
            for lv in levels:
                g = [x for x in gaps[lb, lv] if x is not None]
                flags = [f for r in (runs.get(f"{mode}|{lv}|{s}|{lb}") for s in seeds) if r for f in r["flags"]]
                mark = "".join(f" {sign}{flags.count(flag)}" for flag, sign in FLAG_MARKS.items() if flag in flags)
                cells.append(f"{statistics.fmean(g):.2f} ± {statistics.stdev(g) if len(g) > 1 else 0:.2f}{mark}"
                             if g else "–")
            lines.append(f"| {lb} | " + " | ".join(cells) + " |")
        if focus in labels:
            lines.append(f"\n| {focus} vs best other | " + " | ".join(f"{lv:g}" for lv in levels) + " |")
            lines.append("|---" * (len(levels) + 1) + "|")
            rank_row, diff_row, time_row, base_row, spread_row = [], [], [], [], []
            for lv in levels:
                base_row.append(_versus_untouched(gaps, labels, focus, lv))
                spread_row.append(_spread(gaps, [lb for lb in labels if lb != UNTOUCHED], focus, lv))
                shares = [runs[k]["RTE_share"] for k in (f"{mode}|{lv}|{s}|{focus}" for s in seeds) if k in runs]
                time_row.append(f"{statistics.fmean(shares):.3f}" if shares else "–")
                done = {lb: gaps[lb, lv] for lb in labels if lb != UNTOUCHED and all(x is not None for x in gaps[lb, lv])}
                if focus not in done or len(done) < 2:
                    rank_row.append("–"), diff_row.append("–")
                    continue
                order = sorted(done, key=lambda lb: statistics.fmean(done[lb]))
                # a row equal to the focus on every seed is the same configuration (e.g. an ablation
                # that sets what the tuned default already is): compare against the best different one
                others = [lb for lb in order if lb != focus and done[lb] != done[focus]]
                if not others:
                    rank_row.append(f"{order.index(focus) + 1}/{len(order)}"), diff_row.append("–")
                    continue
                best = others[0]
                stat = paired_interval(a - b for a, b in zip(done[focus], done[best]))
                mean, lo, hi = stat["mean"], stat["lo"], stat["hi"]
                rank_row.append(f"{order.index(focus) + 1}/{len(order)}")
                diff_row.append(f"{mean:+.2f} [{lo:+.2f}, {hi:+.2f}] vs {best}")
            lines.append("| rank | " + " | ".join(rank_row) + " |")
            lines.append("| paired Δgap, 95% CI | " + " | ".join(diff_row) + " |")
            if UNTOUCHED in labels:
                lines.append(f"| paired Δgap vs {UNTOUCHED}, 95% CI | " + " | ".join(base_row) + " |")
            lines.append(f"| gap std: {focus} / median method | " + " | ".join(spread_row) + " |")
            lines.append(f"| {focus} time / Retrain's | " + " | ".join(time_row) + " |")
    return "\n".join(lines) + "\n"


def _versus_untouched(gaps: dict, labels: Sequence[str], focus: str, level: float) -> str:
    """The focus's paired per-seed Avg. Gap difference to the untouched original, mean [95% CI]."""
    pairs = [(a, b) for a, b in zip(gaps.get((focus, level), []), gaps.get((UNTOUCHED, level), []))
             if a is not None and b is not None]
    if UNTOUCHED not in labels or len(pairs) < 2:
        return "–"
    stat = paired_interval(a - b for a, b in pairs)
    return f"{stat['mean']:+.2f} [{stat['lo']:+.2f}, {stat['hi']:+.2f}]"


def _spread(gaps: dict, methods: Sequence[str], focus: str, level: float) -> str:
    """The focus's seed std of its Avg. Gap and the median of every method's (the focus included)."""
    stds = {m: statistics.stdev(g) for m in methods
            if len(g := [x for x in gaps[m, level] if x is not None]) > 1}
    if focus not in stds:
        return "–"
    return f"{stds[focus]:.2f} / {statistics.median(stds.values()):.2f}"


def plot_access(runs: dict[str, Any], labels: Sequence[str], levels: Sequence[float], modes: Sequence[str],
                seeds: Sequence[int], path: Path) -> None:
    """Avg. Gap (mean over seeds, log-scaled y) against retain access, one panel per forget mode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(modes), figsize=(6 * len(modes), 4.2), squeeze=False)
    for ax, mode in zip(axes[0], modes):
        for label in labels:
            xs, ys = [], []
            for lv in levels:
                g = [runs[k]["gap"] for k in (f"{mode}|{lv}|{s}|{label}" for s in seeds) if k in runs]
                if g:
                    xs.append(100 * lv), ys.append(statistics.fmean(g))
            style = {"ls": "--", "color": "gray"} if label == UNTOUCHED else {}
            ax.plot(xs, ys, marker="o", lw=2.5 if label == "ltu" else 1.2, label=label, **style)
        ax.set_xscale("log"), ax.set_yscale("log")
        ax.set_xticks([100 * lv for lv in levels], [f"{100 * lv:g}%" for lv in levels])
        ax.set_xlabel("retain access (share of the retain set a method may read)")
        ax.set_ylabel("Avg. Gap to Retrain (lower is better)")
        ax.set_title(f"{mode} forgetting, mean over seeds {list(seeds)}")
        ax.grid(alpha=0.3, which="both")
    axes[0][-1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ltu-fast sweep", description="Retain-access sweep (every method) or LTU "
                                "ablations, mean ± std Avg. Gap and LTU's paired interval against the best other.")
    p.add_argument("what", choices=("access", "ablate"))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    p.add_argument("--levels", nargs="+", type=float, help=f"retain-access shares (access default {LEVELS}, "
                                                               "ablate default 0.02 0.1)")
    p.add_argument("--modes", nargs="+", choices=sorted(MODES), default=list(MODES))
    p.add_argument("--dataset", default="mnist5k", help="an embedded dataset (mnist5k, digits)")
    p.add_argument("--methods", nargs="+", help="access: methods to run (default every registered one)")
    p.add_argument("--out", default="ltu_fast_runs/sweep")
    p.add_argument("--cache-dir", help="cached original/Retrain models (default as ltu-fast unlearn)")
    p.add_argument("--score", choices=("test", "val"), default="test",
                   help="test: the reported metrics; val: no test split (for choosing hyper-parameters)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = ExperimentConfig(dataset=args.dataset, seeds=tuple(args.seeds), cache_dir=args.cache_dir, progress=False)
    if args.what == "access":
        methods = resolve_methods(args.methods)
        cells = {UNTOUCHED: (UNTOUCHED, {}), **{m: (m, {}) for m in methods}}
        levels = args.levels or list(LEVELS)
    else:
        cells = {UNTOUCHED: (UNTOUCHED, {}), **{label: ("ltu", kwargs) for label, kwargs in ABLATIONS.items()}}
        levels = args.levels or [0.02, 0.1]
    out = Path(args.out)
    runs = run_grid(config, cells, levels, args.modes, out, args.score)
    text = summary(runs, list(cells), levels, args.modes, args.seeds)
    (out / "summary.md").write_text(text)
    if args.what == "access":
        plot_access(runs, list(cells), levels, args.modes, args.seeds, out / "results.png")
    print(text)
    print(f"wrote {out}/sweep.json, summary.md" + (", results.png" if args.what == "access" else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
