"""Gated PixelCNN (van den Oord et al. 2016, "Conditional Image Generation with PixelCNN Decoders").

Two stacks remove PixelCNN's blind spot. The *vertical* stack sees every pixel in the rows at or above
the current one (kernels that reach only upwards); it is shifted down by one row before it feeds the
*horizontal* stack, so nothing from the current row leaks in. The horizontal stack sees the pixels to
the left in the current row (a right shift in the first layer excludes the pixel itself). Units are
gated, ``tanh(a) * sigmoid(b)``; the horizontal stack is residual and every layer adds a skip output.
Shifts are done by padding and cropping, so every layer is one ordinary convolution.

Sampling caches each convolution's input (:mod:`chainrule.core.nn.conv_cache`): when a row is finished the
vertical stack computes that row (it is what the next row's horizontal stack reads), and each step computes the
horizontal stack at the new pixel alone.
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
from chainrule.core.nn.masked import class_bias, require_image


def down_shift(x: Tensor) -> Tensor:
    """Move every row down by one (row 0 becomes zeros)."""
    return F.pad(x, (0, 0, 1, 0))[:, :, :-1, :]


def right_shift(x: Tensor) -> Tensor:
    """Move every column right by one (column 0 becomes zeros)."""
    return F.pad(x, (1, 0))[:, :, :, :-1]


def gate(x: Tensor) -> Tensor:
    a, b = x.chunk(2, dim=1)
    return torch.tanh(a) * torch.sigmoid(b)


def bias_at(bias: Tensor | None, i: int, j: int | None = None) -> Tensor | float:
    """A gate bias along row ``i`` ``(B, 2c, W)`` or at pixel ``(i, j)`` ``(B, 2c)``: a class bias ``(B, 2c)`` is the
    same everywhere, a per-pixel map ``(B, 2c, H, W)`` (an image condition) is read at the row or pixel."""
    if bias is None:
        return 0.0
    if bias.dim() == 4:
        return bias[:, :, i] if j is None else bias[:, :, i, j]
    return bias[:, :, None] if j is None else bias


class _GatedLayer(nn.Module):
    """One gated layer of both stacks; ``first`` makes the horizontal kernel exclude the current pixel."""

    def __init__(self, in_channels: int, channels: int, kernel_size: int, first: bool) -> None:
        super().__init__()
        k = kernel_size // 2
        self.k, self.first = k, first
        self.v_conv = nn.Conv2d(in_channels, 2 * channels, (k + 1, 2 * k + 1))  # rows i-k..i, cols j-k..j+k
        self.h_conv = nn.Conv2d(in_channels, 2 * channels, (1, k + 1))  # row i, cols j-k..j
        self.link = nn.Conv2d(2 * channels, 2 * channels, 1)
        self.skip = nn.Conv2d(channels, channels, 1)
        self.res = None if first else nn.Conv2d(channels, channels, 1)

    def forward(self, v: Tensor, h: Tensor, cond_v: Tensor | None, cond_h: Tensor | None
                ) -> tuple[Tensor, Tensor, Tensor]:
        k = self.k
        v_pre = self.v_conv(F.pad(v, (k, k, k, 0)))
        h_pre = self.h_conv(F.pad(h, (k, 0, 0, 0)))
        if self.first:
            h_pre = right_shift(h_pre)
        h_pre = h_pre + self.link(down_shift(v_pre))
        if cond_v is not None:
            v_pre, h_pre = v_pre + cond_v, h_pre + cond_h
        h_out = gate(h_pre)
        h_new = h_out if self.res is None else h + self.res(h_out)
        return gate(v_pre), h_new, self.skip(h_out)


class GatedPixelCNN(AutoregressiveModel):
    """Gated PixelCNN without a blind spot.

    Options:
        hidden_channels: feature maps per stack.
        num_layers: gated layers (the first uses ``first_kernel_size``, the rest ``kernel_size``).
        first_kernel_size / kernel_size: odd kernel widths; the vertical stack reaches
            ``size // 2`` rows up and columns either side per layer.
        output_channels: width of the hidden 1x1 output layer applied to the summed skips.
    """

    name: ClassVar[str] = "gated_pixelcnn"
    row_causal: ClassVar[bool] = True
    supports_cache: ClassVar[bool] = True
    TINY: ClassVar[dict] = {"hidden_channels": 8, "num_layers": 2, "output_channels": 16}

    def __init__(
        self,
        event_shape: Sequence[int],
        head: Head,
        num_classes: int = 0,
        hidden_channels: int = 32,
        num_layers: int = 6,
        first_kernel_size: int = 7,
        kernel_size: int = 3,
        output_channels: int = 128,
    ) -> None:
        super().__init__(event_shape, head, num_classes)
        require_image(self.name, self.event_shape)
        if num_layers < 1:
            raise ValueError(f"num_layers must be at least 1, got {num_layers}")
        c = hidden_channels
        self.layers = nn.ModuleList([_GatedLayer(self.channels, c, first_kernel_size, first=True)] + [
            _GatedLayer(c, c, kernel_size, first=False) for _ in range(num_layers - 1)])
        # per layer: a 2c bias inside the vertical gate and a 2c bias inside the horizontal gate
        self.cond_bias = class_bias(num_classes, 4 * c * num_layers)
        self.out_hidden = nn.Conv2d(c, output_channels, 1)
        self.out = nn.Conv2d(output_channels, self.num_params_out, 1)

    def network(self, inputs: Tensor, cond: Tensor | None = None) -> Tensor:
        n = len(self.layers)
        biases: Sequence[Tensor | None] = [None] * (2 * n)
        if cond is not None and self.cond_bias is not None:
            biases = self.cond_bias(cond, spatial_dims=2).chunk(2 * n, dim=1)
        v = h = inputs
        skip: Tensor | int = 0
        for i, layer in enumerate(self.layers):
            v, h, s = layer(v, h, biases[2 * i], biases[2 * i + 1])
            skip = skip + s
        return self.out(F.relu(self.out_hidden(F.relu(skip)), inplace=True))

    # ------------------------------------------------------------------ incremental decoding
    def cache_bytes_per_sample(self) -> int:
        """The fixed maps :meth:`init_cache` allocates per sample."""
        return cache_bytes_per_sample(self)

    @torch.no_grad()
    def init_cache(self, batch_size: int, cond: Tensor | None = None) -> dict[str, Any]:
        """Per layer the vertical and horizontal convolutions' input maps (layer 0's hold the image), the class
        biases, and the vertical stack's contribution to the current row (row 0 sees the zero row above)."""
        height, width = self.positions
        biases: list[Tensor | None] = [None] * (2 * len(self.layers))
        if cond is not None and self.cond_bias is not None:
            biases = list(self.cond_bias(cond).chunk(2 * len(self.layers), dim=1))
        v_in = [ConvInputCache(lay.v_conv, batch_size, height, width, (lay.k, lay.k, lay.k, 0)) for lay in self.layers]
        h_in = [ConvInputCache(lay.h_conv, batch_size, height, width, (lay.k, 0, 0, 0)) for lay in self.layers]
        from_above = [lay.link.bias.detach()[None, :, None].expand(batch_size, -1, width) for lay in self.layers]
        return {"t": 0, "v_in": v_in, "h_in": h_in, "biases": biases, "from_above": from_above}

    def _vertical_row(self, i: int, cache: dict[str, Any]) -> None:
        """Run the vertical stack along finished row ``i``; keep what row ``i + 1``'s horizontal stack reads."""
        for n, layer in enumerate(self.layers):
            v_pre = cache["v_in"][n].row(i)
            cache["from_above"][n] = pointwise(layer.link, v_pre)
            if n + 1 < len(self.layers):
                cache["v_in"][n + 1].put_row(i, gate(v_pre + bias_at(cache["biases"][2 * n], i)))

    @torch.no_grad()
    def step(self, x_prev: Tensor | None, cache: dict[str, Any]) -> tuple[Tensor, dict[str, Any]]:
        """The horizontal stack at the next pixel (after the vertical stack along the row just finished)."""
        t, width = cache["t"], self.positions[1]
        if x_prev is not None:
            value = self.encode(x_prev.to(self.device))
            cache["v_in"][0].put(*divmod(t - 1, width), value)
            cache["h_in"][0].put(*divmod(t - 1, width), value)
        if t >= self.num_positions:
            raise InputError(f"{self.name}: every one of the {self.num_positions} positions is already generated")
        i, j = divmod(t, width)
        if j == 0 and i > 0:
            self._vertical_row(i - 1, cache)
        h: Tensor | None = None
        skip: Tensor | int = 0
        for n, layer in enumerate(self.layers):
            if layer.first:  # right-shifted: the output left of this pixel, zero in column 0
                h_pre = cache["h_in"][0].at(i, j - 1) if j > 0 else 0.0
            else:
                cache["h_in"][n].put(i, j, h)
                h_pre = cache["h_in"][n].at(i, j)
            h_pre = h_pre + cache["from_above"][n][:, :, j]
            h_out = gate(h_pre + bias_at(cache["biases"][2 * n + 1], i, j))
            h = h_out if layer.res is None else h + pointwise(layer.res, h_out)
            skip = skip + pointwise(layer.skip, h_out)
        params = pointwise(self.out, F.relu(pointwise(self.out_hidden, F.relu(skip))))
        return params, {**cache, "t": t + 1}
