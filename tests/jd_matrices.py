"""Jacobian samplers of the kinds torchjd's aggregation tests use (our own code, float64).

Normal matrices of a given rank; *strongly stationary* ones (some ``v > 0`` has ``v^T J = 0``);
*strictly weakly stationary* (some ``v >= 0, v != 0`` does, no ``v > 0``); *non weakly stationary*
(no ``v >= 0, v != 0`` does); zero matrices; scaled copies of the normal ones. The dimensions
(K objectives x P parameters, rank r) are torchjd's.
"""

from __future__ import annotations

import torch

NORMAL_DIMS = [(1, 1, 1), (4, 3, 1), (4, 3, 2), (4, 3, 3), (9, 11, 5), (9, 11, 9)]
ZERO_DIMS = [(1, 1), (4, 3), (9, 11)]
STATIONARITY_DIMS = [(20, 10, 10), (20, 10, 5), (20, 10, 1), (20, 100, 1), (20, 100, 19)]
SCALES = [0.0, 1e-10, 1e3, 1e5, 1e10, 1e15]


def _orthonormal_complement(q: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """A random [m, m - k] orthonormal basis orthogonal to the columns of ``q [m, k]``."""
    m, k = q.shape
    a = torch.randn(m, m - k, generator=gen, dtype=torch.float64)
    basis, _ = torch.linalg.qr(a - q @ (q.T @ a))
    return basis


def _orthonormal(n: int, gen: torch.Generator) -> torch.Tensor:
    return _orthonormal_complement(torch.zeros(n, 0, dtype=torch.float64), gen)


def _spectrum(rank: int, gen: torch.Generator) -> torch.Tensor:
    return torch.diag(torch.randn(rank, generator=gen, dtype=torch.float64).abs())


def normal(m: int, n: int, rank: int, gen: torch.Generator) -> torch.Tensor:
    left, right = _orthonormal(m, gen), _orthonormal(n, gen)
    return left[:, :rank] @ _spectrum(rank, gen) @ right[:rank]


def strong(m: int, n: int, rank: int, gen: torch.Generator) -> torch.Tensor:
    """Rows orthogonal to a positive v: v^T J = 0."""
    v = torch.randn(m, generator=gen, dtype=torch.float64).abs()
    left = _orthonormal_complement((v / v.norm())[:, None], gen)
    return left[:, :rank] @ _spectrum(rank, gen) @ _orthonormal(n, gen)[:rank]


def strictly_weak(m: int, n: int, rank: int, gen: torch.Generator) -> torch.Tensor:
    """v^T J = 0 for a non-negative v with zeros; a non-negative v' with disjoint support is a
    left singular vector (so no positive vector annihilates J)."""
    u = torch.randn(m, generator=gen, dtype=torch.float64).abs()
    split = int(torch.randint(1, m, (), generator=gen))
    perm = torch.randperm(m, generator=gen)
    v, v_prime = torch.zeros(m, dtype=torch.float64), torch.zeros(m, dtype=torch.float64)
    v[perm[:split]] = u[perm[:split]] / u[perm[:split]].norm()
    v_prime[perm[split:]] = u[perm[split:]] / u[perm[split:]].norm()
    first = torch.stack([v, v_prime]).T
    left = torch.hstack([first, _orthonormal_complement(first, gen)])
    return left[:, 1:rank + 1] @ _spectrum(rank, gen) @ _orthonormal(n, gen)[:rank]


def non_weak(m: int, n: int, rank: int, gen: torch.Generator) -> torch.Tensor:
    """A positive left singular vector: no non-negative v != 0 annihilates J."""
    u = torch.randn(m, generator=gen, dtype=torch.float64).abs()
    first = (u / u.norm())[:, None]
    left = torch.hstack([first, _orthonormal_complement(first, gen)])
    return left[:, :rank] @ _spectrum(rank, gen) @ _orthonormal(n, gen)[:rank]


def torchjd_inputs(seed: int = 0) -> dict[str, list[torch.Tensor]]:
    """Every kind of torchjd's test inputs, regenerated with our samplers."""
    gen = torch.Generator().manual_seed(seed)
    kinds = {"normal": [normal(*d, gen) for d in NORMAL_DIMS],
             "zero": [torch.zeros(m, n, dtype=torch.float64) for m, n in ZERO_DIMS]}
    for name, sampler in (("strong", strong), ("strictly_weak", strictly_weak), ("non_weak", non_weak)):
        kinds[name] = [sampler(*d, gen) for d in STATIONARITY_DIMS]
    kinds["scaled"] = [scale * j for scale in SCALES for j in kinds["normal"]]
    return kinds


def solvable_inputs(seed: int = 0) -> list[torch.Tensor]:
    """Matrices for which ``G w = w^(-p)`` has a positive solution (no ``u >= 0`` with ``G u = 0``):
    full row rank normal ones and torchjd's non weakly stationary ones."""
    gen = torch.Generator().manual_seed(seed)
    full_rank = [normal(k, n, k, gen) for k, n in ((2, 3), (3, 5), (4, 6), (5, 5), (8, 11), (9, 11))]
    return full_rank + [non_weak(*d, gen) for d in STATIONARITY_DIMS]
