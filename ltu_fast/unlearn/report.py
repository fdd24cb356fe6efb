"""Outputs of a comparison: ``results.json`` (all runs + summary), ``results.md`` and ``results.png``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = ["COLUMNS", "markdown_table", "plot_gaps", "write_results"]

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


def markdown_table(results: dict[str, Any]) -> str:
    """Methods × metrics, mean ± std over seeds; a method with no successful run reads 'failed'."""
    columns = COLUMNS
    if any(CLASSWISE_COLUMN[0] in stats for stats in results["summary"].values()):
        columns = (*COLUMNS[:3], CLASSWISE_COLUMN, *COLUMNS[3:])
    head = "| Method | " + " | ".join(title for _, title, _ in columns) + " |"
    lines = [head, "|" + "---|" * (len(columns) + 1)]
    for method in results["methods"]:
        stats = results["summary"].get(method, {})
        if not stats:
            state = "failed" if results["runs"].get(method) else "pending"
            lines.append(f"| {method} | " + " | ".join(state for _ in columns) + " |")
            continue
        lines.append(f"| {method} | " + " | ".join(_cell(stats.get(k), s) for k, _, s in columns) + " |")
    seeds = results["config"].get("seeds")
    return "\n".join(lines) + f"\n\nMean ± std over seeds {seeds}. Avg. Gap = mean |Δ| to Retrain over UA/RA/TA/MIA.\n"


def plot_gaps(results: dict[str, Any], path: Path) -> None:
    """Grouped bars: per method, |mean − Retrain mean| of UA/RA/TA/MIA and the Avg. Gap (lower is better)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ref = results["summary"].get("retrain", {})
    methods = [m for m in results["methods"] if m != "retrain" and results["summary"].get(m)]
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(methods) + 2), 4))
    width = 0.8 / len(GAP_BARS)
    for j, key in enumerate(GAP_BARS):
        values = []
        for m in methods:
            stat = results["summary"][m].get(key)
            if key == "gap":
                values.append(stat["mean"] if stat else 0.0)
            else:
                values.append(abs(stat["mean"] - ref[key]["mean"]) if stat and key in ref else 0.0)
        ax.bar([i + (j - (len(GAP_BARS) - 1) / 2) * width for i in range(len(methods))], values, width,
               label="Avg. Gap" if key == "gap" else f"|Δ{key}|")
    ax.set_xticks(range(len(methods)), methods, rotation=30, ha="right")
    ax.set_ylabel("gap to Retrain (percentage points)")
    ax.set_title(f"Unlearning on {results['config'].get('dataset')} / {results['config'].get('model')}: gap to Retrain")
    ax.legend(fontsize=8, ncol=len(GAP_BARS))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_results(results: dict[str, Any], out: str | Path, tables: bool = True) -> None:
    """Write results.json atomically; with ``tables`` also results.md and results.png."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _atomic_write(out / "results.json", json.dumps(results, indent=1, default=str))
    if tables:
        _atomic_write(out / "results.md", markdown_table(results))
        plot_gaps(results, out / "results.png")
