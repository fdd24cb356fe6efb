"""The aggregator contract: a batch of per-segment Gram matrices ``[L, K, K]`` -> coefficients ``[L, K]``.

Every method here only needs inner products between the K objective gradients of a segment, so
it runs on the tiny Gram tensor (on the gradients' device, no host synchronisation), and the
heavy pass over memory is one weighted sum done by a backend. In torchjd's terms an aggregator
here is a *weighting* (Gramian -> weights); the combination ``sum_k beta_k g_k`` is the fused pass.
Objective weights ``w`` are applied as if the losses had been scaled: the aggregator sees
``diag(w) G diag(w)`` and its coefficients are multiplied by ``w`` again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch

__all__ = ["MAX_SOLVER_K", "SOLVER_MGDA", "SOLVER_PCGRAD", "SOLVER_PROJECT", "SOLVER_SUM", "Aggregator",
           "SolverSpec", "as_weights", "safe_ratio"]

# Aggregator kinds of the compiled solvers (csrc/include/ltu_fast/solve_math.h, kernels/solve.py).
SOLVER_SUM, SOLVER_PCGRAD, SOLVER_PROJECT, SOLVER_MGDA = range(4)
MAX_SOLVER_K = 8  # the compiled solvers handle K <= 8; beyond, every backend runs the torch aggregators


class SolverSpec(NamedTuple):
    """What a compiled backend needs to reproduce an aggregator: plain integers, no tensors."""

    kind: int
    protect: int = 0
    iterations: int = 0
    random_order: bool = False
    seed: int = 0


def safe_ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """num / den where den > 0, else 0: a zero gradient (a layer a loss does not touch) projects nothing."""
    positive = den > 0
    return torch.where(positive, num / torch.where(positive, den, torch.ones_like(den)), torch.zeros_like(num))


class Aggregator:
    """Base class: subclasses implement :meth:`coefficients` on an unweighted Gram batch."""

    name = "aggregator"

    def __call__(self, gram: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        if gram.dim() != 3 or gram.shape[1] != gram.shape[2]:
            raise ValueError(f"gram: expected shape [L, K, K], got {tuple(gram.shape)}")
        if weights is None:
            return self.coefficients(gram)
        w = weights.to(gram)
        return w * self.coefficients(gram * w[:, None] * w[None, :])

    def coefficients(self, gram: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def solver_spec(self) -> SolverSpec | None:
        """The compiled solvers' description of this aggregator; None (a custom subclass): torch only."""
        return None

    def step_counter(self, device: torch.device) -> torch.Tensor | None:
        """int64 [1] device counter a compiled solver reads and advances, or None (stateless)."""
        return None

    def validate(self, num_objectives: int) -> None:
        """Raise ValueError if this aggregator cannot serve ``num_objectives`` objectives."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


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
