"""The compiled coefficient solvers (``backend.solve``) against the torch aggregators in float64.

Every backend with a ``solve`` (cpu; triton in its interpreter or on a GPU; cuda on a GPU) must
give the coefficients, the skip flag, the aggregator's counter and state, and the update rule's
bookkeeping (SGD's here; every rule in test_prepare.py) of ``functional.solve``'s torch path, which
defines the semantics, for every registered aggregator with a compiled spec (and the variants in
``VARIANTS``), K = 1..8, rank-deficient Grams, weights, a loss scale and an incoming overflow flag,
over several consecutive steps. An aggregator's ``solver_spec`` returning a spec is its registration
here: nothing in this file names it.
"""

from __future__ import annotations

import pytest
import torch
from helpers import compiled_aggregators
from hypothesis import given, settings
from hypothesis import strategies as st

from ltu_fast.aggregators import PCGrad
from ltu_fast.backends import available_backends, get_backend
from ltu_fast.functional import solve
from ltu_fast.plan import SegmentPlan
from ltu_fast.rules import SGD


def _solvers() -> list[tuple[str, str]]:
    out = []
    for name in ("cpu", "triton", "cuda"):
        if available_backends()[name] is None and hasattr(get_backend(name), "solve"):
            device = "cpu" if name == "cpu" or (name == "triton" and not torch.cuda.is_available()) else "cuda"
            out.append((name, device))
    return out


SOLVERS = _solvers()
REFERENCE = get_backend("reference")


def _gram(k: int, segments: int, seed: int, zero: int, scale: float, rank: int = 0) -> torch.Tensor:
    """Random PSD Grams of K gradients in ``rank`` dimensions (0: 3 + K, full rank)."""
    gen = torch.Generator().manual_seed(seed)
    g = torch.randn(segments, k, rank or 3 + k, generator=gen, dtype=torch.float64) * scale
    if 0 <= zero < k:
        g[:, zero] = 0.0  # an objective that does not touch these segments
    return (g @ g.transpose(1, 2)).to(torch.float32)


CASES = compiled_aggregators()


def _run(backend, device, dtype, gram, agg, weights, grad_scale, found_inf, hyper, ready):
    """One solve with SGD's bookkeeping for one tensor per row of ``hyper`` (``ready``: its history bits)."""
    tensors = SegmentPlan.build([1] * len(ready), groups=range(len(ready))).to(device)
    r = ready.clone().to(device).reshape(-1, 1)
    rows = torch.full((len(ready), len(SGD.row_columns)), -1.0, device=device)
    skipped = torch.zeros(1, dtype=torch.int64, device=device)
    beta, flag = solve(gram.to(device, dtype), agg, backend, None if weights is None else weights.to(device),
                       None if grad_scale is None else grad_scale.to(device),
                       None if found_inf is None else found_inf.to(device), skipped=skipped, rule=SGD,
                       tensors=tensors, group_hyper=hyper.to(device), tensor_state=r, tensor_rows=rows)
    return beta.double().cpu(), flag.cpu(), r.cpu(), rows.cpu(), skipped.cpu()


def _device_state(agg, gram: torch.Tensor) -> list[torch.Tensor]:
    """The aggregator's counter and state after a step, as float64 CPU copies."""
    return [t.detach().double().cpu().clone() for t in agg.solver_tensors(gram) if t is not None]


def _both(backend_name: str, device: str, grams, make, weights, grad_scale, found_inf, hyper, ready):
    """Run the compiled solver and the torch path (float64; on the float32 Gram where the rank cut is the
    Gram's eps, ``gram_eps_cut``) on a fresh aggregator each, step after step (``grams``), from the same
    counter (7) and state."""
    results = []
    reference_dtype = torch.float32 if make().gram_eps_cut else torch.float64  # float64 math either way
    for backend, dtype in ((get_backend(backend_name), torch.float32), (REFERENCE, reference_dtype)):
        agg = make()
        counter, _ = agg.solver_tensors(grams[0].to(device, dtype))
        if counter is not None:
            counter.fill_(7)
        steps = []
        for gram in grams:
            out = _run(backend, device, dtype, gram, agg, weights, grad_scale, found_inf, hyper, ready)
            steps.append((*out, _device_state(agg, gram.to(device, dtype))))
        results.append(steps)
    return results


