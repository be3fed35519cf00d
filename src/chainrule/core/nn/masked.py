"""Masked layers for autoregressive networks, plus small helpers the convolutional models share."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from chainrule.core.errors import ConfigError


class MaskedConv2d(nn.Conv2d):
    """A 'same'-padded convolution whose kernel sees only pixels earlier in raster order.

    Mask type ``'A'`` excludes the centre pixel (first layer: the output must not see its own input);
    ``'B'`` includes it (later layers, whose centre already depends only on earlier pixels). All input
    channels are treated alike: the head scores the channels of one pixel jointly.

    The kernel's rows below the centre are all masked, so ``forward`` convolves with the top ``k // 2 + 1`` rows
    only (padding above, none below): the same function as the full masked kernel with a third fewer products
    for 3x3. The parameter keeps the full ``k x k`` shape (checkpoints, the sampling caches).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, mask_type: str) -> None:
        if mask_type not in ("A", "B"):
            raise ValueError(f"mask_type must be 'A' or 'B', got {mask_type!r}")
        if kernel_size % 2 != 1:
            raise ValueError(f"masked convolutions need an odd kernel size, got {kernel_size}")
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        self.mask_type = mask_type
        c = kernel_size // 2
        mask = torch.zeros(kernel_size, kernel_size)
        mask[:c, :] = 1.0
        mask[c, : c + (mask_type == "B")] = 1.0
        self.register_buffer("mask", mask[None, None])

    def forward(self, x: Tensor) -> Tensor:
        c = self.kernel_size[0] // 2
        weight = self.weight[:, :, : c + 1] * self.mask[:, :, : c + 1]
        return F.conv2d(F.pad(x, (c, c, c, 0)), weight, self.bias)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, mask_type={self.mask_type}"


class MaskedLinear(nn.Linear):
    """A linear layer with one or more fixed connectivity masks ``(K, out, in)``; ``forward`` picks one."""

    def __init__(self, in_features: int, out_features: int, num_masks: int = 1, bias: bool = True) -> None:
        super().__init__(in_features, out_features, bias=bias)
        self.register_buffer("masks", torch.ones(num_masks, out_features, in_features, dtype=torch.bool))

    def set_masks(self, masks: Tensor) -> None:
        """Replace the masks; ``masks`` is ``(K, out, in)`` (or ``(out, in)`` for one mask)."""
        masks = masks.reshape(-1, self.out_features, self.in_features).bool()
        self.masks = masks.to(self.weight.device)

    def forward(self, x: Tensor, mask_index: int = 0) -> Tensor:
        return F.linear(x, self.weight * self.masks[mask_index], self.bias)


class ClassBias(nn.Module):
    """A learned per-class bias, zero-initialised: ``cond`` (B,) -> (B, dim) (or (B, dim, 1, 1) for maps)."""

    def __init__(self, num_classes: int, dim: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(num_classes, dim)
        nn.init.zeros_(self.embed.weight)

    def forward(self, cond: Tensor, spatial_dims: int = 0) -> Tensor:
        e = self.embed(cond.long())
        return e.reshape(*e.shape, *([1] * spatial_dims))


def class_bias(num_classes: int, dim: int) -> ClassBias | None:
    """A :class:`ClassBias` for a conditional model, ``None`` for an unconditional one."""
    return ClassBias(num_classes, dim) if num_classes > 0 else None


def require_image(name: str, event_shape: Sequence[int]) -> None:
    """Convolutional models need ``(C, H, W)`` events."""
    if len(event_shape) != 3:
        raise ConfigError(f"model {name!r} needs images (C, H, W); got event shape {tuple(event_shape)}")
