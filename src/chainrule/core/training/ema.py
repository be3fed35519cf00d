"""Exponential moving average of a model's parameters (buffers are copied, not averaged)."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """A frozen copy of ``model`` whose parameters track ``decay``-weighted averages of the live ones.

    The effective decay is ``min(decay, (1 + n) / (10 + n))`` after ``n`` updates, so early averages are not
    dominated by the initial weights. Tied parameters are updated once (``named_parameters`` de-duplicates).
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = float(decay)
        self.updates = 0
        self.module = copy.deepcopy(model).eval().requires_grad_(False)

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = self.current_decay()
        ema_p = [p for _, p in self.module.named_parameters()]
        live_p = [p.detach() for _, p in model.named_parameters()]
        floats = [(e, p) for e, p in zip(ema_p, live_p, strict=True) if e.dtype.is_floating_point]
        if floats:
            torch._foreach_lerp_([e for e, _ in floats], [p for _, p in floats], 1.0 - d)
        for e, p in zip(ema_p, live_p, strict=True):
            if not e.dtype.is_floating_point:
                e.copy_(p)
        for (_, e), (_, b) in zip(self.module.named_buffers(), model.named_buffers(), strict=True):
            e.copy_(b)
        self.updates += 1
