"""The one coding loop over a model's conditionals, shared by encoder and decoder.

``B`` rows (text streams, image tiles) are coded in lockstep: at step ``t`` the model gives the conditional of
every row's next symbol at once, the coder codes the rows that are *active* (a row past its end, or a padding
pixel, is not coded), and every row's symbol at ``t`` (0 for an inactive row) is fed back to the model. The
decoder runs exactly the same calls with the same batch shape, so it sees the same conditionals.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Protocol

import numpy as np
import torch
from torch import Tensor

from chainrule.core.compression.coder import Decoder, Encoder


class Conditionals(Protocol):
    """A model's conditionals in coding order, for ``B`` rows at once."""

    def log_probs(self) -> Tensor:
        """``(B, K)`` log-probabilities (up to a per-row constant) of each row's next symbol."""
        ...

    def push(self, symbols: Tensor) -> None:
        """Feed the symbols ``(B,)`` at the current step; the next :meth:`log_probs` is for the step after."""
        ...


class Progress(Protocol):
    def update(self, n: int = 1) -> object: ...


def encode_steps(encoder: Encoder, conditionals: Conditionals, symbols: np.ndarray, active: np.ndarray,
                 progress: Progress | None = None) -> None:
    """Code ``symbols[t, b]`` for every active ``(t, b)`` (both ``(T, B)``), step by step."""
    symbols = np.where(active, symbols, 0)  # what the decoder feeds the model where nothing is coded
    steps = symbols.shape[0]
    for t in range(steps):
        rows = active[t]
        encoder.categorical(symbols[t, rows], conditionals.log_probs()[torch.from_numpy(rows)])
        if t + 1 < steps:
            conditionals.push(torch.from_numpy(symbols[t]))
        if progress is not None:
            progress.update(1)


def decode_steps(decoder: Decoder, conditionals: Conditionals, active: np.ndarray,
                 progress: Progress | None = None) -> np.ndarray:
    """The symbols ``(T, B)`` written by :func:`encode_steps` (0 where ``active`` is False)."""
    out = np.zeros(active.shape, dtype=np.int64)
    steps = active.shape[0]
    for t in range(steps):
        rows = active[t]
        out[t, rows] = decoder.categorical(conditionals.log_probs()[torch.from_numpy(rows)])
        if t + 1 < steps:
            conditionals.push(torch.from_numpy(out[t]))
        if progress is not None:
            progress.update(1)
    return out


@contextlib.contextmanager
def progress_bar(description: str | None, total: int) -> Iterator[Progress | None]:
    """A tqdm bar over ``total`` coding steps when a description is given (shown on a terminal only)."""
    if not description:
        yield None
        return
    from tqdm.auto import tqdm

    with tqdm(total=total, desc=description, unit="step", leave=False, dynamic_ncols=True, disable=None) as bar:
        yield bar
