"""Text files as a language model's symbols and back, for lossless compression (any bytes, not only UTF-8).

The file's bytes become token ids whose bytes concatenate to exactly the file:

* byte-level tokenizers (``byte``, ``bpe``): every valid UTF-8 stretch is tokenized as usual (and checked to
  give back its bytes; a tokenizer that normalises text falls back to one token per byte there), every byte
  that is not valid UTF-8 becomes the single-byte token of that value;
* ``char``: the characters of the vocabulary are their ids; any other character (or an invalid byte, read as
  its surrogate escape U+DC80..U+DCFF) is coded as the *unknown* id, which the model predicts like any token,
  followed by its code point, coded uniformly (21 bits) after the token stream.

The ids are cut into up to ``batch`` contiguous streams coded in lockstep (:mod:`chainrule.core.compression.loop`),
each from an empty context, with the context window of text generation
(:class:`~chainrule.modalities.text.generation.loop.TokenContext`: between ``W/2`` and ``W = max_len - 1`` tokens).
A stream is only started for every ``8 * max_len`` tokens, so short files stay one stream.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from chainrule.core.compression.coder import Decoder, Encoder
from chainrule.core.compression.loop import decode_steps, encode_steps, progress_bar
from chainrule.core.errors import DataError
from chainrule.modalities.text.data.tokenizers import CharTokenizer, Tokenizer
from chainrule.modalities.text.generation.loop import TokenContext
from chainrule.modalities.text.models.sequence import SequenceModel

#: code points an escaped character can have (U+0000 .. U+10FFFF)
CODE_POINTS = 0x110000
#: tokens per stream below which a file is not split further
STREAM_WINDOWS = 8
_ESCAPED_BYTES = re.compile("[\udc80-\udcff]+")


@dataclass(frozen=True)
class TextFile:
    """A file's name and exact bytes."""

    name: str
    data: bytes


class TokenConditionals:
    """The model's next-token distribution for ``batch`` streams fed one token each per step."""

    def __init__(self, model: SequenceModel, batch: int) -> None:
        self.context = TokenContext(model, torch.zeros(batch, 0, dtype=torch.long, device=model.device))

    def log_probs(self) -> Tensor:
        return self.context.logits()

    def push(self, symbols: Tensor) -> None:
        self.context.push(symbols.to(self.context.tokens.device))


