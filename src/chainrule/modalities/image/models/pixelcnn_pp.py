"""PixelCNN++ (Salimans et al. 2017), simplified for small images: no down/up-sampling passes.

Two streams without a blind spot: the vertical stream ``u`` sees the rows strictly above a pixel
(down-shifted convolutions), the horizontal stream ``ul`` sees the rows above plus the pixels to the left
(down-right-shifted convolutions) and receives ``u`` through 1x1 convolutions. Both are stacks of gated
ResNet blocks with concat_elu nonlinearities, dropout and optional class conditioning.

Sampling caches each convolution's input (:mod:`chainrule.core.nn.conv_cache`, as in Fast PixelCNN++,
Ramachandran et al. 2017): ``u`` at row r reads rows < r only, so it is computed a row at a time when row r - 1
is finished, and each step computes the ``ul`` stream at the new pixel alone.
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


def concat_elu(x: Tensor) -> Tensor:
    """ELU of ``[x, -x]`` along channels (doubles the channels)."""
    return F.elu(torch.cat([x, -x], dim=1))


def down_shift(x: Tensor) -> Tensor:
    """Move every row down by one (zeros enter at the top)."""
    return F.pad(x, (0, 0, 1, 0))[:, :, :-1]


def right_shift(x: Tensor) -> Tensor:
    """Move every column right by one (zeros enter at the left)."""
    return F.pad(x, (1, 0))[..., :-1]


class DownShiftedConv(nn.Conv2d):
    """``(kh, kw)`` convolution whose output at a pixel sees its own row and ``kh-1`` rows above, centred."""

    def __init__(self, cin: int, cout: int, kernel: tuple[int, int] = (2, 3)) -> None:
        super().__init__(cin, cout, kernel)
        kh, kw = kernel
        self.pad = ((kw - 1) // 2, (kw - 1) // 2, kh - 1, 0)

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(F.pad(x, self.pad))


class DownRightShiftedConv(nn.Conv2d):
    """``(kh, kw)`` convolution whose output at a pixel sees rows above and columns to the left, inclusive."""

    def __init__(self, cin: int, cout: int, kernel: tuple[int, int] = (2, 2)) -> None:
        super().__init__(cin, cout, kernel)
        kh, kw = kernel
        self.pad = (kw - 1, 0, kh - 1, 0)

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(F.pad(x, self.pad))


class GatedResnet(nn.Module):
    """``x + a * sigmoid(b)`` with ``[a, b] = conv(dropout(concat_elu(conv(concat_elu(x)) + nin(aux))))``."""

    def __init__(self, nf: int, conv: type[nn.Conv2d], aux: bool, num_classes: int, dropout: float) -> None:
        super().__init__()
        self.conv_in = conv(2 * nf, nf)
        self.nin_aux = nn.Conv2d(2 * nf, nf, 1) if aux else None
        self.dropout = nn.Dropout(dropout)
        self.conv_out = conv(2 * nf, 2 * nf)
        self.embed = nn.Embedding(num_classes, 2 * nf) if num_classes > 0 else None

    def forward(self, x: Tensor, aux: Tensor | None = None, cond: Tensor | None = None) -> Tensor:
        h = self.conv_in(concat_elu(x))
        if self.nin_aux is not None and aux is not None:
            h = h + self.nin_aux(concat_elu(aux))
        h = self.conv_out(self.dropout(concat_elu(h)))
        if self.embed is not None and cond is not None:
            h = h + self.embed(cond)[:, :, None, None]
        a, b = h.chunk(2, dim=1)
        return x + a * torch.sigmoid(b)


class PixelCNNPP(AutoregressiveModel):
    """Two-stream gated PixelCNN++ without resolution changes.

    Options:
        num_filters: channels of both streams.
        num_resnet: gated ResNet blocks per stream.
        dropout: dropout inside each block.

    Without down-sampling the receptive field reaches about ``2 * num_resnet + 1`` rows up and columns
    to each side, so raise ``num_resnet`` for images much taller than that.
    """

    name: ClassVar[str] = "pixelcnn_pp"
    row_causal: ClassVar[bool] = True
    supports_cache: ClassVar[bool] = True
    default_head: ClassVar[str] = "logistic_mixture"
    TINY: ClassVar[dict] = {"num_filters": 8, "num_resnet": 1, "dropout": 0.0}

    def __init__(
        self,
        event_shape: Sequence[int],
        head: Head,
        num_classes: int = 0,
        num_filters: int = 32,
        num_resnet: int = 4,
        dropout: float = 0.1,
    ) -> None:
        super().__init__(event_shape, head, num_classes)
        if len(self.positions) != 2:
            raise ValueError(f"{self.name} needs images (C, H, W), got event shape {self.event_shape}")
        nf, cin = num_filters, self.channels + 1  # + a channel of ones, so zero padding marks the border
        self.u_in = DownShiftedConv(cin, nf, (2, 3))
        self.ul_in_up = DownShiftedConv(cin, nf, (1, 3))
        self.ul_in_left = DownRightShiftedConv(cin, nf, (2, 1))
        self.u_blocks = nn.ModuleList(
            GatedResnet(nf, DownShiftedConv, False, num_classes, dropout) for _ in range(num_resnet))
        self.ul_blocks = nn.ModuleList(
            GatedResnet(nf, DownRightShiftedConv, True, num_classes, dropout) for _ in range(num_resnet))
        self.out = nn.Conv2d(nf, self.num_params_out, 1)

    def network(self, inputs: Tensor, cond: Tensor | None = None) -> Tensor:
        x = torch.cat([inputs, torch.ones_like(inputs[:, :1])], dim=1)
        cond = cond.to(inputs.device).long() if cond is not None else None
        u = down_shift(self.u_in(x))  # rows strictly above
        ul = down_shift(self.ul_in_up(x)) + right_shift(self.ul_in_left(x))  # above, and left in this row
        for u_block, ul_block in zip(self.u_blocks, self.ul_blocks, strict=True):
            u = u_block(u, cond=cond)
            ul = ul_block(ul, aux=u, cond=cond)
        return self.out(F.elu(ul))

    # ------------------------------------------------------------------ incremental decoding
    def cache_bytes_per_sample(self) -> int:
        """The fixed maps :meth:`init_cache` allocates per sample."""
        return cache_bytes_per_sample(self)

    @torch.no_grad()
    def init_cache(self, batch_size: int, cond: Tensor | None = None) -> dict[str, Any]:
        """The input map of every convolution (the three input convolutions' hold the image and its ones channel),
        the class embeddings, and per ``ul`` block the ``u`` stream's contribution along the current row."""
        height, width = self.positions

        def input_of(conv: nn.Conv2d) -> ConvInputCache:
            return ConvInputCache(conv, batch_size, height, width, conv.pad)

        embeds = [None if b.embed is None or cond is None else b.embed(cond.long()) for b in self.u_blocks]
        ul_embeds = [None if b.embed is None or cond is None else b.embed(cond.long()) for b in self.ul_blocks]
        return {"t": 0, "u_in": input_of(self.u_in), "ul_up": input_of(self.ul_in_up),
                "ul_left": input_of(self.ul_in_left),
                "u": [(input_of(b.conv_in), input_of(b.conv_out)) for b in self.u_blocks],
                "ul": [(input_of(b.conv_in), input_of(b.conv_out)) for b in self.ul_blocks],
                "embeds": embeds, "ul_embeds": ul_embeds, "aux": [None] * len(self.ul_blocks)}

    def _u_row(self, i: int, cache: dict[str, Any]) -> None:
        """The ``u`` stream along row ``i`` (it reads the image rows above only); keep each block's ``nin_aux``."""
        u = cache["u_in"].row(i - 1) if i > 0 else cache["u_in"].map.new_zeros(
            cache["u_in"].map.shape[0], self.u_in.out_channels, self.positions[1])
        for n, (conv_in, conv_out) in enumerate(cache["u"]):
            conv_in.put_row(i, concat_elu(u))
            conv_out.put_row(i, concat_elu(conv_in.row(i)))
            h = conv_out.row(i)
            if cache["embeds"][n] is not None:
                h = h + cache["embeds"][n][:, :, None]
            a, b = h.chunk(2, dim=1)
            u = u + a * torch.sigmoid(b)
            aux = self.ul_blocks[n].nin_aux
            cache["aux"][n] = pointwise(aux, concat_elu(u)) if aux is not None else None

    @torch.no_grad()
    def step(self, x_prev: Tensor | None, cache: dict[str, Any]) -> tuple[Tensor, dict[str, Any]]:
        """The ``ul`` stream at the next pixel (after the ``u`` stream along its row when a row begins)."""
        t, width = cache["t"], self.positions[1]
        if x_prev is not None:
            value = self.encode(x_prev.to(self.device))
            value = torch.cat([value, torch.ones_like(value[:, :1])], dim=1)
            for name in ("u_in", "ul_up", "ul_left"):
                cache[name].put(*divmod(t - 1, width), value)
        if t >= self.num_positions:
            raise InputError(f"{self.name}: every one of the {self.num_positions} positions is already generated")
        i, j = divmod(t, width)
        if j == 0:
            self._u_row(i, cache)
        ul: Tensor | float = 0.0
        if i > 0:  # down-shifted: the row above
            ul = ul + cache["ul_up"].at(i - 1, j)
        if j > 0:  # right-shifted: the column to the left
            ul = ul + cache["ul_left"].at(i, j - 1)
        if not isinstance(ul, Tensor):
            ul = cache["ul_left"].map.new_zeros(cache["ul_left"].map.shape[0], self.ul_in_left.out_channels)
        for n, (conv_in, conv_out) in enumerate(cache["ul"]):
            conv_in.put(i, j, concat_elu(ul))
            h = conv_in.at(i, j)
            if cache["aux"][n] is not None:
                h = h + cache["aux"][n][:, :, j]
            conv_out.put(i, j, concat_elu(h))
            h = conv_out.at(i, j)
            if cache["ul_embeds"][n] is not None:
                h = h + cache["ul_embeds"][n]
            a, b = h.chunk(2, dim=1)
            ul = ul + a * torch.sigmoid(b)
        return pointwise(self.out, F.elu(ul)), {**cache, "t": t + 1}
