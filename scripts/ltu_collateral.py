"""Validation gaps of LTU variants against IAU and FT on tuning seeds (issue #9: collateral damage).

Never the reported seeds (0-4), never the test split: ``run_grid(..., how="val")``, every method at the
tuned defaults of its setting (``defaults.json``) under the cell's overrides. Resumable via ``--out``.
``--grid`` runs LTU at every configuration of its ``search_space`` instead and compares the grid
with ``stop_at_target`` on and off (mean, best and worst of the per-configuration seed means).

    PYTHONPATH=$PWD nice -n 5 python scripts/ltu_collateral.py --out runs/collateral --modes random class \
        --levels 0.02 0.1
    PYTHONPATH=$PWD nice -n 5 python scripts/ltu_collateral.py --out runs/ltu-grid --grid --levels 0.02 0.05 0.1 0.25
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
from pathlib import Path

from ltu_fast.unlearn.ltu import LTU
from ltu_fast.unlearn.runner import ExperimentConfig
from ltu_fast.unlearn.sweep import run_grid

CELLS = {
    "ltu": ("ltu", {}),
    "ltu, stop_at_target=False": ("ltu", {"stop_at_target": False}),
    "iau": ("iau", {}),
    "ft": ("ft", {}),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--modes", nargs="+", default=["random"])
    parser.add_argument("--levels", nargs="+", type=float, default=[0.02, 0.1])
    parser.add_argument("--seeds", nargs="+", type=int, default=[100, 101, 102])
    parser.add_argument("--cells", nargs="+", default=list(CELLS), help="labels of CELLS to run")
    parser.add_argument("--grid", action="store_true", help="every LTU.search_space configuration instead")
    parser.add_argument("--cache-dir", default="/tmp/ltuh/cache")
    args = parser.parse_args()
    if set(args.seeds) & set(range(5)):
        raise SystemExit("--seeds: 0-4 are the reported seeds; tune on others")
    config = ExperimentConfig(seeds=tuple(args.seeds), cache_dir=args.cache_dir, progress=False)
    cells = grid_cells() if args.grid else {label: CELLS[label] for label in args.cells}
    runs = run_grid(config, cells, args.levels, args.modes, args.out, how="val")
    if args.grid:
        return print_grid(runs, cells, args.modes, args.levels, args.seeds)
    metrics = ("gap", "UA", "RA", "TA", "MIA")
    for mode in args.modes:
        for level in args.levels:
            print(f"\n{mode} {level:g}  (mean ± std over seeds {args.seeds}; UA RA TA MIA means)")
            for label in cells:
                rows = [runs[k] for k in (f"{mode}|{level}|{s}|{label}" for s in args.seeds) if k in runs]
                if not rows:
                    continue
                gaps = [r["gap"] for r in rows]
                means = " ".join(f"{statistics.fmean(r[m] for r in rows):6.2f}" for m in metrics[1:])
                print(f"  {label:28s} {statistics.fmean(gaps):5.2f} ± {statistics.stdev(gaps) if len(gaps) > 1 else 0:4.2f}"
                      f"   {means}   per seed {json.dumps([round(g, 2) for g in gaps])}")


def grid_cells() -> dict[str, tuple[str, dict]]:
    """One LTU cell per configuration of its search space, labelled by its JSON."""
    keys = sorted(LTU.search_space)
    configs = (dict(zip(keys, combo)) for combo in itertools.product(*(LTU.search_space[k] for k in keys)))
    return {json.dumps(c, sort_keys=True): ("ltu", c) for c in configs}


def print_grid(runs: dict, cells: dict, modes: list[str], levels: list[float], seeds: list[int]) -> None:
    """Per (mode, level) and stop_at_target value: the grid's mean, best and worst seed-mean gap."""
    for mode in modes:
        for level in levels:
            for stop in (False, True):
                means = sorted(statistics.fmean(runs[f"{mode}|{level}|{s}|{label}"]["gap"] for s in seeds)
                               for label, (_, kw) in cells.items() if kw["stop_at_target"] == stop)
                print(f"{mode} {level:g} stop_at_target={stop!s:5}: {len(means)} configs, mean {statistics.fmean(means):.2f}"
                      f", best {means[0]:.2f}, worst {means[-1]:.2f}")


if __name__ == "__main__":
    main()
