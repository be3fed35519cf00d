"""The range coder (``constriction``'s queue coder) behind one small interface, and the deterministic setting
a model must be run in while it drives it.

Symbols are coded in the order they are given, first in first out, so the encoder can code each symbol as soon
as the model has given its conditional, and the decoder reads them back in the same order.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor

from chainrule.core.compression.quantise import frequencies, information_bits
from chainrule.core.errors import ConfigError

INSTALL_HINT = "pip install 'chainrule[compress]' (or: pip install constriction)"


def _constriction() -> Any:
    try:
        import constriction
    except ImportError:
        raise ConfigError(f"compression needs the constriction package: {INSTALL_HINT}") from None
    return constriction


@contextlib.contextmanager
def fixed_threads(threads: int = 1) -> Iterator[None]:
    """Run torch with ``threads`` threads inside the block, then restore the previous count. How a reduction is
    split over threads changes the float result, so encoder and decoder fix it to compute identical
    conditionals."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def coding_mode(model: torch.nn.Module) -> Iterator[None]:
    """The model in eval mode, without autograd, on one thread: the same arithmetic on both sides."""
    was_training = model.training
    model.eval()
    try:
        with fixed_threads(1), torch.inference_mode():
            yield
    finally:
        model.train(was_training)


class Encoder:
    """Codes symbols under quantised model conditionals; ``bits`` is their ideal cost (``-log2`` of the
    quantised probabilities)."""

    def __init__(self) -> None:
        stream = _constriction().stream
        self._coder = stream.queue.RangeEncoder()
        self._family = stream.model.Categorical(perfect=False)
        self._uniform = stream.model.Uniform
        self.bits = 0.0
        self.symbols = 0

    def categorical(self, symbols: np.ndarray, log_probs: Tensor | np.ndarray) -> None:
        """Code ``symbols`` ``(m,)``, symbol ``i`` under the conditional whose log-probabilities are row ``i`` of
        ``log_probs`` ``(m, K)``."""
        if len(symbols) == 0:
            return
        weights = frequencies(log_probs)
        symbols = np.asarray(symbols, dtype=np.int64)
        self._coder.encode(symbols.astype(np.int32), self._family, weights)
        self.bits += information_bits(weights, symbols)
        self.symbols += len(symbols)

    def uniform(self, values: np.ndarray, size: int) -> None:
        """Code integers in ``0 .. size-1``, each with probability ``1/size``."""
        if len(values) == 0:
            return
        self._coder.encode(np.asarray(values, dtype=np.int32), self._uniform(size))
        self.bits += len(values) * float(np.log2(size))
        self.symbols += len(values)

    def words(self) -> np.ndarray:
        """The compressed data as little-endian 32-bit words."""
        return np.asarray(self._coder.get_compressed(), dtype="<u4")


class Decoder:
    """Reads back what :class:`Encoder` wrote, given the same conditionals in the same order."""

    def __init__(self, words: np.ndarray) -> None:
        stream = _constriction().stream
        self._coder = stream.queue.RangeDecoder(np.asarray(words, dtype=np.uint32))
        self._family = stream.model.Categorical(perfect=False)
        self._uniform = stream.model.Uniform

    def categorical(self, log_probs: Tensor | np.ndarray) -> np.ndarray:
        """One symbol per row of ``log_probs`` ``(m, K)``, as int64."""
        if len(log_probs) == 0:
            return np.zeros(0, dtype=np.int64)
        return np.asarray(self._coder.decode(self._family, frequencies(log_probs)), dtype=np.int64)

    def uniform(self, count: int, size: int) -> np.ndarray:
        if count == 0:
            return np.zeros(0, dtype=np.int64)
        return np.asarray(self._coder.decode(self._uniform(size), count), dtype=np.int64)
