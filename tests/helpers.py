"""Shared test utilities: float64 vector-space oracles, hypothesis strategies, a backend checker.

The oracles work on whole gradient *vectors* (numpy float64), per segment, exactly as the papers
state the algorithms, so they share no code with the coefficient-space implementation they check.
Other engineers' backend tests call :func:`assert_backend_matches_reference`.
"""

from __future__ import annotations

import contextlib
import functools
import io
import itertools
from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import torch
from hypothesis import strategies as st

from ltu_fast.aggregators import AGGREGATORS, MGDA, PCGrad, Project
from ltu_fast.backends import get_backend, resolve_backend
from ltu_fast.bench.timing import capture_cuda_graph  # noqa: F401 (the GPU tests capture as the bench does)
from ltu_fast.functional import tensor_plan
from ltu_fast.plan import SegmentPlan
from ltu_fast.rules import SGD, prepare_rows

# ------------------------------------------------------------------------------ vector oracles


def segment_vectors(rows: np.ndarray, plan: SegmentPlan) -> list[np.ndarray]:
    """Per segment, the [K, n_s] matrix of the K gradients restricted to that segment's tensors."""
    parts: list[list[np.ndarray]] = [[] for _ in range(plan.num_segments)]
    for o, n, s in zip(plan.offsets, plan.numels, plan.segments):
        parts[s].append(rows[:, o:o + n])
    return [np.concatenate(p, axis=1) for p in parts]


def pcgrad_vectors(g: np.ndarray, orders: Sequence[Sequence[int]]) -> np.ndarray:
    """PCGrad (Yu et al. 2020, Alg. 1): each g_i projected in turn onto the normal plane of every
    *original* g_j it conflicts with, visiting j in ``orders[i]``; returns the sum."""
    out = np.zeros(g.shape[1])
    for i, order in enumerate(orders):
        v = g[i].copy()
        for j in order:
            dot, nn = v @ g[j], g[j] @ g[j]
            if dot < 0 and nn > 0:
                v = v - dot / nn * g[j]
        out += v
    return out


def _mix32(x: int) -> int:
    m = 0xFFFFFFFF
    x ^= x >> 16
    x = (x * 0x7FEB352D) & m
    x ^= x >> 15
    x = (x * 0x5BD1E995) & m
    return x ^ (x >> 16)


def pcgrad_random_orders(seed: int, step: int, k: int) -> list[list[int]]:
    """The documented random visit orders in plain Python integers (independent of torch): the
    others of i sorted by mix32(mix32(mix32(16 i + j) ^ step) ^ seed), ties by j."""
    def key(i: int, j: int) -> tuple[int, int]:
        return _mix32(_mix32(_mix32(16 * i + j) ^ (step & 0xFFFFFFFF)) ^ (seed & 0xFFFFFFFF)), j
    return [sorted((j for j in range(k) if j != i), key=lambda j, i=i: key(i, j)) for i in range(k)]


def project_vectors(g: np.ndarray, protect: int) -> np.ndarray:
    """One-sided projection: every g_i conflicting with g_protect loses its component along it."""
    r = g[protect]
    out = r.copy()
    for i in range(len(g)):
        if i != protect:
            dot, nn = g[i] @ r, r @ r
            out += g[i] - (dot / nn * r if dot < 0 and nn > 0 else 0)
    return out


def min_norm_value(g: np.ndarray) -> float:
    """Brute-force min ||sum a_i g_i||^2 over the simplex: the best feasible KKT point of every support."""
    k = len(g)
    gram = g @ g.T
    best = min(np.diag(gram))
    for size in range(2, k + 1):
        for support in itertools.combinations(range(k), size):
            s = list(support)
            kkt = np.zeros((size + 1, size + 1))
            kkt[:size, :size], kkt[:size, size], kkt[size, :size] = gram[np.ix_(s, s)], 1.0, 1.0
            rhs = np.zeros(size + 1)
            rhs[size] = 1.0
            a = np.linalg.lstsq(kkt, rhs, rcond=None)[0][:size]
            if (a >= -1e-12).all() and abs(a.sum() - 1) < 1e-9:
                best = min(best, float(a @ gram[np.ix_(s, s)] @ a))
    return best


