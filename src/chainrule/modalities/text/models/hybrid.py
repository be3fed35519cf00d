"""Hybrid language model: recurrent layers for local structure under attention layers for long range."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch.nn.functional as F
from torch import Tensor, nn

from chainrule.core.heads.base import Head
from chainrule.core.nn.attention import Block, context_full, kv_buffers, layer_norm, run_blocks, step_blocks
from chainrule.core.nn.recurrent import recurrent_step
from chainrule.modalities.text.models.sequence import SequenceModel
from chainrule.modalities.text.models.transformer import prefill_kv


class HybridLM(SequenceModel):
    """An LSTM reads the tokens; rotary-position Transformer blocks attend over its outputs.

    Options:
        embed_dim: width of the embedding, the LSTM and the attention blocks.
        rnn_layers: LSTM layers at the bottom.
        num_layers, num_heads, mlp_ratio: attention blocks on top.
        dropout: inside the blocks and between LSTM layers.
    """

    name: ClassVar[str] = "hybrid"
    supports_cache: ClassVar[bool] = True
    TINY: ClassVar[dict] = {"embed_dim": 16, "rnn_layers": 1, "num_layers": 1, "num_heads": 2}

    def __init__(self, event_shape: Sequence[int], head: Head, num_classes: int = 0, embed_dim: int = 128,
                 rnn_layers: int = 1, num_layers: int = 2, num_heads: int = 4, mlp_ratio: float = 4.0,
                 dropout: float = 0.0) -> None:
        super().__init__(event_shape, head, num_classes, embed_dim=embed_dim)
        self.rnn = nn.LSTM(embed_dim, embed_dim, num_layers=rnn_layers, batch_first=True,
                           dropout=dropout if rnn_layers > 1 else 0.0)
        self.blocks = nn.ModuleList([Block(embed_dim, num_heads, mlp_ratio, dropout, True, True, 1e-5)
                                     for _ in range(num_layers)])
        self.ln_f = nn.LayerNorm(embed_dim)
        self.lm_head = nn.Linear(embed_dim, self.vocab_size, bias=False)
        self.lm_head.weight = self.token_embedding.weight

    def body(self, h: Tensor, cache: dict[str, Any] | None = None) -> Tensor:
        h, state = self.rnn(h)
        if cache is not None:
            cache["state"] = state
        return self.lm_head(self.ln_f(run_blocks(self.blocks, h, cache)))

    def prefill(self, tokens: Tensor, cond: Tensor | None = None) -> tuple[Tensor, dict[str, Any]]:
        """Fill the LSTM state and KV cache with the start vector and ``tokens`` (B, L) in one pass."""
        return prefill_kv(self, tokens, cond)

    def init_cache(self, batch_size: int, cond: Tensor | None = None) -> dict[str, Any]:
        return {"pos": 0, "batch_size": batch_size, "cond": cond, "state": None,
                **kv_buffers(self.blocks, batch_size, self.max_len, self.token_embedding.weight)}

    def step(self, x_prev: Tensor | None, cache: dict[str, Any]) -> tuple[Tensor, dict[str, Any]]:
        if context_full(cache, self.max_len):
            raise ValueError(f"{self.name}: context of {self.max_len} positions is full")
        h, cache["state"] = recurrent_step(self.rnn, self.step_input(x_prev, cache), cache["state"])
        h = step_blocks(self.blocks, h, cache)
        cache["pos"] += 1
        return F.linear(layer_norm(self.ln_f, h[:, 0]), self.lm_head.weight), cache
