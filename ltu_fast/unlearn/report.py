"""Outputs of a comparison: ``results.json`` (all runs + summary), ``results.md`` and ``results.png``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["COLUMNS", "markdown_table", "noise_line", "own_table", "plot_gaps", "write_results", "write_text"]

# (summary key, column title, scale): conflict_rate is a fraction, shown in %.
COLUMNS = (("UA", "UA", 1.0), ("RA", "RA", 1.0), ("TA", "TA", 1.0), ("MIA", "MIA-eff.", 1.0),
           ("gap", "Avg. Gap ↓", 1.0), ("RTE", "RTE (s)", 1.0), ("MIA_LR", "MIA-LR", 1.0),
           ("conflict_rate", "Conflict %", 100.0))
CLASSWISE_COLUMN = ("UA_test", "UA (test, forgotten classes)", 1.0)  # only in class-wise forgetting
GAP_BARS = ("UA", "RA", "TA", "MIA", "gap")


def _cell(stat: dict[str, float] | None, scale: float) -> str:
    if stat is None:
        return "–"
    return f"{stat['mean'] * scale:.2f} ± {stat['std'] * scale:.2f}"


def _versus(stat: dict[str, Any] | None) -> str:
    """``+0.12 [-0.20, +0.44] vs ga``; 'within noise' is an interval that contains 0."""
    if stat is None:
        return "–"
    if stat["n"] < 2:
        return f"{stat['mean']:+.2f} vs {stat['other']} (1 seed)"
    return f"{stat['mean']:+.2f} [{stat['lo']:+.2f}, {stat['hi']:+.2f}] vs {stat['other']}"


def _flags(flags: dict[str, list[int]] | None) -> str:
    if not flags:
        return ""
    return "; ".join(f"⚠ {flag}: seeds {', '.join(map(str, seeds))}" for flag, seeds in flags.items())


def _retries(results: dict[str, Any]) -> list[str]:
    """One line per reference that needed the safer recipe."""
    lines = []
    for role in ("original", "retrain"):
        for seed, entry in results["runs"].get(role, {}).items():
            attempts = entry.get("attempts", [])
            if len(attempts) > 1:
                lines.append(f"{role} seed {seed} ({attempts[0]['reason']}) retrained with the safer recipe "
                             f"(lr {attempts[1]['recipe']['lr']}, warm-up {attempts[1]['recipe']['warmup_epochs']} "
                             f"epochs, clip {attempts[1]['recipe']['clip_norm']}): passed")
    return lines


def _lowest(results: dict[str, Any]) -> str:
    """The weakest checked accuracies of each reference, so a reader sees the margin to the check."""
    parts = []
    for role in ("original", "retrain"):
        checks = [e["attempts"][-1] for e in results["runs"].get(role, {}).values() if e.get("attempts")]
        if checks:
            parts.append(f"{role} {min(c['train_acc'] for c in checks):.1f} / "
                         f"{min(c['heldout_acc'] for c in checks):.1f}")
    return ", ".join(parts) or "–"


def _footer(results: dict[str, Any]) -> str:
    seeds = results["config"].get("seeds")
    lines = [(f"Mean ± std over seeds {seeds}. Avg. Gap = mean |Δ| to Retrain over UA/RA/TA/MIA. "
              "Δ Gap vs best other: per-seed paired difference of Avg. Gap to the best other method, mean "
              "[95% t-interval]; an interval containing 0 is within seed noise."),
             ("Flags (averaged in, not dropped): 'at chance' = TA or RA within 10% of the range above chance; "
              "'damaged' = TA or RA below 3/4 of Retrain's margin above chance; 'no-op' = UA, RA, TA and "
              "MIA-eff. equal to the original's and the forget set's mean true-class probability moved less "
              "than 10% of the way to Retrain's.")]
    retries = _retries(results)
    lines.append("Reference checks: " + ("; ".join(retries) if retries else
                                         "every original and Retrain passed with the default recipe") +
                 f" (lowest train / held-out accuracy over seeds: {_lowest(results)}).")
    note = results.get("notes", {}).get("defaults")
    if note and note.get("source") == "ltu-fast tune":
        s = note["setting"]
        text = (f"Method defaults: chosen by `ltu-fast tune` for {s['dataset']}/{s['model']}/{s['forget_mode']}/"
                f"forget {s['forget_ratio']}/access {s['retain_access']} on tuning seeds {note['tune_seeds']}")
        if note["overlap"]:
            text += f" ⚠ which overlap the reported seeds {note['overlap']}: these numbers are not held out"
        lines.append(text + "; --set overrides.")
    elif note:
        lines.append(f"Method defaults: {note['source']}.")
    return "\n".join(lines) + "\n"


def markdown_table(results: dict[str, Any]) -> str:
    """Methods × metrics, mean ± std over seeds; a method with no successful run reads 'failed'."""
    columns = COLUMNS
    if any(CLASSWISE_COLUMN[0] in stats for stats in results["summary"].values()):
        columns = (*COLUMNS[:3], CLASSWISE_COLUMN, *COLUMNS[3:])
    titles = [title for _, title, _ in columns] + ["Δ Gap vs best other [95% CI]", "Flags"]
    lines = ["| Method | " + " | ".join(titles) + " |", "|" + "---|" * (len(titles) + 1)]
    for method in results["methods"]:
        stats = results["summary"].get(method, {})
        if not any(k in stats for k, _, _ in columns):
            state = "failed" if results["runs"].get(method) else "pending"
            lines.append(f"| {method} | " + " | ".join(state for _ in titles) + " |")
            continue
        cells = [_cell(stats.get(k), s) for k, _, s in columns]
        cells += ["–" if method in ("original", "retrain") else _versus(stats.get("vs_best")), _flags(stats.get("flags"))]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n\n" + noise_line(results) + "\n" + _footer(results)


def noise_line(results: dict[str, Any]) -> str:
    """One sentence under the table: the method with the smallest mean Avg. Gap, which others are
    within seed noise of it and which are significantly behind (their paired 95% interval against it
    contains 0 or not), and which beat the untouched original (their interval against it is
    entirely below 0)."""
    summary = results["summary"]
    methods = [m for m in results["methods"] if m not in ("original", "retrain") and "gap" in summary.get(m, {})]
    if not methods:
        return "No method finished."
    best = min(methods, key=lambda m: (summary[m]["gap"]["mean"], m))
    if summary[best]["gap"]["n"] < 2:
        return f"Smallest Avg. Gap: **{best}** ({summary[best]['gap']['mean']:.2f}); one seed, so no interval says what is noise."
    others = [m for m in methods if m != best]
    tied = [m for m in others if not summary[m].get("vs_best", {}).get("lo", 0.0) > 0]
    behind = [m for m in others if m not in tied]
    below = [m for m in methods if summary[m].get("vs_original", {}).get("hi", 0.0) < 0]
    names = lambda ms: ", ".join(ms) or "none"
    return (f"Smallest Avg. Gap: **{best}** ({summary[best]['gap']['mean']:.2f}). Within seed noise of it (paired 95% "
            f"interval contains 0): {names(tied)}. Significantly behind it: {names(behind)}. Significantly below the "
            f"untouched original's gap (interval entirely below 0): {names(below)}.")


def own_table(results: dict[str, Any]) -> str:
    """Your own model's table: one row per model (original, Retrain when run, each method)."""
    rows = results["rows"]
    columns = [c for c in COLUMNS if c[0] != "conflict_rate"]
    if any(CLASSWISE_COLUMN[0] in row for row in rows.values()):
        columns.insert(3, CLASSWISE_COLUMN)
    titles = [title for _, title, _ in columns] + ["Flags"]
    lines = ["| Method | " + " | ".join(titles) + " |", "|" + "---|" * (len(titles) + 1)]
    for method, row in rows.items():
        if "error" in row:
            lines.append(f"| {method} | failed: {row['error']} |" + " |" * (len(titles) - 1))
            continue
        cells = [f"{row[k] * s:.2f}" if row.get(k) is not None else "–" for k, _, s in columns]
        lines.append(f"| {method} | " + " | ".join(cells + [", ".join(row.get("flags", []))]) + " |")
    sizes = ", ".join(f"{k} {v}" for k, v in results["sizes"].items())
    gap = ("Avg. Gap = mean |Δ| to Retrain over UA/RA/TA/MIA-eff.; flags as in docs/unlearning.md"
           if "retrain" in rows else "No Retrain row (add retrain to --methods): no Avg. Gap; only 'at chance' is flagged")
    tuned = results["defaults"]
    if isinstance(tuned, dict):
        tuned = (f"chosen by `ltu-fast tune` for {tuned['dataset']}/{tuned['model']}/{tuned['forget_mode']}/forget "
                 f"{tuned['forget_ratio']}/access {tuned['retain_access']}; --set overrides")
    return "\n".join(lines) + (f"\n\n{gap}.\nSplits: {sizes} (held out: {results['heldout']}). Inputs normalised "
                               f"with {results['normalization']['source']}. Method defaults: {tuned}.\n")


