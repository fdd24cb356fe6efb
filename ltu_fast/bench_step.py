"""Full training step, small batches (LTU's inner loop): plain vs harmonized vs hand-written torch.

    ltu-fast bench step                                 # the three cases below, CPU or GPU
    ltu-fast bench step --cases cnn --rounds 200

One step = forward of a forget and a retain batch, backward, SGD momentum update:
  * ``plain``:     the two losses summed, one backward, ``torch.optim.SGD(foreach=True)``;
  * ``harmonized``: one backward per objective into :class:`HarmonizedSGD`'s rows, PCGrad per layer;
  * ``foreach``:   ``torch.autograd.grad`` per objective, per-layer PCGrad written with ``_foreach``
                   ops (no host sync), ``.grad`` set, ``torch.optim.SGD(foreach=True)``.
Each contender trains its own copy of one model (same initial weights) on the same batches;
rounds are interleaved (each round runs every contender once, the order rotating from round to
round) so load from other processes hits all alike; the table shows median times and, per contender, the median over rounds of its time
divided by ``plain``'s in the same round (paired, so slow drifts of the load cancel). "opt X"
is contender X's time outside forward and backward (zero_grad, objective switches, the
harmonization, the update): the overhead harmonizing can change. The last two columns time, on the harmonized optimizer, a K x P zero fill of its rows (the cost
``zero_grad`` no longer pays by default) against ``opt.step()`` alone.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .optim import HarmonizedSGD
from .unlearn.models import MLP, ResNet18, SmallCNN

LR, MOMENTUM = 0.01, 0.9

# name -> (model factory, input shape, classes, batch per objective)
CASES: dict[str, tuple[Callable[[], nn.Module], tuple[int, ...], int, int]] = {
    "cnn": (lambda: SmallCNN(1, 10), (1, 28, 28), 10, 16),  # the unlearning default (MNIST)
    "resnet18": (lambda: ResNet18(3, 10), (3, 32, 32), 10, 8),
    "mlp25m": (lambda: MLP(3072, 10, hidden=3712), (3072,), 10, 8),  # 25.2M parameters
}


def _pcgrad_foreach(grads_f: list[torch.Tensor], grads_r: list[torch.Tensor]) -> list[torch.Tensor]:
    """Per-layer PCGrad for K = 2 with _foreach ops: dots from norms, closed form, no host sync."""
    nf = torch.stack(torch._foreach_norm(grads_f)) ** 2
    nr = torch.stack(torch._foreach_norm(grads_r)) ** 2
    both = torch.stack(torch._foreach_norm(torch._foreach_add(grads_f, grads_r))) ** 2
    d = (both - nf - nr) / 2
    conflict = d < 0
    a = 1 - torch.where(conflict & (nr > 0), d / nr.clamp_min(1e-30), torch.zeros_like(d))
    b = 1 - torch.where(conflict & (nf > 0), d / nf.clamp_min(1e-30), torch.zeros_like(d))
    scaled_f = torch._foreach_mul(grads_f, list(a.unbind()))
    torch._foreach_add_(scaled_f, torch._foreach_mul(grads_r, list(b.unbind())))
    return scaled_f


class _Contender:
    def __init__(self, name: str, model: nn.Module):
        self.name, self.model = name, model
        params = list(model.parameters())
        if name == "harmonized":
            self.opt = HarmonizedSGD(params, lr=LR, momentum=MOMENTUM, objectives=("forget", "retain"),
                                     aggregator="pcgrad")
        else:
            self.opt = torch.optim.SGD(params, lr=LR, momentum=MOMENTUM, foreach=True)
        self.params = params
        self.sync = torch.cuda.synchronize if params[0].is_cuda else (lambda: None)

    def step(self, xf, yf, xr, yr) -> float:
        """One training step; returns the ms spent outside forward/backward (the optimizer's share)."""
        model, opt = self.model, self.opt
        clock = time.perf_counter
        t0 = clock()
        opt.zero_grad()
        spent = clock() - t0
        loss_f = F.cross_entropy(model(xf), yf)
        loss_r = F.cross_entropy(model(xr), yr)
        if self.name == "plain":
            (loss_f + loss_r).backward()
        elif self.name == "harmonized":  # set_objective: the context manager's calls, timed one by one
            for objective, loss in (("forget", loss_f), ("retain", loss_r), ("forget", None)):
                t0 = clock()
                opt.set_objective(objective)
                spent += clock() - t0
                if loss is not None:
                    loss.backward()
        else:
            grads_f = torch.autograd.grad(loss_f, self.params)
            grads_r = torch.autograd.grad(loss_r, self.params)
            t0 = clock()
            for p, g in zip(self.params, _pcgrad_foreach(list(grads_f), list(grads_r))):
                p.grad = g
            spent += clock() - t0
        t0 = clock()
        opt.step()
        self.sync()
        return (spent + clock() - t0) * 1e3


def bench_case(name: str, device: torch.device, rounds: int, warmup: int, contenders: list[str]) -> dict:
    factory, shape, classes, batch = CASES[name]
    torch.manual_seed(0)
    base = factory().to(device)
    runners = [_Contender(c, copy.deepcopy(base)) for c in contenders]
    gen = torch.Generator(device=device).manual_seed(1)
    batches = [(torch.randn(batch, *shape, generator=gen, device=device),
                torch.randint(0, classes, (batch,), generator=gen, device=device)) for _ in range(4)]
    times: dict[str, list[float]] = {c: [] for c in contenders}
    opt_times: dict[str, list[float]] = {c: [] for c in contenders}
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for r in range(warmup + rounds):
        (xf, yf), (xr, yr) = batches[r % 2], batches[2 + r % 2]
        for runner in runners[r % len(runners):] + runners[:r % len(runners)]:  # rotated: no fixed neighbour
            sync()
            t0 = time.perf_counter()
            opt_ms = runner.step(xf, yf, xr, yr)
            sync()
            if r >= warmup:
                times[runner.name].append((time.perf_counter() - t0) * 1e3)
                opt_times[runner.name].append(opt_ms)
    fill_ms, step_ms = _fill_vs_step(next((r.opt for r in runners if r.name == "harmonized"), None), rounds, sync)
    params = sum(p.numel() for p in base.parameters())
    paired = {c: statistics.median(a / b for a, b in zip(t, times[contenders[0]])) for c, t in times.items()}
    return {"case": name, "params_m": params / 1e6, "tensors": len(list(base.parameters())), "batch": batch,
            "ms": {c: statistics.median(t) for c, t in times.items()}, "paired": paired,
            "opt_ms": {c: statistics.median(t) for c, t in opt_times.items()},
            "fill_ms": fill_ms, "step_ms": step_ms}


def _fill_vs_step(opt: HarmonizedSGD | None, rounds: int, sync: Callable[[], None]) -> tuple[float, float]:
    """Median ms of a K x P zero fill of the rows (what zero_grad(set_to_none=False) does) and of
    ``opt.step()`` alone, interleaved, on the rows the last round left."""
    if opt is None:
        return float("nan"), float("nan")
    fill, step = [], []
    for _ in range(rounds):
        for fn, out in ((opt._rows.zero_, fill), (opt.step, step)):
            sync()
            t0 = time.perf_counter()
            fn()
            sync()
            out.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(fill), statistics.median(step)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="ltu-fast bench step", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    parser.add_argument("--contenders", nargs="+", choices=["plain", "harmonized", "foreach"],
                        default=["plain", "harmonized", "foreach"])
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"device {torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}; "
          f"threads {torch.get_num_threads()}; torch {torch.__version__}; medians of {args.rounds} interleaved rounds")
    print(f"{'case':<10}{'params':>8}{'T':>4}{'batch':>7}" + "".join(f"{c:>13}" for c in args.contenders)
          + "".join(f"{c + '/' + args.contenders[0]:>18}" for c in args.contenders[1:])
          + "".join(f"{'opt ' + c:>16}" for c in args.contenders) + f"{'KxP fill':>11}{'opt.step':>11}")
    for case in args.cases:
        r = bench_case(case, device, args.rounds, args.warmup, args.contenders)
        ms = r["ms"]
        ratios = "".join(f"{r['paired'][c]:>17.3f}x" for c in args.contenders[1:])
        print(f"{case:<10}{r['params_m']:>7.1f}M{r['tensors']:>4}{r['batch']:>4}+{r['batch']:<2}"
              + "".join(f"{ms[c]:>10.2f} ms" for c in args.contenders) + ratios
              + "".join(f"{r['opt_ms'][c]:>13.2f} ms" for c in args.contenders)
              + f"{r['fill_ms']:>8.2f} ms{r['step_ms']:>8.2f} ms")


if __name__ == "__main__":
    main()
