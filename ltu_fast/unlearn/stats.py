"""Paired statistics over seeds: is a method's Avg. Gap really different from the best other's?

Methods share each seed's split, original and Retrain, so the per-seed difference of their gaps
removes most of the seed-to-seed variation; its mean with a 95% Student-t interval says whether a
difference is within noise (the interval contains 0) or not.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from scipy import stats

__all__ = ["paired_interval", "versus_best_other"]


def paired_interval(diffs: Iterable[float], level: float = 0.95) -> dict[str, float]:
    """Mean of ``diffs`` and its two-sided Student-t interval (nan bounds for fewer than two values)."""
    d = np.asarray(list(diffs), dtype=float)
    n = len(d)
    mean = float(d.mean()) if n else math.nan
    if n < 2:
        return {"mean": mean, "lo": math.nan, "hi": math.nan, "n": n}
    half = float(stats.t.ppf(0.5 + level / 2, n - 1) * d.std(ddof=1) / math.sqrt(n))
    return {"mean": mean, "lo": mean - half, "hi": mean + half, "n": n}


def versus_best_other(gaps: Mapping[str, Mapping[str, float]], methods: Sequence[str],
                      key: str = "gap") -> dict[str, dict[str, float | str]]:
    """For each method: the paired difference of its per-seed ``key`` to the other method with the
    lowest mean ``key`` (gaps: method -> seed -> value), over the seeds both have."""
    means = {m: float(np.mean(list(gaps[m].values()))) for m in methods if gaps.get(m)}
    out: dict[str, dict[str, float | str]] = {}
    for m in means:
        others = [o for o in means if o != m]
        if not others:
            continue
        best = min(others, key=lambda o: (means[o], o))
        seeds = sorted(set(gaps[m]) & set(gaps[best]), key=str)
        out[m] = {"other": best, **paired_interval(gaps[m][s] - gaps[best][s] for s in seeds)}
    return out
