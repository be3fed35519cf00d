"""The contract every output distribution ("head") follows.

Layout convention shared by the whole library: data ``x`` is an integer tensor ``(B, C, *S)``
(C channels at each of the positions ``S``, e.g. ``(H, W)`` for images), and a network's output
``params`` is a float tensor ``(B, P, *S)`` with ``P = head.num_params(C)`` parameters per position.
A head scores and samples all channels of one position jointly; any ordering *within* a position
(R, then G given R, then B given R and G) is the head's business.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import Tensor, nn


class Head(nn.Module, ABC):
    """A distribution over the ``C`` discrete values at one position, given its parameters."""

    #: number of discrete levels each value takes (0 .. levels-1)
    levels: int

    @abstractmethod
    def num_params(self, channels: int) -> int:
        """Parameters needed per position for ``channels`` channels."""

    @abstractmethod
    def log_prob(self, params: Tensor, x: Tensor) -> Tensor:
        """Log-probability in nats of ``x`` (B, C, *S) under ``params`` (B, P, *S); returns (B, *S)."""

    @abstractmethod
    def sample(self, params: Tensor, temperature: float = 1.0, generator: torch.Generator | None = None) -> Tensor:
        """Draw ``x`` (B, C, *S) (long) from ``params`` (B, P, *S)."""

    def mode_input(self, x: Tensor) -> Tensor:
        """Map integer levels to the float network input in [-1, 1]."""
        return x.float() * (2.0 / max(self.levels - 1, 1)) - 1.0

    def extra_repr(self) -> str:
        return f"levels={self.levels}"
