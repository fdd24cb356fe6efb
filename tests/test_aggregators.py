"""Aggregators against the vector-space oracles of tests/helpers.py (float64, per segment)."""

import numpy as np
import pytest
import torch
from helpers import (
    min_norm_value,
    pcgrad_random_orders,
    pcgrad_vectors,
    per_segment,
    plans,
    project_vectors,
    random_rows,
    segment_vectors,
)
from hypothesis import given
from hypothesis import strategies as st
from jd_matrices import torchjd_inputs

from ltu_fast import MGDA, HarmonizedSGD, PCGrad, Project, harmonize_rows, make_aggregator
from ltu_fast.aggregators import AGGREGATORS, SOLVER_KINDS
from ltu_fast.functional import coefficients

SEEDS = st.integers(0, 2**16)


def _harmonize(rows, plan, aggregator, weights=None):
    out, stats = harmonize_rows(rows, plan, aggregator, weights, backend="reference")
    return out.numpy(), stats


def _fixed_orders(k):
    return [[j for j in range(k) if j != i] for i in range(k)]


@given(plan=plans(), k=st.integers(1, 5), seed=SEEDS, zero=st.integers(-1, 4))
def test_pcgrad_fixed_order_matches_paper(plan, k, seed, zero):
    rows = random_rows(plan, k, seed, zero_rows=[zero] if 0 <= zero < k else [])
    out, stats = _harmonize(rows, plan, PCGrad())
    expected = per_segment(rows.numpy(), plan, lambda g: pcgrad_vectors(g, _fixed_orders(k)))
    np.testing.assert_allclose(out, expected, rtol=1e-10, atol=1e-10)
    assert not stats.found_inf.any()


@given(plan=plans(), k=st.integers(2, 5), seed=SEEDS, agg_seed=st.integers(0, 100))
def test_pcgrad_random_order_matches_paper_with_same_permutations(plan, k, seed, agg_seed):
    """Documented draw: per step, per objective i, the others sorted by a hash of (seed, step, i, j)."""
    agg = PCGrad(order="random", seed=agg_seed)
    for step in range(3):
        orders = pcgrad_random_orders(agg_seed, step, k)
        rows = random_rows(plan, k, seed + step)
        out, _ = _harmonize(rows, plan, agg)
        expected = per_segment(rows.numpy(), plan, lambda g, o=orders: pcgrad_vectors(g, o))
        np.testing.assert_allclose(out, expected, rtol=1e-10, atol=1e-10)


def test_pcgrad_random_order_differs_from_fixed_and_is_seeded():
    """Order matters for K >= 3 on a crafted triple; the same seed replays the same coefficients."""
    gram = torch.tensor([[[1.0, -0.6, 0.3], [-0.6, 1.0, -0.7], [0.3, -0.7, 1.0]]], dtype=torch.float64).repeat(8, 1, 1)
    a, b = PCGrad("random", seed=3), PCGrad("random", seed=3)
    runs_a = [a(gram) for _ in range(6)]
    assert all(torch.equal(x, b(gram)) for x in runs_a)
    fixed = PCGrad()(gram)
    assert any(not torch.allclose(x, fixed) for x in runs_a)


@given(d=st.floats(-3, 3), g11=st.floats(0.1, 4), g22=st.floats(0.1, 4))
def test_pcgrad_k2_closed_form(d, g11, g22):
    d = max(min(d, 0.999 * (g11 * g22) ** 0.5), -0.999 * (g11 * g22) ** 0.5)  # a valid Gram matrix
    gram = torch.tensor([[[g11, d], [d, g22]]], dtype=torch.float64)
    beta = PCGrad()(gram)[0]
    expected = [1 - d / g11, 1 - d / g22] if d < 0 else [1.0, 1.0]
    torch.testing.assert_close(beta, torch.tensor(expected, dtype=torch.float64))


@given(plan=plans(), seed=SEEDS)
def test_pcgrad_k2_leaves_no_conflict(plan, seed):
    """For K = 2 the paper guarantees the update does not conflict with either gradient."""
    rows = random_rows(plan, 2, seed)
    out, _ = _harmonize(rows, plan, "pcgrad")
    for g, v in zip(segment_vectors(rows.numpy(), plan), segment_vectors(out[None], plan)):
        scale = np.linalg.norm(g, axis=1) * np.linalg.norm(g, axis=1).sum()
        assert (g @ v[0] >= -1e-12 * scale).all()


