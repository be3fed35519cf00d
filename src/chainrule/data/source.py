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

from chainrule.data.base import Discretizer, ImageDataset
from chainrule.data.splits import check_split
from chainrule.errors import ConfigError, DataError


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


# ------------------------------------------------------------------ option coercion (config / CLI strings)
def as_int(name: str, value: Any) -> int:
    """``value`` as an int (ints and integer strings); ConfigError naming the option otherwise."""
    if isinstance(value, bool):
        raise ConfigError(f"data option {name!r} must be an integer; got {value!r}")
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise ConfigError(f"data option {name!r} must be an integer; got {value!r}")


def as_float(name: str, value: Any) -> float:
    if isinstance(value, bool):
        raise ConfigError(f"data option {name!r} must be a number; got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"data option {name!r} must be a number; got {value!r}") from None


def as_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
        return value.strip().lower() in ("1", "true", "yes", "on")
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ConfigError(f"data option {name!r} must be true or false; got {value!r}")


def as_str(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"data option {name!r} must be a string; got {value!r}")
    return value.strip().lower()
