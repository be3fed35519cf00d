"""PixelLSTM: the char-RNN of the lecture run over pixels in raster order.

The input at position ``t`` is the encoded pixel ``t-1`` (zeros and a start flag at ``t = 0``), optionally
with one-hot coordinates of the pixel being predicted and a class embedding; an LSTM followed by a linear
layer gives the ``P`` head parameters of pixel ``t``. Training runs ``nn.LSTM`` over the whole sequence at
once; sampling carries the LSTM state in a cache, one step per pixel.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from chainrule.core.contract import AutoregressiveModel
from chainrule.core.heads.base import Head


class PixelLSTM(AutoregressiveModel):
    """LSTM over the flattened positions.

    Options:
        hidden_size: LSTM state size.
        num_layers: stacked LSTM layers.
        locations: append one-hot row and column (one-hot index per spatial axis) of the predicted pixel.
        embed_dim: size of the class embedding concatenated to every input (class-conditional models).
        dropout: dropout between LSTM layers (needs ``num_layers > 1``).
    """

    name: ClassVar[str] = "pixel_lstm"
    supports_cache: ClassVar[bool] = True
    TINY: ClassVar[dict] = {"hidden_size": 8, "num_layers": 1, "embed_dim": 4}

    def __init__(
        self,
        event_shape: Sequence[int],
        head: Head,
        num_classes: int = 0,
        hidden_size: int = 128,
        num_layers: int = 2,
        locations: bool = True,
        embed_dim: int = 16,
        dropout: float = 0.0,
    ) -> None:
        super().__init__(event_shape, head, num_classes)
        n = self.num_positions
        coords = torch.stack(torch.meshgrid(*[torch.arange(s) for s in self.positions], indexing="ij"))
        coords = coords.reshape(len(self.positions), n)
        # per-position extra features: start flag, then one-hot coordinates of the predicted pixel
        feats = [torch.zeros(n, 1)]
        feats[0][0] = 1.0
        if locations:
            feats += [F.one_hot(c, s).float() for c, s in zip(coords, self.positions, strict=True)]
        self.register_buffer("position_features", torch.cat(feats, dim=1), persistent=False)
        self.embed = nn.Embedding(num_classes, embed_dim) if num_classes > 0 else None
        in_size = self.channels + self.position_features.shape[1] + (embed_dim if num_classes > 0 else 0)
        self.lstm = nn.LSTM(in_size, hidden_size, num_layers=num_layers, batch_first=True,
                            dropout=dropout if num_layers > 1 else 0.0)
        self.out = nn.Linear(hidden_size, self.num_params_out)

    def _extra(self, batch: int, cond: Tensor | None, feats: Tensor) -> list[Tensor]:
        """Position features ``feats`` (L, F) and class embedding, broadcast to (batch, L, .)."""
        length = feats.shape[0]
        extra = [feats.unsqueeze(0).expand(batch, length, -1)]
        if self.embed is not None:
            if cond is None:  # unconditional use of a conditional model: a zero embedding
                emb = feats.new_zeros(batch, self.embed.embedding_dim)
            else:
                emb = self.embed(cond.to(feats.device).long())
            extra.append(emb.unsqueeze(1).expand(batch, length, -1))
        return extra

    def network(self, inputs: Tensor, cond: Tensor | None = None) -> Tensor:
        b = inputs.shape[0]
        seq = inputs.flatten(2).transpose(1, 2)  # (B, N, C)
        prev = torch.cat([seq.new_zeros(b, 1, self.channels), seq[:, :-1]], dim=1)
        feats = self.position_features.to(seq.dtype)
        h, _ = self.lstm(torch.cat([prev, *self._extra(b, cond, feats)], dim=2))
        return self.out(h).transpose(1, 2).reshape(b, -1, *self.positions)

    # ------------------------------------------------------------------ incremental decoding
    def init_cache(self, batch_size: int, cond: Tensor | None = None) -> dict[str, Any]:
        return {"state": None, "t": 0, "cond": cond, "batch": batch_size}

    def step(self, x_prev: Tensor | None, cache: dict[str, Any]) -> tuple[Tensor, dict[str, Any]]:
        t, b = cache["t"], cache["batch"]
        feats = self.position_features[t : t + 1]
        if x_prev is None:
            prev = feats.new_zeros(b, 1, self.channels)
        else:
            prev = self.encode(x_prev.to(feats.device)).unsqueeze(1)
            feats = feats.to(prev.dtype)
        h, state = self.lstm(torch.cat([prev, *self._extra(b, cache["cond"], feats)], dim=2), cache["state"])
        return self.out(h[:, 0]), {**cache, "state": state, "t": t + 1}
