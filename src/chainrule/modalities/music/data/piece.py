"""A piece of music as a plain note list: what every source produces and every encoding consumes.

Times are in quarter notes (tempo is not modelled), so bars line up at multiples of ``bar_quarters`` from 0
(sources shift a pickup so that the first full bar starts at a bar line).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: columns of :attr:`Piece.notes`
START, DURATION, PITCH, VOICE = range(4)


@dataclass
class Piece:
    """``notes`` is ``(N, 4)`` float64: start and duration in quarter notes, MIDI pitch, voice (part) index."""

    name: str
    notes: np.ndarray
    bar_quarters: float = 4.0  # quarter notes per bar (3/4 -> 3, 6/8 -> 3)

    def __post_init__(self) -> None:
        self.notes = np.asarray(self.notes, dtype=np.float64).reshape(-1, 4)
        order = np.lexsort((self.notes[:, PITCH], self.notes[:, START]))
        self.notes = self.notes[order]

    @property
    def end(self) -> float:
        """Time (quarters) at which the last note ends."""
        return float((self.notes[:, START] + self.notes[:, DURATION]).max()) if len(self.notes) else 0.0

    def transposed(self, semitones: int) -> Piece:
        """The piece shifted by ``semitones`` (pitches kept within MIDI's 0..127 by clipping)."""
        notes = self.notes.copy()
        notes[:, PITCH] = np.clip(notes[:, PITCH] + semitones, 0, 127)
        return Piece(f"{self.name}{semitones:+d}", notes, self.bar_quarters)


def pack(pieces: list[Piece]) -> dict[str, np.ndarray]:
    """Pieces as flat arrays for one ``.npz`` cache file."""
    counts = np.array([len(p.notes) for p in pieces], dtype=np.int64)
    notes = np.concatenate([p.notes for p in pieces]) if pieces else np.zeros((0, 4))
    return {"notes": notes, "counts": counts, "names": np.array([p.name for p in pieces], dtype=str),
            "bars": np.array([p.bar_quarters for p in pieces], dtype=np.float64)}


def unpack(arrays: dict[str, np.ndarray]) -> list[Piece]:
    """Inverse of :func:`pack`."""
    ends = np.cumsum(arrays["counts"])
    starts = ends - arrays["counts"]
    return [Piece(str(n), arrays["notes"][s:e], float(b))
            for n, s, e, b in zip(arrays["names"], starts, ends, arrays["bars"], strict=True)]
