"""Decoded image arrays shared by all splits of a dataset, and the step that turns them into an
:class:`ImageDataset` for one split with one :class:`Discretizer`.

Loaders decode their files once per process (cached) into an :class:`ImageSource`; building a split from it
is cheap, so asking for train, val and test costs one decode.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from chainrule.core.data.options import as_float, as_int, as_str
from chainrule.core.data.splits import check_split
from chainrule.core.errors import DataError
from chainrule.modalities.image.data.base import Discretizer, ImageDataset


class EmptySplit(DataError):
    """The requested split has no examples (e.g. a zero fraction for an image folder)."""


@dataclass(frozen=True)
class ImageSource:
    """Raw pixels ``(N, C, H, W)`` (integers ``0..max_value``), labels, and split -> example indices."""

    name: str
    pixels: np.ndarray
    labels: np.ndarray | None
    splits: dict[str, np.ndarray]
    max_value: int = 255
    class_names: tuple[str, ...] = ()
    info: dict[str, Any] = field(default_factory=dict)

    def dataset(self, split: str, *, binarize: Any = "none", levels: Any = 256, threshold: Any = 0.5,
                seed: Any = 0) -> ImageDataset:
        """The ``split`` as an :class:`ImageDataset` (intensity = pixel / max_value)."""
        check_split(split)
        discretizer = Discretizer(binarize=as_str("binarize", binarize), levels=as_int("levels", levels),
                                  threshold=as_float("threshold", threshold), seed=as_int("seed", seed))
        idx = self.splits[split]
        if len(idx) == 0:
            raise EmptySplit(f"{self.name}: split {split!r} is empty ({self._sizes()})")
        intensity = torch.from_numpy(self.pixels[idx].astype(np.float32) / float(self.max_value))
        labels = torch.from_numpy(self.labels[idx].astype(np.int64)) if self.labels is not None else None
        return ImageDataset(intensity=intensity, labels=labels, discretizer=discretizer, name=self.name,
                            split=split, class_names=list(self.class_names), info=dict(self.info))

    def _sizes(self) -> str:
        return ", ".join(f"{k} {len(v)}" for k, v in self.splits.items())