def _assert_min_norm_equal(beta, w_beta, gram, weights, grad_scale, k, segments, scale):
    """Frank-Wolfe may break an argmin near-tie the other way in float32; both must reach the same
    min-norm value of the weighted Gram (the quantity MGDA defines) on the simplex."""
    w = torch.ones(k, dtype=torch.float64) if weights is None else weights.double()
    g = gram.double() * w[:, None] * w[None, :]
    alpha, w_alpha = (b * (1 if grad_scale is None else 1024.0) / w for b in (beta, w_beta))
    torch.testing.assert_close(alpha.sum(1), torch.ones(segments, dtype=torch.float64))
    assert (alpha >= -1e-6).all()
    value, w_value = (torch.einsum("li,lij,lj->l", a, g, a) for a in (alpha, w_alpha))
    torch.testing.assert_close(value, w_value, rtol=2e-3, atol=1e-6 * scale ** 2)


# Coefficients that are not unique when the gradients are linearly dependent (rank < K): the
# simplex problems of MGDA and CAGrad (the combined gradient is); their faces are then singular up
# to rounding, so float32 inputs may take either of the optimal faces.
# Coefficients not unique on a rank-deficient Gram (only J^T beta is): the simplex solvers' faces, and
# the Newton solvers' bounded limit where the equation has no solution.
NOT_UNIQUE = ("mgda", "cagrad", "nash_mtl", "fairgrad")


def _assert_same_direction(beta, w_beta, gram):
    """``J^T beta == J^T w_beta`` to 1e-3 of ``sum |beta_i| |g_i|``, measured with the Gram."""
    g = gram.double()
    d = beta - w_beta
    gap = torch.einsum("li,lij,lj->l", d, g, d).clamp_min(0).sqrt()
    size = (w_beta.abs() * g.diagonal(dim1=1, dim2=2).clamp_min(0).sqrt()).sum(1)
    assert (gap <= 1e-3 * size + 1e-30).all(), (gap, size)


COMPILED = [(name, device) for name, device in SOLVERS if not (name == "triton" and device == "cpu")]
INTERPRETED = [(name, device) for name, device in SOLVERS if name == "triton" and device == "cpu"]
CASE_ARGUMENTS = {"segments": st.integers(1, 6), "seed": st.integers(0, 2**16), "zero": st.integers(-1, 8),
                  "rank": st.integers(0, 8), "scale": st.sampled_from([1e-3, 1.0, 1e3]), "weighted": st.booleans(),
                  "scaled": st.booleans(), "incoming": st.sampled_from([None, 0.0, 1.0])}


@pytest.mark.skipif(not COMPILED, reason="no natively compiled backend with a solver is available")
@pytest.mark.parametrize("backend_name,device", COMPILED)
@pytest.mark.parametrize("case", sorted(CASES))
@given(k=st.integers(1, 8), **CASE_ARGUMENTS)
def test_solver_matches_torch_aggregators(backend_name, device, case, k, segments, seed, zero, rank, scale, weighted,
                                          scaled, incoming):
    _check_case(backend_name, device, case, k, segments, seed, zero, rank, scale, weighted, scaled, incoming, steps=3)


@pytest.mark.skipif(not INTERPRETED, reason="Triton runs compiled on this machine (tested above)")
@pytest.mark.parametrize("backend_name,device", INTERPRETED)
@pytest.mark.parametrize("case", sorted(CASES))
@settings(max_examples=3)
@given(k=st.integers(1, 3), **CASE_ARGUMENTS)
def test_interpreted_triton_solver_matches_torch_aggregators(backend_name, device, case, k, segments, seed, zero, rank,
                                                             scale, weighted, scaled, incoming):
    """The same check in Triton's CPU interpreter (seconds per iterative solve): fewer examples, K <= 3
    (the kernels' loops run over K at run time, so K = 3 on a padded KP = 4 covers their masking), two steps."""
    _check_case(backend_name, device, case, k, segments, seed, zero, rank, scale, weighted, scaled, incoming, steps=2)


