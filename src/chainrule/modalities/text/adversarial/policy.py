"""The generator's side: draw whole sequences from the language model, and the REINFORCE surrogate whose gradient
is the policy gradient of the expected per-sequence reward, ``E[(r - b) ∇ log p(x)]``."""

from __future__ import annotations

import torch
from torch import Tensor

from chainrule.core.contract import AutoregressiveModel


@torch.no_grad()
def sample_sequences(model: AutoregressiveModel, n: int, length: int, temperature: float = 1.0,
                     generator: torch.Generator | None = None) -> Tensor:
    """``n`` sequences of ``length`` tokens ``(n, 1, length)`` drawn from the start of a sequence, one cached
    ``step`` per token (the only loop over positions)."""
    cache = model.init_cache(n, None)
    x_prev: Tensor | None = None
    tokens = []
    for _ in range(length):
        logits, cache = model.step(x_prev, cache)
        probs = torch.softmax(logits.float() / temperature, dim=-1)
        x_prev = torch.multinomial(probs, 1, generator=generator)
        tokens.append(x_prev)
    return torch.cat(tokens, dim=1)[:, None]


def reinforce_loss(model: AutoregressiveModel, tokens: Tensor, rewards: Tensor, baseline: float) -> Tensor:
    """Surrogate loss ``-mean((r - b) · log p(x)) / T`` for sampled ``tokens`` ``(B, 1, T)`` with per-sequence
    ``rewards`` ``(B,)``: minimising it raises the probability of sequences rewarded above the baseline. Dividing
    by ``T`` keeps its scale comparable with a per-token likelihood term."""
    log_p = model.log_prob_positions(tokens).reshape(tokens.shape[0], -1).sum(dim=1)
    advantage = (rewards - baseline).detach()
    return -(advantage * log_p).mean() / tokens.shape[-1]


class MovingBaseline:
    """An exponential moving average of the mean reward (``decay`` per update; starts at the first batch's mean):
    subtracting it lowers the variance of the policy gradient without changing its expectation."""

    def __init__(self, decay: float) -> None:
        self.decay = decay
        self.value: float | None = None

    def current(self, rewards: Tensor) -> float:
        """The baseline to use for this batch (computed before it updates with the batch)."""
        return float(rewards.mean()) if self.value is None else self.value

    def update(self, rewards: Tensor) -> None:
        mean = float(rewards.mean())
        self.value = mean if self.value is None else self.decay * self.value + (1 - self.decay) * mean
