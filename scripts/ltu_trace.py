"""Per-iteration traces of LTU on tuning seeds: why a random-forgetting result lands where it does.

For each seed, LTU runs at the setting's tuned defaults (``defaults.json``) under ``--set``
overrides, and before every outer step (and after the last) the trace records, without the test
split: the validation metrics of ``ltu-fast tune`` (UA on forget, RA on the whole retain set, VA
on ``heldout``, MIA-efficacy with the retain set vs ``heldout``, FC = the forget set's mean
true-class probability) and their gap to Retrain's; mean cross-entropy on forget / heldout; the attackers' MIA
loss and member rate on the whole forget set; the norms of the support forgetting gradient, the
MIA feedback (raw and as added), the two rows and their cosine; the step gate, the last step's
conflict rate and step length, and the distance from the original. The traced run is the untraced
one (same generators; checked: its final metrics equal a plain ``unlearn`` call's). The other
methods named by ``--compare`` run at their tuned defaults on the same seeds, for the final table.

    PYTHONPATH=$PWD python scripts/ltu_trace.py --seeds 100 101 102 103 104 --retain-access 0.1 \
        --out /tmp/trace.json [--set lr=0.025 momentum=0.5] [--compare iau ft]

Refuses seeds 0-19 (the reported ones and those kept for studies of the references).
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
from pathlib import Path
from typing import Any

import numpy as np
import torch
from seed_setting import add_setting_args, seed_config

from ltu_fast.cli import _key_values
from ltu_fast.unlearn.assess import VAL, VAL_KEYS, Baseline, unlearn, validation_metrics
from ltu_fast.unlearn.ltu import LTU
from ltu_fast.unlearn.metrics import avg_gap, model_outputs
from ltu_fast.unlearn.mia_models import logits_of
from ltu_fast.unlearn.runner import ExperimentConfig

RESERVED = range(20)  # the reported seeds (0-4 today, 0-19 kept for studies of the references)


def state_metrics(model: torch.nn.Module, splits, retrain_val: dict[str, float] | None) -> dict[str, float]:
    """The tuner's validation metrics (+ gap to Retrain's) and the mean losses."""
    out = validation_metrics(model, splits)
    if retrain_val is not None:
        out["gap"] = avg_gap(out, retrain_val, VAL_KEYS)
    for key, split in (("loss_f", splits.forget), ("loss_h", splits.heldout)):
        out[key] = float(np.mean(model_outputs(model, split)[2]))
    return out


class TracedLTU(LTU):
    """LTU that records its state before every outer step (see the module docstring)."""

    def __init__(self, splits, retrain_val: dict[str, float], **kwargs: Any):
        super().__init__(**kwargs)
        self.splits, self.retrain_val, self.rows, self._now = splits, retrain_val, [], {}

    def build_optimizer(self, model):
        opt, flat = super().build_optimizer(model)
        self.origin, self.model, self.opt = opt.flat_params.detach().clone(), model, opt
        self._previous, self.mia = None, None
        return opt, flat

    def unlearn(self, model, task):
        result = super().unlearn(model, task)
        self._record(self.opt, self.mia)  # the state after the last step
        self.rows.append(self._now)
        return result

    def meta_gradients(self, model, opt, flat_model, batch, mia, *args, **kwargs):
        self.mia = mia
        self._record(opt, mia)
        super().meta_gradients(model, opt, flat_model, batch, mia, *args, **kwargs)
        f, r = opt.grad_row("forget"), opt.grad_row("remember")
        self._now.update(forget_row=f.norm().item(), remember_row=r.norm().item(),
                         cosine=(f @ r / (f.norm() * r.norm()).clamp_min(1e-12)).item())
        if mia is None:  # no feedback: the forget row is the support gradient alone
            self._now["support_forget"] = self._now["forget_row"]
        self._previous = opt.flat_params.detach().clone()

    def mia_scale(self, opt, mia_grad):
        scale = super().mia_scale(opt, mia_grad)
        support = opt.grad_row("forget" if self.forget_loss != "mia" else "remember").norm().item()
        self._now.update(support_forget=support, mia_raw=mia_grad.norm().item(),
                         mia_added=float(scale) * mia_grad.norm().item())
        return scale

    def step_gate(self, forward, x, y, target, *args):
        gate = super().step_gate(forward, x, y, target, *args)
        self._now["gate"] = float(gate)
        return gate

    def _record(self, opt, mia) -> None:
        """Close the previous iteration's row (its step) and open this one with the current state."""
        if self._previous is not None:
            self._now.update(step=(opt.flat_params - self._previous).norm().item(), conflict=opt.conflict_rate())
            self.rows.append(self._now)
        row = {"it": len(self.rows), **state_metrics(self.model, self.splits, self.retrain_val),
               "distance": (opt.flat_params - self.origin).norm().item()}
        if mia is not None:
            logits = logits_of(self.model, self.splits.forget, opt.flat_params.device)
            y = self.splits.forget.labels().to(logits.device)
            row.update(mia_loss=mia.nonmember_loss(logits, y).item(), member_rate=mia.member_rate(logits, y))
        self._now = row


