"""An audio split as the trainer's indexed dataset: fixed-length crops of quantised recordings.

The split's recordings are kept as one stream of levels with a segment per recording (offset, length, class),
and a crop never crosses a segment. Training crops are random, but crop ``i`` of epoch ``e`` is a pure function
of ``(seed, e, split, i)``, so the trainer's per-epoch permutation, resume and several processes all see the
same audio. Validation and test crops are fixed: consecutive non-overlapping windows inside each recording (a
recording's tail shorter than a crop, and a recording shorter than a crop, are not scored; ``describe`` says
how much is).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from chainrule.core.errors import ConfigError, DataError
from chainrule.modalities.audio.data.quantize import Quantizer


@dataclass
class AudioDataset:
    """``get(indices, length=None)`` -> ``(x, labels)``: x long ``(b, 1, length or crop)``, labels ``(b,)`` long
    when the split has classes (speakers, tracks, sub-folders), else ``None``."""

    levels_stream: Tensor  # (N,) uint8 (mu-law) or int32 (16-bit) levels of every recording, end to end
    segments: np.ndarray  # (R, 3) int64: offset, length, class of each recording
    quantizer: Quantizer
    rate: int
    crop: int
    name: str
    split: str
    class_names: list[str] = field(default_factory=list)
    transcripts: dict[str, str] = field(default_factory=dict)
    seed: int = 0
    random_crops: bool = False

    run_kind = "audio"

    def __post_init__(self) -> None:
        if self.crop < 2:
            raise ConfigError(f"data option 'crop' must be at least 2 samples; got {self.crop}")
        lengths = self.segments[:, 1] if len(self.segments) else np.zeros(0, dtype=np.int64)
        usable = lengths >= self.crop
        if not usable.any():
            raise DataError(f"{self.name} [{self.split}]: no recording is as long as one crop "
                            f"({self.crop} samples); lower data.crop")
        self._usable = self.segments[usable]
        self._windows = self._usable[:, 1] // self.crop  # fixed windows per usable recording
        self._valid_starts = self._usable[:, 1] - self.crop + 1  # random-crop starts per usable recording
        self._n = int(self._windows.sum())
        self._starts, self._labels = self._fixed_crops()
        self.set_epoch(0)

    # -------------------------------------------------------------- protocol used by the trainer
    def __len__(self) -> int:
        return self._n

    @property
    def event_shape(self) -> tuple[int, int]:
        return (1, self.crop)

    @property
    def levels(self) -> int:
        return self.quantizer.levels

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def set_epoch(self, epoch: int) -> None:
        """Draw this epoch's training crops (a no-op for fixed validation/test windows)."""
        if not self.random_crops:
            return
        salt = sum(map(ord, self.split))
        rng = np.random.default_rng([self.seed, epoch, salt])
        cum = np.cumsum(self._valid_starts)
        u = rng.integers(0, int(cum[-1]), size=self._n)
        seg = np.searchsorted(cum, u, side="right")
        before = cum[seg] - self._valid_starts[seg]
        self._starts = torch.from_numpy(self._usable[seg, 0] + (u - before))
        self._labels = torch.from_numpy(self._usable[seg, 2])

    def get(self, indices: Tensor, length: int | None = None) -> tuple[Tensor, Tensor | None]:
        idx = indices.cpu().long()
        span = torch.arange(length or self.crop)
        x = self.levels_stream[self._starts[idx, None] + span].long().unsqueeze(1)
        return x, (self._labels[idx].long() if self.class_names else None)

    def describe(self) -> str:
        scored = self._n * self.crop / self.rate / 60
        total = float(self.segments[:, 1].sum()) / self.rate / 60 if len(self.segments) else 0.0
        how = "random crops" if self.random_crops else "fixed windows"
        return (f"{self.name} [{self.split}, {len(self.segments)} recordings, {total:.2f} min, {self._n} {how} of "
                f"{self.crop} samples ({scored:.2f} min), {self.rate} Hz, {self.quantizer.describe()}]")

    def spec(self) -> dict[str, object]:
        """What a run records about its audio beyond shape and levels: enough to write WAV files."""
        return {"sample_rate": self.rate, "quantization": self.quantizer.kind}

    @property
    def minutes(self) -> float:
        return float(self.segments[:, 1].sum()) / self.rate / 60

    # -------------------------------------------------------------- helpers
    def _fixed_crops(self) -> tuple[Tensor, Tensor]:
        """Window ``j`` of each usable recording starts at ``offset + j * crop``."""
        rec = np.repeat(np.arange(len(self._usable)), self._windows)
        first = np.cumsum(self._windows) - self._windows
        j = np.arange(self._n) - first[rec]
        starts = self._usable[rec, 0] + j * self.crop
        return torch.from_numpy(starts), torch.from_numpy(self._usable[rec, 2])


def build_split(waves: list[np.ndarray], labels: list[int], quantizer: Quantizer, **kwargs: object) -> AudioDataset:
    """Quantise a split's recordings (float samples) into one stream and its segment table."""
    lengths = np.array([len(w) for w in waves], dtype=np.int64)
    offsets = np.cumsum(lengths) - lengths
    segments = np.stack([offsets, lengths, np.asarray(labels, dtype=np.int64)], axis=1) if waves else \
        np.zeros((0, 3), dtype=np.int64)
    levels = quantizer.to_levels(np.concatenate(waves)) if waves else np.zeros(0, dtype=np.uint8)
    stream = torch.from_numpy(levels if levels.dtype == np.uint8 else levels.astype(np.int32))
    return AudioDataset(levels_stream=stream, segments=segments, quantizer=quantizer, **kwargs)  # type: ignore[arg-type]
