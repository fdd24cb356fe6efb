"""The aggregator contract: a batch of per-segment Gram matrices ``[L, K, K]`` -> coefficients ``[L, K]``.

Every method here only needs inner products between the K objective gradients of a segment, so
it runs on the tiny Gram tensor (on the gradients' device, no host synchronisation), and the
heavy pass over memory is one weighted sum done by a backend. In torchjd's terms an aggregator
here is a *weighting* (Gramian -> weights); the combination ``sum_k beta_k g_k`` is the fused pass.
Objective weights ``w`` are applied as if the losses had been scaled: the aggregator sees
``diag(w) G diag(w)`` and its coefficients are multiplied by ``w`` again.
Per-segment state (GradVac's targets, Nash-MTL's last weights) lives in device tensors the
aggregator creates for the L segments and updates in place (:mod:`.stateful`).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import NamedTuple

import torch

__all__ = ["MAX_SOLVE_K", "SOLVER_KINDS", "SPEC_FLOATS", "SPEC_INTS", "SPEC_PREFERENCE", "Aggregator",
           "SolverSpec", "as_preference", "as_weights", "check_iterations", "check_preference", "preference", "safe_ratio", "trace_normalized"]

# Kinds of the compiled solves, one per aggregator function (csrc/include/ltu_fast/aggregators.h,
# kernels/aggregators/<name>.py; tests/test_codes.py holds every language to this table).
SOLVER_KINDS: dict[str, int] = {
    "sum": 0, "pcgrad": 1, "project": 2, "mgda_frank_wolfe": 3, "mgda": 4, "upgrad": 5, "dualproj": 6, "cagrad": 7,
    "imtl_g": 8, "aligned_mtl": 9, "config": 10, "gradvac": 11, "nash_mtl": 12, "fairgrad": 13,
}
MAX_SOLVE_K = 8  # the compiled solvers handle K <= 8; beyond, every backend runs the torch aggregators
SPEC_INTS, SPEC_FLOATS, SPEC_PREFERENCE = 4, 12, 4  # slots; floats[SPEC_PREFERENCE:][:K] hold a preference


class SolverSpec(NamedTuple):
    """What a compiled solve needs to reproduce an aggregator: its kind and plain numbers, no tensors.

    ``ints`` (at most ``SPEC_INTS``, int64) and ``floats`` (at most ``SPEC_PREFERENCE``, float64) are
    the aggregator's parameters in the order its compiled function reads them (each aggregator's
    file says which slot is what); ``preference`` (K values) follows in the float slots.
    """

    kind: int
    ints: tuple[int, ...] = ()
    floats: tuple[float, ...] = ()
    preference: tuple[float, ...] = ()

    def slots(self) -> tuple[list[int], list[float]]:
        """The int and float slots as the compiled solves take them (floats padded before the preference)."""
        if len(self.ints) > SPEC_INTS or len(self.floats) > SPEC_PREFERENCE \
                or len(self.preference) > SPEC_FLOATS - SPEC_PREFERENCE:
            raise ValueError(f"SolverSpec: too many slots ({len(self.ints)} ints, {len(self.floats)} floats, "
                             f"{len(self.preference)} preference values)")
        floats = [float(f) for f in self.floats] + [0.0] * (SPEC_PREFERENCE - len(self.floats))
        return [int(i) for i in self.ints], floats + [float(p) for p in self.preference]


def safe_ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """num / den where den > 0, else 0: a zero gradient (a layer a loss does not touch) projects nothing."""
    positive = den > 0
    return torch.where(positive, num / torch.where(positive, den, torch.ones_like(den)), torch.zeros_like(num))


class Aggregator:
    """Base class: subclasses implement :meth:`coefficients` on an unweighted Gram batch."""

    name = "aggregator"
    # True: coefficients(s^2 G) == coefficients(G), so a loss scale may stay in the Gram it sees.
    # False (absolute thresholds, or weights that scale with the gradients): it sees G / s^2.
    scale_invariant = True

    def __call__(self, gram: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        if gram.dim() != 3 or gram.shape[1] != gram.shape[2]:
            raise ValueError(f"gram: expected shape [L, K, K], got {tuple(gram.shape)}")
        if weights is None:
            return self.coefficients(gram)
        w = weights.to(gram)
        return w * self.coefficients(gram * w[:, None] * w[None, :])

    def coefficients(self, gram: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def solver_spec(self, num_objectives: int) -> SolverSpec | None:
        """The compiled solves' description of this aggregator for K objectives; None (a custom
        subclass, or a configuration no compiled function implements): the torch reference runs."""
        return None

    def solver_tensors(self, gram: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """``(counter, state)`` a compiled solve reads and advances for this Gram batch: the int64 [1]
        step counter (advanced by one per solve) and the float64 ``[L, S]`` per-segment state (updated
        in place), each None when the aggregator has none."""
        return self.step_counter(gram.device), None

    def step_counter(self, device: torch.device) -> torch.Tensor | None:
        """int64 [1] device counter a compiled solver reads and advances, or None (stateless)."""
        return None

    def device_state(self, num_segments: int, num_objectives: int, device: torch.device) -> tuple[torch.Tensor, ...]:
        """The device tensors a step updates in place, created here for ``num_segments`` segments
        (an optimizer marks them as static addresses for CUDA graphs)."""
        counter = self.step_counter(device)
        return () if counter is None else (counter,)

    def reset(self) -> None:
        """Forget any state (as torchjd's ``reset``); stateless aggregators have none."""

    def validate(self, num_objectives: int) -> None:
        """Raise ValueError if this aggregator cannot serve ``num_objectives`` objectives."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def trace_normalized(gram: torch.Tensor, eps: float) -> torch.Tensor:
    """``G / trace(G)``, or 0 where the trace is below ``eps`` or not positive (torchjd's normalisation)."""
    trace = gram.diagonal(dim1=-2, dim2=-1).sum(-1)[..., None, None]
    small = (trace < eps) | (trace <= 0)
    return torch.where(small, 0.0, gram / torch.where(small, 1.0, trace))


def as_preference(pref_vector: Sequence[float] | torch.Tensor | None) -> tuple[float, ...] | None:
    """A preference vector as plain floats (kept on the host, uploaded once per device)."""
    if pref_vector is None:
        return None
    values = torch.as_tensor(pref_vector, dtype=torch.float64)
    if values.dim() != 1 or values.numel() == 0 or not torch.isfinite(values).all():
        raise ValueError(f"pref_vector: expected a non-empty vector of finite numbers, got {pref_vector!r}")
    return tuple(values.tolist())


def check_preference(pref: tuple[float, ...] | None, num_objectives: int) -> None:
    if pref is not None and len(pref) != num_objectives:
        raise ValueError(f"pref_vector: expected {num_objectives} values (one per objective), got {len(pref)}")


@lru_cache(maxsize=256)
def preference(pref: tuple[float, ...] | None, k: int, fill: float, device: torch.device) -> torch.Tensor:
    """The float64 ``[K]`` preference on ``device`` (``fill`` everywhere when None), made once."""
    if pref is None:
        return torch.full((k,), fill, dtype=torch.float64, device=device)
    return torch.tensor(pref, dtype=torch.float64, device=device)


def check_iterations(iterations: int | None, name: str = "iterations") -> None:
    """A solver's trip count: a positive int, or None for the aggregator's default for K."""
    if iterations is not None and (isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1):
        raise ValueError(f"{name} must be a positive int or None (the default for K), got {iterations!r}")


def as_weights(weights: Sequence[float] | torch.Tensor | None, num_objectives: int) -> torch.Tensor | None:
    """Validate objective weights: K finite non-negative numbers, or None for all ones."""
    if weights is None:
        return None
    w = torch.as_tensor(weights, dtype=torch.float32).flatten()
    if w.numel() != num_objectives:
        raise ValueError(f"weights: expected {num_objectives} values (one per objective), got {w.numel()}")
    if not torch.isfinite(w).all() or (w < 0).any():
        raise ValueError(f"weights: must be finite and non-negative, got {w.tolist()}")
    return w
