"""The contract every output distribution ("head") follows, discrete or continuous.

Layout convention shared by the whole library: a network's output ``params`` carries the parameters of each
position on axis 1 — ``(B, P, *S)`` for a teacher-forced pass over positions ``S`` and ``(B, P)`` for one
incremental step — with ``P = head.num_params(C)`` for ``C`` channels per position. Values ``x`` are ``(B, C, *S)``
for discrete heads (integer levels; all channels of one position are scored jointly, any order *within* a
position — R, then G given R — is the head's business) and ``(B, *S)`` for continuous ones (one real value per
position, optionally in units of a per-example ``scale``).

Every head has the same three calls — ``num_params``, ``log_prob`` (nats) and ``sample`` with an explicit
``torch.Generator`` — so sampling loops, evaluation and export treat all of them alike. Its *support* (the
values it gives a probability) is stated once, in :meth:`Head.outside_support`: the model contract checks every
scored or given value against it, so an impossible value is an error rather than a meaningless score.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import torch
from torch import Tensor, nn

from chainrule.core.errors import InputError


class Head(nn.Module, ABC):
    """A distribution over the value(s) at one position, given its parameters."""

    #: registry name (``build_head``)
    name: ClassVar[str] = "base"
    #: True for heads over integer levels ``0 .. levels-1``; False for real-valued heads
    discrete: ClassVar[bool] = True
    #: number of discrete levels each value takes (0 for continuous heads)
    levels: int = 0

    @abstractmethod
    def num_params(self, channels: int = 1) -> int:
        """Parameters needed per position for ``channels`` channels."""

    @abstractmethod
    def log_prob(self, params: Tensor, x: Tensor, scale: Tensor | None = None) -> Tensor:
        """Log-probability (mass or density) in nats of ``x`` under ``params``; one value per position."""

    @abstractmethod
    def sample(self, params: Tensor, temperature: float = 1.0, generator: torch.Generator | None = None,
               scale: Tensor | None = None) -> Tensor:
        """One draw per position from ``params``, using ``generator`` (torch's global one when None)."""

    @property
    def support(self) -> str:
        """The values this head gives a probability, in words (for error messages)."""
        return f"integer levels 0..{self.levels - 1}"

    def outside_support(self, x: Tensor) -> Tensor:
        """Bool mask of the values of ``x`` this head cannot produce (discrete: anything but an integer level
        ``0 .. levels-1``)."""
        bad = (x < 0) | (x > self.levels - 1)
        return bad | (x != x.round()) if x.is_floating_point() else bad

    def check_support(self, x: Tensor, where: str = "x") -> None:
        """:class:`InputError` naming the first value of ``x`` outside the support and its index."""
        bad = self.outside_support(x)
        if bool(bad.any()):
            idx = tuple(int(i) for i in bad.nonzero()[0])
            raise InputError(f"{where}[{', '.join(map(str, idx))}]: {x[idx].item()!r} is outside the {self.name} "
                             f"head's support ({self.support})")

    def level_log_probs(self, params: Tensor, x: Tensor, channel: int) -> Tensor:
        """Log-probabilities ``(B, levels)`` of every level of ``channel`` at one position, given its parameters
        ``(B, P)`` and the earlier channels' values in ``x`` ``(B, C)``: the per-symbol conditionals an entropy
        coder needs (summed over channels at the coded values they give :meth:`log_prob`). Discrete heads only."""
        raise NotImplementedError(f"the {self.name} head is not over discrete levels; it cannot drive a coder")

    def mode_input(self, x: Tensor) -> Tensor:
        """Map integer levels to the float network input in [-1, 1] (discrete heads)."""
        return x.float() * (2.0 / max(self.levels - 1, 1)) - 1.0

    def extra_repr(self) -> str:
        return f"levels={self.levels}" if self.discrete else ""
