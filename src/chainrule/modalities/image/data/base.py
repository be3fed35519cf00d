"""In-memory image dataset: the object the trainer, evaluation and sampling code consume.

Pixels are stored as intensities in [0, 1] (float16 to save memory) and turned into integer levels by a
:class:`Discretizer`: quantisation to K levels, or binarization by threshold, by one seeded Bernoulli draw
(static) or by a fresh draw every epoch (dynamic). Dynamic draws depend only on (seed, epoch, index), so a
resumed or multi-process run sees exactly the same bits as an uninterrupted single-process one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from chainrule.core.errors import ConfigError

BINARIZE_MODES = ("none", "threshold", "static", "dynamic")


@dataclass(frozen=True)
class Discretizer:
    """How intensities in [0, 1] become integer levels.

    ``binarize``: ``none`` (quantise to ``levels``), ``threshold`` (x > threshold), ``static`` (one Bernoulli
    draw with ``seed``, fixed for all epochs) or ``dynamic`` (a new draw each epoch).
    """

    binarize: str = "none"
    levels: int = 256
    threshold: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        if self.binarize not in BINARIZE_MODES:
            raise ConfigError(f"data.binarize must be one of {', '.join(BINARIZE_MODES)}; got {self.binarize!r}")
        if self.binarize == "none" and not 2 <= self.levels <= 65536:
            raise ConfigError(f"data.levels must be between 2 and 65536; got {self.levels}")
        if not 0.0 < self.threshold < 1.0:
            raise ConfigError(f"data.threshold must be in (0, 1); got {self.threshold}")

    @property
    def num_levels(self) -> int:
        return 2 if self.binarize != "none" else self.levels

    def describe(self) -> str:
        if self.binarize == "none":
            return f"{self.levels} levels"
        if self.binarize == "threshold":
            return f"binarized (threshold {self.threshold:g})"
        return f"binarized ({self.binarize}, seed {self.seed})"

    def apply(self, intensity: Tensor, epoch: int = 0, split_salt: int = 0) -> Tensor:
        """Intensities (N, C, H, W) in [0, 1] -> long levels. A Bernoulli draw covers the whole split at once
        and depends only on (seed, epoch, split), so resumed and multi-process runs see the same bits."""
        x = intensity.float()
        if self.binarize == "none":
            return torch.clamp(torch.round(x * (self.levels - 1)), 0, self.levels - 1).long()
        if self.binarize == "threshold":
            return (x > self.threshold).long()
        draw_epoch = 0 if self.binarize == "static" else epoch
        gen = torch.Generator(device="cpu").manual_seed(
            (self.seed * 1_000_003 + draw_epoch * 7919 + split_salt) % (2**63 - 1))
        u = torch.rand(x.shape, generator=gen).to(x.device)
        return (u < x).long()


@dataclass
class ImageDataset:
    """Images (N, C, H, W) as intensities in [0, 1], optional labels, and the discretisation to apply.

    ``get(indices)`` returns ``(x, y)``: x long levels ``(b, C, H, W)``, y long ``(b,)`` or ``None``.
    """

    intensity: Tensor
    labels: Tensor | None
    discretizer: Discretizer
    name: str
    split: str
    class_names: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.intensity.ndim != 4:
            raise ValueError(f"images must be (N, C, H, W); got {tuple(self.intensity.shape)}")
        self.intensity = self.intensity.to(torch.float16)
        self._epoch = -1
        self._levels: Tensor | None = None
        self.set_epoch(0)

    # -------------------------------------------------------------- protocol used by the trainer
    def __len__(self) -> int:
        return self.intensity.shape[0]

    @property
    def event_shape(self) -> tuple[int, int, int]:
        return tuple(self.intensity.shape[1:])  # type: ignore[return-value]

    @property
    def levels(self) -> int:
        return self.discretizer.num_levels

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def set_epoch(self, epoch: int) -> None:
        """Re-draw dynamic binarization for ``epoch`` (a no-op for the other modes after the first call)."""
        if self._levels is not None and (self.discretizer.binarize != "dynamic" or epoch == self._epoch):
            return
        salt = sum(map(ord, self.split))
        levels = self.discretizer.apply(self.intensity, epoch=epoch, split_salt=salt)
        self._levels = levels.to(torch.uint8 if self.levels <= 256 else torch.int32)
        self._epoch = epoch

    def get(self, indices: Tensor) -> tuple[Tensor, Tensor | None]:
        assert self._levels is not None
        idx = indices.cpu()
        x = self._levels[idx].long()
        y = self.labels[idx].long() if self.labels is not None else None
        return x, y

    def all(self) -> tuple[Tensor, Tensor | None]:
        return self.get(torch.arange(len(self)))

    def describe(self) -> str:
        c, h, w = self.event_shape
        extra = f", {self.info['note']}" if self.info.get("note") else ""
        return f"{self.name} [{self.split}, {len(self)} images {c}x{h}x{w}, {self.discretizer.describe()}{extra}]"
