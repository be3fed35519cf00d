"""Tokenizers for text: characters, UTF-8 bytes, and byte-level BPE (Hugging Face ``tokenizers``).

Every tokenizer maps text to ids in ``0..vocab_size-1`` and back. ``token_bytes(id)`` is the UTF-8 byte
string a token stands for; ``decode`` joins those bytes and decodes them with ``errors="replace"``, so ids
whose bytes do not form complete UTF-8 (e.g. half of a multi-byte character) come out as U+FFFD.

* :class:`CharTokenizer` — one id per character of its vocabulary (``fit`` uses the sorted distinct
  characters of a text), plus one explicit **unknown** id, the last one (``len(chars)``), for characters not in
  the vocabulary; it decodes to U+FFFD. ``vocab_size = len(chars) + 1``, so ``encode`` never fails and ids
  ``0..len(chars)-1`` are the conventional sorted-character ids.
* :class:`ByteTokenizer` — the 256 byte values of the UTF-8 encoding.
* :class:`BPETokenizer` — byte-level BPE (GPT-2 style ByteLevel pre-tokenizer and decoder); round-trips any
  Unicode text exactly.

Lone surrogates (not valid Unicode text) are encoded as U+FFFD by the byte and BPE tokenizers.

Saved as JSON (``{"kind": ..., ...}``); :func:`load_tokenizer` / :func:`tokenizer_from_dict` dispatch on
``kind``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from functools import cached_property
from itertools import islice
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from chainrule.core.errors import ConfigError, DataError
from chainrule.core.runs.atomic import atomic_write_text

TOKENIZER_KINDS = ("char", "byte", "bpe")
DEFAULT_BPE_VOCAB = 1024
_CHUNK_CHARS = 1 << 20
_SURROGATES = re.compile("[\ud800-\udfff]")
_REPLACEMENT = "\ufffd"
_SAFE_BREAK = re.compile(r"(?<=[!-~])\n(?=[!-~])")  # see safe_chunks


def utf8(text: str) -> bytes:
    """UTF-8 bytes of ``text``; lone surrogates become U+FFFD."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATES.sub(_REPLACEMENT, text).encode("utf-8")


