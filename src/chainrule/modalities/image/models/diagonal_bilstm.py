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

Unskewed, the left-to-right pass is a recurrence in raster order: the state at ``(i, j)`` reads the states at
``(i-1, j)`` and ``(i, j-1)`` (cell from ``(i, j-1)``) and the input at ``(i, j)``; the mirrored pass reads
``(i-1, j)`` and ``(i, j+1)``. So sampling caches per layer the previous row's states of both passes and the
current row's inputs: each new pixel costs one LSTM update of the left-to-right pass per layer, and when a row is
finished every layer runs its mirrored pass right to left along that row once (what the next row reads, shifted
down). The work is O(1) per pixel, amortised (O(width) at the first pixel of a row), instead of re-running the
rows so far, O(image) per pixel; the stepped states equal the skewed full pass's to float rounding.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from chainrule.core.errors import InputError
from chainrule.core.heads.base import Head
from chainrule.core.nn.attention import row_linear
from chainrule.core.nn.conv_cache import cache_bytes_per_sample
from chainrule.modalities.image.models.pixel_rnn import PixelRNN, flat_weight, lstm_update


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

    def step_weights(self) -> dict[str, Any]:
        """Weights for stepping in pixel coordinates: input-to-state ``(in, 4H)`` and the state-to-state kernel's
        two taps ``(H, 4H)``, ``above`` (the row above, same column) and ``beside`` (the previous pixel of the pass)."""
        taps = self.state_to_state.weight.detach()
        return {"is": flat_weight(self.input_to_state), "above": taps[:, :, 0].t().contiguous(),
                "beside": taps[:, :, 1].t().contiguous()}

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
    supports_cache: ClassVar[bool] = True
    TINY: ClassVar[dict] = {"channels": 8, "hidden_size": 4, "num_layers": 1, "output_channels": 8}

    def __init__(self, event_shape: Sequence[int], head: Head, num_classes: int = 0, channels: int = 32,
                 hidden_size: int = 16, num_layers: int = 4, first_kernel_size: int = 7,
                 output_channels: int = 64) -> None:
        layers = [_DiagonalBiLSTMLayer(channels, hidden_size, image_channels=event_shape[0] if i == 0 else 0)
                  for i in range(num_layers)]
        super().__init__(event_shape, head, num_classes, layers, channels, first_kernel_size, output_channels)

    # ------------------------------------------------------------------ incremental decoding
    def cache_bytes_per_sample(self) -> int:
        """The padded image and the row buffers :meth:`init_cache` allocates per sample."""
        return cache_bytes_per_sample(self)

    @torch.no_grad()
    def init_cache(self, batch_size: int, cond: Tensor | None = None) -> dict[str, Any]:
        """The zero-padded image (the mask-A convolution's input), class biases, weights, and per layer: the
        current row's inputs, both passes' states of the row above, and the left-to-right pass's current row."""
        like, (rows, width) = self.out.weight, self.positions
        q = self.input_conv.kernel_size[0] // 2
        if cond is not None:
            cond = cond.to(like.device)

        def layer_state(layer: _DiagonalBiLSTMLayer) -> dict[str, Any]:
            hid = layer.forward_pass.hidden_size
            row = like.new_zeros(batch_size, hid, width)
            image_w = None if layer.image_to_state is None else flat_weight(layer.image_to_state)
            return {"inputs": like.new_zeros(batch_size, self.bias_sizes[0], width), "f_above": row,
                    "f_row": torch.zeros_like(row), "m_above": torch.zeros_like(row),
                    "w": {"f": layer.forward_pass.step_weights(), "m": layer.mirrored_pass.step_weights(),
                          "image": image_w, "out": flat_weight(layer.to_stream)}}

        return {"t": 0, "image": like.new_zeros(batch_size, self.channels, rows + 2 * q, width + 2 * q),
                "layers": [layer_state(layer) for layer in self.layers], "biases": self.class_biases(cond, 0),
                "w": {"in": flat_weight(self.input_conv, self.input_conv.mask), "hidden": flat_weight(self.out_hidden),
                      "out": flat_weight(self.out)}}

    def _finish_row(self, i: int, cache: dict[str, Any]) -> None:
        """Row ``i`` is complete: run every layer's mirrored pass right to left along it (the next row reads it),
        and make the left-to-right pass's row the row above."""
        q, width = self.input_conv.kernel_size[0] // 2, self.positions[1]
        pixels = cache["image"][:, :, i + q, q:q + width]
        for state, bias in zip(cache["layers"], cache["biases"][1:], strict=True):
            w = state["w"]["m"]
            gates = torch.einsum("bcw,cg->bgw", state["inputs"], w["is"][0]) + w["is"][1][:, None]
            if bias is not None:
                gates = gates + bias[:, :, None]
            if state["w"]["image"] is not None:
                gates = gates + torch.einsum("bcw,cg->bgw", pixels, state["w"]["image"][0])
            gates = gates + torch.einsum("bhw,hg->bgw", state["m_above"], w["above"])
            h = c = gates.new_zeros(gates.shape[0], w["beside"].shape[0])
            mirrored = torch.empty_like(state["m_above"])
            for j in range(width - 1, -1, -1):  # the recurrence runs right to left along the row
                h, c = lstm_update(gates[:, :, j] + h @ w["beside"], c)
                mirrored[:, :, j] = h
            state["m_above"], state["f_above"] = mirrored, state["f_row"]
            state["f_row"] = torch.zeros_like(mirrored)

    @torch.no_grad()
    def step(self, x_prev: Tensor | None, cache: dict[str, Any]) -> tuple[Tensor, dict[str, Any]]:
        """The next pixel through every layer: one left-to-right LSTM update each, plus the mirrored pass of the
        row above; the mirrored pass of a row runs once, when its last pixel arrives."""
        t, width, w = cache["t"], self.positions[1], cache["w"]
        k = self.input_conv.kernel_size[0]
        image = cache["image"]
        if x_prev is not None:
            r, c = divmod(t - 1, width)
            image[:, :, r + k // 2, c + k // 2] = self.encode(x_prev.to(image.device))
            if c == width - 1:
                self._finish_row(r, cache)
        if t >= self.num_positions:
            raise InputError(f"{self.name}: every one of the {self.num_positions} positions is already generated")
        row, col = divmod(t, width)
        h = row_linear(image[:, :, row:row + k, col:col + k].flatten(1), *w["in"])
        biases = cache["biases"]
        if biases[0] is not None:
            h = h + biases[0]
        for state, bias in zip(cache["layers"], biases[1:], strict=True):
            f = state["w"]["f"]
            state["inputs"][:, :, col] = h
            if col == 0:
                state["h"] = state["c"] = h.new_zeros(h.shape[0], f["beside"].shape[0])
            gates = row_linear(h, *f["is"]) + state["f_above"][:, :, col] @ f["above"] + state["h"] @ f["beside"]
            if bias is not None:
                gates = gates + bias
            state["h"], state["c"] = lstm_update(gates, state["c"])
            state["f_row"][:, :, col] = state["h"]
            h = h + row_linear(state["h"] + state["m_above"][:, :, col], *state["w"]["out"])
        cache["t"] = t + 1
        return row_linear(F.relu(row_linear(F.relu(h), *w["hidden"])), *w["out"]), cache
