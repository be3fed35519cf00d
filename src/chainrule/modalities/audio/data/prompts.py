"""Text-to-speech data: the ``speech`` prompts as (character ids, normalised log-mel frames) pairs.

The split is the ``speech`` dataset's (by prompt, ``default_rng(0)``; :mod:`.sources`). Prompts without a
transcript, whose transcript describes a sound (``[ascending tones]``) or that are longer than ``max_seconds``
are left out (``describe`` counts them). ``get(indices)`` pads a batch to its longest prompt: ``x`` is the frames
``(B, T, n_mels)``; the condition carries the text as ``Condition.labels`` ``(B, L)`` (a label per character, 0 =
padding) and the real frames as ``Condition.observed`` ``(B, T)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from chainrule.core.contract import Condition
from chainrule.core.data.splits import check_split, seeded_split
from chainrule.core.errors import ConfigError, DataError
from chainrule.modalities.audio.data.files import list_audio, read_transcripts
from chainrule.modalities.audio.data.sources import (
    SPEECH_ROOTS,
    SPEECH_TEST,
    SPEECH_TRANSCRIPTS,
    SPEECH_VAL,
    _decoded,
    _first_dir,
    _stem,
)
from chainrule.modalities.audio.mel import MelFeatures

#: the characters a text-to-speech model reads; id 0 pads, id 1 ends the text
ALPHABET = " abcdefghijklmnopqrstuvwxyz0123456789'.,?!-"
PAD, EOS = 0, 1


def encode_text(text: str) -> tuple[list[int], str]:
    """Lower-cased characters -> ids (ending with EOS), and the characters outside :data:`ALPHABET` that were
    dropped (runs of spaces collapse to one)."""
    clean = " ".join(text.lower().split())
    dropped = "".join(sorted({c for c in clean if c not in ALPHABET}))
    return [ALPHABET.index(c) + 2 for c in clean if c in ALPHABET] + [EOS], dropped


@dataclass
class Prompt:
    name: str
    text: str
    wave: np.ndarray


@dataclass
class PromptDataset:
    """The trainer's indexed dataset of (frames, text) pairs for one split."""

    prompts: list[Prompt]
    mel: MelFeatures
    split: str
    skipped: int = 0
    _frames: list[Tensor] = field(default_factory=list, repr=False)
    _ids: list[Tensor] = field(default_factory=list, repr=False)

    run_kind = "tts"
    labels = None  # no class labels (the trainer asks)

    def __post_init__(self) -> None:
        if not self.prompts:
            raise DataError(f"speech [{self.split}]: no prompt with a spoken transcript")
        self._frames = [torch.from_numpy(self.mel.features(p.wave)) for p in self.prompts]
        self._ids = [torch.tensor(encode_text(p.text)[0]) for p in self.prompts]

    def __len__(self) -> int:
        return len(self.prompts)

    @property
    def event_shape(self) -> tuple[int, int]:
        return (1, self.mel.n_mels)

    def set_epoch(self, epoch: int) -> None:
        """Whole prompts, no random crops: nothing to draw."""

    def get(self, indices: Tensor) -> tuple[Tensor, Condition]:
        idx = [int(i) for i in indices.cpu()]
        frames = torch.nn.utils.rnn.pad_sequence([self._frames[i] for i in idx], batch_first=True)
        ids = torch.nn.utils.rnn.pad_sequence([self._ids[i] for i in idx], batch_first=True, padding_value=PAD)
        lengths = torch.tensor([len(self._frames[i]) for i in idx])
        observed = torch.arange(frames.shape[1])[None, :] < lengths[:, None]
        return frames, Condition(labels=ids, observed=observed)

    def describe(self) -> str:
        seconds = sum(len(p.wave) for p in self.prompts) / self.mel.rate
        return (f"speech text-to-mel [{self.split}, {len(self.prompts)} prompts, {seconds / 60:.2f} min, "
                f"{self.skipped} left out, {self.mel.n_mels} mel bands every {self.mel.hop} samples]")


def load_prompts(split: str = "train", *, rate: int = 8000, max_seconds: float = 8.0,
                 path: str | None = None) -> tuple[list[Prompt], int]:
    """The ``speech`` split's prompts with a spoken transcript (float samples at ``rate``), and how many of the
    split's recordings were left out."""
    check_split(split)
    if max_seconds <= 0:
        raise ConfigError(f"data option 'max_seconds' must be positive; got {max_seconds}")
    root = Path(path) if path else _first_dir(SPEECH_ROOTS, "speech", "asterisk-core-sounds-en-wav")
    files = list_audio(root)
    names = [_stem(f, root) for f in files]
    parts = seeded_split(len(files), round(len(files) * SPEECH_VAL), round(len(files) * SPEECH_TEST))
    transcript = next((Path(p) for p in SPEECH_TRANSCRIPTS if Path(p).is_file()), None)
    if transcript is None:
        raise DataError(f"speech transcripts not found ({', '.join(SPEECH_TRANSCRIPTS)}): install the Debian "
                        "package asterisk-core-sounds-en")
    said = read_transcripts(transcript)
    waves = _decoded(tuple(files), rate)
    keep = sorted(int(i) for i in parts[split])
    prompts = [Prompt(names[i], said[names[i]], waves[i]) for i in keep
               if names[i] in said and "[" not in said[names[i]] and len(waves[i]) <= max_seconds * rate]
    return prompts, len(keep) - len(prompts)


def prompt_dataset(split: str, mel: MelFeatures, max_seconds: float = 8.0, path: str | None = None) -> PromptDataset:
    """One split as a :class:`PromptDataset`; ``mel`` must already hold the training statistics."""
    prompts, skipped = load_prompts(split, rate=mel.rate, max_seconds=max_seconds, path=path)
    return PromptDataset(prompts, mel, split, skipped=skipped)


def fitted_mel(mel: MelFeatures, max_seconds: float = 8.0, path: str | None = None) -> MelFeatures:
    """``mel`` with its per-band statistics fitted on the training prompts."""
    prompts, _ = load_prompts("train", rate=mel.rate, max_seconds=max_seconds, path=path)
    return mel.fit([mel.log_mel(p.wave) for p in prompts])
