"""Encode prompts and decode tokens from the tokenizer embedded in an exported text model.

Mirrors :mod:`chainrule.modalities.text.data.tokenizers` without numpy-heavy machinery: ``char`` (one id per character
plus an unknown id, the last) and ``byte`` (UTF-8 bytes) in pure Python; ``bpe`` (byte-level BPE) with the
``tokenizers`` package. ``token_bytes(id)`` gives the bytes a token stands for, for incremental decoding.
"""

from __future__ import annotations

import json
import re
from typing import Any

from chainrule.edge.errors import EdgeError

_SURROGATES = re.compile("[\ud800-\udfff]")
_REPLACEMENT = "\ufffd"


def utf8(text: str) -> bytes:
    """UTF-8 bytes of ``text``; lone surrogates become U+FFFD."""
    return _SURROGATES.sub(_REPLACEMENT, text).encode("utf-8")


def _byte_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map (the ByteLevel alphabet)."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    extra = iter(range(256, 512))
    return {b: chr(b) if b in keep else chr(next(extra)) for b in range(256)}


class EdgeTokenizer:
    """Text <-> ids for a tokenizer dictionary ``{"kind": "char" | "byte" | "bpe", ...}``."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.kind = spec.get("kind") if isinstance(spec, dict) else None
        self._hf = None
        if self.kind == "char":
            chars = list(spec.get("chars", []))
            self._ids = {c: i for i, c in enumerate(chars)}
            self._bytes = [c.encode("utf-8", "surrogatepass") for c in chars] + [_REPLACEMENT.encode()]
        elif self.kind == "byte":
            self._bytes = [bytes([b]) for b in range(256)]
        elif self.kind == "bpe":
            self._hf = self._load_bpe(spec.get("hf"))
            self._bytes = self._bpe_bytes()
        else:
            raise EdgeError(f"unknown tokenizer kind {self.kind!r} in the model metadata")

    @property
    def vocab_size(self) -> int:
        return len(self._bytes)

    def encode(self, text: str) -> list[int]:
        if self.kind == "char":
            unk = len(self._ids)
            return [self._ids.get(c, unk) for c in text]
        if self.kind == "byte":
            return list(utf8(text))
        return list(self._hf.encode(utf8(text).decode("utf-8"), add_special_tokens=False).ids)

    def token_bytes(self, token_id: int) -> bytes:
        return self._bytes[int(token_id)]

    def decode(self, ids: list[int]) -> str:
        return b"".join(self._bytes[int(i)] for i in ids).decode("utf-8", errors="replace")

    # ------------------------------------------------------------------ BPE
    @staticmethod
    def _load_bpe(hf_spec: Any) -> Any:
        try:
            from tokenizers import Tokenizer
        except ImportError:
            raise EdgeError("this model uses a BPE tokenizer; install the 'tokenizers' package") from None
        try:
            return Tokenizer.from_str(json.dumps(hf_spec))
        except Exception as e:  # tokenizers raises a bare Exception for malformed JSON
            raise EdgeError(f"invalid BPE tokenizer in the model metadata ({e})") from None

    def _bpe_bytes(self) -> list[bytes]:
        decode_byte = {c: b for b, c in _byte_to_unicode().items()}
        size = int(self._hf.get_vocab_size(with_added_tokens=True))
        by_id = {i: s for s, i in self._hf.get_vocab(with_added_tokens=False).items()}
        added = {i: t.content for i, t in self._hf.get_added_tokens_decoder().items()}
        out: list[bytes] = []
        for i in range(size):
            piece = by_id.get(i, "")
            if i in added:
                out.append(added[i].encode("utf-8"))
            elif i in by_id and all(c in decode_byte for c in piece):
                out.append(bytes(decode_byte[c] for c in piece))
            else:
                out.append(piece.encode("utf-8"))
        return out
