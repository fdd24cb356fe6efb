"""Unlearning a small transformer language model's forget set with ``HarmonizedAdamW``.

A 2-layer causal transformer learns two kinds of token sequences: arithmetic progressions with
steps 1-3 (the retain set) and with step 7 (the forget set, e.g. data a user asked to remove).
Unlearning then runs two objectives through one fused AdamW step:

    forget: gradient ascent on the forget sequences' next-token loss (bounded: it stops pushing a
            sequence once its loss reaches that of a uniform guess)
    retain: the usual next-token loss on retain sequences

and ``Project(protect="retain")`` removes, per layer, the part of the forget gradient that would
increase the retain loss. Runs on CPU in well under a minute:

    python examples/unlearn_tiny_lm.py
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ltu_fast import HarmonizedAdamW, Project

VOCAB, LENGTH = 32, 12
RETAIN_STEPS, FORGET_STEP = (1, 2, 3), 7


def progressions(steps: tuple[int, ...], n: int, gen: torch.Generator) -> torch.Tensor:
    """[n, LENGTH] sequences x_t = (x_0 + t * step) mod VOCAB with random starts and steps."""
    start = torch.randint(0, VOCAB, (n, 1), generator=gen)
    step = torch.tensor(steps)[torch.randint(0, len(steps), (n, 1), generator=gen)]
    return (start + step * torch.arange(LENGTH)) % VOCAB


class TinyLM(nn.Module):
    def __init__(self, d: int = 64, layers: int = 2, heads: int = 4):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, d)
        self.pos = nn.Parameter(torch.randn(LENGTH, d) * 0.02)
        layer = nn.TransformerEncoderLayer(d, heads, 4 * d, dropout=0.0, batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.out = nn.Linear(d, VOCAB)
        self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(LENGTH - 1))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Per-sequence mean next-token loss [n]."""
        x = self.embed(tokens[:, :-1]) + self.pos[: LENGTH - 1]
        logits = self.out(self.blocks(x, mask=self.mask, is_causal=True))
        loss = nn.functional.cross_entropy(logits.transpose(1, 2), tokens[:, 1:], reduction="none")
        return loss.mean(1)


def main(pretrain_steps: int = 400, unlearn_steps: int = 60, seed: int = 0, verbose: bool = True) -> dict[str, float]:
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    retain, forget = progressions(RETAIN_STEPS, 512, gen), progressions((FORGET_STEP,), 128, gen)
    retain_test = progressions(RETAIN_STEPS, 256, gen)
    model = TinyLM()

    pretrain = torch.optim.AdamW(model.parameters(), lr=3e-3)
    data = torch.cat([retain, forget])
    for _ in range(pretrain_steps):
        pretrain.zero_grad()
        model(data[torch.randint(0, len(data), (64,), generator=gen)]).mean().backward()
        pretrain.step()

    def report(stage: str) -> dict[str, float]:
        with torch.no_grad():
            out = {f"{stage}_forget_loss": model(forget).mean().item(),
                   f"{stage}_retain_test_loss": model(retain_test).mean().item()}
        if verbose:
            print(f"{stage:>7}: forget loss {out[f'{stage}_forget_loss']:.3f}, retain (held-out) loss "
                  f"{out[f'{stage}_retain_test_loss']:.3f}   (uniform guess: {math.log(VOCAB):.3f})")
        return out

    result = report("before")
    opt = HarmonizedAdamW(model.named_parameters(), lr=1e-3, weight_decay=0.0, objectives=("forget", "retain"),
                          aggregator=Project(protect=1))
    ceiling = math.log(VOCAB)
    for _ in range(unlearn_steps):
        opt.zero_grad()
        with opt.objective("forget"):
            f = model(forget[torch.randint(0, len(forget), (32,), generator=gen)])
            (-f.clamp(max=ceiling)).mean().backward()  # ascend until a sequence looks like a uniform guess
        with opt.objective("retain"):
            model(retain[torch.randint(0, len(retain), (64,), generator=gen)]).mean().backward()
        opt.step()
    result.update(report("after"))
    return result


if __name__ == "__main__":
    torch.set_num_threads(1)  # a model this small only pays for thread start-up
    main()
