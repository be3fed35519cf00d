"""Windows of ``context`` tokens from one split's token stream: the trainer's dataset protocol for token data
(text and music), written once.

``get(indices, length=None)`` returns ``(x, None)``, x long ``(b, 1, length or context)``: window ``i`` starts at
token ``starts(i)``; a shorter ``length`` takes its first ``length`` tokens. Held-out windows are fixed blocks
(``i * context``). On a shifted (train) split each window also gets its own phase, a multiple of ``step`` tokens
below ``context`` that is a function of ``(seed, epoch, i)`` only: every token is seen after every context length
over the epochs, as with windows drawn at random offsets, while an epoch stays one pass over the stream and a
resumed run draws exactly the same windows. (One phase shared by all windows of an epoch left each token at the
same context length for a whole epoch, which cost about 0.01 nats/char on tiny Shakespeare in 2,000 steps:
BENCHMARKS.md.) ``len`` counts the windows that fit at every phase, so it does not change between epochs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor


def window_phases(seed: int, epoch: int, indices: np.ndarray, slots: int) -> np.ndarray:
    """A slot in ``[0, slots)`` per window index, a function of ``(seed, epoch, index)`` only: a SplitMix64 hash
    of the index keyed by ``(seed, epoch)``, vectorised (no state, so any subset of windows can be drawn)."""
    mask = (1 << 64) - 1
    key = np.uint64(np.random.default_rng([seed & mask, epoch & mask]).integers(1 << 63))
    z = indices.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15) + key
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return (z % np.uint64(slots)).astype(np.int64)


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
        """Draw the window phases of ``epoch`` (train split only; held-out windows never move)."""
        self.epoch = epoch

    def starts(self, indices: np.ndarray) -> np.ndarray:
        """The first token of each window in ``indices`` at the current epoch."""
        base = indices * self.context
        if not self.shift:
            return base
        return base + window_phases(self.seed, self.epoch, indices, self.context // self.step) * self.step

    def get(self, indices: Tensor | Sequence[int], length: int | None = None) -> tuple[Tensor, None]:
        idx = torch.as_tensor(indices).detach().reshape(-1).cpu().numpy().astype(np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"window index out of range 0..{len(self) - 1}")
        n = self.context if length is None else int(length)
        if not 1 <= n <= self.context:
            raise ValueError(f"length must be between 1 and the context {self.context}; got {length}")
        x = np.asarray(self.tokens[self.starts(idx)[:, None] + np.arange(n)], dtype=np.int64)
        return torch.from_numpy(x).reshape(len(idx), 1, n), None
