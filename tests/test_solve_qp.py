"""The compiled active-set solves (MGDA, UPGrad, DualProj, CAGrad) on torchjd's own test matrices.

tests/test_solve.py covers random Grams; these are the edge cases torchjd tests its aggregators on
(rank-deficient, stationary, zero, scaled by 0 ... 1e15), every one a backend's compiled solve serves
(K <= its MAX_SOLVE_K), against the float64 reference from the same float32 Gram.
"""

from __future__ import annotations

import pytest
import torch
from jd_matrices import torchjd_inputs
from test_solve import NOT_UNIQUE, SOLVERS, _assert_same_direction

from ltu_fast.aggregators import AGGREGATORS
from ltu_fast.backends import get_backend
from ltu_fast.functional import solve

QP_AGGREGATORS = ("mgda", "upgrad", "dualproj", "cagrad")
MATRICES = [j for kind in torchjd_inputs().values() for j in kind if j.shape[0] <= 8]


@pytest.mark.skipif(not SOLVERS, reason="no compiled backend with a solver is available")
@pytest.mark.parametrize("backend_name,device", SOLVERS)
@pytest.mark.parametrize("name", QP_AGGREGATORS)
def test_qp_solves_match_the_reference_on_torchjd_matrices(backend_name, device, name):
    backend = get_backend(backend_name)
    served = [j for j in MATRICES if j.shape[0] <= getattr(backend, "MAX_SOLVE_K", 8)]
    if backend_name == "triton" and device == "cpu":  # the interpreter: seconds per solve, K <= 3 of each kind
        served = [j for j in served if j.shape[0] <= 3]
    assert served
    for j in served:
        gram = (j @ j.T).float()[None]
        beta, flag = solve(gram.to(device), AGGREGATORS[name](), backend)
        want, w_flag = solve(gram.double(), AGGREGATORS[name](), get_backend("reference"))
        beta = beta.double().cpu()
        assert torch.equal(flag.cpu(), w_flag.float())
        if flag.item() != 0:  # e.g. 1e15-scaled gradients whose float32 Gram overflowed
            continue
        if name in NOT_UNIQUE and torch.linalg.matrix_rank(j) < j.shape[0]:
            _assert_same_direction(beta, want, gram)
        else:
            torch.testing.assert_close(beta, want, rtol=1e-5, atol=1e-6 * want.abs().max().item())