def _check_case(backend_name, device, case, k, segments, seed, zero, rank, scale, weighted, scaled, incoming,
                steps: int) -> None:
    if k > getattr(get_backend(backend_name), "MAX_SOLVE_K", 8):
        k = 1 + k % 4  # beyond its limit a backend runs the torch path: nothing of its own to test
    grams = [_gram(k, segments, seed + step, zero, scale, rank) for step in range(steps)]
    gen = torch.Generator().manual_seed(seed + 1)
    weights = torch.rand(k, generator=gen) + 0.25 if weighted else None
    if weights is not None and CASES[case](k, seed).gram_eps_cut:
        # their reference runs on the float32 Gram, and weighting it there rounds each entry once more
        # than the compiled solve's float64 weighting does, which a near-singular spectrum amplifies:
        # both get the same weighted float32 Gram instead (the weighting itself is the driver's, tested
        # with every other aggregator)
        grams = [(gram.double() * weights.double()[:, None] * weights.double()[None, :]).float() for gram in grams]
        weights = None
    grad_scale = torch.tensor([1024.0]) if scaled else None
    found_inf = None if incoming is None else torch.tensor([incoming])
    hyper = torch.zeros(3, len(SGD.group_columns))
    hyper[:, SGD.group_columns.index("momentum")] = torch.tensor([0.9, 0.0, 0.5])
    ready = torch.tensor([0.0, 0.0, 1.0])
    got, want = _both(backend_name, device, grams, lambda: CASES[case](k, seed), weights, grad_scale, found_inf,
                      hyper, ready)
    for gram, step, w_step in zip(grams, got, want):
        beta, flag, r, rows, skipped, state = step
        w_beta, w_flag, w_r, w_rows, w_skipped, w_state = w_step
        if case == "mgda_frank_wolfe" and k > 2:
            _assert_min_norm_equal(beta, w_beta, gram, weights, grad_scale, k, segments, scale)
        elif case in NOT_UNIQUE and 0 < rank < k:
            _assert_same_direction(beta, w_beta, gram)
        else:
            torch.testing.assert_close(beta, w_beta, rtol=1e-5, atol=1e-6)
        assert torch.equal(flag, w_flag.float())
        assert torch.equal(r, w_r.float()) and torch.equal(rows, w_rows) and torch.equal(skipped, w_skipped)
        assert len(state) == len(w_state)
        # the Newton solvers' bounded limit on a rank-deficient Gram is conditioned like their ridge
        # (1 / RIDGE = 1e10): last-bit differences grow to ~1e10 float64 eps there
        rtol = 1e-4 if case in NOT_UNIQUE and 0 < rank < k else 1e-6
        # GradVac's targets are cosines; on linearly dependent gradients a modified gradient may cancel,
        # and its length, so that pair's cosine, is float64 rounding noise in either summation order
        atol = 1e-4 if case == "gradvac" and 0 < rank < k else 1e-9
        for t, w_t in zip(state, w_state):
            torch.testing.assert_close(t, w_t, rtol=rtol, atol=atol)


@pytest.mark.skipif(not SOLVERS, reason="no compiled backend with a solver is available")
@pytest.mark.parametrize("backend_name,device", SOLVERS)
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_solver_flags_non_finite_statistics_and_skips_bookkeeping(backend_name, device, bad):
    gram = _gram(3, 4, 0, -1, 1.0)
    gram[2, 1, 1] = bad
    hyper = torch.zeros(1, len(SGD.group_columns))
    hyper[0, SGD.group_columns.index("momentum")] = 0.9
    (got,), (want,) = _both(backend_name, device, [gram], PCGrad, None, None, None, hyper, torch.zeros(1))
    assert got[1].item() == 1.0 == want[1].item()
    assert got[2].item() == 0.0 and got[4].item() == 1  # ready untouched, the skip counted


