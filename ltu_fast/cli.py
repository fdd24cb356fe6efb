"""Command line: ``ltu-fast unlearn [options]`` (the default; with ``--original CKPT`` it unlearns your
own model), ``ltu-fast tune ...``, ``ltu-fast bench ...``."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

__all__ = ["build_parser", "build_tune_parser", "main"]

# What ``pip install ltu_fast[unlearn]`` adds; the unlearning commands need all of them.
UNLEARN_EXTRA = ("sklearn", "scipy", "mlxtend", "matplotlib", "tqdm")


def _missing_extra() -> str | None:
    """The first module of the ``unlearn`` extra that cannot be imported, or None."""
    for module in UNLEARN_EXTRA:
        try:
            importlib.import_module(module)
        except ImportError:
            return module
    return None


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
    """Accept both ``--seeds 0 1`` and ``--seeds 0,1``."""
    return None if values is None else [v for item in values for v in item.split(",") if v]


def _setting_args(p: argparse.ArgumentParser, methods: list[str], seeds_help: str) -> None:
    """Options shared by ``unlearn`` and ``tune``: the setting, the methods, seeds, recipe, machine."""
    from .unlearn.data import FORGET_MODES
    from .unlearn.models import MODELS

    p.add_argument("--data-root", help="folder (cifar10/100, imagefolder) or .npz file for on-disk datasets")
    p.add_argument("--model", choices=sorted(MODELS), help="default cnn")
    p.add_argument("--forget-mode", choices=FORGET_MODES, help="random samples (default) or whole classes")
    p.add_argument("--forget-ratio", type=float, help="share of the training members to forget (default 0.1)")
    p.add_argument("--forget-classes", nargs="+", help="class ids to forget with --forget-mode class, e.g. 0 3")
    p.add_argument("--retain-access", type=float, help="share of the retain set methods may read (default 0.1)")
    p.add_argument("--methods", nargs="+", choices=methods,
                   help="methods to run (default: every one listed but retrain, which alone runs only the references)")
    p.add_argument("--seeds", nargs="+", help=seeds_help)
    p.add_argument("--device", help="torch device (default cpu)")
    p.add_argument("--threads", type=int, help="CPU threads for torch (default 1: reproducible, fast on busy CPUs)")
    p.add_argument("--cache-dir", help="where trained original/Retrain models are cached "
                                       "(default $LTU_FAST_CACHE or ~/.cache/ltu_fast)")
    p.add_argument("--recipe", nargs="+", default=[], metavar="KEY=VALUE",
                   help="training recipe overrides: epochs, batch_size, lr, momentum, weight_decay, schedule, "
                        "warmup_epochs, clip_norm, grad_restrict (IAU's gradient restriction, applied to the "
                        "original and Retrain; 0 = off)")
    p.add_argument("--defaults", dest="defaults_file", metavar="FILE",
                   help="tuned-defaults file (default: the packaged ltu_fast/unlearn/defaults.json)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def _own_args(p: argparse.ArgumentParser) -> None:
    """Options of ``ltu-fast unlearn --original CKPT``: your trained model instead of the comparison's."""
    own = p.add_argument_group("your own model (docs/own_model.md)")
    own.add_argument("--original", metavar="CKPT",
                     help="unlearn this trained model: a state_dict of --model built for the dataset's input shape "
                          "and classes (alone, or under 'state_dict' / 'model' in a checkpoint dict); its training "
                          "split is the dataset's (see docs/own_model.md)")
    own.add_argument("--pickled-model", action="store_true",
                     help="CKPT is a whole pickled nn.Module, loaded with torch.load(weights_only=False), which can "
                          "run code from the file: only for files you trust")
    own.add_argument("--forget-index", metavar="FILE",
                     help="indices into the training split to forget: a .npy integer array or a text file of "
                          "integers (or whole classes with --forget-classes)")
    own.add_argument("--heldout-index", metavar="FILE",
                     help="training samples the original never trained on (non-members methods may read); "
                          "default: a seeded, stratified half of the test split")
    own.add_argument("--mean", nargs="+", type=float,
                     help="per-channel input mean your model was trained with (default: CIFAR's standard "
                          "constants, else the training split's statistics)")
    own.add_argument("--std", nargs="+", type=float, help="per-channel input std, with --mean")
    own.add_argument("--workers", type=int, help="DataLoader workers (default 4 on CUDA, 0 on CPU)")


