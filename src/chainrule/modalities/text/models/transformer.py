"""GPT-style Transformer language model with a KV cache.

Pre-norm blocks of :mod:`chainrule.core.nn.attention` (LayerNorm → causal self-attention → residual,
LayerNorm → MLP → residual), learned or rotary positions, tied input/output embeddings, dropout.
Input index ``t`` holds the start vector (``t = 0``) or token ``t - 1``; with the start vector set to the
embedding of GPT-2's ``<|endoftext|>``, the network is exactly GPT-2 (see ``chainrule.convert.gpt2``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from chainrule.core.errors import ConfigError
from chainrule.core.heads.base import Head
from chainrule.core.nn.attention import Block, context_full, gpt_init, kv_buffers, layer_norm, run_blocks, step_blocks
from chainrule.modalities.text.models.sequence import SequenceModel


def prefill_kv(model: SequenceModel, tokens: Tensor, cond: Tensor | None) -> tuple[Tensor, dict[str, Any]]:
    """Prefill for models whose ``body(h, cache)`` stores keys/values (and any state) in ``cache``."""
    cache = model.init_cache(tokens.shape[0], cond)
    logits = model.body(model.prefill_inputs(tokens, cond), cache)
    cache["pos"] = tokens.shape[1] + 1
    return logits[:, -1], cache


class Transformer(SequenceModel):
    """GPT-style decoder-only Transformer (pre-norm, causal attention, KV cache).

    Options:
        embed_dim, num_layers, num_heads, mlp_ratio: sizes (GPT-2 small: 768, 12, 12, 4).
        dropout: on attention weights, residual branches and embeddings.
        positions: ``learned`` (GPT-2) or ``rotary``.
        tie_embeddings: share the token embedding with the output layer.
        bias: biases in linear layers and LayerNorms.
        norm_eps: LayerNorm epsilon.
    """

    name: ClassVar[str] = "transformer"
    supports_cache: ClassVar[bool] = True
    static_decoding: ClassVar[bool] = True  # its cache runs the static decode engines (generation/engine.py)
    TINY: ClassVar[dict] = {"embed_dim": 16, "num_layers": 2, "num_heads": 2}

    def __init__(self, event_shape: Sequence[int], head: Head, num_classes: int = 0, embed_dim: int = 128,
                 num_layers: int = 4, num_heads: int = 4, mlp_ratio: float = 4.0, dropout: float = 0.0,
                 positions: str = "learned", tie_embeddings: bool = True, bias: bool = True,
                 norm_eps: float = 1e-5) -> None:
        super().__init__(event_shape, head, num_classes, embed_dim=embed_dim)
        if positions not in ("learned", "rotary"):
            raise ConfigError(f"positions must be 'learned' or 'rotary', got {positions!r}")
        self.position_embedding = nn.Embedding(self.max_len, embed_dim) if positions == "learned" else None
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList([Block(embed_dim, num_heads, mlp_ratio, dropout, bias, positions == "rotary",
                                           norm_eps) for _ in range(num_layers)])
        self.ln_f = nn.LayerNorm(embed_dim, eps=norm_eps, bias=bias)
        self.lm_head = nn.Linear(embed_dim, self.vocab_size, bias=False)
        gpt_init(self, num_layers)
        if tie_embeddings:
            self.lm_head.weight = self.token_embedding.weight

    def _embed_positions(self, h: Tensor, start: int) -> Tensor:
        if self.position_embedding is not None:
            h = h + self.position_embedding(torch.arange(start, start + h.shape[1], device=h.device))
        return self.drop(h)

    def body(self, h: Tensor, cache: dict[str, Any] | None = None) -> Tensor:
        h = run_blocks(self.blocks, self._embed_positions(h, 0), cache)
        return self.lm_head(self.ln_f(h))

    def prefill(self, tokens: Tensor, cond: Tensor | None = None) -> tuple[Tensor, dict[str, Any]]:
        """Fill the KV cache with the start vector and ``tokens`` (B, L) in one batched pass."""
        return prefill_kv(self, tokens, cond)

    def init_cache(self, batch_size: int, cond: Tensor | None = None) -> dict[str, Any]:
        return {"pos": 0, "batch_size": batch_size, "cond": cond,
                **kv_buffers(self.blocks, batch_size, self.max_len, self.token_embedding.weight)}

    def step(self, x_prev: Tensor | None, cache: dict[str, Any]) -> tuple[Tensor, dict[str, Any]]:
        if context_full(cache, self.max_len):
            raise ValueError(f"{self.name}: context of {self.max_len} positions is full")
        h = self.step_input(x_prev, cache)[:, 0]
        if self.position_embedding is not None:
            h = h + self.position_embedding.weight[cache["pos"]]
        h = step_blocks(self.blocks, h, cache)
        cache["pos"] += 1
        return F.linear(layer_norm(self.ln_f, h), self.lm_head.weight), cache
