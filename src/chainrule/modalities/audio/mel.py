"""Log-mel features (librosa) and Griffin-Lim inversion, the baseline vocoder of text-to-speech.

A frame is ``hop`` samples (default 100 = 12.5 ms at 8 kHz) of a magnitude mel spectrogram (``n_mels`` bands up
to the Nyquist frequency, ``win`` = 50 ms Hann windows), log-compressed and normalised per band with the
*training split's* mean and standard deviation, which a run stores so that synthesis undoes exactly what training
did. Griffin-Lim (librosa's ``mel_to_audio`` in its two halves, ``mel_to_stft`` then ``griffinlim``) inverts a
mel spectrogram by estimating the STFT magnitude (non-negative least squares) and iterating phase estimates.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from chainrule.core.errors import ConfigError
from chainrule.modalities.audio.data.libs import audio_library

LOG_FLOOR = 1e-5  # magnitude floor before the log: silence becomes log(1e-5), not -inf


@dataclass
class MelFeatures:
    """The mel analysis of a run; ``mean`` / ``std`` (per band) are fitted on the training split."""

    rate: int = 8000
    n_mels: int = 40
    hop: int = 100
    win: int = 400
    n_fft: int = 512
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not 8 <= self.n_mels <= 80:
            raise ConfigError(f"mel option 'n_mels' must be in 8..80; got {self.n_mels}")
        if not 0 < self.hop <= self.win <= self.n_fft:
            raise ConfigError(f"mel options need 0 < hop <= win <= n_fft; got hop={self.hop}, win={self.win}, "
                              f"n_fft={self.n_fft}")

    def log_mel(self, wave: np.ndarray) -> np.ndarray:
        """Float samples ``(T,)`` -> un-normalised log-mel frames ``(frames, n_mels)``."""
        librosa = audio_library("librosa")
        mel = librosa.feature.melspectrogram(y=wave.astype(np.float32), sr=self.rate, n_fft=self.n_fft,
                                             hop_length=self.hop, win_length=self.win, n_mels=self.n_mels,
                                             power=1.0, fmax=self.rate / 2)
        return np.log(np.maximum(mel, LOG_FLOOR)).T.astype(np.float32)

    def fit(self, log_mels: list[np.ndarray]) -> MelFeatures:
        """Per-band statistics of the training frames (a band's std is floored so silence cannot blow it up)."""
        frames = np.concatenate(log_mels, axis=0)
        self.mean = frames.mean(axis=0).astype(float).tolist()
        self.std = np.maximum(frames.std(axis=0), 1e-3).astype(float).tolist()
        return self

    def normalise(self, log_mel: np.ndarray) -> np.ndarray:
        self._check_fitted()
        return ((log_mel - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)).astype(np.float32)

    def denormalise(self, frames: np.ndarray) -> np.ndarray:
        self._check_fitted()
        return frames * np.asarray(self.std, np.float32) + np.asarray(self.mean, np.float32)

    def features(self, wave: np.ndarray) -> np.ndarray:
        """Samples -> normalised log-mel frames, what the text-to-mel model predicts and a vocoder reads."""
        return self.normalise(self.log_mel(wave))

    def griffin_lim(self, frames: np.ndarray, n_iter: int = 60, seed: int = 0) -> np.ndarray:
        """Normalised frames ``(frames, n_mels)`` -> float samples, by Griffin-Lim (librosa)."""
        librosa = audio_library("librosa")
        mel = np.exp(self.denormalise(np.asarray(frames, np.float32))).T
        # librosa.feature.inverse.mel_to_audio in its two halves, so the phase initialisation is seeded
        magnitude = librosa.feature.inverse.mel_to_stft(mel, sr=self.rate, n_fft=self.n_fft, power=1.0,
                                                        fmax=self.rate / 2)
        wave = librosa.griffinlim(magnitude, n_iter=n_iter, hop_length=self.hop, win_length=self.win,
                                  random_state=seed)
        return np.clip(wave, -1.0, 1.0).astype(np.float32)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def _check_fitted(self) -> None:
        if len(self.mean) != self.n_mels or len(self.std) != self.n_mels:
            raise ConfigError(f"mel statistics must have {self.n_mels} bands (fit them on the training split)")


def spectral_convergence(reference: np.ndarray, estimate: np.ndarray, n_fft: int = 512, hop: int = 100) -> float:
    """``||S - S_hat||_F / ||S||_F`` of STFT magnitudes (lengths cut to the shorter): 0 is a perfect magnitude."""
    librosa = audio_library("librosa")
    n = min(len(reference), len(estimate))
    s = np.abs(librosa.stft(reference[:n], n_fft=n_fft, hop_length=hop))
    s_hat = np.abs(librosa.stft(estimate[:n], n_fft=n_fft, hop_length=hop))
    return float(np.linalg.norm(s - s_hat) / max(np.linalg.norm(s), 1e-12))
