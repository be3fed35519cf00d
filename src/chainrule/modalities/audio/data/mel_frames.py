"""``speech-mel``: the ``speech`` crops with their log-mel frames, the local conditioning of a WaveNet vocoder.

Each crop's frames are computed from the crop's own (quantised) samples with the text-to-speech analysis
(:class:`MelFeatures`, normalised with statistics fitted on the training prompts exactly as ``chainrule
tts-train`` fits them), one frame per ``hop`` samples: frame j is centred on sample ``j * hop`` and WaveNet's
``local_hop`` repetition hands it samples ``j * hop .. (j + 1) * hop - 1``, the same reading at synthesis, where
the frames come from the text-to-mel model. Train with ``model.local_channels=n_mels`` and ``model.local_hop=hop``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import torch
from torch import Tensor

from chainrule.core.contract import Condition
from chainrule.core.data.options import as_int
from chainrule.modalities.audio.data.dataset import AudioDataset
from chainrule.modalities.audio.data.prompts import fitted_mel
from chainrule.modalities.audio.data.sources import DEFAULT_CROP, DEFAULT_RATE, load_speech
from chainrule.modalities.audio.mel import MelFeatures


@dataclass
class MelConditioned:
    """An :class:`AudioDataset` whose ``get`` also returns each crop's frames as ``Condition.time_features``."""

    audio: AudioDataset
    mel: MelFeatures

    def __getattr__(self, name: str) -> Any:  # everything else is the audio split's
        if name == "audio":
            raise AttributeError(name)
        return getattr(self.audio, name)

    def __len__(self) -> int:
        return len(self.audio)

    def get(self, indices: Tensor) -> tuple[Tensor, Condition]:
        x, labels = self.audio.get(indices)
        waves = self.audio.quantizer.to_wave(x[:, 0].numpy())
        frames = np.stack([self.mel.features(w) for w in waves])
        return x, Condition(labels=labels, time_features=torch.from_numpy(frames))

    def describe(self) -> str:
        return f"{self.audio.describe()[:-1]}, {self.mel.n_mels} mel bands every {self.mel.hop} samples]"

    def spec(self) -> dict[str, object]:
        return {**self.audio.spec(), "mel": self.mel.to_dict()}


def load_speech_mel(split: str = "train", *, rate: Any = DEFAULT_RATE, crop: Any = DEFAULT_CROP,
                    quantization: Any = "mulaw8", seed: Any = 0, path: Any = None, n_mels: Any = 40,
                    hop: Any = 100, win: Any = 400, n_fft: Any = 512, max_seconds: Any = 6.0) -> MelConditioned:
    """``speech-mel``: the ``speech`` split's crops and their normalised log-mel frames."""
    audio = load_speech(split, rate=rate, crop=crop, quantization=quantization, seed=seed, path=path)
    sizes = tuple(as_int(k, v) for k, v in (("n_mels", n_mels), ("hop", hop), ("win", win), ("n_fft", n_fft)))
    return MelConditioned(audio, _fitted(audio.rate, sizes, float(max_seconds), path))


@lru_cache(maxsize=4)
def _fitted(rate: int, sizes: tuple[int, ...], max_seconds: float, path: Any) -> MelFeatures:
    """The training statistics, once per process for the three splits."""
    n_mels, hop, win, n_fft = sizes
    return fitted_mel(MelFeatures(rate=rate, n_mels=n_mels, hop=hop, win=win, n_fft=n_fft), max_seconds, path)
