"""WaveNet (van den Oord et al. 2016) with Fast WaveNet generation (Paine et al. 2016).

Causal dilated convolutions (kernel 2) in repeated stacks of dilations 1, 2, 4, ..., gated ``tanh * sigmoid``
units, residual and skip connections, global conditioning (a class / speaker label, ``Condition.labels``) and
local conditioning (frames ``(B, frames, local_channels)`` in ``Condition.time_features``, upsampled by
repetition to ``local_hop`` samples per frame). The input at position t is the sample at t-1, so the
parameters at t see samples t-receptive_field .. t-1 only.

Generation keeps, per layer, a queue of that layer's last ``dilation`` inputs (the cache of :meth:`step`): a new
sample costs one kernel-2 product per layer, O(layers), instead of re-running the receptive field. Positions
are flattened in raster order, so the model also runs on any ``(C, *S)`` event (the generic property tests).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from chainrule.core.contract import AutoregressiveModel, Condition
from chainrule.core.errors import InputError
from chainrule.core.heads.base import Head


class WaveNet(AutoregressiveModel):
    """WaveNet: gated dilated causal convolutions; Fast WaveNet queues for O(layers) per-sample generation."""

    name = "wavenet"
    modality = "audio"
    supports_cache = True
    static_decoding: ClassVar[bool] = True  # its queued step runs the static engines (audio/engine.py)
    TINY: ClassVar[dict[str, Any]] = {"channels": 6, "skip_channels": 6, "stacks": 2, "layers_per_stack": 2}

    @classmethod
    def build(cls, event_shape: Any, levels: int, num_classes: int = 0, head: str | None = None,
              head_options: dict[str, Any] | None = None, **options: Any) -> AutoregressiveModel:
        """16-bit audio (more than 256 levels) defaults to the discretized logistic mixture head."""
        if head in (None, "auto") and levels > 256:
            head = "logistic_mixture"
        return super().build(event_shape, levels, num_classes, head, head_options, **options)

    def __init__(self, event_shape: Any, head: Head, num_classes: int = 0, channels: int = 32,
                 skip_channels: int = 64, stacks: int = 2, layers_per_stack: int = 8, local_channels: int = 0,
                 local_hop: int = 0) -> None:
        super().__init__(event_shape, head, num_classes)
        if min(channels, skip_channels, stacks, layers_per_stack) < 1:
            raise ValueError("channels, skip_channels, stacks and layers_per_stack must be at least 1")
        if local_channels and local_hop < 1:
            raise ValueError("local conditioning needs local_hop >= 1 (samples per frame)")
        self.dilations = [2 ** i for _ in range(stacks) for i in range(layers_per_stack)]
        self.res, self.skip = channels, skip_channels
        self.local_channels, self.local_hop = local_channels, local_hop
        c_in, n = self.channels, len(self.dilations)
        self.front = nn.Conv1d(c_in, channels, 2)
        self.dilated = nn.ModuleList(nn.Conv1d(channels, 2 * channels, 2, dilation=d) for d in self.dilations)
        self.mix = nn.ModuleList(nn.Conv1d(channels, channels + skip_channels, 1) for _ in self.dilations)
        self.out1 = nn.Conv1d(skip_channels, skip_channels, 1)
        self.out2 = nn.Conv1d(skip_channels, self.num_params_out, 1)
        self.label_gates = nn.Embedding(num_classes, n * 2 * channels) if num_classes else None
        self.local_gates = nn.Conv1d(local_channels, n * 2 * channels, 1) if local_channels else None

    @property
    def receptive_field(self) -> int:
        """Past samples a prediction can see: x_{t-1}, x_{t-2} through the front, plus every dilation."""
        return 2 + sum(self.dilations)

    # ------------------------------------------------------------------ conditioning
    def condition_gates(self, cond: Any, batch: int, length: int) -> Tensor | None:
        """Per-layer additive gate inputs ``(B, layers, 2R, length or 1)`` from the label and the local frames."""
        labels = cond.labels if isinstance(cond, Condition) else cond
        frames = cond.time_features if isinstance(cond, Condition) else None
        n, r2 = len(self.dilations), 2 * self.res
        gates = None
        if labels is not None and self.label_gates is not None:
            gates = self.label_gates(labels.long()).view(batch, n, r2, 1)
        if self.local_gates is not None:
            if frames is None:
                raise InputError(f"{self.name}: this model is locally conditioned; give frames "
                                 f"(B, frames, {self.local_channels}) as Condition.time_features")
            if frames.dim() != 3 or frames.shape[0] != batch or frames.shape[2] != self.local_channels:
                raise InputError(f"{self.name}: local frames must be ({batch}, frames, {self.local_channels}); "
                                 f"got {tuple(frames.shape)}")
            if frames.shape[1] * self.local_hop < length:
                raise InputError(f"{self.name}: {frames.shape[1]} frames x {self.local_hop} samples cover fewer "
                                 f"than the {length} samples asked for")
            up = frames.transpose(1, 2).float().repeat_interleave(self.local_hop, dim=2)[:, :, :length]
            local = self.local_gates(up).view(batch, n, r2, length)
            gates = local if gates is None else gates + local
        return gates

    # ------------------------------------------------------------------ teacher forcing
    def network(self, inputs: Tensor, cond: Any = None) -> Tensor:
        b, c, *shape = inputs.shape
        x = inputs.reshape(b, c, -1)
        length = x.shape[-1]
        gates = self.condition_gates(cond, b, length)
        shifted = F.pad(x, (1, 0))[:, :, :length]  # position t sees sample t-1
        h = self.front(F.pad(shifted, (1, 0)))
        skips = torch.zeros(b, self.skip, length, device=x.device, dtype=h.dtype)
        for i, (conv, mix) in enumerate(zip(self.dilated, self.mix, strict=True)):
            z = conv(F.pad(h, (self.dilations[i], 0)))
            if gates is not None:
                z = z + gates[:, i]
            h, skips = self._residual(z, mix, h, skips)
        return self._output(skips).reshape(b, -1, *shape)

    def _residual(self, z: Tensor, mix: nn.Conv1d, h: Tensor, skips: Tensor) -> tuple[Tensor, Tensor]:
        a, g = z.chunk(2, dim=1)
        res, skip = mix(torch.tanh(a) * torch.sigmoid(g)).split([self.res, self.skip], dim=1)
        return h + res, skips + skip

    def _output(self, skips: Tensor) -> Tensor:
        return self.out2(F.relu(self.out1(F.relu(skips))))

    # ------------------------------------------------------------------ Fast WaveNet queues
    def init_cache(self, batch_size: int, cond: Any = None, length: int | None = None) -> dict[str, Any]:
        """Empty queues (zeros = the teacher-forced pass's left padding) and the conditioning gate inputs for
        ``length`` samples (default: the event's positions)."""
        dev = self.device
        length = self.num_positions if length is None else length
        return {
            "t": 0,
            "prev": torch.zeros(batch_size, self.channels, device=dev),  # input at t-1 (front's queue)
            "queues": [torch.zeros(batch_size, self.res, d, device=dev) for d in self.dilations],
            "gates": self.condition_gates(cond, batch_size, length),
        }

    def cache_bytes_per_sample(self) -> int:
        """The queues (``res`` floats per dilation step of every layer) and the front's previous input."""
        return 4 * (self.res * sum(self.dilations) + self.channels)

    def step(self, x_prev: Tensor | None, cache: dict[str, Any]) -> tuple[Tensor, dict[str, Any]]:
        t = cache["t"]
        cur = torch.zeros_like(cache["prev"]) if x_prev is None else self.encode(x_prev.reshape(cache["prev"].shape))
        h = _tap(self.front, cache["prev"], cur)
        cache["prev"] = cur
        skips = torch.zeros(h.shape[0], self.skip, device=h.device, dtype=h.dtype)
        gates = cache["gates"]
        for i, (conv, mix) in enumerate(zip(self.dilated, self.mix, strict=True)):
            queue, slot = cache["queues"][i], t % self.dilations[i]
            z = _tap(conv, queue[:, :, slot], h)  # queue[slot] holds this layer's input from t - dilation
            queue[:, :, slot] = h
            if gates is not None:
                z = z + gates[:, i, :, min(t, gates.shape[-1] - 1)]
            h3, s3 = self._residual(z[:, :, None], mix, h[:, :, None], skips[:, :, None])
            h, skips = h3[:, :, 0], s3[:, :, 0]
        cache["t"] = t + 1
        return self._output(skips[:, :, None])[:, :, 0], cache


def _tap(conv: nn.Conv1d, older: Tensor, newer: Tensor) -> Tensor:
    """One output of a kernel-2 convolution from its two input columns ``(B, C_in)`` -> ``(B, C_out)``."""
    return F.linear(older, conv.weight[:, :, 0], conv.bias) + F.linear(newer, conv.weight[:, :, 1])
