"""RealNVP (Dinh et al. 2017): affine coupling layers with alternating checkerboard masks.

Each layer keeps the masked half of the pixels and moves the other half by a scale and shift computed from the
kept half, so the Jacobian is triangular (its log-determinant is the sum of the log-scales) and the inverse is
one pass per layer. Trained on uniformly dequantized levels (see :mod:`.dequantized_flow`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import Tensor, nn

from chainrule.core.heads.base import Head
from chainrule.core.nn.masked import require_image
from chainrule.modalities.image.models.dequantized_flow import DequantizedFlow


def checkerboard(height: int, width: int, parity: int) -> Tensor:
    """``(1, 1, H, W)`` mask of the pixels with ``(row + col) % 2 == parity``."""
    rows, cols = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    return ((rows + cols) % 2 == parity).float()[None, None]


class AffineCoupling(nn.Module):
    """``z = m * y + (1 - m) * (y * exp(s(m * y)) + t(m * y))`` with a bounded log-scale ``s``."""

    def __init__(self, channels: int, hidden: int, mask: Tensor) -> None:
        super().__init__()
        self.register_buffer("mask", mask)
        self.net = nn.Sequential(
            nn.Conv2d(channels + 1, hidden, 3, padding=1), nn.ReLU(),
            nn.Conv2d(hidden, hidden, 1), nn.ReLU(),
            nn.Conv2d(hidden, 2 * channels, 3, padding=1))
        nn.init.zeros_(self.net[-1].weight)  # every layer starts as the identity
        nn.init.zeros_(self.net[-1].bias)
        self.log_scale_range = nn.Parameter(torch.ones(1, channels, 1, 1))

    def scale_shift(self, kept: Tensor) -> tuple[Tensor, Tensor]:
        mask = self.mask.expand(kept.shape[0], 1, *kept.shape[2:]).to(kept.dtype)
        s, t = self.net(torch.cat([kept, mask], dim=1)).chunk(2, dim=1)
        free = 1 - self.mask
        return self.log_scale_range * torch.tanh(s) * free, t * free

    def forward(self, y: Tensor) -> tuple[Tensor, Tensor]:
        kept = y * self.mask
        s, t = self.scale_shift(kept)
        return kept + (1 - self.mask) * (y * torch.exp(s) + t), s.flatten(1).sum(1)

    def inverse(self, z: Tensor) -> Tensor:
        kept = z * self.mask
        s, t = self.scale_shift(kept)
        return kept + (1 - self.mask) * ((z - t) * torch.exp(-s))


class RealNVP(DequantizedFlow):
    """Options: ``num_layers`` couplings (masks alternate), ``hidden`` channels in each coupling network."""

    name: ClassVar[str] = "realnvp"
    TINY: ClassVar[dict] = {"num_layers": 2, "hidden": 4}

    def __init__(self, event_shape: Sequence[int], head: Head, num_classes: int = 0, num_layers: int = 8,
                 hidden: int = 64) -> None:
        super().__init__(event_shape, head, num_classes)
        require_image(self.name, event_shape)
        if num_layers < 2:
            raise ValueError(f"num_layers must be at least 2 (each half of the pixels must move), got {num_layers}")
        h, w = self.positions
        self.couplings = nn.ModuleList(AffineCoupling(self.channels, int(hidden), checkerboard(h, w, i % 2))
                                       for i in range(int(num_layers)))

    def transform(self, y: Tensor) -> tuple[Tensor, Tensor]:
        log_det = torch.zeros(y.shape[0], device=y.device, dtype=y.dtype)
        for layer in self.couplings:
            y, ld = layer(y)
            log_det = log_det + ld
        return y, log_det

    def inverse(self, z: Tensor) -> Tensor:
        for layer in reversed(self.couplings):
            z = layer.inverse(z)
        return z