def trace_seed(config: ExperimentConfig, seed: int, overrides: dict[str, Any], compare: list[str]) -> dict[str, Any]:
    base = Baseline.of(config, seed, VAL)
    splits, task, original = base.splits, base.task, base.original
    ref = {"retrain": state_metrics(base.references["retrain"].model, splits, None)}
    ref["original"] = state_metrics(original, splits, ref["retrain"])
    tuned = config.resolved_kwargs()[0]
    kwargs = {**tuned.get("ltu", {}), **overrides}
    algo = TracedLTU(splits, ref["retrain"], **kwargs)
    torch.manual_seed(task.seed)  # as runner.unlearn
    result = algo.unlearn(copy.deepcopy(original), task)
    plain = state_metrics(unlearn(original, task, "ltu", **kwargs).model, splits, ref["retrain"])
    if abs(plain["gap"] - algo.rows[-1]["gap"]) > 1e-9:
        raise RuntimeError(f"seed {seed}: the traced run differs from the plain one "
                           f"({algo.rows[-1]['gap']} vs {plain['gap']})")
    others = {m: state_metrics(unlearn(original, task, m, **tuned.get(m, {})).model, splits, ref["retrain"])
              for m in compare}
    return {"seed": seed, "ltu_kwargs": kwargs, "references": ref, "trace": algo.rows, "others": others,
            "mia_heldout_accuracy": result.info.get("mia_heldout_accuracy")}


def print_seed(rec: dict[str, Any], every: int) -> None:
    ref, rows = rec["references"], rec["trace"]
    keys = ("gap", "UA", "RA", "VA", "MIA", "FC", "loss_f", "loss_h")
    print(f"\nseed {rec['seed']}  ltu {rec['ltu_kwargs']}  attackers' held-out acc. "
          f"{rec['mia_heldout_accuracy'] and [round(a, 2) for a in rec['mia_heldout_accuracy']]}")
    print("  " + " ".join(f"{k:>7}" for k in ("it", *keys, "mia_loss", "gate", "|sf|", "|mia|", "|mia+|",
                                               "|rem|", "cos", "confl", "step", "dist")))
    for name in ("retrain", "original"):
        print(f"  {name[:7]:>7} " + " ".join(f"{ref[name].get(k, 0.0):7.2f}" for k in keys))
    for row in rows:
        if row["it"] % every and row is not rows[-1]:
            continue
        extra = [row.get(k, float("nan")) for k in ("mia_loss", "gate", "support_forget", "mia_raw", "mia_added",
                                                   "remember_row", "cosine", "conflict", "step", "distance")]
        print(f"  {row['it']:7d} " + " ".join(f"{row[k]:7.2f}" for k in keys) + " "
              + " ".join(f"{v:7.3f}" for v in extra))
    for name, m in rec["others"].items():
        print(f"  {name[:7]:>7} " + " ".join(f"{m.get(k, 0.0):7.2f}" for k in keys))


def print_summary(records: list[dict[str, Any]]) -> None:
    """Per seed: final val gap of LTU, the original and the compared methods; LTU's best gap along
    the trajectory (what an oracle stop would give) and where."""
    names = list(records[0]["others"])
    print("\n| seed | original | ltu (final) | ltu best along the run (it) | " + " | ".join(names) + " |")
    print("|---" * (4 + len(names)) + "|")
    for rec in records:
        gaps = [r["gap"] for r in rec["trace"]]
        best = int(np.argmin(gaps))
        print(f"| {rec['seed']} | {rec['references']['original']['gap']:.2f} | {gaps[-1]:.2f} | {gaps[best]:.2f} "
              f"({best}) | " + " | ".join(f"{rec['others'][m]['gap']:.2f}" for m in names) + " |")
    col = lambda f: statistics.fmean(f(r) for r in records)
    print(f"| mean | {col(lambda r: r['references']['original']['gap']):.2f} | {col(lambda r: r['trace'][-1]['gap']):.2f}"
          f" | {col(lambda r: min(x['gap'] for x in r['trace'])):.2f} | "
          + " | ".join(f"{col(lambda r, m=m: r['others'][m]['gap']):.2f}" for m in names) + " |")
    print("\n| seed | final UA / RA / VA / MIA / FC (Retrain's) | steps with no forgetting push | mean |sf| | "
          "mean |rem| | mean step | distance | attackers' acc. | MIA loss first → last |\n" + "|---" * 9 + "|")
    for rec in records:
        steps, last, ref = rec["trace"][:-1], rec["trace"][-1], rec["references"]["retrain"]
        mean = lambda k, steps=steps: statistics.fmean(r.get(k, float("nan")) for r in steps)
        acc = rec["mia_heldout_accuracy"]
        mia = f"{steps[0]['mia_loss']:.3f} → {last['mia_loss']:.3f}" if "mia_loss" in last else "–"
        print(f"| {rec['seed']} | " + " / ".join(f"{last[k]:.2f} ({ref[k]:.2f})" for k in ("UA", "RA", "VA", "MIA", "FC"))
              + f" | {sum(r.get('support_forget', 0.0) == 0.0 for r in steps)}/{len(steps)} | {mean('support_forget'):.3f}"
              f" | {mean('remember_row'):.3f} | {mean('step'):.3f} | {last['distance']:.2f} | "
              f"{statistics.fmean(acc) if acc else float('nan'):.2f} | {mia} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_setting_args(p)
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="LTU overrides of the tuned defaults")
    p.add_argument("--compare", nargs="*", default=["iau", "ft"], help="methods at their tuned defaults")
    p.add_argument("--every", type=int, default=1, help="print every n-th iteration (all are stored)")
    p.add_argument("--out", type=Path, help="JSON file for the traces")
    args = p.parse_args()
    config = seed_config(args, RESERVED)
    records = []
    for seed in args.seeds:
        records.append(trace_seed(config, seed, _key_values(args.set, "--set"), args.compare))
        print_seed(records[-1], args.every)
        if args.out:
            args.out.write_text(json.dumps(records, indent=1))
    print_summary(records)


if __name__ == "__main__":
    main()
