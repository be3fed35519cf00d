"""Causal self-attention and pre-norm Transformer blocks, written once for every modality.

A :class:`Block` stack runs three ways that share the projection, rotary, head-split and attend-and-project
code and differ only in how the key/value cache is written and read:

- full pass (:func:`run_blocks`): every position at once under a causal mask, training and prefill; optionally
  stores the keys/values into cache buffers;
- cached decode (:func:`step_blocks`): one new position against the buffers of :func:`kv_buffers`, with the
  linear layers pre-transposed by :func:`decode_weights` (the fast path of token-by-token generation);
- static-shape step (:func:`static_step_blocks`): one position against full-size buffers, written with a
  one-hot mask and read under a visibility mask, so the traced graph has no data-dependent shapes (export).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from chainrule.core.errors import ConfigError

#: rotary (cos, sin) tables of some positions, each (T, head_dim / 2); None without rotary positions
Rope = tuple[Tensor, Tensor] | None


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


def row_linear(x: Tensor, weight_t: Tensor, bias: Tensor | None) -> Tensor:
    """``x (N, in) @ weight_t (in, out) + bias`` for :func:`decode_weights`' layout."""
    return torch.addmm(bias, x, weight_t) if bias is not None else x @ weight_t


def layer_norm(ln: nn.LayerNorm, h: Tensor) -> Tensor:
    """``ln(h)`` without the module call (the incremental step runs hundreds of these per token)."""
    return F.layer_norm(h, ln.normalized_shape, ln.weight, ln.bias, ln.eps)


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention with optional rotary positions; entry points as in the module doc."""

    def __init__(self, dim: int, num_heads: int, dropout: float, bias: bool, rotary: bool) -> None:
        super().__init__()
        if dim % num_heads:
            raise ConfigError(f"embed_dim ({dim}) must be divisible by num_heads ({num_heads})")
        self.num_heads, self.head_dim, self.rotary = num_heads, dim // num_heads, rotary
        self.qkv = nn.Linear(dim, 3 * dim, bias=bias)
        self.proj = nn.Linear(dim, dim, bias=bias)
        self.dropout = dropout
        self.resid_drop = nn.Dropout(dropout)

    def rope(self, positions: Tensor) -> Rope:
        """Rotary tables of ``positions`` (T,), or None when this layer has no rotary positions."""
        return rotary_tables(positions, self.head_dim) if self.rotary else None

    def heads(self, qkv: Tensor, rope: Rope) -> tuple[Tensor, Tensor, Tensor]:
        """q, k, v ``(B, H, T, Dh)`` of the projected rows ``qkv`` (B, T, 3D) or, for one position, (B, 3D),
        rotated by their positions' ``rope``."""
        q, k, v = qkv.view(qkv.shape[0], -1, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        if rope is not None:
            q, k = apply_rotary(q, *rope), apply_rotary(k, *rope)
        return q, k, v

    @staticmethod
    def attend(q: Tensor, k: Tensor, v: Tensor, project: Callable[[Tensor], Tensor], mask: Tensor | None = None,
               dropout: float = 0.0, causal: bool = False, one_position: bool = False) -> Tensor:
        """Attention of ``q`` over ``k``, ``v`` (boolean ``mask``: which keys each query sees), heads merged into
        rows ``(B*T, D)`` and ``project``-ed; rows out, so the one-position step needs no reshape.
        ``one_position`` (T = 1) skips the transpose, a measurable share of a decode step."""
        y = F.scaled_dot_product_attention(q, k, v, mask, dropout, causal)
        b, _, t, _ = y.shape
        return project(y.reshape(b, -1) if one_position else y.transpose(1, 2).reshape(b * t, -1))

    def forward(self, h: Tensor, kv: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """Causal attention over ``h`` (B, T, D); with ``kv`` buffers, also store this pass's keys/values."""
        t = h.shape[1]
        q, k, v = self.heads(self.qkv(h), self.rope(torch.arange(t, device=h.device)))
        if kv is not None:
            kv[0][:, :, :t], kv[1][:, :, :t] = k, v
        y = self.attend(q, k, v, self.proj, None, self.dropout if self.training else 0.0, causal=True)
        return self.resid_drop(y.view(h.shape))

    def step(self, h: Tensor, cache: dict[str, Any], layer: int) -> Tensor:
        """One new position ``h`` (B, D) attending to the cached keys/values of earlier positions.
        Inference path: :func:`decode_weights` and rotary tables from the cache, no dropout. A tensor
        ``cache["pos"]`` gives each row its own position (rows of different lengths decoded together)."""
        pos, w = cache["pos"], cache["w"][layer]
        if isinstance(pos, Tensor):
            return self._ragged_step(h, cache, layer)
        rope = (cache["rope"][0][pos:pos + 1], cache["rope"][1][pos:pos + 1]) if self.rotary else None
        q, k, v = self.heads(row_linear(h, *w["qkv"]), rope)
        ks, vs = cache["k"][layer], cache["v"][layer]
        ks[:, :, pos:pos + 1], vs[:, :, pos:pos + 1] = k, v
        return self.attend(q, ks[:, :, :pos + 1], vs[:, :, :pos + 1], lambda y: row_linear(y, *w["proj"]),
                           one_position=True)

    def _ragged_step(self, h: Tensor, cache: dict[str, Any], layer: int) -> Tensor:
        """:meth:`step` with per-row positions ``cache["pos"]`` (B,): each row writes its key/value at its own
        slot and attends to its own earlier slots under a mask; ``cache["span"]`` (an int, more than every
        position) bounds the slots read."""
        pos, w, span = cache["pos"], cache["w"][layer], int(cache["span"])
        rows = torch.arange(h.shape[0], device=h.device)
        rope = (cache["rope"][0][pos].view(h.shape[0], 1, 1, -1),
                cache["rope"][1][pos].view(h.shape[0], 1, 1, -1)) if self.rotary else None
        q, k, v = self.heads(row_linear(h, *w["qkv"]), rope)
        ks, vs = cache["k"][layer], cache["v"][layer]
        ks[rows, :, pos], vs[rows, :, pos] = k[:, :, 0], v[:, :, 0]
        visible = (torch.arange(span, device=h.device) <= pos[:, None]).view(h.shape[0], 1, 1, span)
        return self.attend(q, ks[:, :, :span], vs[:, :, :span], lambda y: row_linear(y, *w["proj"]), visible,
                           one_position=True)

    def static_step(self, h: Tensor, slot: StaticSlot, keys: Tensor, values: Tensor) -> tuple[Tensor, ...]:
        """One position ``h`` (B, 1, D) against full-size buffers ``(B, H, M, Dh)``: the output and the buffers
        with this position's keys/values written at ``slot`` (no dropout)."""
        q, k, v = self.heads(self.qkv(h), slot.rope)
        keys, values = torch.where(slot.write, k, keys), torch.where(slot.write, v, values)
        return self.attend(q, keys, values, self.proj, slot.visible, one_position=True).view(h.shape), keys, values


class StaticSlot:
    """Where a static-shape step at ``position`` (a 0-d tensor) writes in a buffer of ``max_len`` slots (a
    one-hot ``write`` mask), which slots it sees (``visible``: the causal mask) and its rotary tables."""

    def __init__(self, position: Tensor, max_len: int, attn: CausalSelfAttention) -> None:
        slots = torch.arange(max_len, device=position.device)
        self.write = (slots == position).view(1, 1, max_len, 1)
        self.visible = (slots <= position).view(1, 1, 1, max_len)
        self.rope = attn.rope(position.reshape(1))


class Block(nn.Module):
    """Pre-norm Transformer block: LayerNorm -> causal self-attention -> residual, LayerNorm -> MLP -> residual."""

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

    def static_step(self, h: Tensor, slot: StaticSlot, keys: Tensor, values: Tensor) -> tuple[Tensor, ...]:
        """One position ``h`` (B, 1, D) through the block; see :meth:`CausalSelfAttention.static_step`."""
        y, keys, values = self.attn.static_step(self.ln1(h), slot, keys, values)
        h = h + y
        return h + self.mlp(self.ln2(h)), keys, values


def decode_weights(block: Block) -> dict[str, tuple[Tensor, Tensor | None]]:
    """The block's linear layers as ``(weight transposed to (in, out), contiguous; bias)``, detached.

    A one-row product against the ``(in, out)`` layout is about twice as fast on CPU as ``F.linear`` against
    PyTorch's ``(out, in)`` layout, and incremental decoding is made of one-row products. Built once per
    cache, so it always reflects the current weights.
    """
    layers = {"qkv": block.attn.qkv, "proj": block.attn.proj, "fc": block.mlp[0], "out": block.mlp[2]}
    return {k: (m.weight.detach().t().contiguous(), None if m.bias is None else m.bias.detach())
            for k, m in layers.items()}


def kv_buffers(blocks: nn.ModuleList, batch_size: int, max_len: int, like: Tensor) -> dict[str, Any]:
    """State for :func:`step_blocks`: preallocated key/value buffers ``(B, heads, max_len, head_dim)``, one
    pair per block; the rotary cos/sin tables for every position when the blocks use rotary positions; and
    each block's :func:`decode_weights`. The caller keeps the next position in ``state["pos"]``."""
    shape = [(batch_size, b.attn.num_heads, max_len, b.attn.head_dim) for b in blocks]
    out: dict[str, Any] = {"k": [like.new_zeros(s) for s in shape], "v": [like.new_zeros(s) for s in shape],
                           "w": [decode_weights(b) for b in blocks]}
    if len(blocks) and blocks[0].attn.rotary:
        out["rope"] = rotary_tables(torch.arange(max_len, device=like.device), blocks[0].attn.head_dim)
    return out


def context_full(cache: dict[str, Any], max_len: int) -> bool:
    """Whether the next step would write past ``max_len`` slots (per-row positions carry their ``span``)."""
    pos = cache["pos"]
    return int(cache["span"]) > max_len if isinstance(pos, Tensor) else pos >= max_len


def run_blocks(blocks: nn.ModuleList, h: Tensor, cache: dict[str, Any] | None) -> Tensor:
    """Full causal pass of ``blocks`` over ``h`` (B, T, D); with a :func:`kv_buffers` ``cache``, each block
    also stores its keys/values for positions ``0..T-1``."""
    for i, block in enumerate(blocks):
        h = block(h, None if cache is None else (cache["k"][i], cache["v"][i]))
    return h


def step_blocks(blocks: nn.ModuleList, h: Tensor, cache: dict[str, Any]) -> Tensor:
    """Cached decode of one new position ``h`` (B, D) or (B, 1, D) at ``cache["pos"]`` through ``blocks``."""
    for i, block in enumerate(blocks):
        h = block.step(h, cache, i)
    return h


def static_step_blocks(blocks: nn.ModuleList, h: Tensor, position: Tensor, keys: Tensor, values: Tensor
                       ) -> tuple[Tensor, Tensor, Tensor]:
    """Static-shape step of one position ``h`` (B, 1, D) at ``position`` (0-d tensor) through ``blocks``
    against full-size buffers ``(layers, B, heads, M, head_dim)``; return ``h`` and the updated buffers."""
    slot = StaticSlot(position, keys.shape[3], blocks[0].attn)
    new_keys, new_values = [], []
    for i, block in enumerate(blocks):
        h, k, v = block.static_step(h, slot, keys[i], values[i])
        new_keys.append(k)
        new_values.append(v)
    return h, torch.stack(new_keys), torch.stack(new_values)


def _normal_init(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.normal_(m.weight, 0.0, 0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.Embedding):
        nn.init.normal_(m.weight, 0.0, 0.02)


def gpt_init(model: nn.Module, num_layers: int) -> None:
    """GPT-2's initialisation for a stack of these blocks: N(0, 0.02) for linear and embedding weights, zero
    biases, and the residual projections scaled down by sqrt(2 * num_layers) so the residual stream's variance
    does not grow with depth."""
    model.apply(_normal_init)  # children before parents, as ``nn.Module.apply`` visits them
    for name, p in model.named_parameters():
        if name.endswith("proj.weight") or name.endswith("mlp.2.weight"):
            nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * num_layers))
