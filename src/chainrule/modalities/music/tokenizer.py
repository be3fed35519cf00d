"""Pieces <-> token ids, in one of two encodings, saved in a run as ``tokenizer.json``.

``remi`` (default): miditok's REMI events (Bar, TimeSig, Position, Pitch, Duration) on a 16th-note grid for the
first three beats of a note's length and 8th notes up to 12 beats; every voice of a piece is merged into one
stream (polyphony becomes several Pitch/Duration pairs at one Position), dynamics are dropped (scores have
none). A piece is ``BOS``, its events, ``EOS``.

``melody``: MusicVAE's monophonic 16th-note grid. One token per 16th note: ``0`` rest, ``1`` hold the sounding
note, ``2 + pitch - low`` a new note of ``pitch``. The line is the highest sounding note (for a chorale, the
soprano); pitches outside ``low..high`` are moved by octaves into range. Each piece is padded with rests to a
whole number of 16-step segments ("bars" of 4 quarter notes), so windows that start on a multiple of 16 start
on a segment boundary.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from chainrule.core.errors import CheckpointError, ConfigError
from chainrule.core.runs.atomic import atomic_write_text
from chainrule.modalities.music.data.piece import DURATION, PITCH, START, Piece

ENCODINGS = ("remi", "melody")
FORMAT = "chainrule-music-tokenizer"
REST, HOLD, FIRST_PITCH = 0, 1, 2
TICKS_PER_QUARTER = 480


@dataclass(frozen=True)
class MusicTokenizer:
    """Encode pieces as token ids and decode ids back into pieces (see the module docstring)."""

    kind: str = "remi"
    steps_per_quarter: int = 4  # melody grid resolution (4 = 16th notes)
    bar_steps: int = 16  # melody: tokens per segment
    low: int = 36  # melody: lowest pitch
    high: int = 96  # melody: highest pitch

    def __post_init__(self) -> None:
        if self.kind not in ENCODINGS:
            raise ConfigError(f"data option 'encoding' must be one of {', '.join(ENCODINGS)}; got {self.kind!r}")
        if not 0 <= self.low < self.high <= 127:
            raise ConfigError(f"melody pitch range must satisfy 0 <= low < high <= 127; got {self.low}..{self.high}")

    # ------------------------------------------------------------------------------------------------ common
    @property
    def vocab_size(self) -> int:
        return len(self._remi()) if self.kind == "remi" else FIRST_PITCH + self.high - self.low + 1

    @property
    def segment_tokens(self) -> int | None:
        """Tokens per bar-like segment (melody), or ``None`` when segments have no fixed length (REMI)."""
        return self.bar_steps if self.kind == "melody" else None

    @property
    def bos_id(self) -> int | None:
        """The piece-start token (REMI), or ``None`` (the melody grid has none)."""
        return int(self._remi().vocab["BOS_None"]) if self.kind == "remi" else None

    def encode(self, piece: Piece) -> np.ndarray:
        """Token ids ``(T,)`` int64 of a piece."""
        return self._encode_remi(piece) if self.kind == "remi" else self._encode_melody(piece)

    def decode(self, ids: Any, name: str = "generated") -> Piece:
        """A piece from token ids (malformed REMI sequences are decoded as far as they make sense)."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        return self._decode_remi(ids, name) if self.kind == "remi" else self._decode_melody(ids, name)

    def describe(self) -> str:
        if self.kind == "remi":
            return f"REMI ({self.vocab_size} tokens)"
        return f"melody grid 1/{4 * self.steps_per_quarter} ({self.vocab_size} tokens, {self.bar_steps} per bar)"

    def save(self, path: str | Path) -> None:
        atomic_write_text(path, json.dumps({"format": FORMAT, **asdict(self)}, indent=2) + "\n")

    # ------------------------------------------------------------------------------------------------ REMI
    def _remi(self):  # noqa: ANN202 (miditok.REMI, imported lazily)
        return _remi_tokenizer()

    def _encode_remi(self, piece: Piece) -> np.ndarray:
        import symusic

        tok = self._remi()
        score = symusic.Score(TICKS_PER_QUARTER)
        num, den = _time_signature(piece.bar_quarters)
        score.time_signatures.append(symusic.TimeSignature(0, num, den))
        track = symusic.Track(program=0)
        ticks = np.rint(piece.notes[:, [START, DURATION]] * TICKS_PER_QUARTER).astype(np.int64)
        for (t, d), p in zip(ticks.tolist(), piece.notes[:, PITCH].astype(int).tolist(), strict=True):
            track.notes.append(symusic.Note(t, max(d, 1), p, 80))
        score.tracks.append(track)
        events = tok.encode(score)[0].ids
        return np.array([tok.vocab["BOS_None"], *events, tok.vocab["EOS_None"]], dtype=np.int64)

    def _decode_remi(self, ids: np.ndarray, name: str) -> Piece:
        tok = self._remi()
        special = {tok.vocab[t] for t in ("PAD_None", "BOS_None", "EOS_None")}
        keep = [i for i in ids.tolist() if i not in special]
        score = tok.decode([keep]) if keep else None
        rows = [] if score is None else [(n.time / score.tpq, n.duration / score.tpq, n.pitch, 0)
                                         for t in score.tracks for n in t.notes]
        sigs = [] if score is None else score.time_signatures
        bar = float(sigs[0].numerator * 4 / sigs[0].denominator) if len(sigs) else 4.0
        return Piece(name, np.array(rows, dtype=np.float64).reshape(-1, 4), bar)

    # ------------------------------------------------------------------------------------------------ melody
    def _encode_melody(self, piece: Piece) -> np.ndarray:
        q = self.steps_per_quarter
        n_steps = int(np.ceil(max(piece.end, 1e-9) * q / self.bar_steps)) * self.bar_steps
        notes = piece.notes
        starts = np.rint(notes[:, START] * q).astype(np.int64)
        ends = np.maximum(starts + 1, np.rint((notes[:, START] + notes[:, DURATION]) * q).astype(np.int64))
        pitch = self._fold(notes[:, PITCH].astype(np.int64))
        lengths = ends - starts
        steps = np.repeat(starts, lengths) + _ranges(lengths)
        sky = np.full(n_steps, -1, dtype=np.int64)
        np.maximum.at(sky, steps, np.repeat(pitch, lengths))
        onset = np.isin(np.arange(n_steps) * 128 + sky, starts * 128 + pitch)
        changed = np.concatenate([[True], sky[1:] != sky[:-1]])
        tokens = np.where(sky < 0, REST, np.where(onset | changed, FIRST_PITCH + sky - self.low, HOLD))
        return tokens.astype(np.int64)

    def _decode_melody(self, ids: np.ndarray, name: str) -> Piece:
        if ids.size and (ids.min() < 0 or ids.max() >= self.vocab_size):
            raise ConfigError(f"melody token ids must be in 0..{self.vocab_size - 1}")
        boundaries = np.concatenate([np.flatnonzero(ids != HOLD), [len(ids)]])
        on = np.flatnonzero(ids >= FIRST_PITCH)
        ends = boundaries[np.searchsorted(boundaries, on, side="right")]
        q = self.steps_per_quarter
        notes = np.stack([on / q, (ends - on) / q, ids[on] - FIRST_PITCH + self.low, np.zeros(len(on))], axis=1)
        return Piece(name, notes.astype(np.float64), self.bar_steps / q)

    def _fold(self, pitch: np.ndarray) -> np.ndarray:
        """Move pitches outside ``low..high`` by whole octaves into the range."""
        below = pitch < self.low
        pitch = np.where(below, pitch + 12 * np.ceil((self.low - pitch) / 12).astype(np.int64), pitch)
        above = pitch > self.high
        return np.where(above, pitch - 12 * np.ceil((pitch - self.high) / 12).astype(np.int64), pitch)


