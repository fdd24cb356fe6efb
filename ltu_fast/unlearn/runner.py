"""Experiment orchestration and the Python API.

``run_comparison(config)``: per seed, data → original (cached, checked) → Retrain (cached, checked;
RTE = its training time) → every requested method, with its tuned defaults (``defaults.json``), on a
deep copy of the original → metrics and flags (at chance, no-op), then mean ± std over seeds and the
paired difference of each method's Avg. Gap to the best other method.
``results.json`` is rewritten after each (method, seed), so an interrupted run loses nothing and a
rerun with the same ``out`` skips the finished entries (a method that raised is retried).

For a user's own model and splits: ``unlearn(model, task, method=...)`` and ``evaluate_unlearning``.
"""

from __future__ import annotations

import copy
import importlib
import json
import time
import warnings
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from .api import METHODS, ArraySplit, UnlearnResult, UnlearnTask
from .data import SplitConfig, Splits
from .defaults import load_defaults, lookup, setting_of
from .metrics import avg_gap, evaluate_model, mean_std, result_flags
from .references import reference_pair
from .report import write_results
from .stats import versus_best_other
from .train import TrainRecipe

__all__ = [
    "METHOD_ORDER",
    "ExperimentConfig",
    "available_methods",
    "evaluate_unlearning",
    "run_comparison",
    "unlearn",
]

# Where the methods live; imported lazily so the runner works before (or without) each of them.
_METHOD_MODULES = ("ltu_fast.unlearn.baselines", "ltu_fast.unlearn.ltu")
METHOD_ORDER = ("ft", "ga", "neggrad_plus", "rl", "l1_sparse", "salun", "scrub", "ssd", "iau", "ltu")
REFERENCE_ROWS = ("original", "retrain")  # computed by the runner itself (cached training)
# Fields that do not change the numbers: they may differ between a run and its resumption.
# method_kwargs is checked per entry instead: changing one method's settings reruns only that method.
_VOLATILE = ("method_kwargs", "methods", "seeds", "device", "threads", "out", "cache_dir", "progress", "fresh",
             "tuned_defaults", "defaults_file")


def available_methods() -> list[str]:
    """Registered method names (importing the method modules that exist), in reporting order."""
    for module in _METHOD_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name != module:
                raise
    known = [m for m in METHOD_ORDER if m in METHODS]
    return known + sorted(m for m in METHODS if m not in known and m not in REFERENCE_ROWS)


@dataclass
class ExperimentConfig:
    """One comparison. ``methods=None`` runs every registered method. Each method starts from the
    defaults ``ltu-fast tune`` chose for the closest tuned setting (``defaults_file``, default the
    packaged ``defaults.json``; ``tuned_defaults=False``: constructor defaults); ``method_kwargs``
    overrides them per method, e.g. ``{"ltu": {"iterations": 50}}``."""

    dataset: str = "mnist5k"
    data_root: str | None = None
    model: str = "cnn"
    forget_mode: str = "random"
    forget_ratio: float = 0.1
    forget_classes: tuple[int, ...] = ()
    retain_access: float = 0.1
    val_ratio: float = 0.1
    test_ratio: float = 0.2
    recipe: TrainRecipe = field(default_factory=TrainRecipe)
    method_kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)
    methods: tuple[str, ...] | None = None
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    device: str = "cpu"
    threads: int | None = 1  # CPU threads; 1 keeps results bitwise stable and avoids OpenMP thrash on shared CPUs
    out: str = "ltu_fast_runs/latest"
    cache_dir: str | None = None
    progress: bool = True
    fresh: bool = False
    tuned_defaults: bool = True
    defaults_file: str | None = None

    @classmethod
    def quick(cls, **overrides: Any) -> ExperimentConfig:
        """A tiny smoke configuration: 8×8 digits, one seed, five epochs (seconds per model)."""
        base = {"dataset": "digits", "seeds": (0,), "recipe": TrainRecipe(epochs=5, batch_size=64, lr=0.05)}
        return cls(**{**base, **overrides})

    def split_config(self) -> SplitConfig:
        names = {f.name for f in fields(SplitConfig)}
        return SplitConfig(**{k: v for k, v in asdict(self).items() if k in names})

    def resolved_kwargs(self) -> tuple[dict[str, dict[str, Any]], dict[str, Any] | None]:
        """(method -> keyword arguments: tuned defaults overridden by ``method_kwargs``, tuned setting used)."""
        tuned, source = lookup(setting_of(self), self.defaults_file) if self.tuned_defaults else ({}, None)
        names = set(tuned) | set(self.method_kwargs)
        return {m: {**tuned.get(m, {}), **self.method_kwargs.get(m, {})} for m in names}, source

    def identity(self) -> dict[str, Any]:
        """What must match for a rerun to reuse stored results."""
        return json.loads(json.dumps({k: v for k, v in asdict(self).items() if k not in _VOLATILE}, default=str))


