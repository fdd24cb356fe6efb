"""Learning-to-Unlearn (Huang, Foo, Liu, ECCV'24): meta-tune, meta-test and meta-update (docs/methods.md, "LTU").

Per meta-iteration, with S_r, Q_r disjoint batches of ``retain_access`` and S_f, Q_f disjoint
batches of ``forget`` (Q_f is the audit batch):
  meta-tune    theta' = theta - alpha * harmonize(grad L_fgt(theta; S_f), grad L_rem(theta; S_r))
  meta-test    L_rem(theta'; Q_r) and L_mia(theta'; Q_f) (K attackers, target "non-member")
  meta-update  rows["forget"]   = grad L_fgt(S_f) + grad L_mia(theta'; Q_f)
               rows["remember"] = grad L_rem(S_r) + grad L_rem(theta'; Q_r)
               HarmonizedSGD.step()  (harmonizes the two rows per segment, one fused update)
Query gradients are first order by default (taken at theta', added to theta's rows); the
``second_order`` option differentiates through the meta-tune step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..aggregators import Aggregator, Project, make_aggregator
from ..functional import axpy, harmonize_rows
from ..optim import HarmonizedSGD
from .api import UnlearnMethod, UnlearnResult, UnlearnTask, register_method
from .baselines._loop import generator, random_other_labels
from .meta import FlatModel, Loss
from .mia_models import MIAEnsemble, features_of, logits_of, output_features, train_mia_ensemble
from .splits import concat_splits

OBJECTIVES = ("forget", "remember")
FORGET_LOSSES = ("ascent", "gated_ascent", "random_label", "mia")
NEEDS_MIA = ("gated_ascent", "mia")
MIA_MEMBERS = ("retain", "retain+forget")
CLASS_TARGETS = ("nearest", "ascent")
ASCENT_TARGETS = ("heldout", "none", "match")
FORGET_BATCHES = ("work", "uniform")
DISTILL_T = 4.0  # temperature of the remembering distillation (as in SCRUB)
RELABEL_LEVEL = math.log(2.0)  # a relabelled sample is done once its new class holds half the probability


@dataclass
class ForgetTarget:
    """Where forgetting should stop: classes removed wholesale ([C] bool); the mean capped ascent
    loss of non-members (``ascent_target="heldout"``, a 0-d device tensor, or None for no such
    stop); with ``ascent_target="match"``, per forget sample ([N_f], indexed like ``task.forget``):
    its own ascent cap, whether it is to be moved to its nearest other class, and how likely a
    batch is to draw it (its remaining work)."""

    removed: torch.Tensor
    level: torch.Tensor | None = None
    caps: torch.Tensor | None = None
    flip: torch.Tensor | None = None
    weights: torch.Tensor | None = None


def make_ltu_aggregator(spec: str | Aggregator) -> Aggregator:
    """``"project"`` protects the remembering gradient; other names as in :mod:`ltu_fast.aggregators`."""
    if spec == "project":
        return Project(protect=OBJECTIVES.index("remember"))
    return make_aggregator(spec)


@register_method
class LTU(UnlearnMethod):
    """Meta-learned unlearning with MIA feedback and gradient harmonization.

    Args:
        iterations: meta-iterations. batch_size: size of each of S_r, Q_r, S_f, Q_f.
        inner_lr: alpha of the meta-tune step. lr, momentum, weight_decay: the outer HarmonizedSGD.
        forget_loss: support forgetting loss: ``"ascent"`` (-CE, per-sample clipped at
            ``ascent_bound`` so confidently-forgotten samples stop pushing), ``"gated_ascent"``
            (the same, per sample weighted by the attackers' member probability, so it stops once a
            sample looks like a non-member), ``"random_label"`` (CE to a random wrong label) or
            ``"mia"`` (none: the MIA feedback alone). ``"gated_ascent"`` and ``"mia"`` need ``num_mia >= 1``.
        ascent_target: ``"match"`` (default): every forget sample gets the held-out loss of the
            same rank as its own target (the forget set should end up distributed like unseen data,
            as under Retrain): ascent capped at that loss, or, where the held-out sample of that
            rank is misclassified, the nearest-other-class target (:meth:`matched_target`);
            ``ascent_bound`` is then unused. ``"heldout"``: ascent capped at ``ascent_bound``, off
            while the forget batch's mean capped loss is at least that of the held-out non-members
            under the original (it can flip no prediction: the earlier default). ``"none"``: capped
            ascent that never stops.
        forget_batches: with ``ascent_target="match"``, ``"work"`` draws S_f and Q_f in proportion to
            each sample's work left at the start, ``"uniform"`` uniformly (as every other target; also
            what ``"work"`` does when every forget sample is of a removed class: all must move).
        class_target, class_bound: the target for samples of a class removed wholesale (see
            ``forgetting_loss``) and the ascent cap of ``class_target="ascent"``.
        mia_weight: weight of L_mia in the forget row; with ``mia_calibrate`` its norm is also capped
            at ``mia_weight`` times the support forgetting gradient's. num_mia: attackers (0 disables
            feedback). mia_steps: at most this many attacker steps, kept at the best held-out
            accuracy. mia_members: the attackers' members, ``"retain"`` (retain_access) or
            ``"retain+forget"``.
        distill: weight of a KL-to-the-original term (temperature 4) in the remembering losses.
        aggregator: ``"project"`` (protect remembering) or any registered name (``"pcgrad"``, ``"sum"``,
            ``"mgda"``, ``"upgrad"``, ... : ``ltu_fast.aggregators.AGGREGATORS``).
        granularity: harmonization segments: ``"layer"``, ``"module"`` or ``"global"``.
        forget_weight: objective weight of the forget row relative to remembering.
        second_order: differentiate through the meta-tune step (costs about 2x per iteration).
        stop_at_target: skip the whole step (remembering and the momentum's carry too: an lr of 0,
            on the device) while the forget batch is at its target (``"heldout"``: its mean level;
            ``"match"``: every sample at its own); the ascent gate alone lets momentum and
            remembering keep moving a model already forgotten.
    """

    name = "ltu"
    # What `ltu-fast tune` searches: a 12-point grid, the same budget as every baseline's, so no draw.
    # Held, from traces and screens on tuning seeds (docs/methods.md, "LTU in random forgetting"): the
    # rank-matched target (the mean held-out level flips no prediction, so random forgetting only
    # moved by drift) and momentum 0.5 (0.9 overshoots in both modes: random forgetting with the
    # matched target, validation gap 1.4-4.2 against 0.9-1.1; a removed class to p ~ 1e-9).
    # Searched: the step and how long it is taken, which set the share of the forget set relabelled.
    search_space: ClassVar[dict[str, tuple]] = {"lr": (0.01, 0.015, 0.025, 0.04), "iterations": (10, 15, 30),
                                                "momentum": (0.5,), "ascent_target": ("match",),
                                                "stop_at_target": (False,), "forget_weight": (0.5,)}

    def __init__(self, iterations: int = 15, batch_size: int = 16, inner_lr: float = 0.05, lr: float = 0.025,
                 momentum: float = 0.5, weight_decay: float = 0.0, forget_loss: str = "ascent",
                 ascent_bound: float = 0.5, ascent_target: str = "match", class_target: str = "nearest",
                 class_bound: float = 3.0, mia_weight: float = 1.0, num_mia: int = 4, mia_steps: int = 20,
                 mia_members: str = "retain", mia_calibrate: bool = True,
                 forget_batches: str = "work", distill: float = 0.0,
                 aggregator: str = "pcgrad",
                 granularity: str = "layer", forget_weight: float = 0.5, second_order: bool = False,
                 stop_at_target: bool = True, log_every: int = 5):
        if forget_loss not in FORGET_LOSSES:
            raise ValueError(f"forget_loss: unknown {forget_loss!r}; choose one of {FORGET_LOSSES}")
        if num_mia < 0:
            raise ValueError(f"num_mia: must be >= 0, got {num_mia}")
        if num_mia == 0 and forget_loss in NEEDS_MIA:
            raise ValueError(f"forget_loss={forget_loss!r} needs the MIA attackers, but num_mia=0; "
                             "set num_mia >= 1 or choose forget_loss 'ascent' / 'random_label'")
        if ascent_target not in ASCENT_TARGETS:
            raise ValueError(f"ascent_target: unknown {ascent_target!r}; choose one of {ASCENT_TARGETS}")
        if class_target not in CLASS_TARGETS:
            raise ValueError(f"class_target: unknown {class_target!r}; choose one of {CLASS_TARGETS}")
        if mia_members not in MIA_MEMBERS:
            raise ValueError(f"mia_members: unknown {mia_members!r}; choose one of {MIA_MEMBERS}")
        if forget_batches not in FORGET_BATCHES:
            raise ValueError(f"forget_batches: unknown {forget_batches!r}; choose one of {FORGET_BATCHES}")
        for name, value in (("iterations", iterations), ("batch_size", batch_size), ("log_every", log_every)):
            if value < 1:
                raise ValueError(f"{name}: must be >= 1, got {value}")
        for name, value in (("inner_lr", inner_lr), ("lr", lr), ("mia_weight", mia_weight),
                            ("forget_weight", forget_weight), ("ascent_bound", ascent_bound), ("distill", distill),
                            ("class_bound", class_bound)):
            if not value >= 0.0:
                raise ValueError(f"{name}: must be >= 0, got {value}")
        make_ltu_aggregator(aggregator)  # fails early, naming the aggregator, on an unknown name
        self.iterations, self.batch_size, self.inner_lr, self.lr = iterations, batch_size, inner_lr, lr
        self.momentum, self.weight_decay, self.forget_loss, self.ascent_bound = momentum, weight_decay, forget_loss, ascent_bound
        self.class_target, self.class_bound, self.ascent_target = class_target, class_bound, ascent_target
        self.mia_weight, self.num_mia, self.mia_steps = mia_weight, num_mia, mia_steps
        self.mia_members, self.mia_calibrate, self.distill = mia_members, mia_calibrate, distill
        self.forget_batches = forget_batches
        self.aggregator, self.granularity, self.forget_weight = aggregator, granularity, forget_weight
        self.second_order, self.log_every = second_order, log_every
        self.stop_at_target = stop_at_target

    # ------------------------------------------------------------------------------ pieces
    def train_attackers(self, model: nn.Module, task: UnlearnTask,
                        heldout_logits: torch.Tensor | None = None) -> tuple[MIAEnsemble, list[float]]:
        """K attackers on the original model, non-members = heldout, members = retain_access (and,
        with ``mia_members="retain+forget"``, the forget set: members of the original too, which
        gives the attackers enough rows when the accessible retain set is tiny). Members beyond the
        number of non-members are never used (the sides are balanced), so they are not evaluated."""
        members = task.retain_access
        if self.mia_members == "retain+forget":
            members = concat_splits(members, task.forget)
        if len(members) > len(task.heldout):
            members = members.subset(torch.randperm(len(members), generator=generator(task.seed, 12))[:len(task.heldout)])
        if heldout_logits is None:
            heldout_logits = logits_of(model, task.heldout, task.device)
        nonmembers = output_features(heldout_logits, task.heldout.labels().to(task.device))
        return train_mia_ensemble(features_of(model, members, task.device), nonmembers, self.num_mia,
                                  seed=task.seed, steps=self.mia_steps)

    @staticmethod
    def removed_classes(task: UnlearnTask) -> torch.Tensor:
        """[C] bool: classes the request removes wholesale: absent from ``retain_access`` and
        over-represented in ``forget`` (more than twice its share of ``heldout``, the population).
        Retrain never saw such a class, so its samples must end up classified as something else,
        not merely as unsure as unseen samples of a known class. Under random forgetting both
        conditions together are vanishingly unlikely (each class keeps about its population share)."""
        count = lambda split: torch.bincount(split.labels(), minlength=task.num_classes).double()
        population = count(task.heldout) / max(1, len(task.heldout))
        over = count(task.forget) / max(1, len(task.forget)) > 2 * population
        return (over & (count(task.retain_access) == 0)).to(task.device)

    def forget_target(self, task: UnlearnTask, heldout_logits: torch.Tensor,
                      forget_logits: torch.Tensor | None = None) -> ForgetTarget:
        """The removed classes and, with ``ascent_target="heldout"``, the level the capped ascent
        loss of the forget samples should reach: its mean over ``heldout`` (non-members) under the
        original model, so ascent stops once the forget batch looks, on average, like unseen data.
        With ``"match"`` (needs the original's ``forget_logits``), per-sample targets instead: see
        :meth:`matched_target`."""
        removed = self.removed_classes(task)
        if self.ascent_target == "match":
            if forget_logits is None:
                raise ValueError("forget_target: ascent_target='match' needs the original's forget_logits")
            return self.matched_target(task, removed, heldout_logits, forget_logits)
        level = None
        if self.ascent_target == "heldout":
            losses = F.cross_entropy(heldout_logits, task.heldout.labels().to(heldout_logits.device), reduction="none")
            level = losses.clamp(max=self.ascent_bound).mean()
        return ForgetTarget(removed, level)

    def matched_target(self, task: UnlearnTask, removed: torch.Tensor, heldout_logits: torch.Tensor,
                       forget_logits: torch.Tensor) -> ForgetTarget:
        """Rank matching: the forget sample with the k-th smallest loss under the original gets the
        held-out sample of the same quantile as its target. Under Retrain the forget set is unseen
        data, distributed like the held-out set, and the samples the original finds hardest are the
        ones Retrain tends to get wrong; so the samples matched to misclassified held-out samples
        (about the held-out error rate of them) are moved to their nearest other class, the others'
        ascent is capped at their matched loss. A mean level cannot do this: every sample can stay
        correct with the batch's mean loss at the held-out mean. Each sample's sampling weight is its
        work left at the start (how far its loss is below its cap, or its relabelling loss above
        log 2), so the batches draw the few samples that have to move, not the well-fitted bulk
        (with uniform batches they are rarely drawn in a few dozen iterations). Samples of a removed
        class are relabelled as with the other targets, so class-wise forgetting runs as before."""
        yh, yf = task.heldout.labels().to(heldout_logits.device), task.forget.labels().to(forget_logits.device)
        loss_h = F.cross_entropy(heldout_logits, yh, reduction="none")
        wrong_h = heldout_logits.argmax(1) != yh
        loss_f = F.cross_entropy(forget_logits, yf, reduction="none")
        order_h = loss_h.argsort()
        rank_f = loss_f.argsort().argsort()  # 0 = the best-fitted forget sample
        position = ((rank_f.double() + 0.5) * len(yh) / len(yf)).long().clamp(max=len(yh) - 1)
        matched = order_h[position]
        caps, flip = loss_h[matched], wrong_h[matched] | removed[yf]
        nearest = forget_logits.scatter(1, yf[:, None], float("-inf")).argmax(1)
        relabel = F.cross_entropy(forget_logits, nearest, reduction="none")
        gone = removed[yf]
        work = torch.where(flip, relabel - RELABEL_LEVEL, caps - loss_f).clamp(min=0.0)
        work = torch.where(gone, work.max(), work)  # a removed class's samples all have to move
        weights = work + 1e-6 * work.max().clamp_min(1e-12)
        if self.forget_batches == "uniform" or bool(gone.all()):  # setup, not the loop: a sync is fine
            weights = None
        return ForgetTarget(removed, caps=caps, flip=flip, weights=weights)

    def forgetting_loss(self, x: torch.Tensor, y: torch.Tensor, num_classes: int, gen: torch.Generator,
                        mia: MIAEnsemble | None = None, target: ForgetTarget | None = None,
                        index: torch.Tensor | None = None) -> Loss | None:
        """The support forgetting loss on (x, y); None for ``"mia"`` (the feedback alone).

        Ascent is per-sample capped at ``ascent_bound``. Samples of a ``removed`` class (see
        :meth:`removed_classes`) get ``class_target``: ``"nearest"`` = CE towards the nearest other
        class until it holds half the probability (a fixed point, like Retrain's behaviour on an
        unseen class), or ``"ascent"`` with the cap ``class_bound``. With a ``target.level`` the
        ascent on the other samples is off while their mean capped loss is at or above it. With
        per-sample targets (``"match"``; ``index`` = the batch's positions in ``task.forget``) each
        sample has its own cap, and the samples to flip are treated as those of a removed class.
        """
        gone, cap = self._caps(y, target, index)

        def per_sample(logits: torch.Tensor) -> torch.Tensor:  # to minimise
            capped = torch.minimum(F.cross_entropy(logits, y, reduction="none"), cap)
            out = -capped
            if target is not None and target.level is not None:  # a device-side gate: no sync
                out = torch.where(gone, out, out * self._below_target(capped.detach(), gone, target.level))
            if self.class_target == "nearest":
                out = torch.where(gone, self._relabel_loss(logits, y).clamp(min=RELABEL_LEVEL), out)
            return out

        if self.forget_loss == "ascent":
            return lambda f: per_sample(f(x)).mean()
        if self.forget_loss == "gated_ascent":
            def gated(f):  # per sample weighted by the attackers' "still a member" belief
                logits = f(x)
                member = torch.sigmoid(mia.member_logits(logits.detach(), y)).mean(0)
                return (member * per_sample(logits)).mean()
            return gated
        if self.forget_loss == "random_label":
            wrong = random_other_labels(y, num_classes, gen)
            return lambda f: F.cross_entropy(f(x), wrong)
        return None

    @staticmethod
    def _relabel_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per sample: CE towards the nearest other class (chosen without gradient)."""
        other = logits.detach().scatter(1, y[:, None], float("-inf")).argmax(1)
        return F.cross_entropy(logits, other, reduction="none")

    def _caps(self, y: torch.Tensor, target: ForgetTarget | None,
              index: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Per sample: to be relabelled (of a removed class, or a matched sample to flip), and its ascent cap."""
        gone = torch.zeros_like(y, dtype=torch.bool) if target is None else target.removed[y]
        cap: float | torch.Tensor = self.ascent_bound
        if target is not None and target.caps is not None:
            if index is None:
                raise ValueError("forgetting_loss: per-sample targets need the batch's index into task.forget")
            gone, cap = gone | target.flip[index], target.caps[index]
        return gone, torch.where(gone, self.class_bound if self.class_target == "ascent" else 0.0, cap)

    @staticmethod
    def _below_target(capped: torch.Tensor, gone: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        """1.0 while the mean capped loss of the batch's not-removed samples is below ``level`` (0-d,
        on the device); a batch of removed-class samples only is always below (mean 0)."""
        kept = (~gone).to(capped.dtype)
        return ((capped * kept).sum() / kept.sum().clamp_min(1.0) < level).to(capped.dtype)

    def step_gate(self, forward, x: torch.Tensor, y: torch.Tensor, target: ForgetTarget,
                  index: torch.Tensor | None = None) -> torch.Tensor:
        """``stop_at_target``'s multiplier of the outer lr (0-d, on the device): 0 while the forget
        batch's ascent is switched off by its target (:meth:`forgetting_loss`), else 1. With
        per-sample targets: 0 once every sample of the batch is at its own (each relabelled one
        with half its probability on the new class)."""
        gone, cap = self._caps(y, target, index)
        with torch.no_grad():
            logits = forward(x)
            ce = F.cross_entropy(logits, y, reduction="none")
            if target.caps is not None:
                todo = torch.where(gone, self._relabel_loss(logits, y) > RELABEL_LEVEL, ce < cap)
                return todo.any().to(ce.dtype)
        return self._below_target(torch.minimum(ce, cap), gone, target.level)

    @staticmethod
    def _split_batches(n: int, batch: int, gen: torch.Generator,
                       weights: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Two disjoint index batches (support, query) of one set, uniform or drawn by ``weights``."""
        batch = max(1, min(batch, n // 2))
        if weights is None:
            order = torch.randperm(n, generator=gen)
        else:
            order = torch.multinomial(weights.double().cpu(), 2 * batch, replacement=False, generator=gen)
        return order[:batch], order[batch:2 * batch]

    def build_optimizer(self, model: nn.Module) -> tuple[HarmonizedSGD, FlatModel]:
        """The outer HarmonizedSGD (which re-homes the parameters into its flat buffer) and a view
        of the model that runs at any flat parameter vector of the same layout."""
        named = [(k, p) for k, p in model.named_parameters() if p.requires_grad]
        opt = HarmonizedSGD(named, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay,
                            objectives=OBJECTIVES, aggregator=make_ltu_aggregator(self.aggregator),
                            granularity=self.granularity, weights=(self.forget_weight, 1.0))
        return opt, FlatModel(model, opt.plan, [k for k, _ in named], [p.shape for _, p in named])

    def sample_batch(self, task: UnlearnTask, gen: torch.Generator, teacher: torch.Tensor | None = None,
                     target: ForgetTarget | None = None) -> dict[str, tuple[torch.Tensor, ...] | torch.Tensor]:
        """S_r, Q_r (disjoint, from retain_access) and S_f, Q_f (disjoint, from forget) on the device;
        with ``teacher`` (the original's logits on retain_access) S_r/Q_r carry them as a third item.
        S_f and Q_f are drawn by ``target.weights`` when the target has them (``"match"``), and their
        positions in ``task.forget`` are under ``"sf_index"`` / ``"qf_index"``."""
        out = {}
        weights = None if target is None else target.weights
        for (s, q), split, w in (("sr", "qr"), task.retain_access, None), (("sf", "qf"), task.forget, weights):
            for key, index in zip((s, q), self._split_batches(len(split), self.batch_size, gen, w)):
                out[key] = split.take(index, task.device)
                if teacher is not None and s == "sr":
                    out[key] += (teacher[index.to(teacher.device)],)
                if s == "sf":
                    out[f"{key}_index"] = index.to(task.device)
        return out

    def remembering_loss(self, x: torch.Tensor, y: torch.Tensor, teacher: torch.Tensor | None = None) -> Loss:
        """CE on (x, y), plus ``distill`` * T^2 KL(original || model) at temperature T when the
        original's logits are given: where the accessible retain set is tiny its CE is ~0 (it is
        memorised), while matching the original's soft outputs still pins the function down."""
        if teacher is None or self.distill == 0:
            return lambda f: F.cross_entropy(f(x), y)
        target = F.softmax(teacher / DISTILL_T, dim=1)

        def loss(f):
            logits = f(x)
            kl = F.kl_div(F.log_softmax(logits / DISTILL_T, dim=1), target, reduction="batchmean")
            return F.cross_entropy(logits, y) + self.distill * DISTILL_T ** 2 * kl
        return loss

    def meta_gradients(self, model: nn.Module, opt: HarmonizedSGD, flat_model: FlatModel, batch: dict,
                       mia: MIAEnsemble | None, num_classes: int, label_gen: torch.Generator,
                       target: ForgetTarget | None = None) -> None:
        """Fill ``opt``'s rows with the meta-gradients (support at theta + query at theta')."""
        (xf, yf), (xqf, yqf) = batch["sf"], batch["qf"]
        support_f = self.forgetting_loss(xf, yf, num_classes, label_gen, mia, target, batch.get("sf_index"))
        support_r = self.remembering_loss(*batch["sr"])
        queries: list[Loss] = [self.remembering_loss(*batch["qr"])]
        if mia is not None:
            queries.append(lambda f: mia.nonmember_loss(f(xqf), yqf))
        opt.zero_grad()
        if support_f is not None:
            with opt.objective("forget"):
                support_f(model).backward()
        with opt.objective("remember"):
            support_r(model).backward()
        # meta-tune on the harmonized support gradients, then meta-test at theta'
        direction, inner = harmonize_rows(opt.grad_rows, opt.plan, opt.aggregator, opt.weights)
        if self.second_order:
            supports = [support_f or (lambda f: f(xf).sum() * 0.0), support_r]
            coeff = flat_model.element_coefficients(inner.beta)
            grads = flat_model.second_order_grads(opt.flat_params, supports, coeff, self.inner_lr, queries)
        else:
            theta_prime = flat_model.fast_weights(opt.flat_params, direction, self.inner_lr)
            grads = flat_model.grads_at(theta_prime, queries)
        axpy(opt.grad_row("remember"), grads[0])
        if mia is not None:
            axpy(opt.grad_row("forget"), grads[1], self.mia_scale(opt, grads[1]))

    def mia_scale(self, opt: HarmonizedSGD, mia_grad: torch.Tensor) -> float | torch.Tensor:
        """``mia_weight``, or with ``mia_calibrate`` ``mia_weight * min(1, |support| / |MIA gradient|)``
        (a device tensor, no sync): the feedback may then never outweigh the support forgetting
        gradient (raw, it is often tens of times larger), and it stops with it: when the forgetting
        target is reached the support row is zero and so is the feedback. Never amplified."""
        if not self.mia_calibrate:
            return self.mia_weight
        reference = opt.grad_row("forget" if self.forget_loss != "mia" else "remember")
        return self.mia_weight * (reference.norm() / mia_grad.norm().clamp_min(1e-12)).clamp(max=1.0)

    # ------------------------------------------------------------------------------ the loop
    def unlearn(self, model: nn.Module, task: UnlearnTask) -> UnlearnResult:
        model.to(task.device)
        info: dict = {}
        mia = None
        heldout_logits = logits_of(model, task.heldout, task.device)
        if self.num_mia > 0:
            mia, info["mia_heldout_accuracy"] = self.train_attackers(model, task, heldout_logits)
            mia.to(task.device)
        teacher = logits_of(model, task.retain_access, task.device) if self.distill > 0 else None
        forget_logits = logits_of(model, task.forget, task.device) if self.ascent_target == "match" else None
        model.train()
        opt, flat_model = self.build_optimizer(model)
        gen, label_gen = generator(task.seed, 10), generator(task.seed, 11)
        target = self.forget_target(task, heldout_logits, forget_logits)
        gated = self.stop_at_target and (target.level is not None or target.caps is not None)
        conflict_rates = []
        for it in range(self.iterations):
            batch = self.sample_batch(task, gen, teacher, target)
            self.meta_gradients(model, opt, flat_model, batch, mia, task.num_classes, label_gen, target)
            if gated:
                gate = self.step_gate(flat_model.forward_at(opt.flat_params), *batch["sf"], target, batch["sf_index"])
                opt.param_groups[0]["lr"] = self.lr * gate  # a device tensor: no sync
            opt.step()
            if (it + 1) % self.log_every == 0 or it + 1 == self.iterations:
                conflict_rates.append(opt.conflict_rate())
        if mia is not None:
            with torch.no_grad():
                model.eval()
                info["mia_member_rate_forget_after"] = mia.member_rate(logits_of(model, task.forget, task.device),
                                                                       task.forget.labels().to(task.device))
        model.train()
        info["conflict_rate"] = sum(conflict_rates) / max(1, len(conflict_rates))
        info["conflict_rates"] = conflict_rates
        info["skipped_steps"] = opt.skipped_steps
        return UnlearnResult(model, info)
