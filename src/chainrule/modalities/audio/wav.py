"""Levels <-> WAV: what a run's samples become on disk (16-bit PCM at the run's rate, via soundfile)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from torch import Tensor

from chainrule.core.runs.atomic import atomic_write_bytes
from chainrule.modalities.audio.data.libs import audio_library
from chainrule.modalities.audio.data.quantize import Quantizer


def wav_bytes(levels: Tensor, quantization: str, rate: int) -> bytes:
    """Levels ``(n, 1, T)`` (or ``(T,)``) -> one 16-bit mono WAV; several waveforms play one after another,
    separated by a quarter second of silence."""
    q = Quantizer(quantization)
    rows = levels.reshape(-1, levels.shape[-1]).cpu().numpy() if levels.dim() > 1 else levels.cpu().numpy()[None]
    gap = np.zeros(rate // 4, dtype=np.float32)
    parts: list[np.ndarray] = []
    for i, row in enumerate(rows):
        parts += ([gap] if i else []) + [q.to_wave(row)]
    buf = io.BytesIO()
    audio_library("soundfile").write(buf, np.concatenate(parts), rate, subtype="PCM_16", format="WAV")
    return buf.getvalue()


def write_wav(levels: Tensor, quantization: str, rate: int, path: str | Path) -> Path:
    """Write :func:`wav_bytes` atomically to ``path``."""
    path = Path(path)
    atomic_write_bytes(path, wav_bytes(levels, quantization, rate))
    return path
