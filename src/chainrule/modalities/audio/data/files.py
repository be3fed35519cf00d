"""Reading recordings: WAV/FLAC/OGG through soundfile, mixed to mono, resampled with soxr (via librosa) to the
run's rate; and ``name: text`` transcript files. Every problem is a one-line :class:`DataError` naming the file."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from chainrule.core.errors import ConfigError, DataError
from chainrule.modalities.audio.data.libs import audio_library

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")
MIN_RATE, MAX_RATE = 1000, 96000


def check_rate(rate: object) -> int:
    """The run's sample rate: an integer number of samples per second in a sane range."""
    if isinstance(rate, bool) or not isinstance(rate, int) or not MIN_RATE <= rate <= MAX_RATE:
        raise ConfigError(f"data option 'rate' must be an integer number of Hz in {MIN_RATE}..{MAX_RATE}; "
                          f"got {rate!r}")
    return rate


def read_audio(path: Path, rate: int) -> np.ndarray:
    """Float32 mono samples in [-1, 1] at ``rate`` Hz. A file recorded below ``rate`` is an error: upsampling
    would invent the missing band, and the likelihood of invented audio means nothing."""
    soundfile = audio_library("soundfile")
    try:
        wave, file_rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, ValueError) as e:
        raise DataError(f"{path}: not a readable WAV/FLAC/OGG file ({str(e).splitlines()[0]})") from None
    if wave.shape[0] == 0:
        raise DataError(f"{path}: the file holds no samples")
    if file_rate < rate:
        raise DataError(f"{path}: recorded at {file_rate} Hz, below the run's rate of {rate} Hz "
                        f"(set data.rate={file_rate} or lower)")
    mono = wave.mean(axis=1)
    if file_rate != rate:
        mono = audio_library("librosa").resample(mono, orig_sr=file_rate, target_sr=rate, res_type="soxr_hq")
    return np.clip(mono, -1.0, 1.0).astype(np.float32)


def list_audio(folder: Path) -> list[Path]:
    """Every WAV/FLAC/OGG file under ``folder``, sorted by relative path; an error when there is none."""
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
    if not files:
        raise DataError(f"{folder}: no audio files ({', '.join(AUDIO_SUFFIXES)}) in the folder")
    return files


def read_transcripts(path: Path, names: set[str] | None = None) -> dict[str, str]:
    """``name: text`` lines (``;`` or ``#`` starts a comment; gzip when the name ends in .gz) -> {name: text}.
    With ``names`` (the recordings present), a line naming a missing recording is an error naming the line."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError, gzip.BadGzipFile) as e:
        raise DataError(f"{path}: cannot read the transcript file ({e})") from None
    out: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith((";", "#")):
            continue
        name, sep, said = line.partition(":")
        if not sep or not name.strip():
            raise DataError(f"{path}:{number}: expected 'name: text', got {line[:60]!r}")
        name = name.strip()
        if names is not None and name not in names:
            raise DataError(f"{path}:{number}: transcript for {name!r}, but there is no such recording")
        out[name] = said.strip()
    return out
