"""A music split as the trainer's indexed dataset: windows of ``context`` tokens from the split's token stream.

The pieces of a split are encoded and joined end to end (REMI pieces are delimited by BOS/EOS; melody pieces
are whole segments). On the train split each window of each epoch has its own phase, a function of
``(seed, epoch, window)`` only (a multiple of the segment length for the melody grid, so windows always start
on a bar line); held-out windows never move, so evaluations compare.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from chainrule.core.data.token_windows import TokenWindows
from chainrule.core.errors import ConfigError
from chainrule.modalities.music.tokenizer import MusicTokenizer


class MusicDataset(TokenWindows):
    """``get(indices, length=None)`` -> ``(x, None)``, x long ``(b, 1, length or context)``."""

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
        self.seed, self.shift, self.step = seed, shift, step
        self.class_names: list[str] = []
        self.set_epoch(0)

    def spec(self) -> dict[str, Any]:
        """What a run records to rebuild its model and decode its samples without the data."""
        return {"music": {"encoding": self.tokenizer.kind, "segment_tokens": self.tokenizer.segment_tokens,
                          "steps_per_quarter": self.tokenizer.steps_per_quarter}}

    def describe(self) -> str:
        return (f"{self.name} [{self.split}, {self.n_pieces} pieces, {len(self.tokens):,} tokens, "
                f"{self.tokenizer.describe()}, context {self.context}]")

    def __repr__(self) -> str:
        return f"MusicDataset({self.describe()})"
