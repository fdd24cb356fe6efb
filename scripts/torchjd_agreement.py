"""How closely ltu_fast's aggregators reproduce torchjd 0.18, and what the fixed trip counts need.

    PYTHONPATH=$PWD python scripts/torchjd_agreement.py              # deviations and residuals
    PYTHONPATH=$PWD python scripts/torchjd_agreement.py --trips      # iterations the solvers need

Deviations: ``max |d - d_torchjd| / max(|J|_F, max |d_torchjd|)`` of the aggregated vector per
aggregator and kind of torchjd's test inputs (tests/jd_matrices.py, the inputs of
tests/test_torchjd.py; PCGrad/GradVac with torchjd's random orders fixed to the identity), plus
"solvable": inputs where Nash-MTL's and FairGrad's equation has a solution (elsewhere neither
library's answer is a solution of anything, and they differ).
Residuals: the backward error of ``G w = w^(-p)``, ``max_i |(Gw)_i - w_i^-p| / ((|G||w|)_i + w_i^-p)``,
for Nash-MTL (unclipped, p = 1) and FairGrad on inputs where a solution exists. Trips: per K, the
largest number of active-set iterations / Jacobi sweeps / Newton steps after which the result no
longer changes (to 1e-13), Jacobi sweeps until the off-diagonal is below 1e-14 of the matrix,
Newton steps (before the 4 polishing ones) until the backward error is below 1e-14, over random
and torchjd-kind inputs. Needs torchjd and its solvers
(see .ci/run).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from jd_matrices import non_weak, normal, solvable_inputs, strictly_weak, strong, torchjd_inputs

from ltu_fast import aggregators as agg
from ltu_fast.aggregators._eigen import symmetric_eigen
from ltu_fast.aggregators._newton import power_equation
from ltu_fast.aggregators._qp import nonnegative_qp, simplex_minimize


def _pairs(tj) -> dict:
    return {
        "upgrad": (agg.UPGrad, lambda k: tj.UPGrad()), "dualproj": (agg.DualProj, lambda k: tj.DualProj()),
        "imtl_g": (agg.IMTLG, lambda k: tj.IMTLG()), "aligned_mtl": (agg.AlignedMTL, lambda k: tj.AlignedMTL()),
        "cagrad": (agg.CAGrad, lambda k: tj.CAGrad(c=0.5)), "config": (agg.ConFIG, lambda k: tj.ConFIG()),
        "gradvac": (lambda: agg.GradVac(order="fixed"), lambda k: tj.GradVac()), "pcgrad": (agg.PCGrad, lambda k: tj.PCGrad()),
        "mgda": (agg.MGDA, lambda k: tj.MGDA()), "nash_mtl": (agg.NashMTL, lambda k: tj.NashMTL(n_tasks=k)),
        "fairgrad": (agg.FairGrad, lambda k: tj.FairGrad(alpha=1.0)),
    }


def _backward_error(gram: torch.Tensor, w: torch.Tensor, p: float) -> float:
    w = w.to(torch.float64)
    target = w.clamp_min(1e-300).pow(-p)
    return float((((gram @ w) - target).abs() / ((gram.abs() @ w.abs()) + target)).max())


def _torchjd(theirs, j: torch.Tensor, randperm) -> torch.Tensor | None:
    """torchjd's aggregation with identity visit orders; None where it raises (its Nash-MTL does on
    K = 1, zero and scaled inputs)."""
    torch.randperm = lambda n, *a, **kw: torch.arange(n)
    try:
        return theirs(j.shape[0])(j)
    except ValueError:
        return None
    finally:
        torch.randperm = randperm


def deviations() -> None:
    import torchjd.aggregation as tj
    from torchjd.aggregation._nash_mtl import _NashMTLWeighting

    inputs = {**torchjd_inputs(), "solvable": solvable_inputs()}
    randperm = torch.randperm
    print("| aggregator | " + " | ".join(inputs) + " |\n|---|" + "---|" * len(inputs))
    for name, (ours, theirs) in _pairs(tj).items():
        cells = []
        for mats in inputs.values():
            worst = 0.0
            for j in mats:
                want = _torchjd(theirs, j, randperm)
                if want is None:
                    continue
                got = ours()((j @ j.T)[None])[0] @ j
                scale = max(float(j.norm()), float(want.abs().max()), 1e-300)
                worst = max(worst, float((got - want).abs().max()) / scale)
            cells.append(f"{worst:.1e}")
        print(f"| {name} | " + " | ".join(cells) + " |")
    print("\nbackward error of G w = w^-p on solvable inputs (max / median):")
    mats = solvable_inputs()
    for name, p, ours, theirs in (
        ("nash_mtl", 1.0, lambda g: agg.NashMTL(max_norm=0.0)(g[None])[0],
         lambda j: _NashMTLWeighting(n_tasks=j.shape[0], max_norm=0.0, update_weights_every=1, optim_niter=20)(j)),
        *((f"fairgrad alpha={a}", 1 / a, lambda g, a=a: agg.FairGrad(a)(g[None])[0],
           lambda j, a=a: tj.FairGrad(alpha=a).gramian_weighting(j @ j.T)) for a in (0.5, 1.0, 2.0)),
    ):
        mine = torch.tensor([_backward_error(j @ j.T, ours(j @ j.T), p) for j in mats])
        theirs_ = torch.tensor([_backward_error(j @ j.T, theirs(j), p) for j in mats])
        print(f"  {name}: ours {mine.max():.1e} / {mine.median():.1e}; torchjd {theirs_.max():.1e} / {theirs_.median():.1e}")


def _needed(run, limit: int) -> int:
    """Largest per-problem count after which ``run(n)`` stops changing (to 1e-13)."""
    outs = [run(n) for n in range(1, limit + 1)]
    return _first(lambda n: (outs[n - 1] - outs[-1]).flatten(1).abs().amax(-1) <= 1e-13, limit)


def _first(done, limit: int) -> int:
    """Largest over the problems of the first count n with ``done(n)`` true from then on."""
    need = torch.full(done(limit).shape, limit)
    for n in range(limit - 1, 0, -1):
        need = torch.where(done(n) & (need == n + 1), n, need)
    return int(need.max())


def _off_diagonal(matrix: torch.Tensor, sweeps: int) -> torch.Tensor:
    """Largest off-diagonal entry of ``V^T A V`` after ``sweeps`` Jacobi sweeps, relative to ``|A|``."""
    _, vectors = symmetric_eigen(matrix, sweeps)
    rotated = vectors.transpose(-1, -2) @ matrix @ vectors
    off = rotated - torch.diag_embed(rotated.diagonal(dim1=-2, dim2=-1))
    return off.flatten(1).abs().amax(-1) / matrix.flatten(1).abs().amax(-1).clamp_min(1e-300)


def _trip_row(k: int, count: int, gen: torch.Generator) -> str:
    """One table row: the trip counts K objectives need, over ``count`` problems of every kind."""
    samplers = (normal, strong, strictly_weak, non_weak)
    mats = []
    for i in range(count):
        p = int(torch.randint(1, 2 * k + 3, (), generator=gen))
        sampler = samplers[i % 4] if k > 2 or i % 4 in (0, 3) else normal
        top = min(k - 1 if sampler in (strong, strictly_weak) else k, p)
        mats.append(sampler(k, p, int(torch.randint(1, top + 1, (), generator=gen)), gen))
    gram = torch.stack([j @ j.T for j in mats])
    normed = gram / gram.diagonal(dim1=1, dim2=2).sum(-1).clamp_min(1e-300)[:, None, None]
    q_matrix = normed + 1e-4 * torch.eye(k, dtype=torch.float64)
    which = torch.randint(0, k, (count,), generator=gen)
    bounds = torch.nn.functional.one_hot(which, k).to(torch.float64) / k  # UPGrad: one of its K QPs
    mean = torch.full((count, k), 1.0 / k, dtype=torch.float64)
    zero, one = torch.zeros(count, k, dtype=torch.float64), torch.ones(count, dtype=torch.float64)
    b = normed.sum(-1) / k
    radius = 0.5 * (b.sum(-1) / k).clamp_min(0).sqrt()
    solvable = torch.stack([j @ j.T for j in (non_weak(k, k + 2, k, gen) for _ in range(count))])
    limit = 3 * k + 6
    upgrad = _needed(lambda n: nonnegative_qp(q_matrix, (q_matrix @ bounds[..., None])[..., 0], n), limit)
    dualproj = _needed(lambda n: nonnegative_qp(q_matrix, (q_matrix @ mean[..., None])[..., 0], n), limit)
    simplex = max(_needed(lambda n: simplex_minimize(normed, zero, one, n), limit),
                  _needed(lambda n: simplex_minimize(normed, b, radius, n), limit))
    sweeps = _first(lambda n: _off_diagonal(normed, n) <= 1e-14, 12)
    newton = _first(lambda n: torch.tensor([_backward_error(g, w, 1.0) <= 1e-14
                                            for g, w in zip(solvable, power_equation(solvable, 1.0, n))]), 30)
    return f"| {k} | {upgrad} | {dualproj} | {simplex} | {sweeps} | {newton} |"


def trips(count: int) -> None:
    gen = torch.Generator().manual_seed(0)
    print("| K | UPGrad QP | DualProj QP | MGDA / CAGrad simplex | Jacobi sweeps | Newton (Nash) |\n"
          "|---|---|---|---|---|---|")
    for k in range(2, 9):
        print(_trip_row(k, count, gen), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trips", action="store_true", help="measure the trip counts the solvers need")
    parser.add_argument("--count", type=int, default=500, help="random problems per K for --trips")
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    trips(args.count) if args.trips else deviations()
