"""ImageGPT: a GPT-style Transformer over the pixels of an image in raster order.

One position per pixel: the input at position ``t`` is the encoded pixel ``t-1`` (all ``C`` channels, projected
to the model width) or, at ``t = 0``, a learned start vector (plus a class embedding for a class-conditional
model); learned position embeddings are added and the causal blocks of :mod:`chainrule.core.nn.attention` give
the head parameters of pixel ``t``, all channels predicted jointly by the head. Sampling keeps the keys and values
of earlier pixels in a cache, so each new pixel costs one position's work.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from chainrule.core.contract import AutoregressiveModel
from chainrule.core.heads.base import Head
from chainrule.core.nn.attention import Block, gpt_init, kv_buffers, layer_norm, run_blocks, step_blocks


class ImageGPT(AutoregressiveModel):
    """Decoder-only Transformer over flattened pixels (pre-norm blocks, learned positions, KV cache).

    Options:
        embed_dim, num_layers, num_heads, mlp_ratio: sizes.
        dropout: on attention weights, residual branches and embeddings.
        norm_eps: LayerNorm epsilon.
    """

    name: ClassVar[str] = "image_gpt"
    supports_cache: ClassVar[bool] = True
    TINY: ClassVar[dict] = {"embed_dim": 16, "num_layers": 2, "num_heads": 2}

    def __init__(self, event_shape: Sequence[int], head: Head, num_classes: int = 0, embed_dim: int = 128,
                 num_layers: int = 4, num_heads: int = 4, mlp_ratio: float = 4.0, dropout: float = 0.0,
                 norm_eps: float = 1e-5) -> None:
        super().__init__(event_shape, head, num_classes)
        self.pixel_embedding = nn.Linear(self.channels, embed_dim)
        self.start = nn.Parameter(torch.zeros(embed_dim))
        self.class_embedding = nn.Embedding(num_classes, embed_dim) if num_classes > 0 else None
        self.position_embedding = nn.Embedding(self.num_positions, embed_dim)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList([Block(embed_dim, num_heads, mlp_ratio, dropout, True, False, norm_eps)
                                     for _ in range(num_layers)])
        self.ln_f = nn.LayerNorm(embed_dim, eps=norm_eps)
        self.out = nn.Linear(embed_dim, self.num_params_out)
        gpt_init(self, num_layers)

    def _start(self, batch: int, cond: Tensor | None) -> Tensor:
        """The input at position 0, ``(B, 1, D)``: the start vector plus the class embedding when given (an
        unconditional use of a conditional model adds nothing)."""
        start = self.start.expand(batch, 1, -1)
        if cond is not None and self.class_embedding is not None:
            start = start + self.class_embedding(cond.to(start.device).long()).unsqueeze(1)
        return start

    def _inputs(self, pixels: Tensor, cond: Tensor | None) -> Tensor:
        """Encoded pixels ``(B, L, C)`` -> block inputs ``(B, L + 1, D)``: the start vector, then the pixels,
        each with its position embedding."""
        h = torch.cat([self._start(pixels.shape[0], cond), self.pixel_embedding(pixels)], dim=1)
        return self.drop(h + self.position_embedding.weight[: h.shape[1]])

    def _params(self, h: Tensor) -> Tensor:
        return self.out(self.ln_f(h))

    def network(self, inputs: Tensor, cond: Tensor | None = None) -> Tensor:
        b = inputs.shape[0]
        pixels = inputs.flatten(2).transpose(1, 2)  # (B, N, C) in raster order
        h = run_blocks(self.blocks, self._inputs(pixels[:, :-1], cond), None)
        return self._params(h).transpose(1, 2).reshape(b, -1, *self.positions)

    # ------------------------------------------------------------------ incremental decoding
    def init_cache(self, batch_size: int, cond: Tensor | None = None) -> dict[str, Any]:
        return {"pos": 0, "batch_size": batch_size, "cond": cond,
                **kv_buffers(self.blocks, batch_size, self.num_positions, self.start)}

    def prefill(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, dict[str, Any]]:
        """Fill the KV cache with the start vector and the first ``L`` pixels ``x`` ``(B, C, L)`` in one batched
        pass; return the parameters of pixel ``L`` and the cache."""
        x = x[:, None] if x.dim() == 2 else x
        if x.shape[-1] >= self.num_positions:
            raise ValueError(f"{self.name}: prefill takes fewer than {self.num_positions} pixels, got {x.shape[-1]}")
        cache = self.init_cache(x.shape[0], cond)
        h = run_blocks(self.blocks, self._inputs(self.encode(x).transpose(1, 2), cond), cache)
        cache["pos"] = x.shape[-1] + 1
        return self._params(h[:, -1]), cache

    def step(self, x_prev: Tensor | None, cache: dict[str, Any]) -> tuple[Tensor, dict[str, Any]]:
        pos = cache["pos"]
        if pos >= self.num_positions:
            raise ValueError(f"{self.name}: all {self.num_positions} pixels are already generated")
        if x_prev is None:
            h = self._start(cache["batch_size"], cache["cond"])[:, 0]
        else:
            h = self.pixel_embedding(self.encode(x_prev.to(self.start.device)))
        h = step_blocks(self.blocks, h + self.position_embedding.weight[pos], cache)
        cache["pos"] = pos + 1
        return self.out(layer_norm(self.ln_f, h)), cache
