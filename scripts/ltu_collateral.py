"""Validation gaps of LTU variants against IAU and FT on tuning seeds (issue #9: collateral damage).

Never the reported seeds (0-4), never the test split: ``run_grid(..., how="val")``, every method at the
tuned defaults of its setting (``defaults.json``) under the cell's overrides. Resumable via ``--out``.

    PYTHONPATH=$PWD nice -n 5 python scripts/ltu_collateral.py --out runs/collateral --modes random class \
        --levels 0.02 0.1
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

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
    parser.add_argument("--cache-dir", default="/tmp/ltuh/cache")
    args = parser.parse_args()
    if set(args.seeds) & set(range(5)):
        raise SystemExit("--seeds: 0-4 are the reported seeds; tune on others")
    config = ExperimentConfig(seeds=tuple(args.seeds), cache_dir=args.cache_dir, progress=False)
    cells = {label: CELLS[label] for label in args.cells}
    runs = run_grid(config, cells, args.levels, args.modes, args.out, how="val")
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


if __name__ == "__main__":
    main()
