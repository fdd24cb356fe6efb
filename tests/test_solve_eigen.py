"""The eigen family (IMTL-G, Aligned-MTL, ConFIG) and GradVac compiled, on the Grams that stress them.

Exactly rank-deficient Grams (duplicated, proportional or zero gradients; fewer dimensions than
objectives), repeated eigenvalues (equicorrelated gradients ``a I + b 11^T``: every Jacobi pair starts
with ``tau = 0``; orthogonal ones: no rotation at all), K = 1..8 (Triton: its MAX_SOLVE_K), over
consecutive steps (GradVac's targets and counter). The reference runs on the same float32 Gram, so
its rank cut ``K eps max|lambda|`` uses float32's eps as the compiled solves do
(``aggregators/_eigen.py`` COMPILED_EPS); test_solve.py holds them to the float64 reference on
generic Grams.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from test_solve import COMPILED, INTERPRETED, REFERENCE

from ltu_fast.aggregators import IMTLG, AlignedMTL, ConFIG, GradVac
from ltu_fast.backends import get_backend
from ltu_fast.functional import solve

MAKE = {
    "imtl_g": lambda k: IMTLG(),
    "aligned_mtl_min": lambda k: AlignedMTL(),
    "aligned_mtl_median": lambda k: AlignedMTL(scale_mode="median"),
    "aligned_mtl_rmse": lambda k: AlignedMTL(pref_vector=[1.0 + j for j in range(k)], scale_mode="rmse"),
    "config": lambda k: ConFIG(),
    "gradvac_random": lambda k: GradVac(beta=0.3, seed=11),
    "gradvac_fixed": lambda k: GradVac(order="fixed"),
}
CASES = ("duplicates", "proportional", "zero", "low_rank", "equicorrelated", "orthogonal")


def _gram(case: str, k: int, segments: int, seed: int) -> torch.Tensor:
    """float32 ``[segments, k, k]`` Grams of ``case``; exact in float32 where the case is about exactness."""
    gen = torch.Generator().manual_seed(seed)
    if case == "equicorrelated":  # a I + b 11^T: a repeated K - 1 times; b = -1/8, a = 1, K = 8: a zero one
        a = torch.randint(1, 4, (segments, 1, 1), generator=gen, dtype=torch.float64)
        b = torch.tensor([-0.125, 0.0, 0.25, 1.0], dtype=torch.float64)[
            torch.randint(0, 4, (segments, 1, 1), generator=gen)]
        return (a * torch.eye(k, dtype=torch.float64) + b).float()
    if case == "orthogonal":  # diagonal, values repeated or 0
        return torch.diag_embed(torch.randint(0, 3, (segments, k), generator=gen).float())
    dims = 1 + seed % k if case == "low_rank" else 3 + k
    j = torch.randn(segments, k, dims, generator=gen, dtype=torch.float64) * 10 ** (seed % 5 - 2)
    if case == "duplicates":
        j[:, -1] = j[:, 0]
    elif case == "proportional":
        j[:, -1] = -2.0 * j[:, 0]
    elif case == "zero":
        j[:, seed % k] = 0.0
    return (j @ j.transpose(1, 2)).float()


@pytest.mark.skipif(not COMPILED, reason="no natively compiled backend with a solver is available")
@pytest.mark.parametrize("backend_name,device", COMPILED)
@pytest.mark.parametrize("name", sorted(MAKE))
@given(case=st.sampled_from(CASES), k=st.integers(1, 8), segments=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_compiled_solve_matches_the_reference_on_degenerate_grams(backend_name, device, name, case, k, segments,
                                                                 seed):
    _check(backend_name, device, name, case, k, segments, seed)


@pytest.mark.skipif(not INTERPRETED, reason="Triton runs compiled on this machine (tested above)")
@pytest.mark.parametrize("backend_name,device", INTERPRETED)
@pytest.mark.parametrize("name", sorted(MAKE))
@settings(max_examples=4)
@given(case=st.sampled_from(CASES), k=st.integers(1, 3), segments=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_interpreted_triton_solve_matches_the_reference_on_degenerate_grams(backend_name, device, name, case, k,
                                                                            segments, seed):
    """The same in Triton's CPU interpreter (about a second per Jacobi solve): fewer examples, K <= 3."""
    _check(backend_name, device, name, case, k, segments, seed)


def _check(backend_name: str, device: str, name: str, case: str, k: int, segments: int, seed: int) -> None:
    backend = get_backend(backend_name)
    k = min(k, getattr(backend, "MAX_SOLVE_K", 8))
    compiled, reference = MAKE[name](k), MAKE[name](k)
    for step in range(3 if name.startswith("gradvac") else 1):
        gram = _gram(case, k, segments, seed + step).to(device)
        beta, flag = solve(gram, compiled, backend)
        w_beta, w_flag = solve(gram, reference, REFERENCE)
        assert flag.item() == w_flag.item()  # GradVac on parallel gradients may overflow float32: both skip
        finite = w_beta[w_beta.isfinite()]
        tolerance = 1e-5 * (finite.abs().amax().item() if finite.numel() else 0.0) + 1e-7
        torch.testing.assert_close(beta.cpu(), w_beta.cpu(), rtol=1e-5, atol=tolerance, equal_nan=True)
        # GradVac's targets are cosines; where a modified gradient cancels (parallel gradients), its
        # length is float64 rounding noise in either order of summation, and so is that pair's cosine
        atol = 1e-4 if name.startswith("gradvac") and case in ("proportional", "low_rank", "duplicates") else 1e-9
        for t, w_t in zip(compiled.solver_tensors(gram), reference.solver_tensors(gram)):
            if t is not None:
                torch.testing.assert_close(t.cpu(), w_t.cpu(), rtol=1e-6, atol=atol)
