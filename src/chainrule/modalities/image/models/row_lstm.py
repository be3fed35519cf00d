"""PixelRNN's Row LSTM (van den Oord et al. 2016, "Pixel Recurrent Neural Networks").

A 7x7 mask-A convolution, then Row LSTM layers that run down the image one row at a time, each row in one
batched step: the input-to-state is a 1xk convolution over the current row masked to the current pixel and
those to its left (mask B), the state-to-state a k-wide 1D convolution over the previous row's state, so a
pixel sees a triangle of the rows above. Every layer is residual (a 1x1 convolution from the state back to
the stream); 1x1 output layers give the head parameters (the head orders the channels of one pixel, as for
every image model here). Sampling caches the previous row's LSTM state and the current row's layer inputs,
so each new pixel costs one pixel's work in every layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from chainrule.core.heads.base import Head
from chainrule.core.nn.attention import row_linear
from chainrule.modalities.image.models.pixel_rnn import PixelRNN, flat_weight, lstm_update


class _RowLSTMLayer(nn.Module):
    """One residual Row LSTM layer over a stream of ``channels`` maps."""

    def __init__(self, channels: int, hidden_size: int, kernel_size: int) -> None:
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd and positive, got {kernel_size}")
        self.pad, self.hidden_size, self.gate_channels = kernel_size // 2, hidden_size, 4 * hidden_size
        # a 1xk kernel masked to columns j-k//2 .. j (mask B) is a 1x(k//2+1) kernel over a left-padded row
        self.input_to_state = nn.Conv2d(channels, 4 * hidden_size, (1, self.pad + 1))
        self.state_to_state = nn.Conv1d(hidden_size, 4 * hidden_size, kernel_size, padding=self.pad, bias=False)
        self.to_stream = nn.Conv2d(hidden_size, channels, 1)

    def forward(self, x: Tensor, bias: Tensor | None, image: Tensor | None = None) -> Tensor:
        """The layer over the stream ``x``; ``image`` (the pixel values) is not read: the stream carries them."""
        b, _, rows, width = x.shape
        gates = self.input_to_state(F.pad(x, (self.pad, 0)))
        if bias is not None:
            gates = gates + bias
        h = c = x.new_zeros(b, self.hidden_size, width)
        states = []
        for i in range(rows):  # the recurrence runs over rows; each row is one batched update
            h, c = lstm_update(gates[:, :, i] + self.state_to_state(h), c)
            states.append(h)
        return x + self.to_stream(torch.stack(states, dim=2))

    # ------------------------------------------------------------------ one pixel at a time
    def init_state(self, batch: int, channels: int, width: int, like: Tensor) -> dict[str, Any]:
        """Row buffers: this row's layer inputs (left-padded), the previous row's state (padded), this row's state."""
        p, hid = self.pad, self.hidden_size
        return {"inputs": like.new_zeros(batch, channels, width + p),
                "h_prev": like.new_zeros(batch, hid, width + 2 * p),
                **{k: like.new_zeros(batch, hid, width) for k in ("c_prev", "h_cur", "c_cur")},
                "w": {"is": flat_weight(self.input_to_state), "ss": flat_weight(self.state_to_state),
                      "out": flat_weight(self.to_stream)}}

    def step(self, x: Tensor, col: int, state: dict[str, Any], bias: Tensor | None) -> Tensor:
        """The layer's output at column ``col`` of the current row from its input there, ``x`` (B, channels)."""
        p, w = self.pad, state["w"]
        state["inputs"][:, :, col + p] = x
        gates = row_linear(state["inputs"][:, :, col:col + p + 1].flatten(1), *w["is"])
        gates = gates + state["h_prev"][:, :, col:col + 2 * p + 1].flatten(1) @ w["ss"][0]
        if bias is not None:
            gates = gates + bias
        h, c = lstm_update(gates, state["c_prev"][:, :, col])
        state["h_cur"][:, :, col], state["c_cur"][:, :, col] = h, c
        if col == state["c_cur"].shape[-1] - 1:  # row done: it becomes the previous row
            state["h_prev"][:, :, p:p + col + 1] = state["h_cur"]
            state["c_prev"].copy_(state["c_cur"])
        return x + row_linear(h, *w["out"])


class RowLSTM(PixelRNN):
    """PixelRNN Row LSTM with residual layers and a cached row-by-row sampler.

    Options:
        channels: width of the residual stream (the paper's 2h).
        hidden_size: LSTM state size per pixel (the paper's h).
        num_layers: Row LSTM layers.
        first_kernel_size: kernel of the mask-A input convolution (odd).
        kernel_size: width k of the input-to-state (masked to k//2+1 columns) and state-to-state kernels (odd).
        output_channels: width of the hidden 1x1 output layer.
    """

    name: ClassVar[str] = "row_lstm"
    supports_cache: ClassVar[bool] = True
    TINY: ClassVar[dict] = {"channels": 8, "hidden_size": 4, "num_layers": 2, "output_channels": 8}

    def __init__(self, event_shape: Sequence[int], head: Head, num_classes: int = 0, channels: int = 32,
                 hidden_size: int = 16, num_layers: int = 4, first_kernel_size: int = 7, kernel_size: int = 3,
                 output_channels: int = 64) -> None:
        layers = [_RowLSTMLayer(channels, hidden_size, kernel_size) for _ in range(num_layers)]
        super().__init__(event_shape, head, num_classes, layers, channels, first_kernel_size, output_channels)

    # ------------------------------------------------------------------ incremental decoding
    def init_cache(self, batch_size: int, cond: Tensor | None = None) -> dict[str, Any]:
        like, (rows, width) = self.out.weight, self.positions
        q = self.input_conv.kernel_size[0] // 2
        if cond is not None:
            cond = cond.to(like.device)
        return {"t": 0, "image": like.new_zeros(batch_size, self.channels, rows + 2 * q, width + 2 * q),
                "layers": [layer.init_state(batch_size, self.bias_sizes[0], width, like) for layer in self.layers],
                "biases": self.class_biases(cond, 0),
                "w": {"in": flat_weight(self.input_conv, self.input_conv.mask),
                      "hidden": flat_weight(self.out_hidden), "out": flat_weight(self.out)}}

    def step(self, x_prev: Tensor | None, cache: dict[str, Any]) -> tuple[Tensor, dict[str, Any]]:
        t, width, w = cache["t"], self.positions[1], cache["w"]
        if t >= self.num_positions:
            raise ValueError(f"{self.name}: all {self.num_positions} pixels are already generated")
        k = self.input_conv.kernel_size[0]
        image = cache["image"]
        if x_prev is not None:
            r, c = divmod(t - 1, width)
            image[:, :, r + k // 2, c + k // 2] = self.encode(x_prev.to(image.device))
        row, col = divmod(t, width)
        h = row_linear(image[:, :, row:row + k, col:col + k].flatten(1), *w["in"])
        biases = cache["biases"]
        if biases[0] is not None:
            h = h + biases[0]
        for layer, state, bias in zip(self.layers, cache["layers"], biases[1:], strict=True):
            h = layer.step(h, col, state, bias)
        cache["t"] = t + 1
        return row_linear(F.relu(row_linear(F.relu(h), *w["hidden"])), *w["out"]), cache
