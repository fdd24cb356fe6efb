"""Nash-MTL (Navon et al., ICML 2022, "Multi-Task Learning as a Bargaining Game"), as torchjd 0.18."""

from __future__ import annotations

import torch

from ._newton import DEFAULT_NEWTON_ITERATIONS, nearest_psd, power_equation
from .base import SOLVER_KINDS, SolverSpec, check_iterations
from .stateful import StatefulAggregator, StateSpec

__all__ = ["NashMTL"]


class NashMTL(StatefulAggregator):
    """Nash bargaining weights: ``alpha > 0`` with ``alpha * (G alpha) = 1`` (the paper's
    ``G^T G alpha = 1/alpha``), solved exactly by damped Newton (:mod:`._newton`) where torchjd runs up
    to ``optim_niter`` cvxpy/ECOS convex approximations. As torchjd: recomputed every
    ``update_weights_every`` steps (reused in between), and scaled down to ``|J^T alpha| = max_norm``
    when longer (0: no clipping). At the solution ``|J^T alpha|^2 = K``, so the default
    ``max_norm = 1`` always clips. An objective with a zero gradient in a segment gets weight 0 there
    (torchjd's problem is infeasible then). State: the step counter and the last solved weights
    ``[L, K]``, in ``state_dict``; ``reset()`` restarts them.
    """

    name = "nash_mtl"
    scale_invariant = False  # alpha scales as 1 / |g|

    def __init__(self, max_norm: float = 1.0, update_weights_every: int = 1,
                 iterations: int = DEFAULT_NEWTON_ITERATIONS):
        super().__init__()
        if not max_norm >= 0:
            raise ValueError(f"max_norm must be >= 0 (0: no clipping), got {max_norm}")
        check_iterations(update_weights_every, "update_weights_every")
        check_iterations(iterations)
        self.max_norm, self.update_weights_every, self.iterations = float(max_norm), update_weights_every, iterations

    def state_spec(self, num_segments: int, num_objectives: int) -> StateSpec:
        return {"weights": ((num_segments, num_objectives), torch.float64, 1.0), "step": ((1,), torch.int64, 0)}

    def solver_spec(self, num_objectives: int) -> SolverSpec:
        # ints: (update_weights_every, Newton iterations); floats: (max_norm,) (csrc/include/ltu_fast/aggregators/nash_mtl.h)
        return SolverSpec(SOLVER_KINDS["nash_mtl"], ints=(self.update_weights_every, self.iterations),
                          floats=(self.max_norm,))

    def solver_tensors(self, gram: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The step counter and the last solved weights ``[L, K]`` (the state a compiled solve advances)."""
        state = self.state(gram)
        return state["step"], state["weights"]

    def coefficients(self, gram: torch.Tensor) -> torch.Tensor:
        state = self.state(gram)
        last, counter = state["weights"], state["step"]
        g = nearest_psd(gram.to(torch.float64))
        alpha = power_equation(g, 1.0, self.iterations)
        if self.update_weights_every > 1:
            alpha = torch.where(counter % self.update_weights_every == 0, alpha, last)
        last.copy_(alpha)
        counter += 1
        if self.max_norm > 0:
            norm = (alpha * (g @ alpha[..., None])[..., 0]).sum(-1, keepdim=True).clamp_min(0).sqrt()
            alpha = torch.where(norm > self.max_norm, alpha * (self.max_norm / torch.where(norm > 0, norm, 1.0)), alpha)
        return alpha.to(gram.dtype)

    def __repr__(self) -> str:
        return (f"NashMTL(max_norm={self.max_norm}, update_weights_every={self.update_weights_every}, "
                f"iterations={self.iterations})")
