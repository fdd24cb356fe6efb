"""Aligned-MTL (Senushkin et al., CVPR 2023, Algorithm 1), as torchjd 0.18's ``AlignedMTL``."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ._eigen import COMPILED_EPS, DEFAULT_SWEEPS, symmetric_eigen
from .base import SOLVER_KINDS, Aggregator, SolverSpec, as_preference, check_iterations, check_preference, preference

__all__ = ["AlignedMTL"]

SCALE_MODES = ("min", "median", "rmse")


class AlignedMTL(Aggregator):
    """Aligns the gradients' principal components: with ``G = V diag(lambda) V^T`` restricted to the
    eigenvalues above ``max(lambda) K eps`` (eps of the Gram's dtype), ``w = sqrt(s) V diag(lambda^-1/2)
    V^T p``, ``s`` the smallest kept eigenvalue (``scale_mode="min"``), their lower median
    (``"median"``, as ``torch.median``) or mean (``"rmse"``); ``w = p`` (default ``1/K``) when none
    is kept. Eigen-decomposition by batched Jacobi sweeps (:mod:`._eigen`)."""

    name = "aligned_mtl"
    gram_eps_cut = True  # see _eigen.COMPILED_EPS

    def __init__(self, pref_vector: Sequence[float] | torch.Tensor | None = None, scale_mode: str = "min",
                 sweeps: int = DEFAULT_SWEEPS):
        if scale_mode not in SCALE_MODES:
            raise ValueError(f"scale_mode must be one of {SCALE_MODES}, got {scale_mode!r}")
        check_iterations(sweeps, "sweeps")
        self.pref_vector = as_preference(pref_vector)
        self.scale_mode, self.sweeps = scale_mode, sweeps

    def validate(self, num_objectives: int) -> None:
        check_preference(self.pref_vector, num_objectives)

    def coefficients(self, gram: torch.Tensor) -> torch.Tensor:
        g = gram.to(torch.float64)
        k = g.shape[-1]
        p = preference(self.pref_vector, k, 1.0 / k, g.device)
        values, vectors = symmetric_eigen(g, self.sweeps)
        keep = values > values.amax(-1, keepdim=True) * k * torch.finfo(gram.dtype).eps
        rank = keep.sum(-1, keepdim=True)
        if self.scale_mode == "min":
            scale = torch.where(keep, values, torch.inf).amin(-1, keepdim=True)
        elif self.scale_mode == "median":
            ascending = torch.where(keep, values, torch.inf).sort(-1).values
            scale = ascending.gather(-1, ((rank - 1).clamp_min(0)) // 2)
        else:
            scale = torch.where(keep, values, 0.0).sum(-1, keepdim=True) / rank.clamp_min(1)
        inv_sqrt = torch.where(keep, torch.where(keep, values, 1.0).rsqrt(), 0.0)
        balance = (vectors * (scale.clamp_min(0).sqrt() * inv_sqrt)[..., None, :]) @ vectors.transpose(-1, -2)
        w = (balance @ p[:, None])[..., 0]
        return torch.where(rank > 0, w, p).to(gram.dtype)

    def solver_spec(self, num_objectives: int) -> SolverSpec:
        # ints: (sweeps, index of scale_mode in SCALE_MODES); floats: (eps of the rank cut,); preference: p
        k = num_objectives
        return SolverSpec(SOLVER_KINDS["aligned_mtl"], ints=(self.sweeps, SCALE_MODES.index(self.scale_mode)),
                          floats=(COMPILED_EPS,), preference=self.pref_vector or (1.0 / k,) * k)

    def __repr__(self) -> str:
        return f"AlignedMTL(pref_vector={self.pref_vector}, scale_mode={self.scale_mode!r}, sweeps={self.sweeps})"
