"""A music split as the trainer's indexed dataset: windows of ``context`` tokens from the split's token stream.

The pieces of a split are encoded and joined end to end (REMI pieces are delimited by BOS/EOS; melody pieces
are whole segments). On the train split ``set_epoch(e)`` shifts every window boundary by an offset that is a
function of ``(seed, e)`` only (a multiple of the segment length for the melody grid, so windows always start
on a bar line); held-out windows never move, so evaluations compare.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from chainrule.core.errors import ConfigError
from chainrule.modalities.music.tokenizer import MusicTokenizer


class MusicDataset:
    """``get(indices, length=None)`` -> ``(x, None)``, x long ``(b, 1, length or context)``."""

    labels = None
    num_classes = 0
    run_kind = "music"

    def __init__(self, tokens: np.ndarray, tokenizer: MusicTokenizer, context: int, *, name: str, split: str,
                 n_pieces: int, seed: int = 0, shift: bool = True) -> None:
        step = tokenizer.segment_tokens or 1
        if context < 2 or context % step:
            raise ConfigError(f"data option 'context' must be at least 2 and a multiple of {step} tokens "
                              f"(one segment) for the {tokenizer.kind} encoding; got {context}")
        self.tokens = tokens
        self.tokenizer = tokenizer
        self.context = context
        self.name, self.split, self.n_pieces = name, split, n_pieces
        self.seed, self.shift, self._step = seed, shift, step
        self.class_names: list[str] = []
        self.set_epoch(0)

    def __len__(self) -> int:
        spare = self.context - self._step if self.shift else 0
        return max(0, (len(self.tokens) - spare) // self.context)

    @property
    def event_shape(self) -> tuple[int, int]:
        return (1, self.context)

    @property
    def levels(self) -> int:
        return self.tokenizer.vocab_size

    def set_epoch(self, epoch: int) -> None:
        """Shift the train windows for ``epoch`` (held-out windows never move)."""
        self.epoch = epoch
        if not self.shift:
            self.offset = 0
            return
        mask = (1 << 64) - 1
        slots = self.context // self._step
        self.offset = int(np.random.default_rng([self.seed & mask, epoch & mask]).integers(slots)) * self._step

    def get(self, indices: Tensor | Sequence[int], length: int | None = None) -> tuple[Tensor, None]:
        idx = torch.as_tensor(indices).detach().reshape(-1).cpu().numpy().astype(np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"window index out of range 0..{len(self) - 1}")
        n = self.context if length is None else int(length)
        if not 1 <= n <= self.context:
            raise ValueError(f"length must be between 1 and the context {self.context}; got {length}")
        starts = self.offset + idx * self.context
        x = self.tokens[starts[:, None] + np.arange(n)]
        return torch.from_numpy(np.ascontiguousarray(x)).reshape(len(idx), 1, n), None

    def spec(self) -> dict[str, Any]:
        """What a run records to rebuild its model and decode its samples without the data."""
        return {"music": {"encoding": self.tokenizer.kind, "segment_tokens": self.tokenizer.segment_tokens,
                          "steps_per_quarter": self.tokenizer.steps_per_quarter}}

    def describe(self) -> str:
        return (f"{self.name} [{self.split}, {self.n_pieces} pieces, {len(self.tokens):,} tokens, "
                f"{self.tokenizer.describe()}, context {self.context}]")

    def __repr__(self) -> str:
        return f"MusicDataset({self.describe()})"