@given(plan=plans(), k=st.integers(1, 5), seed=SEEDS, protect=st.integers(0, 4), zero=st.integers(-1, 4))
def test_project_matches_one_sided_projection(plan, k, seed, protect, zero):
    protect %= k
    rows = random_rows(plan, k, seed, zero_rows=[zero] if 0 <= zero < k else [])
    out, stats = _harmonize(rows, plan, Project(protect))
    expected = per_segment(rows.numpy(), plan, lambda g: project_vectors(g, protect))
    np.testing.assert_allclose(out, expected, rtol=1e-10, atol=1e-10)
    beta = stats.beta
    assert torch.equal(beta[:, [i for i in range(k) if i != protect]], torch.ones(beta.shape[0], k - 1,
                                                                                   dtype=beta.dtype))
    for g, v in zip(segment_vectors(rows.numpy(), plan), segment_vectors(out[None], plan)):
        r = g[protect]
        # the protected component is never reduced: <v, g_r> >= |g_r|^2 >= 0
        assert v[0] @ r >= r @ r - 1e-12 * np.linalg.norm(r) * np.linalg.norm(g, axis=1).sum()


@given(plan=plans(), k=st.integers(1, 4), seed=SEEDS)
def test_mgda_reaches_min_norm(plan, k, seed):
    rows = random_rows(plan, k, seed)
    iterations = 256
    out, stats = _harmonize(rows, plan, MGDA(iterations=iterations))
    beta = stats.beta
    assert (beta >= -1e-12).all()
    torch.testing.assert_close(beta.sum(-1), torch.ones(beta.shape[0], dtype=beta.dtype))
    for g, v in zip(segment_vectors(rows.numpy(), plan), segment_vectors(out[None], plan)):
        best = min_norm_value(g)
        scale = max(np.diag(g @ g.T))
        # K > 2 runs Frank-Wolfe with exact line search: its guarantee is f(a_t) - f* <= 2 C / (t + 2),
        # C = the curvature constant of |G^T a|^2 on the simplex <= the hull's squared diameter
        diameter = max(((gi - gj) @ (gi - gj) for gi in g for gj in g), default=0.0)
        excess = 1e-9 * scale if k <= 2 else 2 * diameter / (iterations + 2) + 1e-9 * scale
        assert v[0] @ v[0] <= best + excess
        assert v[0] @ v[0] >= best - 1e-9 * scale


@pytest.mark.parametrize("method", ["active_set", "frank_wolfe"])
def test_mgda_k2_exact_and_degenerate(method):
    g = torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    beta = MGDA(method=method)((g @ g.T)[None])[0]
    torch.testing.assert_close(beta, torch.tensor([0.8, 0.2], dtype=torch.float64))
    same = torch.ones(1, 2, 2, dtype=torch.float64)  # every point of the simplex is a min-norm point
    expected = [1.0, 0.0] if method == "active_set" else [0.5, 0.5]  # the first vertex, as torchjd's Frank-Wolfe
    torch.testing.assert_close(MGDA(method=method)(same)[0], torch.tensor(expected, dtype=torch.float64))


ALL = sorted(AGGREGATORS)  # every registered aggregator gets the shared tests below