def build_parser() -> argparse.ArgumentParser:
    from .unlearn.data import DATASETS
    from .unlearn.presets import PRESETS
    from .unlearn.runner import available_methods

    p = argparse.ArgumentParser(prog="ltu-fast unlearn",
                                description="Compare unlearning methods (original, Retrain, LTU, baselines).",
                                epilog="Also: `ltu-fast tune ...` chooses the methods' defaults; "
                                       "`ltu-fast bench ...` runs the harmonization benchmarks.")
    p.add_argument("--dataset", choices=sorted(DATASETS), help="default mnist5k (embedded; --quick: digits)")
    _setting_args(p, ["retrain", *available_methods()], "seeds (default 0 1 2 3 4; --quick: 0)")
    p.add_argument("--out", help="output folder (default ltu_fast_runs/latest); reruns resume from it")
    p.add_argument("--set", nargs="+", default=[], metavar="METHOD.KEY=VALUE", dest="method_args",
                   help="method hyper-parameters over the tuned defaults, e.g. ltu.iterations=50 ga.lr=1e-4")
    p.add_argument("--untuned", action="store_true", help="use the methods' constructor defaults, not the tuned ones")
    p.add_argument("--fresh", action="store_true", help="ignore results already in --out")
    p.add_argument("--quick", action="store_true", help="tiny smoke configuration (digits, 1 seed, 5 epochs)")
    p.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                   help="processes that train the original and Retrain models ahead of the comparison (default 2, "
                        "1 on a one-core machine); every number is the same for any value")
    p.add_argument("--preset", choices=sorted(PRESETS),
                   help="a published training recipe and its model (salun: the SalUn / l1-sparse CIFAR ResNet-18 "
                        "recipe, 182 epochs, augmentation; docs/own_model.md); --recipe and --model override it")
    _own_args(p)
    return p


def build_tune_parser() -> argparse.ArgumentParser:
    from .unlearn.data import DATASETS
    from .unlearn.runner import available_methods
    from .unlearn.tune import DEFAULT_BUDGET, TUNE_SEEDS, tune_seeds

    p = argparse.ArgumentParser(prog="ltu-fast tune",
                                description="Choose every method's defaults with the same budget, on tuning seeds, "
                                            "without reading the test split; writes the defaults file.")
    p.add_argument("--dataset", nargs="+", choices=sorted(DATASETS), default=["mnist5k"],
                   help="one setting per dataset (default mnist5k)")
    _setting_args(p, available_methods(), f"tuning seeds (default {' '.join(map(str, TUNE_SEEDS))}, on digits "
                                          f"{' '.join(map(str, tune_seeds('digits')))}; must not include a reported seed)")
    p.add_argument("--show", action="store_true", help="print the tables of the stored tuning and exit")
    p.add_argument("--budget", type=int, default=DEFAULT_BUDGET,
                   help=f"configurations per method (default {DEFAULT_BUDGET})")
    return p


def _changes(args: argparse.Namespace, base) -> dict[str, Any]:
    """ExperimentConfig fields set on the command line (shared by unlearn and tune)."""
    simple = {k: getattr(args, k, None) for k in ("data_root", "model", "forget_mode", "forget_ratio",
                                                  "retain_access", "device", "threads", "out", "cache_dir",
                                                  "defaults_file")}
    changes: dict[str, Any] = {k: v for k, v in simple.items() if v is not None}
    try:
        if args.forget_classes is not None:
            changes["forget_classes"] = tuple(int(c) for c in _csv_list(args.forget_classes))
        if args.seeds is not None:
            changes["seeds"] = tuple(int(s) for s in _csv_list(args.seeds))
    except ValueError as err:
        raise SystemExit(f"--forget-classes / --seeds: expected integers ({err})") from None
    if args.methods is not None:
        changes["methods"] = tuple(args.methods)
    if args.recipe:
        changes["recipe"] = replace(base.recipe, **_key_values(args.recipe, "--recipe"))
    return {**changes, "progress": not args.no_progress}


def _config(args: argparse.Namespace):
    from .unlearn.runner import ExperimentConfig

    base = ExperimentConfig.quick() if args.quick else ExperimentConfig()
    if args.preset is not None:
        from .unlearn.presets import PRESETS

        base = replace(base, recipe=PRESETS[args.preset].recipe, model=PRESETS[args.preset].model)
    changes = _changes(args, base)
    if args.dataset is not None:
        changes["dataset"] = args.dataset
    method_kwargs: dict[str, dict[str, Any]] = {}
    for dotted, value in _key_values(args.method_args, "--set").items():
        method, sep, key = dotted.partition(".")
        if not sep:
            raise SystemExit(f"--set: expected METHOD.KEY=VALUE, got {dotted!r}")
        method_kwargs.setdefault(method, {})[key] = value
    return replace(base, **changes, method_kwargs=method_kwargs, fresh=args.fresh, tuned_defaults=not args.untuned)


def _comparisons(args: argparse.Namespace, config) -> list[tuple[str, Any]]:
    """The comparisons to run: the one asked for, or, when no forget setting is given on an embedded
    dataset, both standard ones (the SalUn protocol reports both): random forgetting in ``--out`` and
    class-wise forgetting of the sweep's class in ``--out``/class."""
    asked = (args.forget_mode, args.forget_classes, args.forget_ratio, config.data_root)
    if any(v is not None for v in asked):
        return [("", config)]
    from .unlearn.sweep import MODES

    classwise = replace(config, **MODES["class"], out=str(Path(config.out) / "class"))
    return [(f"**Random forgetting** ({config.forget_ratio:.0%} of the training members)", config),
            (f"**Class-wise forgetting** (class {', '.join(map(str, classwise.forget_classes))})", classwise)]


