"""Every aggregator against torchjd 0.18, the reference library (a test-only oracle: skipped without it).

Global granularity on torchjd's kinds of test inputs (:mod:`jd_matrices`), and per layer through
``HarmonizedSGD`` against torchjd's per-parameter ``jac_to_grad`` followed by ``torch.optim.SGD``.
Random visit orders (torchjd's ``torch.randperm``) are replaced by the identity on both sides.
Tolerances say what torchjd computes: exact methods agree to rounding; CAGrad to Clarabel's
accuracy; MGDA's Frank-Wolfe (``epsilon=1e-3``) is approximate, so there ours must be at least as
good; Nash-MTL's and FairGrad's equations are compared where they have a solution.
"""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
from jd_matrices import solvable_inputs, torchjd_inputs

from ltu_fast import HarmonizedSGD, available_backends
from ltu_fast import aggregators as agg
from ltu_fast.aggregators import AGGREGATORS

tj = pytest.importorskip("torchjd.aggregation")
autojac = pytest.importorskip("torchjd.autojac")
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")

INPUTS = torchjd_inputs()
CASES = [(kind, i) for kind, mats in INPUTS.items() for i in range(len(mats))]

# name -> (ours, torchjd's, relative tolerance on the aggregated vector); exact methods on both sides
EXACT = {
    "sum": (agg.Sum, lambda k: tj.Sum(), 1e-14),
    "pcgrad": (agg.PCGrad, lambda k: tj.PCGrad(), 1e-12),
    "upgrad": (agg.UPGrad, lambda k: tj.UPGrad(), 1e-10),
    "dualproj": (agg.DualProj, lambda k: tj.DualProj(), 1e-10),
    "imtl_g": (agg.IMTLG, lambda k: tj.IMTLG(), 1e-10),
    "aligned_mtl": (agg.AlignedMTL, lambda k: tj.AlignedMTL(), 1e-10),
    "aligned_mtl_median": (lambda: agg.AlignedMTL(scale_mode="median"), lambda k: tj.AlignedMTL(scale_mode="median"), 1e-10),
    "aligned_mtl_rmse": (lambda: agg.AlignedMTL(scale_mode="rmse"), lambda k: tj.AlignedMTL(scale_mode="rmse"), 1e-10),
    "config": (agg.ConFIG, lambda k: tj.ConFIG(), 1e-7),  # pinv from the Gram: about the square root of eps lost
    "gradvac": (lambda: agg.GradVac(order="fixed"), lambda k: tj.GradVac(), 1e-12),
}
APPROXIMATE = {"cagrad", "mgda", "nash_mtl", "fairgrad"}  # torchjd solves these approximately: own tests below
NO_COUNTERPART = {"project"}  # LTU's one-sided projection is not in torchjd


@pytest.fixture
def identity_orders(monkeypatch):
    """torchjd's PCGrad and GradVac draw their visit orders from torch.randperm: make them fixed."""
    monkeypatch.setattr(torch, "randperm", lambda n, *args, **kwargs: torch.arange(n))


def _ours(aggregator, j: torch.Tensor) -> torch.Tensor:
    return aggregator((j @ j.T)[None])[0] @ j


def _scale(j: torch.Tensor, d: torch.Tensor) -> float:
    return max(float(j.norm()), float(d.abs().max()), 1e-300)


def test_every_registered_aggregator_is_compared():
    compared = {name for name in EXACT if name in AGGREGATORS} | APPROXIMATE | NO_COUNTERPART
    assert compared == set(AGGREGATORS)


@pytest.mark.parametrize("name", sorted(EXACT))
@pytest.mark.parametrize(("kind", "index"), CASES)
def test_equals_torchjd_on_its_inputs(name, kind, index, identity_orders):
    ours, theirs, tol = EXACT[name]
    j = INPUTS[kind][index]
    reference = theirs(j.shape[0])
    got, want = _ours(ours(), j), reference(j)
    if name == "gradvac" and reference.gramian_weighting._phi_t.abs().max() > 1:
        # torchjd's cosine left [-1, 1] by rounding (parallel gradients); ours is clamped there, and the
        # near-cancelling sum it feeds moves by ~1e-10 of J, not by the last bits
        tol = 1e-8
    assert (got - want).abs().max() <= tol * _scale(j, want), f"{name} on {kind} {tuple(j.shape)}"