@pytest.mark.parametrize("name", ALL)
@given(plan=plans(), seed=SEEDS, w=st.lists(st.sampled_from([0.0, 0.5, 1.0, 3.0]), min_size=3, max_size=3))
def test_weights_act_as_scaled_losses(name, plan, seed, w):
    rows = random_rows(plan, 3, seed)
    out, _ = _harmonize(rows, plan, AGGREGATORS[name](), weights=w)
    weighted = rows * torch.tensor(w, dtype=rows.dtype)[:, None]
    scaled, _ = _harmonize(weighted, plan, AGGREGATORS[name]())
    # the iterative solves (Nash-MTL, FairGrad) stop at ~1e-12 of the rows' scale, not at an exact 0;
    # on one-element segments (rank 1) ConFIG's pseudo-inverse of the cosine matrix and GradVac's
    # cancelling lengths turn last-bit differences of the two inputs into ~1e-8 of that scale
    sizes = torch.zeros(plan.num_segments).index_add_(0, torch.tensor(plan.segments), torch.tensor(plan.numels, dtype=torch.float32))
    ill_conditioned = name in ("config", "gradvac") and sizes.min().item() < 3  # fewer elements than objectives
    atol = (1e-7 if ill_conditioned else 1e-10) * max(float(weighted.abs().max()), 1e-2)
    np.testing.assert_allclose(out, scaled, rtol=1e-9, atol=atol)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("k", [1, 2, 3])
def test_zero_gradients_give_finite_coefficients(name, k):
    gram = torch.zeros(4, k, k)
    gram[1, 0, 0] = 2.0  # one objective touches segment 1 only
    beta = AGGREGATORS[name]()(gram)
    assert beta.shape == (4, k) and beta.dtype == gram.dtype
    assert torch.isfinite(beta).all()


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize(("kind", "index"), [(kind, i) for kind, mats in torchjd_inputs().items() for i in range(len(mats))])
def test_finite_on_torchjds_kinds_of_inputs(name, kind, index):
    """torchjd's "expected structure" property: a finite vector on every input kind and scale."""
    j = torchjd_inputs()[kind][index]
    assert torch.isfinite(AGGREGATORS[name]()((j @ j.T)[None])).all()