def _ranges(lengths: np.ndarray) -> np.ndarray:
    """``concatenate([arange(n) for n in lengths])`` without a Python loop."""
    total = int(lengths.sum())
    offsets = np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.arange(total) - offsets


def _time_signature(bar_quarters: float) -> tuple[int, int]:
    """A time signature with ``bar_quarters`` quarter notes per bar (3 -> 3/4, 1.5 -> 3/8, 4.5 -> 9/8)."""
    if float(bar_quarters).is_integer() and 2 <= bar_quarters <= 6:
        return int(bar_quarters), 4
    eighths = round(bar_quarters * 2)
    return (eighths, 8) if eighths in (3, 6, 9, 12) else (4, 4)


_REMI = None


def _remi_tokenizer():  # noqa: ANN202
    """The one REMI configuration (built once; its vocabulary is a pure function of this configuration)."""
    global _REMI
    if _REMI is None:
        import miditok

        config = miditok.TokenizerConfig(
            pitch_range=(21, 109), beat_res={(0, 4): 4, (4, 12): 2}, use_velocities=False,
            use_time_signatures=True, time_signature_range={4: [2, 3, 4, 5, 6], 8: [3, 6, 9, 12]},
            special_tokens=["PAD", "BOS", "EOS"])
        _REMI = miditok.REMI(config)
    return _REMI


def load_music_tokenizer(path: str | Path) -> MusicTokenizer:
    """A tokenizer saved by :meth:`MusicTokenizer.save`; :class:`CheckpointError` for anything else."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
        if data.pop("format") != FORMAT:
            raise ValueError("not a music tokenizer")
        return MusicTokenizer(**data)
    except (OSError, ValueError, TypeError, KeyError) as e:
        raise CheckpointError(f"{p}: not a music tokenizer file ({e})") from None