def _cagrad_objective(gram: torch.Tensor, w: torch.Tensor, c: float) -> float:
    """CAGrad's dual objective on torchjd's normalised Gram."""
    k = gram.shape[0]
    g = gram / gram.trace()
    b = g.sum(1) / k
    return float(b @ w + c * (b.sum() / k).sqrt() * (w @ g @ w).clamp_min(0).sqrt())


@pytest.mark.parametrize(("kind", "index"), CASES)
def test_cagrad_equals_torchjd_to_clarabel_accuracy(kind, index):
    j = INPUTS[kind][index]
    got, want = _ours(agg.CAGrad(), j), tj.CAGrad(c=0.5)(j)
    assert (got - want).abs().max() <= 2e-5 * _scale(j, want)


def test_cagrad_dual_is_at_least_as_good_as_clarabel():
    """The simplex problem torchjd hands to cvxpy: our minimiser is exact, so never worse."""
    from torchjd.aggregation._cagrad import CAGradWeighting

    for j in INPUTS["normal"] + INPUTS["non_weak"] + INPUTS["strong"]:
        gram = j @ j.T
        if gram.trace() < 1e-4 or j.shape[0] == 1:
            continue
        ours = agg.CAGrad()((gram)[None])[0]
        theirs = CAGradWeighting(c=0.5)(gram)
        w_ours, w_theirs = ours - 1 / j.shape[0], theirs - 1 / j.shape[0]  # 1/K + (phi/|g_w|) w
        w_ours, w_theirs = w_ours / w_ours.sum(), w_theirs / w_theirs.sum()
        assert _cagrad_objective(gram, w_ours, 0.5) <= _cagrad_objective(gram, w_theirs, 0.5) + 1e-12


@pytest.mark.parametrize(("kind", "index"), CASES)
def test_mgda_at_least_as_good_as_torchjd_and_optimal(kind, index):
    """torchjd's Frank-Wolfe stops at epsilon = 1e-3: our min-norm point is never longer, and it
    meets the optimality conditions (Gw >= w^T G w on every objective) to rounding."""
    j = INPUTS[kind][index]
    gram = j @ j.T
    w = agg.MGDA()(gram[None])[0]
    got, want = w @ j, tj.MGDA()(j)
    scale = float(gram.diagonal().max()) + 1e-300
    assert got @ got <= want @ want + 1e-12 * scale
    assert (w >= 0).all() and abs(float(w.sum()) - 1) < 1e-12
    assert ((gram @ w) - w @ gram @ w).min() >= -1e-10 * scale


@pytest.mark.parametrize("shape", [(5, 7), (9, 37), (2, 14), (32, 114), (50, 100)])
def test_mgda_meets_torchjds_kkt_test_at_the_default_iterations(shape):
    """torchjd's own KKT check (its test_mgda.py) at our default trip count, K up to 50."""
    gen = torch.Generator().manual_seed(sum(shape))
    j = torch.randn(*shape, generator=gen, dtype=torch.float64)
    gram = j @ j.T
    w = agg.MGDA()(gram[None])[0]
    direction = gram @ w
    mu = direction - w @ direction
    assert (w >= 0).all()
    torch.testing.assert_close(w.sum(), torch.tensor(1.0, dtype=torch.float64))
    torch.testing.assert_close(mu[mu >= 0].norm(), mu.norm(), atol=1e-2, rtol=0)
    assert mu.min() >= -1e-9 * float(gram.diagonal().max())  # far inside: optimal to rounding


