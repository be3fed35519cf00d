"""What PixelRNN's Row LSTM and Diagonal BiLSTM share (van den Oord et al. 2016, "Pixel Recurrent Neural
Networks"): a mask-A input convolution into a residual stream, a stack of recurrent layers, class biases on the
stream and on each layer's gates, and 1x1 output layers. The two files differ only in their layers (and the Row
LSTM's row cache); the channels of one pixel are ordered by the head, as for every image model here.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from chainrule.core.contract import AutoregressiveModel
from chainrule.core.heads.base import Head
from chainrule.core.nn.masked import MaskedConv2d, class_bias, require_image


def lstm_update(gates: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
    """One LSTM update from pre-activations ``gates`` (B, 4H, ...) (input, forget, output, cell) and cell ``c``."""
    i, f, o, g = gates.chunk(4, dim=1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def flat_weight(conv: nn.Module, mask: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
    """A convolution's kernel as ``(in * kernel, out)`` for one-window products, and its bias (detached)."""
    w = conv.weight.detach() if mask is None else (conv.weight * mask).detach()
    return w.reshape(w.shape[0], -1).t().contiguous(), None if conv.bias is None else conv.bias.detach()


class PixelRNN(AutoregressiveModel):
    """Mask-A convolution -> residual recurrent ``layers`` (built by the subclass) -> ReLU, 1x1, ReLU, 1x1.

    Each layer is called as ``layer(stream, gate_bias, image)`` (``image``: the network's input, for layers that
    may read pixel values directly) and exposes ``gate_channels`` (the width of its class bias); the class bias of
    the input convolution is added to the stream.
    """

    row_causal = True

    def __init__(self, event_shape: Sequence[int], head: Head, num_classes: int, layers: list[nn.Module],
                 channels: int, first_kernel_size: int, output_channels: int) -> None:
        super().__init__(event_shape, head, num_classes)
        require_image(self.name, self.event_shape)
        if not layers:
            raise ValueError("num_layers must be at least 1")
        self.input_conv = MaskedConv2d(self.channels, channels, first_kernel_size, "A")
        self.layers = nn.ModuleList(layers)
        self.bias_sizes = [channels] + [layer.gate_channels for layer in layers]
        self.cond_bias = class_bias(num_classes, sum(self.bias_sizes))
        self.out_hidden = nn.Conv2d(channels, output_channels, 1)
        self.out = nn.Conv2d(output_channels, self.num_params_out, 1)

    def class_biases(self, cond: Tensor | None, spatial_dims: int) -> list[Tensor | None]:
        """The class biases of the input convolution and of each layer's gates (all None without a class)."""
        if cond is None or self.cond_bias is None:
            return [None] * len(self.bias_sizes)
        return list(self.cond_bias(cond.long(), spatial_dims).split(self.bias_sizes, dim=1))

    def network(self, inputs: Tensor, cond: Tensor | None = None) -> Tensor:
        biases = self.class_biases(cond, 2)
        h = self.input_conv(inputs)
        if biases[0] is not None:
            h = h + biases[0]
        for layer, bias in zip(self.layers, biases[1:], strict=True):
            h = layer(h, bias, inputs)
        return self.out(F.relu(self.out_hidden(F.relu(h))))
