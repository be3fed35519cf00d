"""PixelSNAIL (Chen et al. 2018, "PixelSNAIL: An Improved Autoregressive Generative Model"), compactly.

Stages of gated residual blocks of causal (masked) convolutions, each stage followed by causal self-attention
over all earlier pixels in raster order, using the one attention implementation (:mod:`chainrule.core.nn.attention`).
The convolutions give local detail, the attention unlimited range. The attention input at pixel ``p`` is the
stream there (which depends on pixels before ``p`` only), the image shifted one step in raster order (pixel
``p-1``: so keys ``<= p`` carry every earlier pixel and there is no blind spot) and two background channels,
the pixel's row and column. The head orders the channels of one pixel, as for every image model here.

Sampling caches every masked convolution's input map (:mod:`chainrule.core.nn.conv_cache`) and each attention
block's keys and values (the attention module's KV cache): a new pixel costs one window product per convolution
and one query per attention block over the keys so far, instead of re-running the network on the rows so far.
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
from chainrule.core.nn.attention import Block, kv_buffers
from chainrule.core.nn.conv_cache import ConvInputCache, cache_bytes_per_sample, pointwise
from chainrule.core.nn.masked import MaskedConv2d, class_bias, require_image


class _GatedResidual(nn.Module):
    """ELU -> masked kxk 'B' -> ELU -> masked kxk 'B' to two halves -> ``a * sigmoid(b)``, added to the input."""

    def __init__(self, channels: int, kernel_size: int) -> None:
        super().__init__()
        self.conv = MaskedConv2d(channels, channels, kernel_size, "B")
        self.gate_conv = MaskedConv2d(channels, 2 * channels, kernel_size, "B")

    def forward(self, h: Tensor, bias: Tensor | None) -> Tensor:
        out = self.gate_conv(F.elu(self.conv(F.elu(h))))
        if bias is not None:
            out = out + bias
        a, b = out.chunk(2, dim=1)
        return h + a * torch.sigmoid(b)


class _CausalAttention(nn.Module):
    """The stream, the raster-shifted image and the background, projected into one causal attention :class:`Block`
    over raster order; its output is projected back and added to the stream."""

    def __init__(self, channels: int, image_channels: int, embed_dim: int, num_heads: int, mlp_ratio: float,
                 dropout: float) -> None:
        super().__init__()
        self.into = nn.Linear(channels + image_channels + 2, embed_dim)
        self.block = Block(embed_dim, num_heads, mlp_ratio, dropout, True, False, 1e-5)
        self.back = nn.Linear(embed_dim, channels)

    def forward(self, h: Tensor, shifted: Tensor, background: Tensor) -> Tensor:
        b, c, rows, width = h.shape
        seq = torch.cat([h, shifted, background.expand(b, -1, -1, -1)], dim=1).flatten(2).transpose(1, 2)
        out = self.back(self.block(self.into(seq)))
        return h + out.transpose(1, 2).reshape(b, c, rows, width)


class PixelSNAIL(AutoregressiveModel):
    """Causal gated convolutions interleaved with causal self-attention; no blind spot.

    Options:
        channels: width of the convolutional stream.
        num_stages: stages, each ``num_residual`` gated residual blocks then one attention block.
        num_residual: gated residual blocks per stage.
        first_kernel_size / kernel_size: odd kernels of the mask-A input convolution and of the blocks.
        embed_dim, num_heads, mlp_ratio, dropout: the attention blocks.
        output_channels: width of the hidden 1x1 output layer.
    """

    name: ClassVar[str] = "pixelsnail"
    row_causal: ClassVar[bool] = True
    supports_cache: ClassVar[bool] = True
    TINY: ClassVar[dict] = {"channels": 8, "num_stages": 1, "num_residual": 1, "embed_dim": 8, "num_heads": 2,
                            "output_channels": 8}

    def __init__(self, event_shape: Sequence[int], head: Head, num_classes: int = 0, channels: int = 64,
                 num_stages: int = 2, num_residual: int = 2, first_kernel_size: int = 5, kernel_size: int = 3,
                 embed_dim: int = 64, num_heads: int = 4, mlp_ratio: float = 2.0, dropout: float = 0.0,
                 output_channels: int = 128) -> None:
        super().__init__(event_shape, head, num_classes)
        require_image(self.name, self.event_shape)
        if num_stages < 1:
            raise ValueError(f"num_stages must be at least 1, got {num_stages}")
        self.input_conv = MaskedConv2d(self.channels, channels, first_kernel_size, "A")
        self.stages = nn.ModuleList(nn.ModuleList(_GatedResidual(channels, kernel_size) for _ in range(num_residual))
                                    for _ in range(num_stages))
        self.attention = nn.ModuleList(_CausalAttention(channels, self.channels, embed_dim, num_heads, mlp_ratio,
                                                        dropout) for _ in range(num_stages))
        self.bias_sizes = [channels] + [2 * channels] * (num_stages * num_residual)
        self.cond_bias = class_bias(num_classes, sum(self.bias_sizes))
        self.out_hidden = nn.Conv2d(channels, output_channels, 1)
        self.out = nn.Conv2d(output_channels, self.num_params_out, 1)
        rows, width = self.positions
        grid = torch.meshgrid((torch.arange(rows) + 0.5) / rows - 0.5, (torch.arange(width) + 0.5) / width - 0.5,
                              indexing="ij")
        self.register_buffer("background", torch.stack(grid)[None], persistent=False)

    def _class_biases(self, cond: Tensor | None, spatial_dims: int) -> list[Tensor | None]:
        """The class biases of the input convolution and of each gated block (all None without a class)."""
        if cond is None or self.cond_bias is None:
            return [None] * len(self.bias_sizes)
        return list(self.cond_bias(cond.long(), spatial_dims=spatial_dims).split(self.bias_sizes, dim=1))

    def network(self, inputs: Tensor, cond: Tensor | None = None) -> Tensor:
        biases = self._class_biases(cond, 2)
        flat = inputs.flatten(2)
        shifted = F.pad(flat, (1, 0))[..., :-1].reshape(inputs.shape)  # pixel p-1 at p, in raster order
        background = self.background[:, :, : inputs.shape[2]].to(inputs.dtype)
        h = self.input_conv(inputs)
        if biases[0] is not None:
            h = h + biases[0]
        gate_biases = iter(biases[1:])
        for blocks, attention in zip(self.stages, self.attention, strict=True):
            for block in blocks:
                h = block(h, next(gate_biases))
            h = attention(h, shifted, background)
        return self.out(F.relu(self.out_hidden(F.elu(h))))

    # ------------------------------------------------------------------ incremental decoding
    def cache_bytes_per_sample(self) -> int:
        """The fixed maps and key/value buffers :meth:`init_cache` allocates per sample."""
        return cache_bytes_per_sample(self)

    @torch.no_grad()
    def init_cache(self, batch_size: int, cond: Tensor | None = None) -> dict[str, Any]:
        """The input map of every masked convolution (the first one's holds the image), the attention blocks' key
        and value buffers over every pixel, the class biases and the previous pixel's value."""
        (rows, width), like = self.positions, self.out.weight
        if cond is not None:
            cond = cond.to(like.device)

        def input_of(conv: MaskedConv2d) -> ConvInputCache:
            p = conv.kernel_size[0] // 2
            return ConvInputCache(conv, batch_size, rows, width, (p, p, p, p), weight=conv.weight * conv.mask)

        blocks = [attention.block for attention in self.attention]
        return {"t": 0, "image": input_of(self.input_conv),
                "convs": [[(input_of(block.conv), input_of(block.gate_conv)) for block in stage]
                          for stage in self.stages],
                "kv": kv_buffers(blocks, batch_size, self.num_positions, like),
                "biases": self._class_biases(cond, 0), "previous": like.new_zeros(batch_size, self.channels),
                "background": self.background.flatten(2)[0].t().to(like.dtype)}

    @torch.no_grad()
    def step(self, x_prev: Tensor | None, cache: dict[str, Any]) -> tuple[Tensor, dict[str, Any]]:
        """The next pixel: every convolution at that pixel from its cached input map, and each attention block's
        one query over the keys of the pixels so far (this one's key included, as in the full pass)."""
        t, width = cache["t"], self.positions[1]
        if x_prev is not None:
            cache["previous"] = self.encode(x_prev.to(self.device))
            cache["image"].put(*divmod(t - 1, width), cache["previous"])
        if t >= self.num_positions:
            raise InputError(f"{self.name}: every one of the {self.num_positions} positions is already generated")
        i, j = divmod(t, width)
        biases = cache["biases"]
        h = cache["image"].at(i, j)
        if biases[0] is not None:
            h = h + biases[0]
        gate_biases = iter(biases[1:])
        extra = torch.cat([cache["previous"], cache["background"][t].expand(h.shape[0], -1)], dim=1)
        cache["kv"]["pos"] = t
        for stage, (convs, attention) in enumerate(zip(cache["convs"], self.attention, strict=True)):
            for conv_in, gate_in in convs:
                conv_in.put(i, j, F.elu(h))
                gate_in.put(i, j, F.elu(conv_in.at(i, j)))
                out, bias = gate_in.at(i, j), next(gate_biases)
                a, b = (out if bias is None else out + bias).chunk(2, dim=1)
                h = h + a * torch.sigmoid(b)
            into = F.linear(torch.cat([h, extra], dim=1), attention.into.weight, attention.into.bias)
            h = h + F.linear(attention.block.step(into, cache["kv"], stage), attention.back.weight,
                             attention.back.bias)
        params = pointwise(self.out, F.relu(pointwise(self.out_hidden, F.elu(h))))
        cache["t"] = t + 1
        return params, cache