@pytest.mark.parametrize("name", ALL)
@given(k=st.integers(2, 4), seed=SEEDS, scale=st.sampled_from([1e-3, 2.0, 1024.0]))
def test_batched_over_segments_and_loss_scale(name, k, seed, scale):
    """Segments are independent (a batch equals one call per segment, fresh state each); a loss
    scale s leaves the update unchanged: invariant aggregators see s^2 G, the others G (functional)."""
    gen = torch.Generator().manual_seed(seed)
    g = torch.randn(6, k, 5, generator=gen, dtype=torch.float64)
    gram = g @ g.transpose(1, 2)
    batched = AGGREGATORS[name]()(gram)
    single = torch.cat([AGGREGATORS[name]()(gram[i:i + 1]) for i in range(6)])
    torch.testing.assert_close(batched, single, rtol=1e-12, atol=1e-14)
    agg = AGGREGATORS[name]()
    if agg.scale_invariant:
        torch.testing.assert_close(agg(gram * scale**2), batched, rtol=1e-9, atol=1e-9)
    s = torch.tensor([scale], dtype=torch.float64)
    unscaled, _ = coefficients(gram * scale**2, AGGREGATORS[name](), grad_scale=s)
    torch.testing.assert_close(unscaled * scale, batched, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("granularity", ["layer", "module", "global"])
def test_every_granularity_with_weights_equals_the_aggregator_per_segment(name, granularity):
    """One HarmonizedSGD step (lr 1) moves each segment by -J_s^T beta_s, beta_s from that segment's
    weighted Gram alone, through the reference backend."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3)).double()
    weights = [1.0, 0.5, 2.0]
    opt = HarmonizedSGD(model.named_parameters(), lr=1.0, objectives=3, aggregator=AGGREGATORS[name](),
                        granularity=granularity, weights=weights, backend="reference")
    x = torch.randn(6, 4, dtype=torch.float64)
    before = [p.detach().clone() for p in model.parameters()]
    opt.zero_grad()
    grads = []
    for i in range(3):
        with opt.objective(i):
            (model(x)[:, i] ** 2).mean().backward()
            grads.append([p.grad.detach().clone() for p in model.parameters()])
    opt.step()
    labels = {"layer": [0, 1, 2, 3], "module": [0, 0, 1, 1], "global": [0, 0, 0, 0]}[granularity]
    for segment in sorted(set(labels)):
        members = [t for t, s in enumerate(labels) if s == segment]
        j = torch.stack([torch.cat([grads[i][t].flatten() for t in members]) for i in range(3)])
        w = torch.tensor(weights, dtype=torch.float64)
        beta = w * AGGREGATORS[name]()(((w[:, None] * j) @ (w[:, None] * j).T)[None])[0]
        moved = torch.cat([(before[t] - p.detach()).flatten() for t, p in enumerate(model.parameters()) if t in members])
        torch.testing.assert_close(moved, beta @ j, rtol=1e-10, atol=1e-12)


def test_make_aggregator_names_and_instances():
    assert isinstance(make_aggregator("pcgrad"), PCGrad)
    assert make_aggregator("project", protect=1).protect == 1
    inst = MGDA()
    assert make_aggregator(inst) is inst
    with pytest.raises(ValueError, match="aggregator"):
        make_aggregator(inst, iterations=3)


def test_pcgrad_state_dict_replays_random_orders():
    gram = torch.randn(3, 4, 6, dtype=torch.float64)
    gram = gram @ gram.transpose(1, 2)
    a = PCGrad("random", seed=1)
    a(gram)
    b = PCGrad("random", seed=99)
    b.load_state_dict(a.state_dict())
    assert torch.equal(a(gram), b(gram))


J_BASE = torch.tensor([[-4.0, 1.0, 1.0], [6.0, 1.0, 1.0]], dtype=torch.float64)
# J_BASE^T w for every aggregator: torchjd's fixed values (its test_values.py; GradVac, FairGrad and
# Nash-MTL printed by torchjd 0.18 itself), and the one-sided projection by hand
FIXED_VALUES = {
    "sum": [2.0, 2.0, 2.0], "pcgrad": [0.5848, 3.8012, 3.8012], "project": [-2.8889, 3.2222, 3.2222],
    "mgda": [0.0, 1.0, 1.0], "upgrad": [0.2929, 1.9004, 1.9004], "dualproj": [0.5563, 1.1109, 1.1109],
    "imtl_g": [0.0767, 1.0, 1.0], "aligned_mtl": [0.2133, 0.9673, 0.9673], "cagrad": [0.1835, 1.2041, 1.2041],
    "config": [0.1588, 2.0706, 2.0706], "gradvac": [0.5848, 3.8012, 3.8012], "nash_mtl": [0.0542, 0.7061, 0.7061],
    "fairgrad": [0.0766, 0.9985, 0.9985],
}


@pytest.mark.parametrize("name", ALL)
def test_fixed_values_of_torchjd(name):
    beta = AGGREGATORS[name]()((J_BASE @ J_BASE.T)[None])[0]
    torch.testing.assert_close(beta @ J_BASE, torch.tensor(FIXED_VALUES[name], dtype=torch.float64), rtol=0, atol=1e-4)


@pytest.mark.parametrize("name", ALL)
def test_registered_under_its_name_and_exported(name):
    import ltu_fast

    cls = AGGREGATORS[name]
    assert cls.name == name and isinstance(make_aggregator(name), cls)
    assert getattr(ltu_fast, cls.__name__) is cls
    spec = cls().solver_spec(3)
    assert spec is None or spec.kind == SOLVER_KINDS[name]  # a compiled solve is named as its aggregator


@pytest.mark.parametrize("name", ["nash_mtl", "fairgrad"])
def test_equation_without_solution_gives_the_bounded_limit(name):
    """g1 = -g2 (a scalar parameter, two objectives pulling apart) and g3 orthogonal: no positive
    w has w * (G w) = 1, the weights of g1, g2 run off together. We return the limit of the
    exact problem's path: g1 and g2 cancel, g3 keeps its exact weight, the weights stay bounded."""
    j = torch.tensor([[2.0, 0.0], [-2.0, 0.0], [0.0, 0.5]], dtype=torch.float64)
    w = make_aggregator(name, max_norm=0.0)(torch.mm(j, j.T)[None])[0] if name == "nash_mtl" else \
        make_aggregator(name)(torch.mm(j, j.T)[None])[0]
    assert torch.isfinite(w).all() and (w > 0).all()
    assert (w * j.norm(dim=1)).max() <= 1e6  # |w_i g_i| bounded: a float32 update can apply it
    torch.testing.assert_close(w @ j, torch.tensor([0.0, 1.0], dtype=torch.float64), rtol=0, atol=1e-9)
