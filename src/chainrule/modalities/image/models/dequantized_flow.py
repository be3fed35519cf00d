"""What every normalizing flow on discrete images shares: uniform dequantization and the logit pre-processing.

A flow is a density on real vectors, the data are levels ``0 .. K-1``. Adding ``u ~ U[0, 1)^D`` gives
``v = x + u`` in ``[0, K)^D`` and ``P(x) = int p(x + u) du >= exp E_u[log p(x + u)]`` (Jensen), so one draw of
``u`` gives an unbiased estimate of a lower bound on ``log P(x)``: the reported NLL is an upper bound under
dequantization (Theis et al. 2016). ``v`` is squeezed into ``(0, 1)`` and mapped to the real line by a logit,
where the architecture's invertible transform ``y -> z`` takes over, with ``z ~ N(0, I)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from chainrule.core.contract import AutoregressiveModel
from chainrule.core.errors import InputError
from chainrule.core.heads.base import Head

#: keeps the logit finite at the edges of [0, K); the density outside the squeezed box is negligible
ALPHA = 1e-6
LOG_2PI = math.log(2 * math.pi)


class DequantizedFlow(AutoregressiveModel):
    """Base class: subclasses implement :meth:`transform` (``y -> (z, log|det dz/dy|)``) and :meth:`inverse`."""

    likelihood: ClassVar[str] = "bound"
    family: ClassVar[str] = "flow"

    def __init__(self, event_shape: Sequence[int], head: Head, num_classes: int = 0) -> None:
        super().__init__(event_shape, head, num_classes)
        if num_classes:
            raise ValueError(f"the {self.name} flow is unconditional; train it without class labels")
        self.levels = int(head.levels)

    # ------------------------------------------------------------------ the architecture's part
    def transform(self, y: Tensor) -> tuple[Tensor, Tensor]:
        """``y`` ``(B, C, *S)`` -> ``z`` of the same shape and ``log|det dz/dy|`` ``(B,)``."""
        raise NotImplementedError

    def inverse(self, z: Tensor) -> Tensor:
        raise NotImplementedError

    # ------------------------------------------------------------------ densities
    def to_logit(self, v: Tensor) -> tuple[Tensor, Tensor]:
        """``v`` in ``[0, K)`` -> ``y`` on the real line and ``log|dy/dv|`` summed per example."""
        s = ALPHA + (1 - 2 * ALPHA) * v / self.levels
        y = torch.log(s) - torch.log1p(-s)
        log_det = math.log((1 - 2 * ALPHA) / self.levels) - torch.log(s) - torch.log1p(-s)
        return y, log_det.flatten(1).sum(1)

    def from_logit(self, y: Tensor) -> Tensor:
        return (torch.sigmoid(y) - ALPHA) / (1 - 2 * ALPHA) * self.levels

    def continuous_log_prob(self, v: Tensor) -> Tensor:
        """log-density of the dequantized data ``v`` ``(B, C, *S)`` in ``[0, K)^D``, nats ``(B,)``."""
        y, log_det_logit = self.to_logit(v)
        z, log_det = self.transform(y)
        base = -0.5 * (z.pow(2) + LOG_2PI).flatten(1).sum(1)
        return base + log_det + log_det_logit

    def log_prob(self, x: Tensor, cond: Any = None) -> Tensor:
        """``log p(x + u)`` for one uniform ``u``: an unbiased estimate of a lower bound on ``log P(x)``."""
        self.check_input(x, cond)
        dtype = next(self.parameters()).dtype
        v = x.to(dtype) + torch.rand(x.shape, device=x.device, dtype=dtype)
        return self.continuous_log_prob(v)

    def log_prob_positions(self, x: Tensor, cond: Any = None) -> Tensor:
        raise InputError(f"{self.name}: a flow has no per-position conditionals; score whole images with log_prob")

    def network(self, inputs: Tensor, cond: Tensor | None = None) -> Tensor:
        """The flow's latent ``z`` for float inputs (a flow has no per-position conditionals)."""
        return self.transform(inputs)[0]

    # ------------------------------------------------------------------ sampling
    def draw(self, n: int, cond: Tensor | None, x_given: Tensor | None, known: Tensor | None, temperature: float,
             use_cache: bool, generator: torch.Generator | None) -> Tensor:
        """``z ~ N(0, T^2 I)`` pulled back through the flow, then rounded down to a level."""
        if x_given is not None:
            raise InputError(f"{self.name}: completion needs an autoregressive model; a flow samples whole images")
        dtype = next(self.parameters()).dtype
        z = torch.randn((n, *self.event_shape), generator=generator, device=self.device, dtype=dtype)
        v = self.from_logit(self.inverse(z * temperature))
        return F.relu(v).floor().long().clamp(0, self.levels - 1)
