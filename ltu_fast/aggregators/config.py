"""ConFIG (Liu et al., 2024, "Towards Conflict-free Training of Physics Informed Neural Networks", Eq. 2)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ._eigen import COMPILED_EPS, DEFAULT_SWEEPS, pseudo_inverse, symmetric_eigen
from .base import SOLVER_KINDS, Aggregator, SolverSpec, as_preference, check_iterations, check_preference, preference

__all__ = ["ConFIG"]

MIN_LENGTH = 1e-12  # floor of |u| in the normalisation (absolute, as torchjd)


class ConFIG(Aggregator):
    """Conflict-free update: the direction ``u`` with ``U u = p`` (least norm) for the unit gradients
    ``U = D^-1 J`` (a zero gradient's row is 0), normalised, times the sum of the gradients'
    projections on it: ``d = (1^T J u_hat) u_hat``, as torchjd 0.18's ``ConFIG`` (default ``p = 1``).
    From G: ``c = (D^-1 G D^-1)^+ p``, ``u = J^T D^-1 c``, ``|u|^2 = c^T D^-1 G D^-1 c``, so
    ``w = D^-1 c (1^T G D^-1 c) / max(|u|, 1e-12)^2``. The pseudo-inverse drops eigenvalues of the
    cosine matrix below ``K eps`` of the largest (torchjd drops singular values of U below
    ``max(K, P) eps``; from the Gram only, nearly dependent unit gradients may be cut differently)."""

    name = "config"
    gram_eps_cut = True  # see _eigen.COMPILED_EPS
    scale_invariant = False  # the 1e-12 floor of the normalisation is absolute

    def __init__(self, pref_vector: Sequence[float] | torch.Tensor | None = None, sweeps: int = DEFAULT_SWEEPS):
        check_iterations(sweeps, "sweeps")
        self.pref_vector = as_preference(pref_vector)
        self.sweeps = sweeps

    def validate(self, num_objectives: int) -> None:
        check_preference(self.pref_vector, num_objectives)

    def coefficients(self, gram: torch.Tensor) -> torch.Tensor:
        g = gram.to(torch.float64)
        k = g.shape[-1]
        p = preference(self.pref_vector, k, 1.0, g.device)
        norms = g.diagonal(dim1=-2, dim2=-1).clamp_min(0).sqrt()
        inv = torch.where(norms > 0, 1.0 / torch.where(norms > 0, norms, 1.0), 0.0)
        cosine = inv[..., :, None] * g * inv[..., None, :]
        values, vectors = symmetric_eigen(cosine, self.sweeps)
        c = (pseudo_inverse(values, vectors, k * torch.finfo(gram.dtype).eps) @ p[:, None])[..., 0]
        length2 = (c * (cosine @ c[..., None])[..., 0]).sum(-1, keepdim=True)
        denominator = length2.clamp_min(0).sqrt().clamp_min(MIN_LENGTH) ** 2
        coef = inv * c
        along = (g @ coef[..., None])[..., 0].sum(-1, keepdim=True)
        return (coef * along / denominator).to(gram.dtype)

    def solver_spec(self, num_objectives: int) -> SolverSpec:
        # ints: (sweeps,); floats: (eps of the rank cut, MIN_LENGTH); preference: p
        return SolverSpec(SOLVER_KINDS["config"], ints=(self.sweeps,), floats=(COMPILED_EPS, MIN_LENGTH),
                          preference=self.pref_vector or (1.0,) * num_objectives)

    def __repr__(self) -> str:
        return f"ConFIG(pref_vector={self.pref_vector}, sweeps={self.sweeps})"
