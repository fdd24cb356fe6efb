"""Tuned method defaults: the file ``ltu-fast tune`` writes and the runner reads.

``defaults.json`` (next to this module, shipped in the package) holds one entry per tuned *setting*
(dataset, model, forget mode, forget ratio, retain access): for every method the configuration
chosen, its selection score and a summary of the search (configurations tried, the runner-up's
score, how many were flagged), plus the protocol (command, budget, tuning seeds, criterion) and the
references' validation scores. Every trial, per seed, goes to the *trials file* beside it
(``defaults.trials.json``: the evidence behind each choice, kept in the repository, not in the
wheel; the runner never reads it). A run on a setting that was not tuned takes the closest tuned
setting of the same dataset and model (the methods' step counts are passes over the forget or
accessible-retain set, so they scale with it); with no tuned setting of that dataset and model, the
methods' constructor defaults are used.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

from .filelock import locked, replace_text

__all__ = ["DEFAULTS_PATH", "SETTING_FIELDS", "load_defaults", "load_trials", "lookup", "setting_of", "store_setting",
           "trials_path"]

DEFAULTS_PATH = Path(__file__).with_name("defaults.json")
SETTING_FIELDS = ("dataset", "model", "forget_mode", "forget_ratio", "forget_classes", "retain_access")


def setting_of(config: Any) -> dict[str, Any]:
    """The fields of an experiment or tune configuration that select a defaults entry."""
    out = {name: getattr(config, name) for name in SETTING_FIELDS}
    out["forget_classes"] = list(out["forget_classes"])
    return out


def trials_path(path: str | Path | None = None) -> Path:
    """The trials file that belongs to the defaults file ``path``: ``<stem>.trials.json`` beside it."""
    path = Path(path or DEFAULTS_PATH)
    return path.with_name(f"{path.stem}.trials.json")


def _read(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {"settings": []}


def load_defaults(path: str | Path | None = None) -> dict[str, Any]:
    """The defaults file (an empty one when it does not exist yet)."""
    return _read(Path(path or DEFAULTS_PATH))


def load_trials(path: str | Path | None = None) -> dict[str, Any]:
    """The trials file of the defaults file ``path``: per setting, every method's trials and the
    references' training attempts (an empty one when it does not exist)."""
    return _read(trials_path(path))


def _summary(record: dict[str, Any]) -> dict[str, Any]:
    """What the defaults file keeps of one method's tuning: the choice and a summary of its trials."""
    if "trials" not in record:  # written by hand (or already a summary): kept as it is
        return record
    trials = record["trials"]
    ranked = sorted(t["score"] for t in trials if not t["flags"])
    kept = {k: v for k, v in record.items() if k != "trials"}
    return {**kept, "configs": len(trials), "flagged": sum(bool(t["flags"]) for t in trials),
            "runner_up": ranked[1] if len(ranked) > 1 else None}


def _split(entry: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A tuner's entry as (what the defaults file keeps, what the trials file keeps)."""
    references = entry.get("references", {})
    compact = {**entry, "methods": {m: _summary(r) for m, r in entry["methods"].items()},
               "references": {s: {k: v for k, v in r.items() if k != "attempts"} for s, r in references.items()}}
    evidence = {"setting": entry["setting"], "protocol": entry["protocol"], "references": references,
                "methods": {m: {"trials": r["trials"]} for m, r in entry["methods"].items() if "trials" in r}}
    return compact, evidence


def _merge(data: dict[str, Any], entry: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """``data`` with ``entry`` stored: an entry of the same setting and protocol keeps its other
    methods; one of another protocol is replaced (the methods it drops are returned)."""
    previous = next((e for e in data["settings"] if e["setting"] == entry["setting"]), None)
    dropped: list[str] = []
    if previous is not None and previous["protocol"] == entry["protocol"]:
        entry = {**entry, "methods": {**previous["methods"], **entry["methods"]}}
    elif previous is not None:
        dropped = sorted(set(previous["methods"]) - set(entry["methods"]))
    data["settings"] = [e for e in data["settings"] if e["setting"] != entry["setting"]] + [entry]
    data["settings"].sort(key=lambda e: json.dumps(e["setting"], sort_keys=True))
    return entry, dropped


def lookup(setting: dict[str, Any], path: str | Path | None = None) -> tuple[dict[str, dict[str, Any]], dict | None]:
    """(method -> tuned kwargs, the tuned setting they come from), or ({}, None) when nothing fits."""
    entries = [e for e in load_defaults(path)["settings"]
               if all(e["setting"][k] == setting[k] for k in ("dataset", "model"))]
    if not entries:
        return {}, None
    best = max(entries, key=lambda e: (sum(e["setting"][k] == setting[k] for k in SETTING_FIELDS),
                                       -abs(e["setting"]["retain_access"] - setting["retain_access"])))
    return {m: rec["chosen"] for m, rec in best["methods"].items()}, best["setting"]


def store_setting(entry: dict[str, Any], path: str | Path | None = None) -> dict[str, Any]:
    """Store a tuner's ``entry`` (methods with their ``trials``) under the defaults file's lock and
    return the defaults entry stored: the choices and summaries in the defaults file, the trials and
    the references' attempts in the trials file. A stored entry of the same setting and protocol
    keeps its other methods (re-tuning some keeps the rest); one of another protocol is replaced,
    with a warning naming the methods dropped."""
    compact, evidence = _split(entry)
    with locked(path or DEFAULTS_PATH) as file:
        defaults, trials = load_defaults(file), load_trials(file)
        stored, dropped = _merge(defaults, compact)
        _merge(trials, evidence)
        if dropped:
            warnings.warn(f"the stored tuning of {dropped} used another protocol and is dropped: re-tune them with "
                          "this one", stacklevel=3)
        replace_text(file, json.dumps(defaults, indent=1, sort_keys=True) + "\n")
        replace_text(trials_path(file), json.dumps(trials, indent=1, sort_keys=True) + "\n")
    return stored