def plot_gaps(results: dict[str, Any], path: Path) -> None:
    """Grouped bars: per method, the mean over seeds of |Δ| to that seed's Retrain for UA/RA/TA/MIA,
    and the Avg. Gap (lower is better), each with its seed spread (± one std) as an error bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs, ref = results["runs"], results["runs"].get("retrain", {})
    methods = [m for m in results["methods"] if m != "retrain" and results["summary"].get(m)]
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(methods) + 2), 4))
    width = 0.8 / len(GAP_BARS)
    for j, key in enumerate(GAP_BARS):
        means, spreads = [], []
        for m in methods:
            per_seed = [entry[key] if key == "gap" else abs(entry[key] - ref[seed][key])
                        for seed, entry in runs.get(m, {}).items()
                        if entry.get(key) is not None and (key == "gap" or key in ref.get(seed, {}))]
            means.append(float(np.mean(per_seed)) if per_seed else 0.0)
            spreads.append(float(np.std(per_seed, ddof=1)) if len(per_seed) > 1 else 0.0)
        ax.bar([i + (j - (len(GAP_BARS) - 1) / 2) * width for i in range(len(methods))], means, width, yerr=spreads,
               capsize=2, error_kw={"elinewidth": 0.8}, label="Avg. Gap" if key == "gap" else f"|Δ{key}|")
    ax.set_xticks(range(len(methods)), methods, rotation=30, ha="right")
    ax.set_ylabel("gap to Retrain (percentage points)")
    ax.set_title(f"{results['config'].get('dataset')} / {results['config'].get('model')}, "
                 f"{results['config'].get('forget_mode')} forgetting: gap to Retrain, mean ± std over seeds")
    ax.legend(fontsize=8, ncol=len(GAP_BARS))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename: never half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_results(results: dict[str, Any], out: str | Path, tables: bool = True) -> None:
    """Write results.json atomically; with ``tables`` also results.md and results.png."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "results.json", json.dumps(results, indent=1, default=str))
    if tables:
        write_text(out / "results.md", markdown_table(results))
        plot_gaps(results, out / "results.png")