def _needs_extra(command: str) -> int | None:
    missing = _missing_extra()
    if missing is None:
        return None
    print(f"ltu-fast {command}: needs the 'unlearn' extra (module {missing!r} is missing); install it with\n"
          "    pip install 'ltu_fast[unlearn]'      (from a source checkout: pip install '.[unlearn]')",
          file=sys.stderr)
    return 2


def _own_request(args: argparse.Namespace, config):
    """``ltu-fast unlearn --original CKPT ...``: the configuration (one seed, its own default --out) and
    what only your own model needs."""
    from .unlearn.own import OwnModel

    config = replace(config, out=args.out or "ltu_fast_runs/own", seeds=config.seeds if args.seeds else (0,),
                     forget_mode="class" if config.forget_classes else config.forget_mode)
    own = OwnModel(args.original, args.pickled_model, args.forget_index, args.heldout_index,
                   None if args.mean is None else tuple(args.mean), None if args.std is None else tuple(args.std),
                   args.workers)
    return config, own


def unlearn_main(argv: Sequence[str]) -> int:
    if (code := _needs_extra("unlearn")) is not None:
        return code
    from .unlearn.own import unlearn_own
    from .unlearn.prefetch import prefetch_references
    from .unlearn.references import ReferenceTrainingError
    from .unlearn.report import markdown_table, own_table
    from .unlearn.runner import run_comparison

    args = build_parser().parse_args(argv)
    own_only = [f"--{k.replace('_', '-')}" for k in ("pickled_model", "forget_index", "heldout_index", "mean", "std",
                                                     "workers") if getattr(args, k) not in (None, False)]
    if own_only and args.original is None:
        print(f"ltu-fast unlearn: error: {', '.join(own_only)} need --original (your own model)", file=sys.stderr)
        return 2
    try:
        config = _config(args)
        start, cpu = time.perf_counter(), time.process_time()
        if args.original is None:
            comparisons = _comparisons(args, config)
            prefetch_references([cfg for _, cfg in comparisons], args.jobs)
            runs = [(title, cfg, run_comparison(cfg)) for title, cfg in comparisons]
            table = "\n".join(f"{title}\n\n{markdown_table(results)}" if title else markdown_table(results)
                              for title, _, results in runs)
            wrote = "; ".join(f"{cfg.out}/results.json, results.md, results.png" for _, cfg, _ in runs)
        else:
            config, own = _own_request(args, config)
            results = unlearn_own(config, own)
            table, wrote = own_table(results), f"{config.out}/results.json, results.md and the unlearned models in models/"
    except (ValueError, FileNotFoundError, TypeError, ReferenceTrainingError) as err:
        print(f"ltu-fast unlearn: error: {err}", file=sys.stderr)
        return 2
    print(table)
    print(f"wrote {wrote} in {time.perf_counter() - start:.1f} s ({time.process_time() - cpu:.1f} s CPU)")
    return 0


def tune_main(argv: Sequence[str]) -> int:
    if (code := _needs_extra("tune")) is not None:
        return code
    from .unlearn.references import ReferenceTrainingError
    from .unlearn.runner import ExperimentConfig
    from .unlearn.tune import tune, tune_seeds, tune_table

    args = build_tune_parser().parse_args(argv)
    if args.show:
        from .unlearn.defaults import load_defaults

        print("\n".join(tune_table(e) for e in load_defaults(args.defaults_file)["settings"]))
        return 0
    command = "ltu-fast tune " + shlex.join(argv)
    try:
        base = ExperimentConfig()  # seeds: tune_seeds(dataset) unless --seeds is given
        changes = _changes(args, base)
        for dataset in args.dataset:
            config = replace(base, **{"seeds": tune_seeds(dataset), **changes}, dataset=dataset)
            entry = tune(config, args.budget, command=command, defaults_file=config.defaults_file)
            print(tune_table(entry))
    except (ValueError, FileNotFoundError, TypeError, ReferenceTrainingError) as err:
        print(f"ltu-fast tune: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote the chosen defaults to {config.defaults_file or 'ltu_fast/unlearn/defaults.json'}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``ltu-fast [unlearn|tune|sweep|bench] ...``; no subcommand means ``unlearn``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "bench":  # the benchmarks (ltu_fast/bench/), imported only when asked for
        from .bench import main as bench_main
        return bench_main(argv[1:]) or 0
    if argv and argv[0] == "tune":
        return tune_main(argv[1:])
    if argv and argv[0] == "sweep":  # retain-access sweep and LTU ablations (ltu_fast/unlearn/sweep.py)
        from .unlearn.sweep import main as sweep_main
        return sweep_main(argv[1:])
    if argv and argv[0] == "unlearn":
        argv = argv[1:]
    return unlearn_main(argv)


if __name__ == "__main__":
    sys.exit(main())
