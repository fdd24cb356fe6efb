"""Bad input fails early with ValueError/TypeError naming the offending argument."""

import pytest
import torch
from torch import nn

from ltu_fast import MGDA, HarmonizedSGD, PCGrad, Project, SegmentPlan, axpy, harmonize, harmonize_rows
from ltu_fast import aggregators as agg


def _params(*shapes, dtype=torch.float32):
    return [nn.Parameter(torch.zeros(s, dtype=dtype)) for s in shapes]


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"lr": -0.1}, ValueError, "lr"),
    ({"lr": float("nan")}, ValueError, "lr"),
    ({"lr": torch.ones(2)}, ValueError, "lr"),
    ({"lr": "0.1"}, TypeError, "lr"),
    ({"momentum": -0.9}, ValueError, "momentum"),
    ({"momentum": torch.tensor(0.9)}, TypeError, "momentum"),
    ({"dampening": -1.0}, ValueError, "dampening"),
    ({"weight_decay": -1e-4}, ValueError, "weight_decay"),
    ({"nesterov": True}, ValueError, "nesterov"),
    ({"nesterov": True, "momentum": 0.9, "dampening": 0.1}, ValueError, "nesterov"),
    ({"objectives": 0}, ValueError, "objectives"),
    ({"objectives": []}, ValueError, "objectives"),
    ({"objectives": ["a", "a"]}, ValueError, "objectives"),
    ({"aggregator": "gradnorm"}, ValueError, "aggregator"),
    ({"aggregator": 3}, ValueError, "aggregator"),
    ({"granularity": "block"}, ValueError, "granularity"),
    ({"granularity": [0]}, ValueError, "granularity"),
    ({"backend": "fortran"}, ValueError, "backend"),
    ({"backend": 1}, TypeError, "backend"),
    ({"objectives": 2, "weights": [1.0]}, ValueError, "weights"),
    ({"objectives": 2, "weights": [1.0, -1.0]}, ValueError, "weights"),
    ({"objectives": 2, "aggregator": Project(protect=2)}, ValueError, "protect"),
    ({"objectives": 2, "aggregator": Project(protect="retain")}, ValueError, "protect"),
    ({"objectives": 2, "aggregator": agg.UPGrad(pref_vector=[1.0, 2.0, 3.0])}, ValueError, "pref_vector"),
    ({"objectives": 3, "aggregator": agg.ConFIG(pref_vector=[1.0, 2.0])}, ValueError, "pref_vector"),
])
def test_optimizer_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        HarmonizedSGD(_params(3, (2, 2)), **kwargs)


def test_optimizer_params():
    with pytest.raises(ValueError, match="param"):
        HarmonizedSGD([])
    with pytest.raises(ValueError, match="params"):
        HarmonizedSGD([nn.Parameter(torch.zeros(2), requires_grad=False)])
    with pytest.raises(ValueError, match="params"):
        HarmonizedSGD(_params(3) + _params(2, dtype=torch.float64))
    with pytest.raises(ValueError, match="params"):
        HarmonizedSGD(_params(3) + [nn.Parameter(torch.zeros(2, device="meta"))])
    with pytest.raises(ValueError, match="params"):
        HarmonizedSGD(_params(3)).add_param_group({"params": _params(2, dtype=torch.float64)})
    with pytest.raises(ValueError, match="lr"):
        HarmonizedSGD(_params(3)).add_param_group({"params": _params(2), "lr": -1.0})


def test_sparse_gradient_assigned_to_a_parameter():
    p = nn.Parameter(torch.zeros(4))
    opt = HarmonizedSGD([p])
    p.grad = torch.zeros(4).to_sparse()
    with pytest.raises(TypeError, match="sparse"):
        opt.step()


def test_unknown_objective():
    opt = HarmonizedSGD(_params(3), objectives=("a", "b"))
    with pytest.raises(ValueError, match="objective"):
        opt.set_objective("c")
    with pytest.raises(ValueError, match="objective"):
        opt.grad_row(2)