def _backward_error(gram: torch.Tensor, w: torch.Tensor, p: float) -> float:
    """max_i |(G w)_i - w_i^-p| / ((|G| |w|)_i + w_i^-p): the equation's relative residual."""
    w = w.to(torch.float64)
    target = w.clamp_min(1e-300).pow(-p)
    return float((((gram @ w) - target).abs() / ((gram.abs() @ w.abs()) + target)).max())


def _nash_raw(k: int):
    """torchjd's Nash-MTL weighting without its norm clipping: the solved alpha itself."""
    return tj.NashMTL(n_tasks=k, max_norm=0.0).weighting


@pytest.mark.parametrize("index", range(len(solvable_inputs())))
def test_nash_mtl_solves_the_equation_torchjd_approximates(index):
    j = solvable_inputs()[index]
    gram = j @ j.T
    ours = agg.NashMTL(max_norm=0.0)(gram[None])[0]
    theirs = _nash_raw(j.shape[0])(j)
    ours_err, theirs_err = _backward_error(gram, ours, 1.0), _backward_error(gram, theirs, 1.0)
    assert ours_err <= 1e-14
    if theirs_err <= 1e-6:  # where torchjd's cvxpy iterations converged (10 of these 11), the same point
        d, d_tj = ours @ j, theirs.to(torch.float64) @ j
        assert (d - d_tj).abs().max() <= 1e-5 * d.abs().max()


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0])
@pytest.mark.parametrize("index", range(len(solvable_inputs())))
def test_fairgrad_solves_the_equation_torchjd_approximates(alpha, index):
    j = solvable_inputs()[index]
    gram = j @ j.T
    ours = agg.FairGrad(alpha)(gram[None])[0]
    theirs = tj.FairGrad(alpha=alpha).gramian_weighting(gram)
    assert _backward_error(gram, ours, 1 / alpha) <= 1e-14
    d, d_tj = ours @ j, theirs @ j
    assert (d - d_tj).abs().max() <= 1e-4 * d.abs().max()


def test_nash_mtl_and_fairgrad_residuals_tighter_than_torchjds():
    """Over the solvable inputs our worst residual is at rounding level and below torchjd's worst."""
    mats = solvable_inputs()
    for name, p, ours, theirs in (("nash_mtl", 1.0, agg.NashMTL(max_norm=0.0), lambda j: _nash_raw(j.shape[0])(j)),
                                  ("fairgrad", 1.0, agg.FairGrad(), lambda j: tj.FairGrad(alpha=1.0).gramian_weighting(j @ j.T))):
        mine = [_backward_error(j @ j.T, copy.deepcopy(ours)((j @ j.T)[None])[0], p) for j in mats]
        theirs_ = [_backward_error(j @ j.T, theirs(j), p) for j in mats]
        assert max(mine) <= 1e-14 and max(mine) < max(theirs_), (name, max(mine), max(theirs_))


def test_nash_mtl_update_weights_every_and_clipping_equal_torchjd():
    """The knobs that change the result: weights reused between updates, then clipped to max_norm."""
    gen = torch.Generator().manual_seed(3)
    mats = [torch.randn(3, 5, generator=gen, dtype=torch.float64) for _ in range(5)]
    theirs = tj.NashMTL(n_tasks=3, max_norm=0.5, update_weights_every=2)
    ours = agg.NashMTL(max_norm=0.5, update_weights_every=2)
    for j in mats:
        d, d_tj = _ours(ours, j), theirs(j)
        assert (d - d_tj).abs().max() <= 1e-5 * d_tj.abs().max()


# ----------------------------------------------------------------------------- per layer, SGD

def _model(k_out: int, dtype: torch.dtype) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(5, 6), torch.nn.Tanh(), torch.nn.Linear(6, k_out)).to(dtype)


def _losses(model: torch.nn.Module, x: torch.Tensor, k: int) -> list[torch.Tensor]:
    out = model(x)
    return [((out[:, i] - torch.sin(x[:, i] * (i + 1))) ** 2).mean() for i in range(k)]


