"""GPT-style Transformer language model with a KV cache.

Pre-norm blocks (LayerNorm → causal self-attention → residual, LayerNorm → MLP → residual), attention by
``scaled_dot_product_attention``, learned or rotary positions, tied input/output embeddings, dropout.
Input index ``t`` holds the start vector (``t = 0``) or token ``t - 1``; with the start vector set to the
embedding of GPT-2's ``<|endoftext|>``, the network is exactly GPT-2 (see ``chainrule.convert.gpt2``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from chainrule.core.errors import ConfigError
from chainrule.core.heads.base import Head
from chainrule.modalities.text.models.sequence import SequenceModel


def rotary_tables(positions: Tensor, head_dim: int, base: float = 10000.0) -> tuple[Tensor, Tensor]:
    """cos/sin tables ``(T, head_dim/2)`` for rotary position embeddings."""
    inv = 1.0 / base ** (torch.arange(0, head_dim, 2, device=positions.device, dtype=torch.float32) / head_dim)
    ang = positions.float()[:, None] * inv[None, :]
    return ang.cos(), ang.sin()


def apply_rotary(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate pairs of features of ``x`` (B, H, T, Dh) by position-dependent angles."""
    x1, x2 = x[..., 0::2], x[..., 1::2]
    out = torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)
    return out.flatten(-2).type_as(x)


def prefill_kv(model: SequenceModel, tokens: Tensor, cond: Tensor | None) -> tuple[Tensor, dict[str, Any]]:
    """Prefill for models whose ``body(h, cache)`` stores keys/values (and any state) in ``cache``."""
    cache = model.init_cache(tokens.shape[0], cond)
    logits = model.body(model.prefill_inputs(tokens, cond), cache)
    cache["pos"] = tokens.shape[1] + 1
    return logits[:, -1], cache


def run_blocks(blocks: nn.ModuleList, h: Tensor, cache: dict[str, Any] | None) -> Tensor:
    """Apply attention ``blocks`` to ``h``; with a ``cache``, each block also stores its keys/values."""
    for i, block in enumerate(blocks):
        h = block(h, None if cache is None else (cache["k"][i], cache["v"][i]))
    return h


def kv_buffers(blocks: nn.ModuleList, batch_size: int, max_len: int, like: Tensor) -> dict[str, Any]:
    """State for incremental steps through ``blocks``: preallocated key/value buffers ``(B, heads, max_len,
    head_dim)``, one pair per block; the rotary cos/sin tables for every position when the blocks use rotary
    positions; and each block's :func:`decode_weights`."""
    shape = [(batch_size, b.attn.num_heads, max_len, b.attn.head_dim) for b in blocks]
    out: dict[str, Any] = {"k": [like.new_zeros(s) for s in shape], "v": [like.new_zeros(s) for s in shape],
                           "w": [decode_weights(b) for b in blocks]}
    if len(blocks) and blocks[0].attn.rotary:
        out["rope"] = rotary_tables(torch.arange(max_len, device=like.device), blocks[0].attn.head_dim)
    return out


def decode_weights(block: Block) -> dict[str, tuple[Tensor, Tensor | None]]:
    """The block's linear layers as ``(weight transposed to (in, out), contiguous; bias)``, detached.

    A one-row product against the ``(in, out)`` layout is about twice as fast on CPU as ``F.linear`` against
    PyTorch's ``(out, in)`` layout, and incremental decoding is made of one-row products. Built once per
    cache, so it always reflects the current weights.
    """
    layers = {"qkv": block.attn.qkv, "proj": block.attn.proj, "fc": block.mlp[0], "out": block.mlp[2]}
    return {k: (m.weight.detach().t().contiguous(), None if m.bias is None else m.bias.detach())
            for k, m in layers.items()}


def row_linear(x: Tensor, weight_t: Tensor, bias: Tensor | None) -> Tensor:
    """``x (N, in) @ weight_t (in, out) + bias`` for :func:`decode_weights`' layout."""
    return torch.addmm(bias, x, weight_t) if bias is not None else x @ weight_t


def layer_norm(ln: nn.LayerNorm, h: Tensor) -> Tensor:
    """``ln(h)`` without the module call (the incremental step runs hundreds of these per token)."""
    return F.layer_norm(h, ln.normalized_shape, ln.weight, ln.bias, ln.eps)


class CausalSelfAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int, dropout: float, bias: bool, rotary: bool) -> None:
        super().__init__()
        if dim % num_heads:
            raise ConfigError(f"embed_dim ({dim}) must be divisible by num_heads ({num_heads})")
        self.num_heads, self.head_dim, self.rotary = num_heads, dim // num_heads, rotary
        self.qkv = nn.Linear(dim, 3 * dim, bias=bias)
        self.proj = nn.Linear(dim, dim, bias=bias)
        self.dropout = dropout
        self.resid_drop = nn.Dropout(dropout)

    def _heads(self, h: Tensor, positions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        b, t, d = h.shape
        q, k, v = self.qkv(h).view(b, t, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        if self.rotary:
            cos, sin = rotary_tables(positions, self.head_dim)
            q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        return q, k, v

    def _merge(self, y: Tensor) -> Tensor:
        b, _, t, _ = y.shape
        return self.resid_drop(self.proj(y.transpose(1, 2).reshape(b, t, -1)))

    def forward(self, h: Tensor, kv: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """Causal attention over ``h`` (B, T, D); with ``kv`` buffers, also store this pass's keys/values."""
        q, k, v = self._heads(h, torch.arange(h.shape[1], device=h.device))
        if kv is not None:
            kv[0][:, :, :h.shape[1]], kv[1][:, :, :h.shape[1]] = k, v
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self._merge(y)

    def step(self, h: Tensor, cache: dict[str, Any], layer: int) -> Tensor:
        """One new position ``h`` (B, D) attending to the cached keys/values of earlier positions.
        Inference path: :func:`decode_weights` from the cache, rotary tables from the cache, no dropout."""
        pos, b, w = cache["pos"], h.shape[0], cache["w"][layer]
        q, k, v = row_linear(h, *w["qkv"]).view(b, 1, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        if self.rotary:
            cos, sin = cache["rope"][0][pos:pos + 1], cache["rope"][1][pos:pos + 1]
            q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        ks, vs = cache["k"][layer], cache["v"][layer]
        ks[:, :, pos:pos + 1], vs[:, :, pos:pos + 1] = k, v
        y = F.scaled_dot_product_attention(q, ks[:, :, :pos + 1], vs[:, :, :pos + 1])
        return row_linear(y.reshape(b, -1), *w["proj"])


class Block(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, dropout: float, bias: bool, rotary: bool,
                 eps: float) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(dim, eps=eps, bias=bias)
        self.attn = CausalSelfAttention(dim, num_heads, dropout, bias, rotary)
        self.ln2 = nn.LayerNorm(dim, eps=eps, bias=bias)
        hidden = int(mlp_ratio * dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden, bias=bias), nn.GELU(approximate="tanh"),
                                 nn.Linear(hidden, dim, bias=bias), nn.Dropout(dropout))

    def forward(self, h: Tensor, kv: tuple[Tensor, Tensor] | None = None) -> Tensor:
        h = h + self.attn(self.ln1(h), kv)
        return h + self.mlp(self.ln2(h))

    def step(self, h: Tensor, cache: dict[str, Any], layer: int) -> Tensor:
        """One new position ``h`` (B, D) or (B, 1, D) through the block (inference path, no dropout)."""
        shape, w = h.shape, cache["w"][layer]
        h = h.reshape(shape[0], -1)
        h = h + self.attn.step(layer_norm(self.ln1, h), cache, layer)
        hidden = F.gelu(row_linear(layer_norm(self.ln2, h), *w["fc"]), approximate="tanh")
        return (h + row_linear(hidden, *w["out"])).view(shape)


class Transformer(SequenceModel):
    """GPT-style decoder-only Transformer (pre-norm, causal SDPA, KV cache).

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
        self.apply(self._init)
        for name, p in self.named_parameters():
            if name.endswith("proj.weight") or name.endswith("mlp.2.weight"):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * num_layers))
        if tie_embeddings:
            self.lm_head.weight = self.token_embedding.weight

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, 0.0, 0.02)

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
        if cache["pos"] >= self.max_len:
            raise ValueError(f"{self.name}: context of {self.max_len} positions is full")
        h = self.step_input(x_prev, cache)[:, 0]
        if self.position_embedding is not None:
            h = h + self.position_embedding.weight[cache["pos"]]
        for i, block in enumerate(self.blocks):
            h = block.step(h, cache, i)
        cache["pos"] += 1
        return F.linear(layer_norm(self.ln_f, h), self.lm_head.weight), cache
