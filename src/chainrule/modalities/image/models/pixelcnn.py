"""PixelCNN (van den Oord et al. 2016, "Pixel Recurrent Neural Networks"): masked convolutions.

A 7x7 mask-A convolution, residual blocks (1x1 -> masked 3x3 'B' -> 1x1, ReLU) and 1x1 output layers.
Stacked masked kernels leave a *blind spot*: pixels above and to the right of the current one, inside
the nominal receptive field, never reach it (see :mod:`chainrule.modalities.image.models.gated_pixelcnn` for the fix).

Sampling caches every masked convolution's input (:mod:`chainrule.core.nn.conv_cache`): a layer's output at pixel
q reads the previous layer at pixels <= q only, so each step computes every layer at the new pixel alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from chainrule.core.contract import AutoregressiveModel
from chainrule.core.errors import InputError
from chainrule.core.heads.base import Head
from chainrule.core.nn.conv_cache import ConvInputCache, cache_bytes_per_sample, pointwise
from chainrule.core.nn.masked import MaskedConv2d, class_bias, require_image


class _ResidualBlock(nn.Module):
    """ReLU -> 1x1 (halve) -> ReLU -> masked kxk 'B' -> ReLU -> 1x1 (restore), added to the input."""

    def __init__(self, channels: int, kernel_size: int) -> None:
        super().__init__()
        mid = max(channels // 2, 1)
        self.reduce = nn.Conv2d(channels, mid, 1)
        self.conv = MaskedConv2d(mid, mid, kernel_size, "B")
        self.expand = nn.Conv2d(mid, channels, 1)

    def forward(self, h: Tensor) -> Tensor:
        # in-place ReLUs on convolution outputs, which no backward pass reads: one map less written per ReLU
        out = F.relu(self.reduce(F.relu(h)), inplace=True)
        out = F.relu(self.conv(out), inplace=True)
        return h + self.expand(out)


class PixelCNN(AutoregressiveModel):
    """Plain PixelCNN.

    Options:
        hidden_channels: feature maps in the residual stream.
        num_blocks: residual blocks after the first layer.
        first_kernel_size: kernel of the mask-A input convolution (odd).
        kernel_size: kernel of the masked convolution in each block (odd).
        output_channels: width of the hidden 1x1 output layer.
    """

    name: ClassVar[str] = "pixelcnn"
    row_causal: ClassVar[bool] = True
    supports_cache: ClassVar[bool] = True
    TINY: ClassVar[dict] = {"hidden_channels": 8, "num_blocks": 1, "output_channels": 16}

    def __init__(
        self,
        event_shape: Sequence[int],
        head: Head,
        num_classes: int = 0,
        hidden_channels: int = 64,
        num_blocks: int = 6,
        first_kernel_size: int = 7,
        kernel_size: int = 3,
        output_channels: int = 128,
    ) -> None:
        super().__init__(event_shape, head, num_classes)
        require_image(self.name, self.event_shape)
        h = hidden_channels
        self.input_conv = MaskedConv2d(self.channels, h, first_kernel_size, "A")
        self.blocks = nn.ModuleList(_ResidualBlock(h, kernel_size) for _ in range(num_blocks))
        self.cond_bias = class_bias(num_classes, h * (num_blocks + 1))
        self.out_hidden = nn.Conv2d(h, output_channels, 1)
        self.out = nn.Conv2d(output_channels, self.num_params_out, 1)

    def network(self, inputs: Tensor, cond: Tensor | None = None) -> Tensor:
        # (channels-last maps were tried: memory-format copies are not allowed under vmap, which the per-example
        # Fisher scores use, and the gain was within noise)
        h = self.input_conv(inputs)
        biases: Sequence[Tensor | None] = [None] * (len(self.blocks) + 1)
        if cond is not None and self.cond_bias is not None:
            biases = self.cond_bias(cond, spatial_dims=2).chunk(len(self.blocks) + 1, dim=1)
        if biases[0] is not None:
            h = h + biases[0]
        for block, bias in zip(self.blocks, biases[1:], strict=True):
            h = block(h if bias is None else h + bias)
        return self.out(F.relu(self.out_hidden(F.relu(h)), inplace=True))

    # ------------------------------------------------------------------ incremental decoding
    def _biases(self, cond: Tensor | None) -> list[Tensor | None]:
        if cond is None or self.cond_bias is None:
            return [None] * (len(self.blocks) + 1)
        return list(self.cond_bias(cond).chunk(len(self.blocks) + 1, dim=1))

    def cache_bytes_per_sample(self) -> int:
        """The fixed maps :meth:`init_cache` allocates per sample."""
        return cache_bytes_per_sample(self)

    @torch.no_grad()
    def init_cache(self, batch_size: int, cond: Tensor | None = None) -> dict[str, Any]:
        """The input map of every masked convolution (the first one's holds the image) and the class biases."""
        height, width = self.positions

        def input_of(conv: MaskedConv2d) -> ConvInputCache:
            p = conv.padding[0]
            return ConvInputCache(conv, batch_size, height, width, (p, p, p, p), weight=conv.weight * conv.mask)

        return {"t": 0, "image": input_of(self.input_conv), "blocks": [input_of(b.conv) for b in self.blocks],
                "biases": self._biases(cond)}

    @torch.no_grad()
    def step(self, x_prev: Tensor | None, cache: dict[str, Any]) -> tuple[Tensor, dict[str, Any]]:
        """Every layer at the next pixel, from the cached inputs of the pixels before it."""
        t, width = cache["t"], self.positions[1]
        if x_prev is not None:
            cache["image"].put(*divmod(t - 1, width), self.encode(x_prev.to(self.device)))
        if t >= self.num_positions:
            raise InputError(f"{self.name}: every one of the {self.num_positions} positions is already generated")
        i, j = divmod(t, width)
        biases = cache["biases"]
        h = cache["image"].at(i, j)
        h = h if biases[0] is None else h + biases[0]
        for block, conv, bias in zip(self.blocks, cache["blocks"], biases[1:], strict=True):
            h = h if bias is None else h + bias
            conv.put(i, j, F.relu(pointwise(block.reduce, F.relu(h))))
            h = h + pointwise(block.expand, F.relu(conv.at(i, j)))
        params = pointwise(self.out, F.relu(pointwise(self.out_hidden, F.relu(h))))
        return params, {**cache, "t": t + 1}
