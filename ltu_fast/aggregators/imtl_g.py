"""IMTL-G (Liu et al., 2021, "Towards Impartial Multi-task Learning"), torchjd's generalisation."""

from __future__ import annotations

import torch

from ._eigen import COMPILED_EPS, DEFAULT_SWEEPS, pseudo_inverse, symmetric_eigen
from .base import SOLVER_KINDS, Aggregator, SolverSpec, check_iterations

__all__ = ["IMTLG"]

SMALL_SUM = 1e-12  # below this |sum(v)| the weights are 0 (absolute, as torchjd)


class IMTLG(Aggregator):
    """Impartial gradient: ``v = G^+ sqrt(diag G)``, ``w = v / sum(v)`` (0 when ``|sum(v)| < 1e-12``),
    the update having equal projections on every unit gradient. ``G^+`` is torchjd's
    ``torch.linalg.pinv`` rule (eigenvalues below ``K eps max|lambda|`` dropped, eps of the Gram's
    dtype), from batched Jacobi sweeps (:mod:`._eigen`)."""

    name = "imtl_g"
    gram_eps_cut = True  # see _eigen.COMPILED_EPS
    scale_invariant = False  # the 1e-12 threshold is absolute

    def __init__(self, sweeps: int = DEFAULT_SWEEPS):
        check_iterations(sweeps, "sweeps")
        self.sweeps = sweeps

    def coefficients(self, gram: torch.Tensor) -> torch.Tensor:
        g = gram.to(torch.float64)
        k = g.shape[-1]
        values, vectors = symmetric_eigen(g, self.sweeps)
        pinv = pseudo_inverse(values, vectors, k * torch.finfo(gram.dtype).eps)
        v = (pinv @ g.diagonal(dim1=-2, dim2=-1).clamp_min(0).sqrt()[..., None])[..., 0]
        total = v.sum(-1, keepdim=True)
        small = total.abs() < SMALL_SUM
        return torch.where(small, 0.0, v / torch.where(small, 1.0, total)).to(gram.dtype)

    def solver_spec(self, num_objectives: int) -> SolverSpec:
        # ints: (sweeps,); floats: (eps of the rank cut, SMALL_SUM)
        return SolverSpec(SOLVER_KINDS["imtl_g"], ints=(self.sweeps,), floats=(COMPILED_EPS, SMALL_SUM))

    def __repr__(self) -> str:
        return f"IMTLG(sweeps={self.sweeps})"