@pytest.mark.parametrize(("make", "match"), [
    (lambda: agg.UPGrad(norm_eps=-1.0), "norm_eps"),
    (lambda: agg.UPGrad(reg_eps=0.0), "reg_eps"),
    (lambda: agg.UPGrad(iterations=0), "iterations"),
    (lambda: agg.UPGrad(pref_vector=[[1.0, 2.0]]), "pref_vector"),
    (lambda: agg.DualProj(pref_vector=[1.0, float("nan")]), "pref_vector"),
    (lambda: agg.DualProj(iterations=2.5), "iterations"),
    (lambda: agg.IMTLG(sweeps=0), "sweeps"),
    (lambda: agg.AlignedMTL(scale_mode="max"), "scale_mode"),
    (lambda: agg.CAGrad(c=-0.5), "c must"),
    (lambda: agg.CAGrad(norm_eps=-1.0), "norm_eps"),
    (lambda: agg.ConFIG(sweeps=True), "sweeps"),
    (lambda: agg.GradVac(beta=1.5), "beta"),
    (lambda: agg.GradVac(eps=-1.0), "eps"),
    (lambda: agg.GradVac(order="sorted"), "order"),
    (lambda: agg.NashMTL(max_norm=-1.0), "max_norm"),
    (lambda: agg.NashMTL(update_weights_every=0), "update_weights_every"),
    (lambda: agg.NashMTL(iterations=0), "iterations"),
    (lambda: agg.FairGrad(alpha=-1.0), "alpha"),
    (lambda: agg.FairGrad(alpha=float("inf")), "alpha"),
    (lambda: MGDA(method="fw"), "method"),
])
def test_gramian_aggregator_parameters(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_aggregator_options():
    with pytest.raises(ValueError, match="order"):
        PCGrad(order="sorted")
    with pytest.raises(ValueError, match="iterations"):
        MGDA(iterations=0)
    with pytest.raises(ValueError, match="gram"):
        PCGrad()(torch.zeros(2, 3))


def test_harmonize_inputs():
    g = [torch.zeros(3), torch.zeros(2, 2)]
    with pytest.raises(ValueError, match="grads"):
        harmonize([])
    with pytest.raises(ValueError, match=r"grads\[0\]"):
        harmonize([[]])
    with pytest.raises(ValueError, match=r"grads\[1\]"):
        harmonize([g, g[:1]])
    with pytest.raises(ValueError, match=r"grads\[1\]\[1\]"):
        harmonize([g, [torch.zeros(3), torch.zeros(4)]])
    with pytest.raises(ValueError, match=r"grads\[1\]\[0\]"):
        harmonize([g, [torch.zeros(3, dtype=torch.float64), torch.zeros(2, 2)]])
    with pytest.raises(TypeError, match=r"grads\[1\]\[0\]"):
        harmonize([g, [torch.zeros(3).to_sparse(), torch.zeros(2, 2)]])
    with pytest.raises(ValueError, match="weights"):
        harmonize([g, g], weights=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="granularity"):
        harmonize([g, g], granularity="module")


def test_harmonize_rows_inputs():
    plan = SegmentPlan.build([3, 5])
    with pytest.raises(ValueError, match="rows"):
        harmonize_rows(torch.zeros(2, plan.total + 1), plan)
    with pytest.raises(ValueError, match="rows"):
        harmonize_rows(torch.zeros(0, plan.total), plan)
    with pytest.raises(TypeError, match="rows"):
        harmonize_rows(torch.zeros(2, plan.total, dtype=torch.int32), plan)
    with pytest.raises(TypeError, match="rows"):
        harmonize_rows(torch.zeros(2, plan.total).to_sparse(), plan)
    with pytest.raises(ValueError, match="backend"):
        harmonize_rows(torch.zeros(2, plan.total), plan, backend="nope")


def test_plan_and_axpy_inputs():
    with pytest.raises(ValueError, match="numels"):
        SegmentPlan.build([])
    with pytest.raises(ValueError, match="numels"):
        SegmentPlan.build([3, 0])
    with pytest.raises(ValueError, match="segments"):
        SegmentPlan.build([3, 2], segments=[0])
    with pytest.raises(ValueError, match="groups"):
        SegmentPlan.build([3, 2], groups=[0, -1])
    with pytest.raises(ValueError, match="align_bytes"):
        SegmentPlan.build([3], align_bytes=6)
    plan = SegmentPlan.build([3])
    with pytest.raises(ValueError, match="flat"):
        plan.views(torch.zeros(plan.total + 1), [torch.Size([3])])
    with pytest.raises(ValueError, match="tensors"):
        plan.flatten([torch.zeros(4)])
    with pytest.raises(ValueError, match="x"):
        axpy(torch.zeros(3), torch.zeros(4))