def unlearn(model: nn.Module, task: UnlearnTask, method: str = "ltu", **kwargs: Any) -> UnlearnResult:
    """Run a registered method on a deep copy of ``model``; ``info["rte"]`` is its wall time (s)."""
    known = available_methods()
    if method not in METHODS:
        raise ValueError(f"--methods (method): unknown {method!r}; registered: {known}")
    algo = METHODS[method](**kwargs)
    work = copy.deepcopy(model).to(task.device)
    torch.manual_seed(task.seed)
    start = time.perf_counter()
    result = algo.unlearn(work, task)
    result.info["rte"] = time.perf_counter() - start
    result.info.setdefault("config", algo.config())
    return result


def evaluate_unlearning(model: nn.Module, forget: ArraySplit, retain: ArraySplit, test: ArraySplit,
                        reference: dict[str, float] | None = None, device: str | torch.device = "cpu",
                        seed: int = 0) -> dict[str, float]:
    """UA/RA/TA/MIA/MIA_LR of ``model``; plus ``gap`` when Retrain's metrics are given as ``reference``."""
    metrics = evaluate_model(model, forget, retain, test, device, seed)
    if reference is not None:
        metrics["gap"] = avg_gap(metrics, reference)
    return metrics


def _load_previous(path: Path, config: ExperimentConfig) -> dict[str, dict[str, dict]]:
    if config.fresh or not path.exists():
        return {}
    stored = json.loads(path.read_text())
    if stored.get("identity") != config.identity():
        raise ValueError(f"--out (out): {path} holds results of a different experiment; choose another --out "
                         "or pass --fresh to overwrite")
    return {m: {s: r for s, r in runs.items() if "error" not in r} for m, runs in stored.get("runs", {}).items()}


