"""PixelCNN (van den Oord et al. 2016, "Pixel Recurrent Neural Networks"): masked convolutions.

A 7x7 mask-A convolution, residual blocks (1x1 -> masked 3x3 'B' -> 1x1, ReLU) and 1x1 output layers.
Stacked masked kernels leave a *blind spot*: pixels above and to the right of the current one, inside
the nominal receptive field, never reach it (see :mod:`chainrule.modalities.image.models.gated_pixelcnn` for the fix).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch.nn.functional as F
from torch import Tensor, nn

from chainrule.core.contract import AutoregressiveModel
from chainrule.core.heads.base import Head
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
        out = self.reduce(F.relu(h))
        out = self.conv(F.relu(out))
        return h + self.expand(F.relu(out))


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
        h = self.input_conv(inputs)
        biases: Sequence[Tensor | None] = [None] * (len(self.blocks) + 1)
        if cond is not None and self.cond_bias is not None:
            biases = self.cond_bias(cond, spatial_dims=2).chunk(len(self.blocks) + 1, dim=1)
        if biases[0] is not None:
            h = h + biases[0]
        for block, bias in zip(self.blocks, biases[1:], strict=True):
            h = block(h if bias is None else h + bias)
        return self.out(F.relu(self.out_hidden(F.relu(h))))
