"""Token streams prepared once into memory-mapped files, and fitted tokenizers, in the data cache.

Layout (``DIR = cache_root(root)/text/NAME-CORPUSHASH``)::

    DIR/tokenizer-KIND[-VOCAB].json      a tokenizer fitted on this corpus (reused, not re-fitted)
    DIR/tokens-KEY.SPLIT.bin             raw uint16 (vocabulary <= 65,535) or uint32 token ids, one per split
    DIR/tokens-KEY.json                  counts per split, written last: its presence marks a complete set

``KEY`` hashes the corpus, the tokenizer and the split rule, so a changed corpus or tokenizer never reuses a
stale stream. Every file is written atomically; streams are written chunk by chunk (no list of all tokens).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from chainrule.core.errors import DataError
from chainrule.core.runs.atomic import atomic_write, atomic_write_text
from chainrule.modalities.text.data.tokenizers import Tokenizer, load_tokenizer

FORMAT_VERSION = 1


@dataclass(frozen=True)
class TokenStream:
    """The token ids of one split (a read-only memory map) and the size of the text they encode."""

    tokens: np.ndarray
    n_chars: int
    n_bytes: int


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16 if vocab_size <= 65_535 else np.uint32)


def cached_tokenizer(directory: Path, name: str, fit: Callable[[], Tokenizer]) -> Tokenizer:
    """``directory/tokenizer-NAME.json`` if present and readable, else ``fit()`` saved there."""
    path = directory / f"tokenizer-{name}.json"
    if path.is_file():
        try:
            return load_tokenizer(path)
        except DataError:
            pass  # a damaged cache entry: fit again and replace it
    tokenizer = fit()
    _guard(path, lambda: tokenizer.save(path))
    return tokenizer


def cached_streams(directory: Path, key: str, texts: Mapping[str, str], tokenizer: Tokenizer
                   ) -> dict[str, TokenStream]:
    """Memory-mapped token streams of ``texts`` (split -> text) under ``directory``, tokenising only when the
    set for ``key`` is not complete yet."""
    meta_path = directory / f"tokens-{key}.json"
    dtype = token_dtype(tokenizer.vocab_size)
    streams = _open(directory, key, meta_path, dtype, texts.keys())
    if streams is not None:
        return streams
    counts: dict[str, dict[str, int]] = {}
    for split, text in texts.items():
        counts[split] = {"tokens": _write_stream(directory / f"tokens-{key}.{split}.bin", text, tokenizer, dtype),
                         "chars": len(text), "bytes": len(text.encode("utf-8", "surrogatepass"))}
    meta = {"format": FORMAT_VERSION, "dtype": dtype.name, "vocab_size": tokenizer.vocab_size, "splits": counts}
    _guard(meta_path, lambda: atomic_write_text(meta_path, json.dumps(meta, indent=1) + "\n"))
    streams = _open(directory, key, meta_path, dtype, texts.keys())
    if streams is None:
        raise DataError(f"{meta_path}: the token cache just written cannot be read back")
    return streams


def _write_stream(path: Path, text: str, tokenizer: Tokenizer, dtype: np.dtype) -> int:
    count = 0

    def write(f: IO[bytes]) -> None:
        nonlocal count
        for ids in tokenizer.encode_chunks(text):
            f.write(ids.astype(dtype).tobytes())
            count += len(ids)

    _guard(path, lambda: atomic_write(path, write))
    return count


def _open(directory: Path, key: str, meta_path: Path, dtype: np.dtype, splits: object
          ) -> dict[str, TokenStream] | None:
    """The complete cached set for ``key``, or None when absent, partial or inconsistent."""
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("format") != FORMAT_VERSION or meta.get("dtype") != dtype.name:
            return None
        out: dict[str, TokenStream] = {}
        for split in splits:  # type: ignore[attr-defined]
            c = meta["splits"][split]
            path = directory / f"tokens-{key}.{split}.bin"
            if path.stat().st_size != c["tokens"] * dtype.itemsize:
                return None
            tokens = (np.memmap(path, dtype=dtype, mode="r", shape=(c["tokens"],)) if c["tokens"]
                      else np.zeros(0, dtype=dtype))
            out[split] = TokenStream(tokens=tokens, n_chars=int(c["chars"]), n_bytes=int(c["bytes"]))
        return out
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _guard(path: Path, write: Callable[[], None]) -> None:
    """Run ``write``; an OSError becomes a :class:`DataError` naming the cache file."""
    try:
        write()
    except OSError as e:
        raise DataError(f"{path}: cannot write the text cache ({e.strerror or e}); choose another cache directory "
                        f"(data option root, or $CHAINRULE_DATA)") from None
