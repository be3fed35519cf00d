"""The conditionals of a fixed-shape model (an event ``(C, *S)``, e.g. images) in coding order: the positions in
``model.ordering()``, and within a position its channels in order (R, then G given R, then B given R and G).

Each position's parameters come the way ancestral sampling gets them (:mod:`chainrule.core.sampling`): one cached
``step`` when the model supports it; otherwise the network on the values so far (for ``row_causal`` models on
the rows up to the current one only). The head then gives each channel's conditional
(:meth:`chainrule.core.heads.base.Head.level_log_probs`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from chainrule.core.sampling import position_params

if TYPE_CHECKING:
    from chainrule.core.contract import AutoregressiveModel


class PositionConditionals:
    """:class:`~chainrule.core.compression.loop.Conditionals` over ``batch`` events of ``model`` coded together,
    optionally conditioned on ``cond`` (class labels ``(batch,)``)."""

    def __init__(self, model: AutoregressiveModel, batch: int, cond: Tensor | None = None) -> None:
        if not model.head.discrete:
            raise ValueError(f"{model.name}: a coder needs a head over discrete levels, not {model.head.name}")
        self.model, self.cond = model, cond
        self.x = torch.zeros(batch, model.channels, *model.positions, dtype=torch.long, device=model.device)
        self.flat = self.x.view(batch, model.channels, -1)
        self.order = model.ordering().tolist()
        self.cached = model.supports_cache
        self.crop = not self.cached and model.row_causal and len(model.positions) == 2
        self.cache: Any = model.init_cache(batch, cond) if self.cached else None
        self.index, self.channel = 0, 0
        self.current = torch.zeros(batch, model.channels, dtype=torch.long, device=model.device)
        self.params = self._params(None)

    def log_probs(self) -> Tensor:
        return self.model.head.level_log_probs(self.params, self.current, self.channel)

    def push(self, symbols: Tensor) -> None:
        self.current[:, self.channel] = symbols.to(self.current.device)
        self.channel += 1
        if self.channel < self.model.channels:
            return
        self.flat[:, :, self.order[self.index]] = self.current
        self.index, self.channel = self.index + 1, 0
        if self.index < len(self.order):
            prev, self.current = self.current, torch.zeros_like(self.current)
            self.params = self._params(prev)

    def _params(self, prev: Tensor | None) -> Tensor:
        """Parameters ``(B, P)`` of the position at ``self.index``, given the values before it."""
        pos, model = self.order[self.index], self.model
        if self.cached:
            params, self.cache = model.step(prev, self.cache)
            return params
        return position_params(model, self.x, pos, self.cond, self.crop)


def coding_steps(model: AutoregressiveModel, events: Tensor, known: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Events ``(B, C, *S)`` and the mask ``(B, *S)`` of positions to code -> the ``(N * C, B)`` symbols and
    active flags in :class:`PositionConditionals`' order (position by position, channels inside)."""
    b, c = events.shape[:2]
    order = model.ordering().cpu()
    symbols = events.reshape(b, c, -1)[:, :, order].permute(2, 1, 0).reshape(-1, b)
    active = known.reshape(b, 1, -1)[:, :, order].expand(b, c, -1).permute(2, 1, 0).reshape(-1, b)
    return symbols.cpu().numpy(), active.cpu().numpy()


def events_from_steps(model: AutoregressiveModel, symbols: np.ndarray) -> Tensor:
    """Inverse of :func:`coding_steps` for the symbols: ``(N * C, B)`` -> events ``(B, C, *S)``."""
    b, c = symbols.shape[1], model.channels
    order = model.ordering().cpu()
    steps = torch.from_numpy(symbols).reshape(-1, c, b).permute(2, 1, 0)  # (B, C, N) in coding order
    flat = torch.zeros_like(steps)
    flat[:, :, order] = steps
    return flat.reshape(b, c, *model.positions)
