"""PixelCNN++ (Salimans et al. 2017), simplified for small images: no down/up-sampling passes.

Two streams without a blind spot: the vertical stream ``u`` sees the rows strictly above a pixel
(down-shifted convolutions), the horizontal stream ``ul`` sees the rows above plus the pixels to the left
(down-right-shifted convolutions) and receives ``u`` through 1x1 convolutions. Both are stacks of gated
ResNet blocks with concat_elu nonlinearities, dropout and optional class conditioning.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from chainrule.core.contract import AutoregressiveModel
from chainrule.core.heads.base import Head


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
