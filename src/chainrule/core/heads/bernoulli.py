"""Bernoulli head for binary data: one logit per channel."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from chainrule.core.heads.base import Head


class Bernoulli(Head):
    name = "bernoulli"
    levels = 2

    def num_params(self, channels: int) -> int:
        return channels

    def log_prob(self, params: Tensor, x: Tensor, scale: Tensor | None = None) -> Tensor:
        return -F.binary_cross_entropy_with_logits(params, x.to(params.dtype), reduction="none").sum(1)

    def level_log_probs(self, params: Tensor, x: Tensor, channel: int) -> Tensor:
        """Channels are independent given the logits: ``[log(1 - p), log p]`` of ``channel``."""
        logit = params[:, channel]
        return torch.stack([F.logsigmoid(-logit), F.logsigmoid(logit)], dim=-1)

    def sample(self, params: Tensor, temperature: float = 1.0, generator: torch.Generator | None = None,
               scale: Tensor | None = None) -> Tensor:
        probs = torch.sigmoid(params / max(temperature, 1e-8))
        u = torch.rand(probs.shape, generator=generator, device=probs.device, dtype=probs.dtype)
        return (u < probs).long()