def per_segment(rows: np.ndarray, plan: SegmentPlan, combine_segment) -> np.ndarray:
    """Apply ``combine_segment([K, n_s]) -> [n_s]`` per segment and scatter back into a flat row."""
    out = np.zeros(rows.shape[1])
    for s, vectors in enumerate(segment_vectors(rows, plan)):
        combined, cursor = combine_segment(vectors), 0
        for o, n, seg in zip(plan.offsets, plan.numels, plan.segments):
            if seg == s:
                out[o:o + n] = combined[cursor:cursor + n]
                cursor += n
    return out


def sgd_reference(p: np.ndarray, buf: np.ndarray | None, g: np.ndarray, *, lr: float, momentum: float = 0.0,
                  dampening: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False,
                  maximize: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """torch.optim.SGD's update as written in its docs (buf None: first step)."""
    g = -g if maximize else g
    g = g + weight_decay * p
    if momentum != 0:
        buf = g.copy() if buf is None else momentum * buf + (1 - dampening) * g
        g = g + momentum * buf if nesterov else buf
    return p - lr * g, buf


# ----------------------------------------------------------------------------------- strategies


@st.composite
def plans(draw, max_tensors: int = 5, max_numel: int = 40, max_groups: int = 3) -> SegmentPlan:
    """A random layout: tensor sizes, segment labels (possibly shared, non-adjacent) and groups."""
    t = draw(st.integers(1, max_tensors))
    numels = draw(st.lists(st.integers(1, max_numel), min_size=t, max_size=t))
    segments = draw(st.lists(st.integers(0, t - 1), min_size=t, max_size=t))
    groups = draw(st.lists(st.integers(0, max_groups - 1), min_size=t, max_size=t))
    align = draw(st.sampled_from([4, 16, 64]))
    return SegmentPlan.build(numels, segments, groups, element_size=4, align_bytes=align)


def random_rows(plan: SegmentPlan, k: int, seed: int, dtype: torch.dtype = torch.float64,
                zero_rows: Sequence[int] = ()) -> torch.Tensor:
    """[K, P] gradient rows (zero padding), some objectives possibly all-zero."""
    gen = torch.Generator().manual_seed(seed)
    rows = torch.zeros(k, plan.total, dtype=torch.float64)
    for o, n in zip(plan.offsets, plan.numels):
        rows[:, o:o + n] = torch.randn(k, n, generator=gen, dtype=torch.float64)
    rows[list(zero_rows)] = 0.0
    return rows.to(dtype)


@st.composite
def hypers(draw) -> dict:
    """SGD hyper-parameters torch.optim.SGD accepts (Nesterov only with momentum and no dampening)."""
    h = {
        "lr": draw(st.sampled_from([0.0, 0.01, 0.1, 0.5])),
        "momentum": draw(st.sampled_from([0.0, 0.5, 0.9])),
        "dampening": draw(st.sampled_from([0.0, 0.1, 0.5])),
        "weight_decay": draw(st.sampled_from([0.0, 1e-3, 0.1])),
        "maximize": draw(st.booleans()),
    }
    h["nesterov"] = h["momentum"] > 0 and draw(st.booleans())
    if h["nesterov"]:
        h["dampening"] = 0.0
    return h


def hyper_table(groups: Sequence[dict], dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """[G, 6] table in ``SGD.group_columns`` order from per-group dicts."""
    return torch.tensor([[float(h[c]) for c in SGD.group_columns] for h in groups], dtype=dtype)


def apply_sgd(backend, rows: torch.Tensor, beta: torch.Tensor, plan: SegmentPlan, param: torch.Tensor,
              momentum: torch.Tensor, hyper: torch.Tensor, ready: torch.Tensor, found_inf: torch.Tensor) -> None:
    """``backend``'s SGD apply for per-group ``hyper [G, 6]`` and ``ready [G]`` (every tensor of a group
    with its group's history): the rows come from the torch ``prepare``, as the solve would write them."""
    plan = plan.to(rows.device)
    state = ready.to(torch.float32)[list(plan.groups)].reshape(-1, 1).clone()
    active = torch.ones(plan.num_tensors, dtype=torch.bool, device=rows.device)
    table = prepare_rows(SGD, hyper, state, plan, active, hyper.dtype)
    backend.apply(SGD, rows, beta, tensor_plan(plan), param, [momentum], table, found_inf)


def load_through_bytes(source: tuple, target: tuple) -> None:
    """``target``'s (model, optimizer) := ``source``'s, through ``torch.save`` / ``torch.load`` of both
    state dicts (what a checkpoint file does: no tensor is shared between the two)."""
    (model, opt), (model2, opt2) = source, target
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer)
    model2.load_state_dict(saved["model"])
    opt2.load_state_dict(saved["opt"])


# ------------------------------------------------------------------------------ backend checker

_EPS = {torch.float64: 2.0 ** -52, torch.float32: 2.0 ** -23, torch.bfloat16: 2.0 ** -7, torch.float16: 2.0 ** -10}


def _close(actual: torch.Tensor, expected: torch.Tensor, scale: torch.Tensor, tol: float, what: str) -> None:
    """|actual - expected| <= tol * scale elementwise (scale: the magnitude the rounding acts on), plus
    the subnormal spacing of ``actual``'s dtype: float16 results below 6e-5 are rounded on that
    absolute grid, not relative to their size."""
    err = (actual.double() - expected).abs()
    bound = tol * scale + torch.finfo(actual.dtype).smallest_normal * torch.finfo(actual.dtype).eps
    worst = (err / bound).max().item() if err.numel() else 0.0
    assert worst <= 1.0, f"{what}: error {worst:.3g}x the bound {tol:.3g} (max abs error {err.max().item():.3g})"


def assert_backend_matches_reference(
    backend_name: str,
    plan: SegmentPlan,
    rows: torch.Tensor,
    beta: torch.Tensor,
    param: torch.Tensor,
    momentum: torch.Tensor,
    hyper: torch.Tensor,
    ready: torch.Tensor,
    alpha: float = 0.5,
) -> None:
    """Check ``backend_name``'s gram/combine/SGD apply/axpy against the reference run in float64 on
    the same (dtype-rounded) inputs, with bounds from the dtypes' unit roundoff.

    Tensors must already be on the device and in the dtypes the backend is asked to run (rows,
    params); ``beta``/``hyper``/``ready`` are float32 (the contract). Also checks that a set
    ``found_inf`` leaves parameter and momentum bitwise untouched and that padding stays zero.
    """
    backend = resolve_backend(backend_name, rows.device, rows.dtype, param.dtype)
    ref = get_backend("reference")
    plan = plan.to(rows.device)
    r64, b64 = rows.double(), beta.double()
    acc_eps = _EPS[torch.float64 if rows.dtype == torch.float64 else torch.float32]
    n_max = max(plan.numels) * len(plan.numels)

    stats = backend.gram(rows, plan)
    norms = torch.diagonal(ref.gram(r64, plan), dim1=1, dim2=2).sqrt()
    _close(stats, ref.gram(r64, plan), norms[:, :, None] * norms[:, None, :], 4 * acc_eps * n_max ** 0.5 + acc_eps,
           f"{backend_name}.gram")

    out = backend.combine(rows, beta, plan)
    assert out.dtype == rows.dtype and out.shape == (plan.total,), f"{backend_name}.combine: dtype/shape"
    abs_terms = ref.combine(r64.abs(), b64.abs(), plan)
    _close(out, ref.combine(r64, b64, plan), abs_terms, 2 * _EPS[rows.dtype] + 8 * acc_eps, f"{backend_name}.combine")
    _assert_padding_zero(out, plan, f"{backend_name}.combine")

    for skip in (1.0, 0.0):
        p, m = param.clone(), momentum.clone()
        found_inf = torch.tensor([skip], device=rows.device)
        apply_sgd(backend, rows, beta, plan, p, m, hyper, ready, found_inf)
        if skip:
            assert torch.equal(p, param) and torch.equal(m, momentum), f"{backend_name}.apply(SGD) wrote on found_inf"
            continue
        p64, m64 = param.double(), momentum.double()
        apply_sgd(ref, r64, b64, plan, p64, m64, hyper.double(), ready, torch.zeros(1, device=rows.device))
        scale = _sgd_scale(param.double(), momentum.double(), abs_terms, hyper.double(), plan)
        tol = 4 * _EPS[param.dtype] + 16 * acc_eps
        _close(p, p64, scale, tol, f"{backend_name}.apply(SGD) param")
        if momentum.numel():
            _close(m, m64, scale, tol, f"{backend_name}.apply(SGD) momentum")

    acc = param.clone()
    x = rows[0]
    backend.axpy(acc, x, alpha)
    _close(acc, param.double() + alpha * x.double(), param.double().abs() + abs(alpha) * x.double().abs(),
           2 * _EPS[param.dtype], f"{backend_name}.axpy")


def _assert_padding_zero(flat: torch.Tensor, plan: SegmentPlan, what: str) -> None:
    mask = torch.ones(plan.total, dtype=torch.bool, device=flat.device)
    for o, n in zip(plan.offsets, plan.numels):
        mask[o:o + n] = False
    assert not flat[mask].any(), f"{what}: padding was written"


def _sgd_scale(p: torch.Tensor, buf: torch.Tensor, g_abs: torch.Tensor, hyper: torch.Tensor,
               plan: SegmentPlan) -> torch.Tensor:
    """Per element, a bound on the magnitudes the update's roundings act on."""
    group = torch.zeros(plan.total, dtype=torch.long, device=p.device)
    for o, n, q in zip(plan.offsets, plan.numels, plan.groups):
        group[o:o + n] = q
    h = hyper[group]
    lr, mom, wd = (h[:, SGD.group_columns.index(c)] for c in ("lr", "momentum", "weight_decay"))
    grad = g_abs + wd * p.abs()
    b = (mom * (buf.abs() if buf.numel() else 0.0) + grad)
    return p.abs() + lr * (grad + b + mom * b) + b


@contextlib.contextmanager
def no_host_sync(monkeypatch):
    """Inside: every host-synchronising tensor method raises (a CPU-side stand-in for
    ``torch.cuda.set_sync_debug_mode("error")``)."""
    def forbidden(*args, **kwargs):
        raise AssertionError("host synchronisation inside step()")

    with monkeypatch.context() as patch:
        for name in ("item", "__bool__", "__float__", "__int__", "__index__", "tolist", "numpy", "cpu"):
            patch.setattr(torch.Tensor, name, forbidden)
        yield


def assert_steps_without_host_sync(opt, monkeypatch, steps: int = 2) -> None:
    """Run ``opt.step()`` with every host-synchronising tensor method made to raise."""
    with no_host_sync(monkeypatch):
        for _ in range(steps):
            opt.step()


# ---------------------------------------------------------------------------- optimizer loops
def objective_losses(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> Iterator[torch.Tensor]:
    """Three objectives (regress y, regress -y in L1, shrink outputs), one forward each, lazily:
    a caller that takes the first k pays for k forwards."""
    yield (model(x) - y).pow(2).mean()
    yield (model(x) + y).abs().mean()
    yield model(x).pow(2).sum(1).mean() * 0.1


def backward_objectives(opt, losses: Iterable[torch.Tensor], k: int | None = None) -> None:
    """``opt.zero_grad()``, then loss j backward into objective j's row (the first ``k`` losses)."""
    opt.zero_grad()
    for j, loss in enumerate(itertools.islice(losses, k)):
        with opt.objective(j):
            loss.backward()


# Configurations beyond each registered class's defaults (``make(k, seed)``).
COMPILED_VARIANTS = {
    "pcgrad_random": lambda k, seed: PCGrad("random", seed=seed),
    "project": lambda k, seed: Project(protect=seed % k),
    "mgda_frank_wolfe": lambda k, seed: MGDA(iterations=16, method="frank_wolfe"),
}


def _default(cls, k: int, seed: int):
    return cls()


def compiled_aggregators() -> dict:
    """name -> ``make(k, seed)`` for every registered aggregator (and variant) whose ``solver_spec`` is
    not None: the compiled solve's test registry (an aggregator joins it by returning a spec)."""
    cases = {name: functools.partial(_default, cls) for name, cls in AGGREGATORS.items()}
    cases.update(COMPILED_VARIANTS)
    return {name: make for name, make in sorted(cases.items()) if make(3, 0).solver_spec(3) is not None}

