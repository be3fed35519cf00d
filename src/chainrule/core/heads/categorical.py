"""Categorical head: ``levels`` logits per channel (the channel's logits are contiguous in ``P``)."""

from __future__ import annotations

import torch
from torch import Tensor

from chainrule.core.heads.base import Head


class Categorical(Head):
    name = "categorical"

    def __init__(self, levels: int) -> None:
        super().__init__()
        if levels < 2:
            raise ValueError(f"a categorical head needs at least 2 levels, got {levels}")
        self.levels = int(levels)

    def num_params(self, channels: int) -> int:
        return channels * self.levels

    def logits(self, params: Tensor) -> Tensor:
        """(B, C*K, *S) -> (B, C, K, *S)."""
        b, _, *s = params.shape
        return params.reshape(b, -1, self.levels, *s)

    def log_prob(self, params: Tensor, x: Tensor, scale: Tensor | None = None) -> Tensor:
        logp = torch.log_softmax(self.logits(params), dim=2)
        return logp.gather(2, x.unsqueeze(2)).squeeze(2).sum(1)

    def level_log_probs(self, params: Tensor, x: Tensor, channel: int) -> Tensor:
        """Channels are independent given their logits: the log-softmax of ``channel``'s ``levels`` logits."""
        return torch.log_softmax(self.logits(params)[:, channel], dim=-1)

    def sample(self, params: Tensor, temperature: float = 1.0, generator: torch.Generator | None = None,
               scale: Tensor | None = None) -> Tensor:
        logits = self.logits(params)
        if temperature <= 0:
            return logits.argmax(2)
        probs = tempered_probs(logits, temperature).movedim(2, -1)
        flat = probs.reshape(-1, self.levels)
        draws = torch.multinomial(flat, 1, generator=generator).squeeze(-1)
        return draws.reshape(probs.shape[:-1])

    def exponential_noise(self, rows: int, generator: torch.Generator | None, device: torch.device) -> Tensor:
        """The ``Exp(1)`` variates ``(rows, levels)`` that :meth:`sample` draws for ``rows`` values:
        ``torch.multinomial`` picks one level of probabilities ``p`` as ``argmax(p / q)`` (the exponential race).
        Drawn outside a captured step and passed in, they let :func:`sample_given_noise` draw inside it and still
        give :meth:`sample`'s levels from the same generator (``tests/test_wavenet_engine.py`` checks it)."""
        return torch.empty(rows, self.levels, device=device).exponential_(generator=generator)


def tempered_probs(logits: Tensor, temperature: float | Tensor) -> Tensor:
    """Probabilities over the levels (axis 2) at a temperature (> 0)."""
    return torch.softmax(logits / temperature, dim=2)


def sample_given_noise(logits: Tensor, temperature: float | Tensor, noise: Tensor) -> Tensor:
    """:meth:`Categorical.sample`'s draw ``(B, C)`` from one step's ``logits (B, C, levels)`` given the variates
    of :meth:`Categorical.exponential_noise` for ``B * C`` rows: a pure function of tensors, so it can be compiled."""
    probs = tempered_probs(logits, temperature)
    return (probs / noise.view_as(probs)).argmax(2)
