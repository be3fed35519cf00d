"""Tiny audio fixtures the audio tests write themselves: short sine and noise recordings in a folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile


def tone(freq: float, seconds: float, rate: int, seed: int = 0) -> np.ndarray:
    """A sine with a little noise (so every mu-law level pattern is not a pure tone)."""
    t = np.arange(int(seconds * rate)) / rate
    noise = np.random.default_rng(seed).normal(0.0, 0.02, t.shape)
    return (0.5 * np.sin(2 * np.pi * freq * t) + noise).astype(np.float32)


def write_folder(root: Path, files: int = 3, seconds: float = 0.3, rate: int = 8000, classes: bool = False) -> Path:
    """``files`` recordings (in two sub-folders ``low``/``high`` when ``classes``) at ``rate`` Hz."""
    root.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        sub = root / (("low", "high")[i % 2] if classes else "")
        sub.mkdir(parents=True, exist_ok=True)
        soundfile.write(str(sub / f"clip{i}.wav"), tone(220.0 * (1 + i % 2), seconds, rate, seed=i), rate,
                        subtype="PCM_16")
    return root
