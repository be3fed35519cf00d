"""Dataset loaders for ``chorales``, ``folksongs`` and ``midifolder:PATH`` (options are keyword arguments).

Splits are by piece, so no held-out piece is ever seen in training:

- ``chorales``: the 371 chorales sorted by corpus name, permuted with numpy ``default_rng(0)``: test 37,
  val 37, train 297.
- ``folksongs``: the Essen tunes, the same way with 5% test and 5% val.
- ``midifolder:PATH``: seeded fractions 0.8 / 0.1 / 0.1 of the files (option ``fractions``).

Options: ``encoding`` (``remi`` default, or ``melody``), ``context`` (tokens per window; default 256 for REMI,
64 = 4 bars for the melody grid), ``transpose`` (K: the train split also holds every piece transposed by
-K..K semitones; held-out splits are never transposed), ``seed``, ``tokenizer_path`` (a run's own
``tokenizer.json``, which fixes the encoding), ``root`` (the cache directory).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from chainrule.core.data.options import as_int, as_str
from chainrule.core.data.splits import check_split, fraction_split, parse_fractions, seeded_split
from chainrule.core.errors import ConfigError
from chainrule.modalities.music.data.dataset import MusicDataset
from chainrule.modalities.music.data.piece import Piece
from chainrule.modalities.music.data.sources import (
    cached_pieces,
    midi_files,
    midi_to_piece,
    parse_chorales,
    parse_folksongs,
)
from chainrule.modalities.music.tokenizer import MusicTokenizer, load_music_tokenizer

DEFAULT_CONTEXT = {"remi": 256, "melody": 64}
MAX_TRANSPOSE = 12


def chorale_split(n: int) -> dict[str, np.ndarray]:
    """The fixed chorale split of ``n`` pieces sorted by name (37 test, 37 val for the 371 chorales)."""
    held = round(n * 0.1)
    return seeded_split(n, held, held, seed=0)


def load_chorales(split: str, *, encoding: Any = None, context: Any = None, transpose: Any = 0, seed: Any = 0,
                  tokenizer_path: Any = None, root: Any = None) -> MusicDataset:
    """Bach's chorales from music21's corpus (four voices merged for REMI; the soprano for the melody grid)."""
    pieces = sorted(cached_pieces("chorales", parse_chorales, root), key=lambda p: p.name)
    return _dataset("chorales", pieces, chorale_split(len(pieces)), split, encoding, context, transpose, seed,
                    tokenizer_path)


def load_folksongs(split: str, *, encoding: Any = None, context: Any = None, transpose: Any = 0, seed: Any = 0,
                   tokenizer_path: Any = None, root: Any = None) -> MusicDataset:
    """The Essen folksong collection in music21's corpus (monophonic tunes)."""
    pieces = cached_pieces("folksongs", parse_folksongs, root)
    held = round(len(pieces) * 0.05)
    return _dataset("folksongs", pieces, seeded_split(len(pieces), held, held, seed=0), split, encoding, context,
                    transpose, seed, tokenizer_path)


def load_midifolder(path: str, split: str, *, fractions: Any = (0.8, 0.1, 0.1), encoding: Any = None,
                    context: Any = None, transpose: Any = 0, seed: Any = 0, tokenizer_path: Any = None
                    ) -> MusicDataset:
    """Every MIDI file under ``path``; a damaged file or an empty folder is a one-line :class:`DataError`."""
    pieces = _read_midi_folder(str(Path(path).expanduser().resolve()))
    parts = fraction_split(len(pieces), parse_fractions(fractions), seed=0)
    return _dataset(f"midifolder:{path}", pieces, parts, split, encoding, context, transpose, seed, tokenizer_path)


@lru_cache(maxsize=4)
def _read_midi_folder(folder: str) -> list[Piece]:
    return [midi_to_piece(p) for p in midi_files(folder)]


def _dataset(name: str, pieces: list[Piece], parts: dict[str, np.ndarray], split: str, encoding: Any,
             context: Any, transpose: Any, seed: Any, tokenizer_path: Any) -> MusicDataset:
    check_split(split)
    tokenizer = (load_music_tokenizer(as_str("tokenizer_path", tokenizer_path)) if tokenizer_path
                 else MusicTokenizer(as_str("encoding", encoding or "remi")))
    if encoding is not None and as_str("encoding", encoding) != tokenizer.kind:
        raise ConfigError(f"data option 'encoding' is {encoding!r} but the run's tokenizer is {tokenizer.kind!r}")
    k = as_int("transpose", transpose)
    if not 0 <= k <= MAX_TRANSPOSE:
        raise ConfigError(f"data option 'transpose' must be between 0 and {MAX_TRANSPOSE} semitones; got {k}")
    chosen = [pieces[i] for i in parts[split]]
    if split == "train" and k:
        chosen = [p.transposed(s) if s else p for p in chosen for s in range(-k, k + 1)]
    tokens = _encode_all(tokenizer, chosen)
    ctx = as_int("context", context if context is not None else DEFAULT_CONTEXT[tokenizer.kind])
    return MusicDataset(tokens, tokenizer, ctx, name=name, split=split, n_pieces=len(chosen),
                        seed=as_int("seed", seed), shift=split == "train")


def _encode_all(tokenizer: MusicTokenizer, pieces: list[Piece]) -> np.ndarray:
    encode: Callable[[Piece], np.ndarray] = tokenizer.encode
    streams = [encode(p) for p in pieces]
    return np.concatenate(streams) if streams else np.zeros(0, dtype=np.int64)
