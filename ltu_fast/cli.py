"""Command line: ``ltu-fast unlearn [options]`` (the default) and ``ltu-fast bench ...``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

__all__ = ["build_parser", "main"]


def _key_values(items: Sequence[str], option: str) -> dict[str, Any]:
    """Parse KEY=VALUE pairs; VALUE as JSON when it parses (numbers, true/false), else as a string."""
    out = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"{option}: expected KEY=VALUE, got {item!r}")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def _csv_list(values: Sequence[str] | None) -> list[str] | None:
    """Accept both ``--methods ft ga`` and ``--methods ft,ga``."""
    return None if values is None else [v for item in values for v in item.split(",") if v]


def build_parser() -> argparse.ArgumentParser:
    from .unlearn.data import DATASETS, FORGET_MODES
    from .unlearn.models import MODELS

    p = argparse.ArgumentParser(prog="ltu-fast unlearn",
                                description="Compare unlearning methods (original, Retrain, LTU, baselines).",
                                epilog="Also: `ltu-fast bench ...` runs the harmonization benchmarks.")
    p.add_argument("--dataset", choices=sorted(DATASETS), help="default mnist5k (embedded; --quick: digits)")
    p.add_argument("--data-root", help="folder (cifar10/100, imagefolder) or .npz file for on-disk datasets")
    p.add_argument("--model", choices=sorted(MODELS), help="default cnn")
    p.add_argument("--forget-mode", choices=FORGET_MODES, help="random samples (default) or whole classes")
    p.add_argument("--forget-ratio", type=float, help="share of the training members to forget (default 0.1)")
    p.add_argument("--forget-classes", nargs="+", help="class ids to forget with --forget-mode class, e.g. 0 3")
    p.add_argument("--retain-access", type=float, help="share of the retain set methods may read (default 0.1)")
    p.add_argument("--methods", nargs="+", help="methods to run (default: every registered one)")
    p.add_argument("--seeds", nargs="+", help="seeds (default 0 1 2; --quick: 0)")
    p.add_argument("--device", help="torch device (default cpu)")
    p.add_argument("--threads", type=int, help="CPU threads for torch (default 1: reproducible, fast on busy CPUs)")
    p.add_argument("--out", help="output folder (default ltu_fast_runs/latest); reruns resume from it")
    p.add_argument("--cache-dir", help="where trained original/Retrain models are cached "
                                       "(default $LTU_FAST_CACHE or ~/.cache/ltu_fast)")
    p.add_argument("--recipe", nargs="+", default=[], metavar="KEY=VALUE",
                   help="training recipe overrides: epochs, batch_size, lr, momentum, weight_decay, schedule")
    p.add_argument("--set", nargs="+", default=[], metavar="METHOD.KEY=VALUE", dest="method_args",
                   help="method hyper-parameters, e.g. ltu.iterations=50 ga.lr=1e-4")
    p.add_argument("--fresh", action="store_true", help="ignore results already in --out")
    p.add_argument("--quick", action="store_true", help="tiny smoke configuration (digits, 1 seed, 5 epochs)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def _config(args: argparse.Namespace):
    from .unlearn.runner import ExperimentConfig

    base = ExperimentConfig.quick() if args.quick else ExperimentConfig()
    simple = {k: getattr(args, k) for k in ("dataset", "data_root", "model", "forget_mode", "forget_ratio",
                                            "retain_access", "device", "threads", "out", "cache_dir")}
    changes: dict[str, Any] = {k: v for k, v in simple.items() if v is not None}
    try:
        if args.forget_classes is not None:
            changes["forget_classes"] = tuple(int(c) for c in _csv_list(args.forget_classes))
        if args.seeds is not None:
            changes["seeds"] = tuple(int(s) for s in _csv_list(args.seeds))
    except ValueError as err:
        raise SystemExit(f"--forget-classes / --seeds: expected integers ({err})") from None
    if args.methods is not None:
        changes["methods"] = tuple(_csv_list(args.methods))
    if args.recipe:
        changes["recipe"] = replace(base.recipe, **_key_values(args.recipe, "--recipe"))
    method_kwargs: dict[str, dict[str, Any]] = {}
    for dotted, value in _key_values(args.method_args, "--set").items():
        method, sep, key = dotted.partition(".")
        if not sep:
            raise SystemExit(f"--set: expected METHOD.KEY=VALUE, got {dotted!r}")
        method_kwargs.setdefault(method, {})[key] = value
    return replace(base, **changes, method_kwargs=method_kwargs, fresh=args.fresh, progress=not args.no_progress)


def unlearn_main(argv: Sequence[str]) -> int:
    from .unlearn.report import markdown_table
    from .unlearn.runner import run_comparison

    args = build_parser().parse_args(argv)
    try:
        config = _config(args)
        start = time.perf_counter()
        results = run_comparison(config)
    except (ValueError, FileNotFoundError, TypeError) as err:
        print(f"ltu-fast unlearn: error: {err}", file=sys.stderr)
        return 2
    print(markdown_table(results))
    print(f"wrote {config.out}/results.json, results.md, results.png in {time.perf_counter() - start:.1f} s")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``ltu-fast [unlearn|bench] ...``; no subcommand means ``unlearn``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:2] == ["bench", "adamw"]:  # harmonize + AdamW: fused vs wrapper vs torch (bench_adamw.py)
        from .bench_adamw import main as adamw_main
        return adamw_main(argv[2:])
    if argv and argv[0] == "bench":
        try:  # written separately; imported only when asked for
            from .bench import main as bench_main
        except ModuleNotFoundError as err:
            if err.name != "ltu_fast.bench":
                raise
            print("ltu-fast bench: not available in this build (ltu_fast/bench.py is missing)", file=sys.stderr)
            return 2
        return bench_main(argv[1:])
    if argv and argv[0] == "unlearn":
        argv = argv[1:]
    return unlearn_main(argv)


if __name__ == "__main__":
    sys.exit(main())
