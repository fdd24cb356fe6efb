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

import torch
import torch.nn.functional as F
from torch import nn

from .api import ArraySplit

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
def features_of(model: nn.Module, data: ArraySplit, device: torch.device, batch_size: int = 512) -> torch.Tensor:
    """Features of a whole split under the model in eval mode (as an auditor would query it)."""
    was_training = model.training
    model.eval()
    feats = [output_features(model(x), y) for x, y in data.batches(batch_size, device=device)]
    model.train(was_training)
    return torch.cat(feats)


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
                       steps: int = 300, lr: float = 0.01, weight_decay: float = 1e-4) -> tuple[MIAEnsemble, list[float]]:
    """Fit K attackers on member vs non-member feature rows (balanced by subsampling the larger
    side, then a bootstrap per attacker). Returns the ensemble and each attacker's training accuracy."""
    gen = torch.Generator().manual_seed(seed)
    n = min(len(members), len(nonmembers))
    members = members[torch.randperm(len(members), generator=gen)[:n]]
    nonmembers = nonmembers[torch.randperm(len(nonmembers), generator=gen)[:n]]
    x = torch.cat([members, nonmembers])
    target = torch.cat([torch.ones(n), torch.zeros(n)]).to(x)
    mean, std = x.mean(0), x.std(0).clamp_min(1e-6)
    z = (x - mean) / std
    attackers, accuracies = [], []
    for k in range(num_models):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed * 7919 + k)
            net = _attacker(WIDTHS[k % len(WIDTHS)]).to(x)
        boot = torch.randint(0, len(z), (len(z),), generator=gen).to(x.device)
        opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            F.binary_cross_entropy_with_logits(net(z[boot]).squeeze(1), target[boot]).backward()
            opt.step()
        with torch.no_grad():
            accuracies.append(((net(z).squeeze(1) > 0).to(x) == target).float().mean().item())
        attackers.append(net)
    return MIAEnsemble(attackers, mean, std), accuracies