class TextCodec:
    """Text files <-> a language model's token ids (see the module docstring)."""

    kind = "text"

    def __init__(self, model: SequenceModel, tokenizer: Tokenizer) -> None:
        if tokenizer.vocab_size != model.vocab_size:
            raise DataError(f"the run's tokenizer has {tokenizer.vocab_size} tokens but its model "
                            f"{model.vocab_size}")
        self.model, self.tokenizer = model, tokenizer

    # -------------------------------------------------------------- files
    def read(self, path: Path) -> TextFile:
        if not path.is_file():
            raise DataError(f"{path}: not a file (a text run compresses one file)")
        return TextFile(name=path.name, data=path.read_bytes())

    def checksum(self, content: TextFile) -> bytes:
        return hashlib.sha256(content.data).digest()

    def units(self, content: TextFile) -> tuple[int, str]:
        """The input's size in the unit rates are quoted in: characters (an invalid byte counts as one)."""
        return len(content.data.decode("utf-8", "surrogateescape")), "char"

    def output_names(self, metadata: dict[str, Any]) -> list[str]:
        return [str(metadata["name"])]

    def write_plan(self, content: TextFile) -> list[tuple[str, bytes]]:
        return [(content.name, content.data)]

    # -------------------------------------------------------------- symbols
    def tokens(self, data: bytes) -> tuple[np.ndarray, np.ndarray]:
        """Token ids whose bytes are ``data`` (unknown ids where a char tokenizer lacks the character) and the
        code points of those unknown characters."""
        text = data.decode("utf-8", "surrogateescape")
        tok = self.tokenizer
        if isinstance(tok, CharTokenizer):
            ids = tok.encode_array(text)
            unknown = ids == self._unknown_id()
            codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")
            return ids.astype(np.int64), codes[unknown].astype(np.int64)
        pieces, at = [], 0
        for m in _ESCAPED_BYTES.finditer(text):
            pieces += [self._valid_utf8(text[at:m.start()]), self._single_bytes(m.group().encode("utf-8",
                                                                                                 "surrogateescape"))]
            at = m.end()
        pieces.append(self._valid_utf8(text[at:]))
        return np.concatenate([np.zeros(0, dtype=np.int64), *pieces]), np.zeros(0, dtype=np.int64)

    def restore(self, ids: np.ndarray, escapes: np.ndarray) -> bytes:
        """Inverse of :meth:`tokens`."""
        tok = self.tokenizer
        if isinstance(tok, CharTokenizer):
            table = np.array([ord(c) for c in tok.chars] + [0], dtype=np.int64)
            codes = table[ids]
            codes[ids == tok.unk_id] = escapes
            return codes.astype("<u4").tobytes().decode("utf-32-le", "surrogatepass").encode("utf-8", "surrogateescape")
        return tok.ids_to_bytes(ids)

    def _unknown_id(self) -> int:
        """The id that is followed by an escaped code point (-1: none, every byte has a token)."""
        return self.tokenizer.unk_id if isinstance(self.tokenizer, CharTokenizer) else -1

    def _valid_utf8(self, text: str) -> np.ndarray:
        if not text:
            return np.zeros(0, dtype=np.int64)
        data = text.encode("utf-8")
        ids = np.concatenate([np.zeros(0, dtype=np.int64), *self.tokenizer.encode_chunks(text)])
        return ids if self.tokenizer.ids_to_bytes(ids) == data else self._single_bytes(data)

    def _single_bytes(self, data: bytes) -> np.ndarray:
        table = self._byte_tokens()
        ids = table[np.frombuffer(data, dtype=np.uint8)]
        if (ids < 0).any():
            value = data[int(np.argmax(ids < 0))]
            raise DataError(f"the run's {self.tokenizer.kind} tokenizer has no token for the byte 0x{value:02x}, so "
                            "it cannot code this file losslessly")
        return ids

    def _byte_tokens(self) -> np.ndarray:
        """The id of the one-byte token of each byte value (-1 where there is none)."""
        table = np.full(256, -1, dtype=np.int64)
        for i in range(self.tokenizer.vocab_size - 1, -1, -1):  # the lowest id wins
            b = self.tokenizer.token_bytes(i)
            if len(b) == 1:
                table[b[0]] = i
        return table

    # -------------------------------------------------------------- coding
    def encode(self, content: TextFile, encoder: Encoder, batch: int, progress: str | None = None) -> dict[str, Any]:
        ids, escapes = self.tokens(content.data)
        streams = stream_count(len(ids), batch, self.model.max_len)
        symbols, active = stream_rows(ids, streams)
        with progress_bar(progress, len(symbols)) as bar:
            encode_steps(encoder, TokenConditionals(self.model, streams), symbols, active, bar)
        encoder.uniform(escapes, CODE_POINTS)
        return {"codec": self.kind, "name": content.name, "bytes": len(content.data), "tokens": len(ids),
                "streams": streams}

    def decode(self, metadata: dict[str, Any], decoder: Decoder, progress: str | None = None) -> TextFile:
        n, streams = int(metadata["tokens"]), int(metadata["streams"])
        _, active = stream_rows(np.zeros(n, dtype=np.int64), streams)
        with progress_bar(progress, len(active)) as bar:
            rows = decode_steps(decoder, TokenConditionals(self.model, streams), active, bar)
        ids = rows.T[active.T]  # stream by stream, each in order
        unknown = ids == self._unknown_id()
        escapes = decoder.uniform(int(unknown.sum()), CODE_POINTS)
        return TextFile(name=str(metadata["name"]), data=self.restore(ids, escapes))


def stream_count(tokens: int, batch: int, max_len: int) -> int:
    """How many streams to cut ``tokens`` into: at most ``batch``, each at least ``STREAM_WINDOWS * max_len``."""
    return max(1, min(int(batch), tokens // (STREAM_WINDOWS * max_len)))


def stream_rows(ids: np.ndarray, streams: int) -> tuple[np.ndarray, np.ndarray]:
    """``ids`` cut into ``streams`` contiguous pieces (the first ``len % streams`` one longer), as ``(T, streams)``
    symbols (0 past a stream's end) and the matching active mask."""
    lengths = np.full(streams, len(ids) // streams) + (np.arange(streams) < len(ids) % streams)
    steps = int(lengths.max()) if len(ids) else 0
    active = np.arange(steps)[:, None] < lengths[None, :]
    symbols = np.zeros((steps, streams), dtype=np.int64)
    symbols.T[active.T] = ids
    return symbols, active
