"""Learning-rate schedule: linear warm-up, then cosine decay to ``min_lr_ratio`` of the peak.

A pure function of the step, so a resumed run needs no scheduler state.
"""

from __future__ import annotations

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


def lr_factor(step: int, total_steps: int, warmup_steps: int = 0, min_lr_ratio: float = 0.0) -> float:
    """Multiplier of the peak lr for update ``step`` (0-based, ``0 .. total_steps - 1``).

    Warm-up: ``(step + 1) / warmup_steps`` for the first ``warmup_steps`` updates (reaching 1 at the last
    of them); then a half cosine from 1 at update ``warmup_steps`` to ``min_lr_ratio`` at the last update.
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    span = total_steps - warmup_steps - 1
    if span <= 0:
        return 1.0
    progress = min(1.0, (step - warmup_steps) / span)
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def warmup_cosine(optimizer: Optimizer, total_steps: int, warmup_steps: int = 0,
                  min_lr_ratio: float = 0.0) -> LambdaLR:
    """The same schedule as a ``LambdaLR`` (call ``.step()`` after each optimiser step)."""
    return LambdaLR(optimizer, lambda s: lr_factor(s, total_steps, warmup_steps, min_lr_ratio))
