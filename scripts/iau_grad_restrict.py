"""Does IAU's gradient-restricted training of the original matter? (issue #8, item 4)

``tune``: for each restriction weight (``TrainRecipe.grad_restrict``), the ``ltu-fast tune`` protocol
for IAU alone on the tuning seeds (never the reported ones, never the test split), original and
Retrain both trained with the restriction. Prints per weight the references' validation accuracy,
the untouched original's validation gap, IAU's at its packaged tuned defaults (what the runner
uses) and IAU's best over its grid. Resumable: a weight whose file exists in ``--out`` is not rerun.

``compare OFF ON``: two ``ltu-fast unlearn --methods iau`` outputs (without / with the restriction) on
the same seeds; IAU's Avg. Gap in each, the paired per-seed difference with a 95% t-interval, the
untouched original's gap and accuracy, and the paper's variant (restricted original, unrestricted
Retrain: ON's models against OFF's Retrain).

    PYTHONPATH=$PWD nice -n 10 python scripts/iau_grad_restrict.py tune --out /tmp/iau \\
        --cache-dir /tmp/iau/cache --weights 0 0.001 0.005 0.05
    ltu-fast unlearn --methods iau --seeds 0 1 2 3 4 --out /tmp/iau/0 --cache-dir /tmp/iau/cache --no-progress
    ltu-fast unlearn --methods iau --seeds 0 1 2 3 4 --recipe grad_restrict=0.001 --out /tmp/iau/0.001 \\
        --cache-dir /tmp/iau/cache --no-progress
    PYTHONPATH=$PWD python scripts/iau_grad_restrict.py compare /tmp/iau/0 /tmp/iau/0.001
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

from ltu_fast.unlearn.defaults import load_trials, lookup, setting_of
from ltu_fast.unlearn.metrics import avg_gap
from ltu_fast.unlearn.runner import ExperimentConfig
from ltu_fast.unlearn.stats import paired_interval
from ltu_fast.unlearn.train import TrainRecipe
from ltu_fast.unlearn.tune import TUNE_SEEDS, VAL_KEYS, tune


def _mean(values: list[float]) -> float:
    return statistics.fmean(values)


def tune_weights(out: Path, cache_dir: str | None, weights: list[float], seeds: tuple[int, ...]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    head = "| grad_restrict | original VA / RA | Retrain VA | untouched gap | iau at tuned defaults | iau best (config) |"
    rows = [head, "|---|---|---|---|---|---|"]
    for weight in weights:
        path = out / f"tune_{weight:g}.json"
        config = ExperimentConfig(methods=("iau",), seeds=seeds, recipe=TrainRecipe(grad_restrict=weight),
                                  cache_dir=cache_dir, progress=False)
        if not path.exists():
            tune(config, command=f"scripts/iau_grad_restrict.py tune (grad_restrict={weight:g})", defaults_file=path)
        entry = json.loads(path.read_text())["settings"][0]
        refs = entry["references"].values()
        shipped = lookup(setting_of(config))[0]["iau"]
        iau = entry["methods"]["iau"]
        trials = load_trials(path)["settings"][0]["methods"]["iau"]["trials"]
        at_default = next(t for t in trials if t["config"] == shipped)
        orig = [r["val"]["original"] for r in refs]
        untouched = _mean([avg_gap(r["val"]["original"], r["val"]["retrain"], VAL_KEYS) for r in refs])
        chosen = ", ".join(f"{k}={v:g}" for k, v in iau["chosen"].items())
        flags = f" ⚠ {', '.join(at_default['flags'])}" if at_default["flags"] else ""
        rows.append(f"| {weight:g} | {_mean([o['VA'] for o in orig]):.2f} / {_mean([o['RA'] for o in orig]):.2f} "
                    f"| {_mean([r['val']['retrain']['VA'] for r in refs]):.2f} | {untouched:.2f} "
                    f"| {at_default['score']:.2f}{flags} | {iau['score']:.2f} ({chosen}) |")
    print(f"Validation gaps (no test data), mean over tuning seeds {list(seeds)}; IAU's tuned defaults: {shipped}.")
    print("\n".join(rows))


def _per_seed(path: Path) -> dict[str, dict[int, dict[str, Any]]]:
    """role/method -> seed -> metrics, from a runner's results.json."""
    runs = json.loads((path / "results.json").read_text())["runs"]
    return {name: {int(seed): metrics for seed, metrics in per_seed.items()} for name, per_seed in runs.items()}


def compare(off: Path, on: Path) -> None:
    a, b = _per_seed(off), _per_seed(on)
    seeds = sorted(set(a["iau"]) & set(b["iau"]))
    gaps = {
        "unrestricted original and Retrain": [avg_gap(a["iau"][s], a["retrain"][s]) for s in seeds],
        "restricted original and Retrain": [avg_gap(b["iau"][s], b["retrain"][s]) for s in seeds],
        "restricted original, unrestricted Retrain": [avg_gap(b["iau"][s], a["retrain"][s]) for s in seeds],
    }
    base = gaps["unrestricted original and Retrain"]
    print(f"IAU Avg. Gap over seeds {seeds} (mean ± std; paired Δ vs the unrestricted run, mean [95% t-interval])")
    print("| references | iau Avg. Gap | paired Δ | untouched original's Avg. Gap | original TA / RA |\n"
          "|---|---|---|---|---|")
    untouched = {
        "unrestricted original and Retrain": [avg_gap(a["original"][s], a["retrain"][s]) for s in seeds],
        "restricted original and Retrain": [avg_gap(b["original"][s], b["retrain"][s]) for s in seeds],
        "restricted original, unrestricted Retrain": [avg_gap(b["original"][s], a["retrain"][s]) for s in seeds],
    }
    for label, values in gaps.items():
        source = a if label.startswith("unrestricted") else b
        delta = [v - w for v, w in zip(values, base)]
        ci = paired_interval(delta)
        ta, ra = ([source["original"][s][k] for s in seeds] for k in ("TA", "RA"))
        print(f"| {label} | {_mean(values):.2f} ± {statistics.stdev(values):.2f} "
              f"| {ci['mean']:+.2f} [{ci['lo']:+.2f}, {ci['hi']:+.2f}] | {_mean(untouched[label]):.2f} "
              f"| {_mean(ta):.2f} / {_mean(ra):.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("tune")
    t.add_argument("--out", type=Path, required=True)
    t.add_argument("--cache-dir")
    t.add_argument("--weights", nargs="+", type=float, default=[0.0, 0.001, 0.005, 0.02, 0.05])
    t.add_argument("--seeds", nargs="+", type=int, default=list(TUNE_SEEDS))
    c = sub.add_parser("compare")
    c.add_argument("off", type=Path)
    c.add_argument("on", type=Path)
    args = parser.parse_args()
    if args.command == "tune":
        tune_weights(args.out, args.cache_dir, args.weights, tuple(args.seeds))
    else:
        compare(args.off, args.on)


if __name__ == "__main__":
    main()
