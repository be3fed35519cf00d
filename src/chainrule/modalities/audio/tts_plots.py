"""The pictures written beside synthesised speech: the attention alignment and the mel spectrogram."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from chainrule.core.runs.atomic import atomic_write_bytes


def _pyplot():  # noqa: ANN202 - matplotlib's module
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: object, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")  # type: ignore[attr-defined]
    _pyplot().close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return path


def save_alignment(alignment: np.ndarray, text: str, path: Path) -> Path:
    """Decoder steps (x) against characters (y): a good alignment is a rising diagonal."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(4.0, alignment.shape[0] / 12), max(3.0, alignment.shape[1] / 8)))
    ax.imshow(alignment.T, origin="lower", aspect="auto", interpolation="nearest", cmap="viridis")
    ax.set_xlabel("decoder step")
    ax.set_ylabel("character")
    ax.set_title(text if len(text) <= 60 else text[:57] + "...", fontsize=9)
    return _save(fig, path)


def save_spectrogram(log_mel: np.ndarray, rate: int, hop: int, path: Path) -> Path:
    """Log-mel frames ``(frames, bands)`` against time in seconds."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(4.0, log_mel.shape[0] / 40), 3.0))
    seconds = log_mel.shape[0] * hop / rate
    ax.imshow(log_mel.T, origin="lower", aspect="auto", interpolation="nearest", cmap="magma",
              extent=(0.0, seconds, 0.0, float(log_mel.shape[1])))
    ax.set_xlabel("seconds")
    ax.set_ylabel("mel band")
    return _save(fig, path)
