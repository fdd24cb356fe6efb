"""Differentiable membership-inference (MIA) models: LTU's forgetting feedback.

Each attacker is a small MLP on features of the target model's output for a labelled sample:
  * the top-3 sorted softmax probabilities (how peaked the prediction is),
  * log p(true class) (= -loss, the strongest single membership signal),
  * the entropy of the softmax,
  * the true-class logit margin (true logit minus the best other logit).
All are smooth (almost everywhere) functions of the logits, so the attacker's loss on the forget
set can be back-propagated into the unlearned model. The K attackers differ in width, seed and
bootstrap sample, so the feedback is not tied to one decision boundary.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from .splits import Split

NUM_FEATURES = 6
WIDTHS = (32, 16, 64)


def output_features(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """[N, 6] membership features of logits [N, C] for labels y [N] (needs C >= 3)."""
    log_p = F.log_softmax(logits, dim=1)
    p = log_p.exp()
    top3 = p.topk(3, dim=1).values
    true_log_p = log_p.gather(1, y[:, None])
    entropy = -(p * log_p).sum(1, keepdim=True)
    true_logit = logits.gather(1, y[:, None])
    others = logits.scatter(1, y[:, None], float("-inf"))
    margin = true_logit - others.max(1, keepdim=True).values
    return torch.cat([top3, true_log_p, entropy, margin], dim=1)


@torch.no_grad()
def logits_of(model: nn.Module, data: Split, device: torch.device, batch_size: int = 512) -> torch.Tensor:
    """Logits of a whole split under the model in eval mode (as an auditor would query it)."""
    was_training = model.training
    model.eval()
    out = [model(x) for x, _ in data.batches(batch_size, device=device)]
    model.train(was_training)
    return torch.cat(out)


def features_of(model: nn.Module, data: Split, device: torch.device) -> torch.Tensor:
    """Membership features of a whole split (see :func:`output_features`)."""
    return output_features(logits_of(model, data, device), data.labels().to(device))


class MIAEnsemble(nn.Module):
    """K frozen attackers sharing one feature standardisation; ``member_logits`` is [K, N]."""

    def __init__(self, attackers: list[nn.Module], mean: torch.Tensor, std: torch.Tensor):
        super().__init__()
        self.attackers = nn.ModuleList(attackers)
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)
        self.requires_grad_(False)

    def member_logits(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        z = (output_features(logits, y) - self.mean) / self.std
        return torch.stack([a(z).squeeze(1) for a in self.attackers])

    def nonmember_loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Mean BCE of every attacker against the target "non-member": the forgetting feedback."""
        scores = self.member_logits(logits, y)
        return F.binary_cross_entropy_with_logits(scores, torch.zeros_like(scores))

    @torch.no_grad()
    def member_rate(self, logits: torch.Tensor, y: torch.Tensor) -> float:
        """Share of (attacker, sample) pairs predicted "member" (synchronises; for reporting)."""
        return (self.member_logits(logits, y) > 0).float().mean().item()


def _attacker(width: int) -> nn.Module:
    return nn.Sequential(nn.Linear(NUM_FEATURES, width), nn.Tanh(), nn.Linear(width, width), nn.Tanh(),
                         nn.Linear(width, 1))


def train_mia_ensemble(members: torch.Tensor, nonmembers: torch.Tensor, num_models: int = 3, *, seed: int = 0,
                       steps: int = 300, lr: float = 0.01, weight_decay: float = 1e-4, holdout: float = 0.3,
                       check_every: int = 10) -> tuple[MIAEnsemble, list[float]]:
    """Fit K attackers on member vs non-member feature rows, each to a held-out criterion.

    The rows are balanced (the larger side subsampled), then a stratified ``holdout`` share is set
    aside; each attacker trains on a bootstrap of the rest for at most ``steps`` full-batch Adam
    steps and keeps the weights with the best held-out accuracy (checked every ``check_every``
    steps): an attacker that only memorises its training rows would give feedback that means nothing.
    Returns the ensemble and each attacker's held-out accuracy (its training accuracy if
    ``holdout`` is 0).
    """
    gen = torch.Generator().manual_seed(seed)
    n = min(len(members), len(nonmembers))
    if n < 2:
        raise ValueError(f"members/nonmembers: need at least 2 rows on each side, got {len(members)}/{len(nonmembers)}")
    members = members[torch.randperm(len(members), generator=gen)[:n]]
    nonmembers = nonmembers[torch.randperm(len(nonmembers), generator=gen)[:n]]
    n_val = min(n - 1, round(holdout * n))
    x_fit = torch.cat([members[n_val:], nonmembers[n_val:]])
    t_fit = torch.cat([torch.ones(n - n_val), torch.zeros(n - n_val)]).to(x_fit)
    x_val = torch.cat([members[:n_val], nonmembers[:n_val]]) if n_val else x_fit
    t_val = torch.cat([torch.ones(n_val), torch.zeros(n_val)]).to(x_fit) if n_val else t_fit
    mean, std = x_fit.mean(0), x_fit.std(0).clamp_min(1e-6)
    z_fit, z_val = (x_fit - mean) / std, (x_val - mean) / std
    accuracy = lambda net: ((net(z_val).squeeze(1) > 0).to(z_val) == t_val).float().mean()
    attackers, accuracies = [], []
    for k in range(num_models):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed * 7919 + k)
            net = _attacker(WIDTHS[k % len(WIDTHS)]).to(x_fit)
        boot = torch.randint(0, len(z_fit), (len(z_fit),), generator=gen).to(x_fit.device)
        opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
        with torch.no_grad():
            best, best_state = accuracy(net), copy.deepcopy(net.state_dict())
        for step in range(1, steps + 1):
            opt.zero_grad(set_to_none=True)
            F.binary_cross_entropy_with_logits(net(z_fit[boot]).squeeze(1), t_fit[boot]).backward()
            opt.step()
            if step % check_every == 0 or step == steps:
                with torch.no_grad():
                    acc = accuracy(net)
                if acc > best:  # attacker training is setup, not the unlearning loop: syncing is fine
                    best, best_state = acc, copy.deepcopy(net.state_dict())
        net.load_state_dict(best_state)
        accuracies.append(float(best))
        attackers.append(net)
    return MIAEnsemble(attackers, mean, std), accuracies
