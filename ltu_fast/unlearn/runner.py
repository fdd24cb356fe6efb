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

import json
import warnings
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from .api import METHOD_ORDER, METHODS, REFERENCE_ROWS, Data, available_methods, resolve_methods
from .assess import TEST, Baseline, assess, unlearn
from .data import SplitConfig
from .defaults import load_defaults, lookup, setting_of
from .metrics import avg_gap, evaluate_model, mean_std
from .report import write_results
from .splits import as_split
from .stats import paired_interval, versus_best_other
from .train import TrainRecipe

__all__ = [
    "METHOD_ORDER",
    "ExperimentConfig",
    "available_methods",
    "evaluate_unlearning",
    "run_comparison",
    "unlearn",
]

# Fields that do not change the numbers: they may differ between a run and its resumption.
# method_kwargs is checked per entry instead: changing one method's settings reruns only that method.
_VOLATILE = ("method_kwargs", "methods", "seeds", "device", "threads", "out", "cache_dir", "progress", "fresh",
             "tuned_defaults", "defaults_file")


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


def evaluate_unlearning(model: nn.Module, forget: Data, retain: Data, test: Data,
                        reference: dict[str, float] | None = None, device: str | torch.device | None = None,
                        seed: int = 0) -> dict[str, float]:
    """UA/RA/TA/MIA/MIA_LR of ``model``; plus ``gap`` when Retrain's metrics are given as ``reference``.
    Each split is a :class:`~ltu_fast.unlearn.splits.Split`, a Dataset or a DataLoader (streamed in
    batches on ``device``; None: the model's)."""
    forget, retain, test = (as_split(d, name) for d, name in ((forget, "forget"), (retain, "retain"), (test, "test")))
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
    """Per method: mean ± std over seeds of every numeric metric, the seeds behind each flag, and the
    paired per-seed difference of its Avg. Gap to the best other method (``vs_best``) and to the
    untouched original's (``vs_original``: entirely below 0 = the method did better than doing nothing)."""
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
    untouched = {s: r["gap"] for s, r in runs.get("original", {}).items()}
    for method in methods:
        seeds = sorted(set(gaps[method]) & set(untouched), key=str)
        if seeds:
            summary[method]["vs_original"] = paired_interval(gaps[method][s] - untouched[s] for s in seeds)
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


def _references(exp: _Experiment, seed: int) -> Baseline:
    """The baseline of one seed (original and Retrain checked: retried once with a warning, or the run
    stops); records their rows."""
    base = Baseline.of(exp.config, seed, TEST)
    for role in ("retrain", "original"):  # Retrain first: the original's row holds its gap to Retrain
        if not exp.done(role, seed):
            ref = base.references[role]
            exp.record(role, seed, {**base.scores[role], "RTE": ref.seconds, "cached": ref.cached,
                                    "attempts": ref.attempts, "gap": avg_gap(base.scores[role], base.scores["retrain"])})
    return base


def _run_seed(exp: _Experiment, seed: int, bar: tqdm) -> None:
    if all(exp.done(m, seed) for m in (*REFERENCE_ROWS, *exp.methods)):
        return
    base = _references(exp, seed)
    bar.update(len(REFERENCE_ROWS))
    for method in exp.methods:
        bar.set_postfix_str(f"{method} seed {seed}")
        if not exp.done(method, seed):
            try:
                entry = assess(base, method, exp.kwargs.get(method, {}), exp.config.device)
            except Exception as err:  # noqa: BLE001 -- one broken baseline must not sink a long comparison
                warnings.warn(f"method {method!r} failed on seed {seed}: {err!r}", stacklevel=2)
                entry = {"error": repr(err)}
            exp.record(method, seed, entry)
        bar.update(1)


def run_comparison(config: ExperimentConfig | None = None) -> dict[str, Any]:
    """Run (or resume) a comparison; writes results.json/.md/.png under ``config.out``; returns results."""
    config = config or ExperimentConfig()
    config.split_config().validate()
    methods = resolve_methods(config.methods)  # the reference rows are always computed, with cached training
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