def summarise(runs: dict[str, dict[str, dict]]) -> dict[str, dict[str, Any]]:
    """Per method: mean ± std over seeds of every numeric metric, the seeds behind each flag, and
    (``vs_best``) the paired per-seed difference of Avg. Gap to the best other method."""
    summary: dict[str, dict[str, Any]] = {}
    for method, per_seed in runs.items():
        ok = [r for r in per_seed.values() if "error" not in r]
        keys = sorted({k for r in ok for k, v in r.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
        summary[method] = {}
        for key in keys:
            stat = mean_std(r.get(key) for r in ok)
            if stat is not None:
                summary[method][key] = {"mean": stat[0], "std": stat[1], "n": len(ok)}
        flagged: dict[str, list[int]] = {}
        for seed, entry in per_seed.items():
            for flag in entry.get("flags", []):
                flagged.setdefault(flag, []).append(int(seed))
        if flagged:
            summary[method]["flags"] = {f: sorted(v) for f, v in flagged.items()}
    methods = [m for m in runs if m not in REFERENCE_ROWS]
    gaps = {m: {s: r["gap"] for s, r in runs[m].items() if "error" not in r} for m in methods}
    for method, stat in versus_best_other(gaps, methods).items():
        summary[method]["vs_best"] = stat
    return summary


class _Experiment:
    """State of one ``run_comparison`` call: stored runs and the incremental writer."""

    def __init__(self, config: ExperimentConfig, methods: list[str]) -> None:
        self.config, self.methods = config, methods
        self.kwargs, self.defaults_source = config.resolved_kwargs()
        self.out = Path(config.out)
        self.json_path = self.out / "results.json"
        self.runs = _load_previous(self.json_path, config)
        self.notes: dict[str, Any] = {"defaults": self._defaults_note()}

    def _defaults_note(self) -> dict[str, Any]:
        """Where the method defaults came from, and whether the reported seeds were tuned on."""
        if self.defaults_source is None:
            return {"source": "constructor defaults (no tuned setting for this dataset and model)"}
        entry = next(e for e in load_defaults(self.config.defaults_file)["settings"]
                     if e["setting"] == self.defaults_source)
        tune_seeds = entry["protocol"]["seeds"]
        return {"source": "ltu-fast tune", "setting": self.defaults_source, "tune_seeds": tune_seeds,
                "overlap": sorted(set(tune_seeds) & set(self.config.seeds))}

    def done(self, method: str, seed: int) -> bool:
        """Finished, and (for a method) with the hyper-parameters asked for now."""
        entry = self.runs.get(method, {}).get(str(seed))
        if entry is None or method in REFERENCE_ROWS:
            return entry is not None
        wanted = METHODS[method](**self.kwargs.get(method, {})).config()
        return entry.get("method_config") == json.loads(json.dumps(wanted, default=str))

    def rows(self) -> list[str]:
        """Table rows: references, the methods asked for now, then methods kept from earlier runs."""
        rows = [*REFERENCE_ROWS, *self.methods]
        return rows + [m for m in self.runs if m not in rows]

    def record(self, method: str, seed: int, entry: dict[str, Any]) -> None:
        self.runs.setdefault(method, {})[str(seed)] = entry
        self.save()

    def save(self) -> dict[str, Any]:
        results = {"identity": self.config.identity(), "config": json.loads(json.dumps(asdict(self.config),
                                                                                      default=str)),
                   "methods": self.rows(), "runs": self.runs, "notes": self.notes,
                   "summary": summarise(self.runs)}
        write_results(results, self.out, tables=False)
        return results


def _evaluate(model: nn.Module, splits: Splits, device: str) -> dict[str, float]:
    return evaluate_model(model, splits.forget, splits.retain, splits.test, device, splits.seed, splits.test_forgotten)


def _references(exp: _Experiment, seed: int, bar: tqdm) -> tuple[Splits, Any, dict[str, nn.Module]]:
    """Splits, model factory, and the original and Retrain of one seed, checked (retried once with
    a warning, or the run stops); records their rows."""
    cfg = exp.config
    splits, factory, refs = reference_pair(cfg.split_config(), cfg.model, cfg.recipe, seed, cfg.cache_dir,
                                           cfg.device, cfg.progress)
    models, fresh = {}, {}
    for role, ref in refs.items():
        models[role] = ref.model
        if not exp.done(role, seed):
            fresh[role] = {**_evaluate(ref.model, splits, cfg.device), "RTE": ref.seconds, "cached": ref.cached,
                           "attempts": ref.attempts}
        bar.update(1)
    if "retrain" in fresh:
        exp.record("retrain", seed, {**fresh["retrain"], "gap": 0.0})
    if "original" in fresh:
        exp.record("original", seed, {**fresh["original"],
                                      "gap": avg_gap(fresh["original"], exp.runs["retrain"][str(seed)])})
    return splits, factory, models


def _run_seed(exp: _Experiment, seed: int, bar: tqdm) -> None:
    cfg = exp.config
    if all(exp.done(m, seed) for m in (*REFERENCE_ROWS, *exp.methods)):
        return
    splits, factory, models = _references(exp, seed, bar)
    original = models["original"]
    reference, untouched = exp.runs["retrain"][str(seed)], exp.runs["original"][str(seed)]
    task = splits.task(factory, asdict(cfg.recipe), cfg.device)
    for method in exp.methods:
        bar.set_postfix_str(f"{method} seed {seed}")
        if not exp.done(method, seed):
            try:
                result = unlearn(original, task, method, **exp.kwargs.get(method, {}))
                metrics = _evaluate(result.model, splits, cfg.device)
            except Exception as err:  # noqa: BLE001 -- one broken baseline must not sink a long comparison
                warnings.warn(f"method {method!r} failed on seed {seed}: {err!r}", stacklevel=2)
                exp.record(method, seed, {"error": repr(err)})
                bar.update(1)
                continue
            info = {k: v for k, v in result.info.items() if k not in ("rte", "config")}
            exp.record(method, seed, {**metrics, "gap": avg_gap(metrics, reference), "RTE": result.info["rte"],
                                      "conflict_rate": info.pop("conflict_rate", None),
                                      "flags": result_flags(metrics, untouched, reference, splits.num_classes),
                                      "method_config": result.info["config"], "info": info})
        bar.update(1)


def run_comparison(config: ExperimentConfig | None = None) -> dict[str, Any]:
    """Run (or resume) a comparison; writes results.json/.md/.png under ``config.out``; returns results."""
    config = config or ExperimentConfig()
    config.split_config().validate()
    known = available_methods()
    requested = list(config.methods) if config.methods is not None else known
    methods = [m for m in requested if m not in REFERENCE_ROWS]  # always computed, with cached training
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"--methods (methods): unknown {unknown}; registered: {known}")
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    exp = _Experiment(config, methods)
    total = len(config.seeds) * (len(REFERENCE_ROWS) + len(methods))
    with tqdm(total=total, desc="unlearn", disable=not config.progress) as bar:
        for seed in config.seeds:
            _run_seed(exp, seed, bar)
    results = exp.save()
    write_results(results, exp.out, tables=True)
    return results