PER_LAYER = {
    **{name: (ours, theirs, tol) for name, (ours, theirs, tol) in EXACT.items() if name != "config"},
    "config": (agg.ConFIG, lambda k: tj.ConFIG(), 1e-7),
    "cagrad": (agg.CAGrad, lambda k: tj.CAGrad(c=0.5), 1e-5),
    "mgda": (agg.MGDA, lambda k: tj.MGDA(), 1e-10),  # K = 2: torchjd's first Frank-Wolfe step is exact
    "nash_mtl": (agg.NashMTL, lambda k: tj.NashMTL(n_tasks=k), 1e-5),
    "fairgrad": (agg.FairGrad, lambda k: tj.FairGrad(alpha=1.0), 1e-5),
}
# the cpu backend serves float32 parameters (its compiled solve would handle sum/pcgrad; the others
# fall back to the torch solve); float32 on both sides agrees to float32 rounding
BACKENDS = {"reference": torch.float64, **({"cpu": torch.float32} if available_backends()["cpu"] is None else {})}


@pytest.mark.parametrize("backend", sorted(BACKENDS))
@pytest.mark.parametrize("name", sorted(PER_LAYER))
def test_per_layer_equals_torchjd_jac_to_grad_then_sgd(name, backend, identity_orders):
    """torchjd per layer: one aggregator instance per parameter, ``jac_to_grad([p], A_p)``."""
    ours_make, theirs_make, tol = PER_LAYER[name]
    k, dtype = 2, BACKENDS[backend]
    if dtype == torch.float32:
        tol = max(tol, 1e-4)
    reference, model = _model(k, dtype), _model(k, dtype)
    params = list(reference.parameters())
    per_param = {p: theirs_make(k) for p in params}
    sgd = torch.optim.SGD(params, lr=0.05, momentum=0.9)
    opt = HarmonizedSGD(model.parameters(), lr=0.05, momentum=0.9, objectives=k, aggregator=ours_make(),
                        granularity="layer", backend=backend)
    gen = torch.Generator().manual_seed(1)
    for _ in range(3):
        x = torch.randn(8, 5, generator=gen, dtype=torch.float64).to(dtype)
        sgd.zero_grad()
        autojac.backward(_losses(reference, x, k))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for p in params:
                autojac.jac_to_grad([p], per_param[p])
        sgd.step()
        opt.zero_grad()
        for i, loss in enumerate(_losses(model, x, k)):
            with opt.objective(i):
                loss.backward(retain_graph=True)
        opt.step()
    for p, q in zip(params, model.parameters()):
        assert (p - q).abs().max() <= tol * p.abs().max(), name


def test_gradvac_random_order_equals_torchjd_drawing_the_same_orders(monkeypatch):
    """Our random order is a seeded hash of the step (as PCGrad's); torchjd draws torch.randperm
    for each objective: fed the same permutations, torchjd's state and outputs match ours."""
    from helpers import pcgrad_random_orders

    k, seed, steps = 4, 7, 4
    gen = torch.Generator().manual_seed(5)
    mats = [torch.randn(k, 6, generator=gen, dtype=torch.float64) for _ in range(steps)]
    draws = []
    for step in range(steps):
        for i, order in enumerate(pcgrad_random_orders(seed, step, k)):
            others = [j for j in range(k) if j != i]
            draws.append(torch.tensor([others.index(j) for j in order]))
    feed = iter(draws)
    monkeypatch.setattr(torch, "randperm", lambda n, *args, **kwargs: next(feed))
    ours, theirs = agg.GradVac(order="random", seed=seed), tj.GradVac()
    for j in mats:
        d, d_tj = _ours(ours, j), theirs(j)
        assert (d - d_tj).abs().max() <= 1e-12 * d_tj.abs().max()
    torch.testing.assert_close(ours._state["targets"][0], theirs.gramian_weighting._phi_t, rtol=0, atol=1e-14)
