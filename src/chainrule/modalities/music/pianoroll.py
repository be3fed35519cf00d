"""Piano-roll pictures of pieces: one roll, or a row of rolls (a latent interpolation), as PNG."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from chainrule.modalities.music.data.piece import DURATION, PITCH, START, Piece


def roll(piece: Piece, steps_per_quarter: int = 4, length: float | None = None) -> np.ndarray:
    """``(128, T)`` boolean piano roll on a grid of ``1/steps_per_quarter`` quarter notes."""
    end = length if length is not None else piece.end
    t = max(1, int(np.ceil(end * steps_per_quarter)))
    grid = np.zeros((128, t), dtype=bool)
    if len(piece.notes):
        s = np.clip(np.rint(piece.notes[:, START] * steps_per_quarter).astype(int), 0, t - 1)
        e = np.clip(np.rint((piece.notes[:, START] + piece.notes[:, DURATION]) * steps_per_quarter).astype(int),
                    s + 1, t)
        pitch = piece.notes[:, PITCH].astype(int)
        cols = np.arange(t)
        active = (cols[None, :] >= s[:, None]) & (cols[None, :] < e[:, None])  # (notes, T)
        np.logical_or.at(grid, pitch, active)
    return grid


def save_piano_rolls(pieces: Sequence[Piece], path: str | Path, titles: Sequence[str] | None = None) -> Path:
    """One piano roll per piece, stacked vertically on a shared pitch range, written as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    length = max([p.end for p in pieces] + [1.0])
    rolls = [roll(p, length=length) for p in pieces]
    used = np.flatnonzero(np.any(np.stack(rolls), axis=(0, 2)))
    lo, hi = (int(used.min()) - 2, int(used.max()) + 3) if used.size else (48, 84)
    fig, axes = plt.subplots(len(rolls), 1, figsize=(10, 1.2 + 1.3 * len(rolls)), squeeze=False, sharex=True)
    for i, (ax, r) in enumerate(zip(axes[:, 0], rolls, strict=True)):
        ax.imshow(r[lo:hi], origin="lower", aspect="auto", cmap="Greys", interpolation="nearest",
                  extent=(0, r.shape[1] / 4, lo - 0.5, hi - 0.5))
        ax.set_ylabel("pitch")
        if titles:
            ax.set_title(titles[i], fontsize=9)
    axes[-1, 0].set_xlabel("quarter notes")
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(out)
    return out