@pytest.mark.skipif(not SOLVERS, reason="no compiled backend with a solver is available")
@pytest.mark.parametrize("backend_name,device", SOLVERS)
def test_random_order_advances_on_the_device_and_resumes(backend_name, device):
    """Two solvers with the same seed agree step after step; a restored counter replays the draw."""
    gram = torch.tensor([[[1.0, -0.6, 0.3], [-0.6, 1.0, -0.7], [0.3, -0.7, 1.0]]]).repeat(4, 1, 1).to(device)
    backend = get_backend(backend_name)
    a, b = PCGrad("random", seed=3), PCGrad("random", seed=3)
    seen = set()
    for _ in range(8):
        beta_a, _ = solve(gram, a, backend)
        beta_b, _ = solve(gram.double(), b, REFERENCE)
        torch.testing.assert_close(beta_a.double(), beta_b, rtol=1e-6, atol=1e-6)
        seen.add(tuple(beta_a[0].tolist()))
    assert len(seen) > 1  # the order changes from step to step
    c = PCGrad("random", seed=0)
    c.load_state_dict(a.state_dict())
    torch.testing.assert_close(solve(gram, c, backend)[0], solve(gram, a, backend)[0])


@pytest.mark.skipif(available_backends()["cpu"] is not None, reason="the C++ extension is not built")
def test_compiled_step_calls_the_solve_op_and_matches_eager():
    """Under torch.compile the solve is one ``ltu_fast::solve`` node that mutates the optimizer state
    (counter, momentum flags, skip count) exactly as the eager call does."""
    from ltu_fast import HarmonizedSGD

    def make():
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
        return model, HarmonizedSGD(model.parameters(), lr=0.05, momentum=0.9, objectives=3, backend="cpu",
                                    aggregator=PCGrad("random", seed=5))

    def backward(model, opt, x):
        opt.zero_grad()
        for j in range(3):
            with opt.objective(j):
                (model(x) * (j - 1)).sum().backward()

    torch._dynamo.reset()
    model, opt = make()
    backward(model, opt, torch.randn(4, 6))
    graph = torch._dynamo.explain(opt.step)()
    ops = {str(n.target) for g in graph.graphs for n in g.graph.nodes if n.op == "call_function"}
    assert graph.graph_break_count == 0 and any("ltu_fast.solve" in o for o in ops), ops
    (eager_model, eager_opt), (model, opt) = make(), make()
    compiled = torch.compile(opt.step, fullgraph=True)
    for i in range(3):
        x = torch.randn(4, 6, generator=torch.Generator().manual_seed(i))
        backward(eager_model, eager_opt, x)
        backward(model, opt, x)
        eager_opt.step()
        compiled()
    for a, b in zip(eager_model.parameters(), model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    assert torch.equal(eager_opt.aggregator._counter, opt.aggregator._counter)
    assert torch.equal(eager_opt._ready, opt._ready)
    torch._dynamo.reset()


@pytest.mark.parametrize("backend_name,device", [("reference", "cpu"), *SOLVERS])
@pytest.mark.parametrize("case", ["nash_mtl", "fairgrad"])
def test_newton_solvers_stay_bounded_where_float32_made_the_gram_indefinite(backend_name, device, case):
    """Gradients along one direction with mixed signs (no solution: the weights' limit is the ridge's),
    whose float32 Gram rounding made indefinite: the weights stay bounded (``|w_i g_i| <~ RIDGE^-1/2``)
    and the step is taken. Before ``nearest_psd`` they ran to 1e13 x |g_i|^-1 or past float32 (a skip)."""
    k, indefinite = 4, 0  # Triton compiles K <= 4
    for seed in range(4):
        gen = torch.Generator().manual_seed(seed)
        direction = torch.randn(1, 1, 4099, generator=gen)
        rows = (torch.randn(1, k, 1, generator=gen) * direction).float()  # mixed signs: u >= 0 with J^T u = 0
        gram = rows @ rows.transpose(1, 2)  # float32 products and sums, as the Gram kernels
        indefinite += int(torch.linalg.eigvalsh(gram.double()).amin() < 0)
        agg = CASES[case](k, seed)
        beta, flag = solve(gram.to(device), agg, get_backend(backend_name))
        assert flag.item() == 0.0
        size = beta.double().cpu().abs() * gram.diagonal(dim1=1, dim2=2).double().sqrt()
        assert torch.isfinite(size).all() and size.max() < 1e6, (seed, size)
    assert indefinite > 0  # the case this test is about occurred