class Tokenizer(ABC):
    """Text <-> token ids; see the module docstring for the contract shared by all kinds."""

    kind: ClassVar[str]

    @property
    @abstractmethod
    def vocab_size(self) -> int: ...

    @abstractmethod
    def encode_array(self, text: str) -> np.ndarray:
        """Ids of ``text`` as a 1-D int64 array (vectorised)."""

    @abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """JSON-able description, including ``"kind"``."""

    @abstractmethod
    def _token_bytes_list(self) -> list[bytes]:
        """The bytes of every id, in id order."""

    # ------------------------------------------------------------------ shared behaviour
    def encode(self, text: str) -> list[int]:
        return self.encode_array(text).tolist()

    def encode_chunks(self, text: str, chunk_chars: int = _CHUNK_CHARS) -> Iterator[np.ndarray]:
        """Ids of ``text`` in pieces (bounded memory); concatenated they equal ``encode_array(text)``."""
        for start in range(0, len(text), chunk_chars):
            yield self.encode_array(text[start:start + chunk_chars])

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        return self.ids_to_bytes(ids).decode("utf-8", errors="replace")

    def token_bytes(self, token_id: int) -> bytes:
        """The raw bytes token ``token_id`` stands for."""
        i = int(self._check_ids([token_id])[0])
        buffer, offsets = self._byte_table
        return buffer[offsets[i]:offsets[i + 1]].tobytes()

    def ids_to_bytes(self, ids: Sequence[int] | np.ndarray) -> bytes:
        """The concatenated bytes of ``ids`` (vectorised gather from a packed table)."""
        arr = self._check_ids(ids)
        buffer, offsets = self._byte_table
        starts, lengths = offsets[arr], offsets[arr + 1] - offsets[arr]
        total = int(lengths.sum())
        if total == 0:
            return b""
        shift = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
        return buffer[shift + np.arange(total)].tobytes()

    def save(self, path: str | os.PathLike) -> None:
        """Write the tokenizer as JSON (atomically)."""
        atomic_write_text(path, json.dumps(self.to_dict(), indent=1) + "\n")

    def fingerprint(self) -> str:
        """sha256 of the canonical JSON: equal for tokenizers that encode identically."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()

    def describe(self) -> str:
        return f"{self.kind} tokenizer ({self.vocab_size})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Tokenizer) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(self.fingerprint())

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab_size={self.vocab_size})"

    # ------------------------------------------------------------------ internals
    @cached_property
    def _byte_table(self) -> tuple[np.ndarray, np.ndarray]:
        pieces = self._token_bytes_list()
        offsets = np.zeros(len(pieces) + 1, dtype=np.int64)
        offsets[1:] = np.cumsum([len(p) for p in pieces])
        return np.frombuffer(b"".join(pieces), dtype=np.uint8), offsets

    def _check_ids(self, ids: Sequence[int] | np.ndarray) -> np.ndarray:
        arr = np.asarray(ids, dtype=np.int64).reshape(-1)
        if arr.size and (arr.min() < 0 or arr.max() >= self.vocab_size):
            bad = arr[(arr < 0) | (arr >= self.vocab_size)][0]
            raise ValueError(f"token id {int(bad)} out of range for a vocabulary of {self.vocab_size}")
        return arr


class CharTokenizer(Tokenizer):
    """One id per character of ``chars`` (in the given order); id ``len(chars)`` is the unknown character."""

    kind = "char"

    def __init__(self, chars: Sequence[str]) -> None:
        chars = list(chars)
        if any(not isinstance(c, str) or len(c) != 1 for c in chars):
            raise ConfigError("CharTokenizer: every vocabulary entry must be a single character")
        if len(set(chars)) != len(chars):
            raise ConfigError("CharTokenizer: the vocabulary has repeated characters")
        self.chars = chars
        self.unk_id = len(chars)
        codes = np.array([ord(c) for c in chars], dtype=np.int64)
        order = np.argsort(codes, kind="stable")
        self._sorted_codes, self._sorted_ids = codes[order], order.astype(np.int64)
        self._codes = np.append(codes, ord(_REPLACEMENT)).astype(np.uint32)

    @classmethod
    def fit(cls, text: str) -> CharTokenizer:
        """The sorted distinct characters of ``text`` (plus the unknown id)."""
        return cls(sorted(set(text)))

    @property
    def vocab_size(self) -> int:
        return len(self.chars) + 1

    def encode_array(self, text: str) -> np.ndarray:
        codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4").astype(np.int64)
        if not len(self._sorted_codes):
            return np.full(codes.shape, self.unk_id, dtype=np.int64)
        pos = np.minimum(np.searchsorted(self._sorted_codes, codes), len(self._sorted_codes) - 1)
        return np.where(self._sorted_codes[pos] == codes, self._sorted_ids[pos], self.unk_id)

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        arr = self._check_ids(ids)
        return self._codes[arr].astype("<u4").tobytes().decode("utf-32-le", "surrogatepass")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "chars": self.chars}

    def describe(self) -> str:
        return f"char tokenizer ({self.vocab_size} = {len(self.chars)} chars + unknown)"

    def _token_bytes_list(self) -> list[bytes]:
        return [c.encode("utf-8", "surrogatepass") for c in self.chars] + [_REPLACEMENT.encode()]


class ByteTokenizer(Tokenizer):
    """The UTF-8 bytes of the text: vocabulary 256."""

    kind = "byte"

    @property
    def vocab_size(self) -> int:
        return 256

    def encode_array(self, text: str) -> np.ndarray:
        return np.frombuffer(utf8(text), dtype=np.uint8).astype(np.int64)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind}

    def _token_bytes_list(self) -> list[bytes]:
        return [bytes([b]) for b in range(256)]


def _byte_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map, used by the ByteLevel pre-tokenizer."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    extra = iter(range(256, 512))
    return {b: chr(b) if b in keep else chr(next(extra)) for b in range(256)}


class BPETokenizer(Tokenizer):
    """Byte-level BPE wrapping a Hugging Face ``tokenizers.Tokenizer`` (ByteLevel pre-tokenizer + decoder)."""

    kind = "bpe"

    def __init__(self, hf: Any) -> None:
        spec = json.loads(hf.to_str())
        if (spec.get("model") or {}).get("type") != "BPE" or (spec.get("decoder") or {}).get("type") != "ByteLevel":
            raise ConfigError("BPETokenizer needs a byte-level BPE tokenizer (BPE model, ByteLevel decoder)")
        self.hf = hf

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int = DEFAULT_BPE_VOCAB) -> BPETokenizer:
        """Train byte-level BPE on ``texts`` (an iterable of strings) up to ``vocab_size`` tokens."""
        from tokenizers import Tokenizer as HFTokenizer
        from tokenizers import decoders, models, pre_tokenizers, trainers

        if not isinstance(vocab_size, int) or vocab_size < 256:
            raise ConfigError(f"BPE vocab_size must be an integer >= 256 (the byte alphabet); got {vocab_size!r}")
        hf = HFTokenizer(models.BPE())
        hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        hf.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False, special_tokens=[],
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        hf.train_from_iterator((utf8(t).decode("utf-8") for t in texts), trainer=trainer)
        return cls(hf)

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> BPETokenizer:
        """Load a Hugging Face ``tokenizer.json`` (byte-level BPE)."""
        from tokenizers import Tokenizer as HFTokenizer

        try:
            hf = HFTokenizer.from_file(str(path))
        except Exception as e:  # tokenizers raises a bare Exception for unreadable files
            raise DataError(f"{path}: not a Hugging Face tokenizer file ({e})") from None
        try:
            return cls(hf)
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from None

    @property
    def vocab_size(self) -> int:
        return int(self.hf.get_vocab_size(with_added_tokens=True))

    def encode_array(self, text: str) -> np.ndarray:
        ids = self.hf.encode(utf8(text).decode("utf-8"), add_special_tokens=False).ids
        return np.asarray(ids, dtype=np.int64)

    def encode_chunks(self, text: str, chunk_chars: int = 1 << 16) -> Iterator[np.ndarray]:
        """Encode ``text`` cut at safe line breaks (:func:`safe_chunks`), 32 chunks per ``encode_batch`` call
        (the offset-free ``encode_batch_fast`` when available)."""
        encode_batch = getattr(self.hf, "encode_batch_fast", self.hf.encode_batch)
        pieces = safe_chunks(text, chunk_chars)
        while batch := [utf8(p).decode("utf-8") for p in islice(pieces, 32)]:
            for enc in encode_batch(batch, add_special_tokens=False):
                yield np.asarray(enc.ids, dtype=np.int64)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "hf": json.loads(self.hf.to_str())}

    def _token_bytes_list(self) -> list[bytes]:
        decode_byte = {c: b for b, c in _byte_to_unicode().items()}
        vocab = self.hf.get_vocab(with_added_tokens=False)
        added = {i: t.content for i, t in self.hf.get_added_tokens_decoder().items()}
        out: list[bytes] = []
        by_id = {i: s for s, i in vocab.items()}
        for i in range(self.vocab_size):
            if i in added:
                out.append(added[i].encode("utf-8"))
            elif i in by_id and all(c in decode_byte for c in by_id[i]):
                out.append(bytes(decode_byte[c] for c in by_id[i]))
            else:
                out.append(by_id.get(i, "").encode("utf-8"))
        return out


def make_tokenizer(kind: str, text: str, vocab_size: int = DEFAULT_BPE_VOCAB) -> Tokenizer:
    """Fit a tokenizer of ``kind`` on ``text``."""
    if kind == "char":
        return CharTokenizer.fit(text)
    if kind == "byte":
        return ByteTokenizer()
    if kind == "bpe":
        return BPETokenizer.train(safe_chunks(text, 1 << 16), vocab_size)
    raise ConfigError(f"unknown tokenizer {kind!r}; choose one of {', '.join(TOKENIZER_KINDS)}")


def safe_chunks(text: str, chunk_chars: int = _CHUNK_CHARS) -> Iterator[str]:
    """``text`` cut into pieces of at least ``chunk_chars`` characters (the last may be shorter) at newlines
    with printable ASCII on both sides. The GPT-2 pre-tokenizer splits there anyway, so encoding the pieces
    separately gives exactly the ids of the whole text. Text without such a break stays one piece."""
    start = 0
    while start < len(text):
        m = _SAFE_BREAK.search(text, start + max(1, chunk_chars) - 1)
        end = m.end() if m else len(text)
        yield text[start:end]
        start = end


def tokenizer_from_dict(d: dict[str, Any]) -> Tokenizer:
    """Rebuild a tokenizer from :meth:`Tokenizer.to_dict` output."""
    kind = d.get("kind") if isinstance(d, dict) else None
    if kind == "char":
        return CharTokenizer(d["chars"])
    if kind == "byte":
        return ByteTokenizer()
    if kind == "bpe":
        from tokenizers import Tokenizer as HFTokenizer

        return BPETokenizer(HFTokenizer.from_str(json.dumps(d["hf"])))
    raise ConfigError(f"unknown tokenizer kind {kind!r}; expected one of {', '.join(TOKENIZER_KINDS)}")


def load_tokenizer(path: str | os.PathLike) -> Tokenizer:
    """Read a tokenizer JSON written by :meth:`Tokenizer.save`."""
    p = Path(path)
    try:
        d = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{p}: tokenizer file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"{p}: not a readable tokenizer file ({e})") from None
    try:
        return tokenizer_from_dict(d)
    except Exception as e:  # KeyError, ConfigError, or tokenizers' bare Exception for a malformed "hf"
        raise DataError(f"{p}: invalid tokenizer ({e})") from None
