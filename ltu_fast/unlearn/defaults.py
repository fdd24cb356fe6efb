"""Tuned method defaults: the file ``ltu-fast tune`` writes and the runner reads.

``defaults.json`` (next to this module) holds one entry per tuned *setting* (dataset, model, forget
mode, forget ratio, retain access): for every method the configuration chosen, its selection score
and every configuration tried, plus the protocol (command, budget, tuning seeds, criterion). A run
on a setting that was not tuned takes the closest tuned setting of the same dataset and model (the
methods' step counts are passes over the forget or accessible-retain set, so they scale with it);
with no tuned setting of that dataset and model, the methods' constructor defaults are used.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

from .filelock import locked, replace_text

__all__ = ["DEFAULTS_PATH", "SETTING_FIELDS", "load_defaults", "lookup", "setting_of", "store_setting"]

DEFAULTS_PATH = Path(__file__).with_name("defaults.json")
SETTING_FIELDS = ("dataset", "model", "forget_mode", "forget_ratio", "forget_classes", "retain_access")


def setting_of(config: Any) -> dict[str, Any]:
    """The fields of an experiment or tune configuration that select a defaults entry."""
    out = {name: getattr(config, name) for name in SETTING_FIELDS}
    out["forget_classes"] = list(out["forget_classes"])
    return out


def load_defaults(path: str | Path | None = None) -> dict[str, Any]:
    """The defaults file (an empty one when it does not exist yet)."""
    path = Path(path or DEFAULTS_PATH)
    if not path.exists():
        return {"settings": []}
    return json.loads(path.read_text())


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
    """Add ``entry`` under the lock and return what was stored. A stored entry of the same setting and
    protocol keeps its other methods (re-tuning some keeps the rest); one of another protocol is
    replaced, with a warning naming the methods dropped."""
    with locked(path or DEFAULTS_PATH) as file:
        data = load_defaults(file)
        previous = next((e for e in data["settings"] if e["setting"] == entry["setting"]), None)
        if previous is not None and previous["protocol"] == entry["protocol"]:
            entry = {**entry, "methods": {**previous["methods"], **entry["methods"]}}
        elif previous is not None and set(previous["methods"]) - set(entry["methods"]):
            warnings.warn(f"the stored tuning of {sorted(set(previous['methods']) - set(entry['methods']))} used "
                          "another protocol and is dropped: re-tune them with this one", stacklevel=3)
        data["settings"] = [e for e in data["settings"] if e["setting"] != entry["setting"]] + [entry]
        data["settings"].sort(key=lambda e: json.dumps(e["setting"], sort_keys=True))
        replace_text(file, json.dumps(data, indent=1, sort_keys=True) + "\n")
    return entry
