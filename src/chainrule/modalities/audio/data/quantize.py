"""How waveform samples become the integer levels a model scores: 8-bit mu-law or 16-bit linear.

Mu-law (ITU G.711 companding, ``mu = 255``) spends its 256 levels where speech is quiet, so a categorical
head over 256 classes is enough; 16-bit linear keeps every level of the recording (65,536) and needs the
discretized logistic mixture head. Companding is librosa's (``mu_compress`` / ``mu_expand``), not ours.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from chainrule.core.errors import ConfigError
from chainrule.modalities.audio.data.libs import audio_library

QUANTIZATIONS = ("mulaw8", "linear16")


@dataclass(frozen=True)
class Quantizer:
    """``mulaw8`` (256 levels) or ``linear16`` (65,536 levels); maps floats in [-1, 1] to levels and back."""

    kind: str = "mulaw8"

    def __post_init__(self) -> None:
        if self.kind not in QUANTIZATIONS:
            raise ConfigError(f"data.quantization must be one of {', '.join(QUANTIZATIONS)}; got {self.kind!r}")

    @property
    def levels(self) -> int:
        return 256 if self.kind == "mulaw8" else 65536

    @property
    def default_head(self) -> str:
        return "categorical" if self.kind == "mulaw8" else "logistic_mixture"

    def describe(self) -> str:
        return "8-bit mu-law" if self.kind == "mulaw8" else "16-bit linear"

    def to_levels(self, wave: np.ndarray) -> np.ndarray:
        """Float samples in [-1, 1] -> integer levels ``0 .. levels-1`` (uint8 or uint16)."""
        wave = np.clip(np.asarray(wave, dtype=np.float32), -1.0, 1.0)
        if self.kind == "mulaw8":
            # librosa maps +1.0 to 128, one past the top level: clip it
            coded = audio_library("librosa").mu_compress(wave, mu=255, quantize=True).astype(np.int16)
            return (coded.clip(-128, 127) + 128).astype(np.uint8)
        return (np.round(wave * 32768.0).clip(-32768, 32767).astype(np.int32) + 32768).astype(np.uint16)

    def to_wave(self, levels: np.ndarray) -> np.ndarray:
        """Integer levels -> float32 samples in [-1, 1] (what a WAV file is written from)."""
        levels = np.asarray(levels, dtype=np.int64)
        if self.kind == "mulaw8":
            return audio_library("librosa").mu_expand(levels - 128, mu=255, quantize=True).astype(np.float32)
        return ((levels - 32768) / 32768.0).astype(np.float32)  # soundfile's PCM_16 scale: exact both ways


def quantizer_for(kind: object) -> Quantizer:
    if not isinstance(kind, str):
        raise ConfigError(f"data.quantization must be one of {', '.join(QUANTIZATIONS)}; got {kind!r}")
    return Quantizer(kind.strip().lower().replace("-", "").replace("_", ""))
