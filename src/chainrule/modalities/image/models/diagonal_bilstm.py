"""PixelRNN's Diagonal BiLSTM (van den Oord et al. 2016, "Pixel Recurrent Neural Networks").

Each layer skews its input (row ``i`` shifted ``i`` columns right), so the image's diagonals become columns, and
runs a convolutional LSTM along the columns, one whole column per update: input-to-state is a 1x1 convolution
(mask B: the current pixel's stream, which depends only on earlier pixels), state-to-state a 2x1 convolution
over the previous column's state at rows ``i-1`` and ``i``. Unskewed, the left-to-right pass sees everything
above and to the left; the same pass on the mirrored image sees above and to the right, and is shifted down one
row so the current row's right part stays hidden. The stream at a pixel depends only on earlier pixels, so no
stream position of row ``i-1`` holds that row's last pixel; the first layer's mirrored pass therefore also reads
the pixel values themselves (a 1x1 convolution of the image, causal because its output moves down a row).
Together a single layer sees every earlier pixel: no blind spot. Layers are residual; the stream, class biases
and output layers are :class:`PixelRNN`'s.

Sampling re-runs the network on the rows generated so far (``row_causal``), exact but not cached.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from chainrule.core.heads.base import Head
from chainrule.modalities.image.models.pixel_rnn import PixelRNN, lstm_update


def skew(x: Tensor) -> Tensor:
    """``(B, C, H, W)`` -> ``(B, C, H, W + H - 1)`` with row ``i`` moved ``i`` columns right (zeros elsewhere)."""
    b, c, h, w = x.shape
    flat = F.pad(x, (0, h)).reshape(b, c, h * (w + h))[..., : h * (w + h - 1)]
    return flat.reshape(b, c, h, w + h - 1)


def unskew(x: Tensor, width: int) -> Tensor:
    """The inverse of :func:`skew`: ``(B, C, H, W + H - 1)`` -> ``(B, C, H, W)``."""
    b, c, h, sw = x.shape
    return F.pad(x.reshape(b, c, h * sw), (0, h)).reshape(b, c, h, sw + 1)[..., :width]


class _DiagonalLSTM(nn.Module):
    """One direction: a column-wise convolutional LSTM over the skewed map, left to right."""

    def __init__(self, channels: int, hidden_size: int) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.input_to_state = nn.Conv2d(channels, 4 * hidden_size, 1)
        self.state_to_state = nn.Conv1d(hidden_size, 4 * hidden_size, 2, bias=False)  # rows i-1 and i

    def forward(self, x: Tensor, bias: Tensor | None, extra: Tensor | None = None) -> Tensor:
        """``extra``: more input-to-state pre-activations (B, 4H, H, W), added before the skew."""
        gates = self.input_to_state(x)
        for more in (bias, extra):
            if more is not None:
                gates = gates + more
        gates = skew(gates)
        h = c = x.new_zeros(x.shape[0], self.hidden_size, x.shape[2])
        states = []
        for t in range(gates.shape[-1]):  # the recurrence runs over diagonals; each is one batched update
            h, c = lstm_update(gates[..., t] + self.state_to_state(F.pad(h, (1, 0))), c)
            states.append(h)
        return unskew(torch.stack(states, dim=-1), x.shape[-1])


class _DiagonalBiLSTMLayer(nn.Module):
    """Both directions, the mirrored one shifted down a row, summed and added back to the stream; with
    ``image_channels``, the mirrored pass also reads the image itself."""

    def __init__(self, channels: int, hidden_size: int, image_channels: int = 0) -> None:
        super().__init__()
        self.gate_channels = 4 * hidden_size
        self.forward_pass = _DiagonalLSTM(channels, hidden_size)
        self.mirrored_pass = _DiagonalLSTM(channels, hidden_size)
        self.image_to_state = nn.Conv2d(image_channels, 4 * hidden_size, 1, bias=False) if image_channels else None
        self.to_stream = nn.Conv2d(hidden_size, channels, 1)

    def forward(self, x: Tensor, bias: Tensor | None, image: Tensor) -> Tensor:
        extra = None if self.image_to_state is None else self.image_to_state(image).flip(-1)
        right = self.mirrored_pass(x.flip(-1), bias, extra).flip(-1)
        right = F.pad(right, (0, 0, 1, 0))[:, :, :-1]  # row i sees the mirrored pass of row i-1 only
        return x + self.to_stream(self.forward_pass(x, bias) + right)


class DiagonalBiLSTM(PixelRNN):
    """PixelRNN Diagonal BiLSTM with residual layers; full context from the first layer.

    Options:
        channels: width of the residual stream (the paper's 2h).
        hidden_size: LSTM state size per pixel and direction (the paper's h).
        num_layers: Diagonal BiLSTM layers.
        first_kernel_size: kernel of the mask-A input convolution (odd).
        output_channels: width of the hidden 1x1 output layer.
    """

    name: ClassVar[str] = "diagonal_bilstm"
    TINY: ClassVar[dict] = {"channels": 8, "hidden_size": 4, "num_layers": 1, "output_channels": 8}

    def __init__(self, event_shape: Sequence[int], head: Head, num_classes: int = 0, channels: int = 32,
                 hidden_size: int = 16, num_layers: int = 4, first_kernel_size: int = 7,
                 output_channels: int = 64) -> None:
        layers = [_DiagonalBiLSTMLayer(channels, hidden_size, image_channels=event_shape[0] if i == 0 else 0)
                  for i in range(num_layers)]
        super().__init__(event_shape, head, num_classes, layers, channels, first_kernel_size, output_channels)
