"""Windows of ``context`` tokens from one split's token stream: the trainer's dataset protocol for token data
(text and music), written once.

``get(indices, length=None)`` returns ``(x, None)``, x long ``(b, 1, length or context)``: window ``i`` starts at
token ``offset + i * context``; a shorter ``length`` takes its first ``length`` tokens. On a shifted (train) split
``set_epoch(e)`` moves every boundary by an offset that is a function of ``(seed, e)`` only and a multiple of
``step`` tokens; ``len`` counts the whole windows for every possible offset, so it does not change between epochs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor


def epoch_offset(seed: int, epoch: int, slots: int) -> int:
    """A slot in ``[0, slots)`` for ``epoch``, a function of ``(seed, epoch)`` only."""
    mask = (1 << 64) - 1
    return int(np.random.default_rng([seed & mask, epoch & mask]).integers(slots))


class TokenWindows:
    """Subclasses set ``tokens``, ``tokenizer`` (with ``vocab_size``), ``context``, ``seed``, ``shift`` and may set
    ``step`` (the offset granularity, 1 token by default), then call ``set_epoch(0)``."""

    labels = None
    num_classes = 0
    step = 1
    tokens: np.ndarray
    context: int
    seed: int
    shift: bool

    def __len__(self) -> int:
        spare = self.context - self.step if self.shift else 0
        return max(0, (len(self.tokens) - spare) // self.context)

    @property
    def event_shape(self) -> tuple[int, int]:
        return (1, self.context)

    @property
    def levels(self) -> int:
        return self.tokenizer.vocab_size  # type: ignore[attr-defined]

    def set_epoch(self, epoch: int) -> None:
        """Shift the window boundaries for ``epoch`` (train split only; held-out windows never move)."""
        self.epoch = epoch
        self.offset = epoch_offset(self.seed, epoch, self.context // self.step) * self.step if self.shift else 0

    def get(self, indices: Tensor | Sequence[int], length: int | None = None) -> tuple[Tensor, None]:
        idx = torch.as_tensor(indices).detach().reshape(-1).cpu().numpy().astype(np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"window index out of range 0..{len(self) - 1}")
        n = self.context if length is None else int(length)
        if not 1 <= n <= self.context:
            raise ValueError(f"length must be between 1 and the context {self.context}; got {length}")
        starts = self.offset + idx * self.context
        x = np.asarray(self.tokens[starts[:, None] + np.arange(n)], dtype=np.int64)
        return torch.from_numpy(x).reshape(len(idx), 1, n), None
