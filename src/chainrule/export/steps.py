"""Pure-tensor incremental steps of the text models, for export with static shapes.

Every wrapper maps ``(token (B,), position (), *past_cache) -> (logits (B, V), *present_cache)`` with the
model's own submodules and weights. ``position`` is the index of the body input being fed: 0 feeds the
start vector (``token`` is then ignored), ``t > 0`` feeds ``token`` = the token at ``t - 1``. The
Transformer's KV cache is a fixed buffer ``(layers, B, heads, max_context, head_dim)`` written at
``position`` with a one-hot mask and read under a causal mask, so the graph has no data-dependent shapes.
Recurrent state is ``(layers, B, hidden)`` (plus the LSTM cell state).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from chainrule.core.nn.attention import static_step_blocks
from chainrule.modalities.text.models.sequence import SequenceModel

#: a cache tensor: (input name, output name, shape with "batch" for the batch axis)
CacheSpec = tuple[str, str, list[Any]]


def step_embedding(model: SequenceModel, token: Tensor, position: Tensor) -> Tensor:
    """The body input ``(B, 1, D)``: the start vector at position 0, the token's embedding after."""
    emb = model.token_embedding(token)
    return torch.where(position == 0, model.start.expand_as(emb), emb).unsqueeze(1)


def kv_specs(blocks: nn.ModuleList, max_context: int) -> list[CacheSpec]:
    attn = blocks[0].attn
    shape = [len(blocks), "batch", attn.num_heads, max_context, attn.head_dim]
    return [("past_keys", "present_keys", shape), ("past_values", "present_values", list(shape))]


def rnn_specs(rnn: nn.RNNBase, prefix: str = "") -> list[CacheSpec]:
    shape = [rnn.num_layers, "batch", rnn.hidden_size]
    specs = [(f"past_{prefix}h", f"present_{prefix}h", shape)]
    if isinstance(rnn, nn.LSTM):
        specs.append((f"past_{prefix}c", f"present_{prefix}c", list(shape)))
    return specs


def rnn_step(rnn: nn.RNNBase, x: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, tuple[Tensor, ...]]:
    """One step of a batch-first ``rnn`` on ``x`` (B, 1, D); ``state`` is ``(h,)`` or ``(h, c)`` for an LSTM."""
    out, new = rnn(x, state if isinstance(rnn, nn.LSTM) else state[0])
    return out, (tuple(new) if isinstance(rnn, nn.LSTM) else (new,))


class TransformerStep(nn.Module):
    """The Transformer's step with a fixed-size KV cache of ``max_context`` positions."""

    def __init__(self, model: SequenceModel, max_context: int) -> None:
        super().__init__()
        self.model, self.max_context = model, max_context
        self.cache_specs = kv_specs(model.blocks, max_context)

    def forward(self, token: Tensor, position: Tensor, keys: Tensor, values: Tensor) -> tuple[Tensor, ...]:
        m = self.model
        h = step_embedding(m, token, position)
        if m.position_embedding is not None:
            h = h + m.position_embedding(position.reshape(1))
        h, keys, values = static_step_blocks(m.blocks, h, position, keys, values)
        return m.lm_head(m.ln_f(h))[:, 0], keys, values


class RecurrentStep(nn.Module):
    """The recurrent language model's step: the hidden (and cell) state is the cache."""

    def __init__(self, model: SequenceModel, max_context: int) -> None:
        super().__init__()
        self.model, self.max_context = model, max_context
        self.cache_specs = rnn_specs(model.rnn)

    def forward(self, token: Tensor, position: Tensor, h: Tensor, c: Tensor | None = None) -> tuple[Tensor, ...]:
        m = self.model
        state = (h,) if c is None else (h, c)
        out, state = rnn_step(m.rnn, step_embedding(m, token, position), state)
        return (m.out(out)[:, 0], *state)


class HybridStep(nn.Module):
    """The hybrid model's step: LSTM state, then attention blocks over a fixed-size KV cache."""

    def __init__(self, model: SequenceModel, max_context: int) -> None:
        super().__init__()
        self.model, self.max_context = model, max_context
        self.cache_specs = rnn_specs(model.rnn) + kv_specs(model.blocks, max_context)

    def forward(self, token: Tensor, position: Tensor, h0: Tensor, c0: Tensor, keys: Tensor, values: Tensor
                ) -> tuple[Tensor, ...]:
        m = self.model
        out, (h1, c1) = rnn_step(m.rnn, step_embedding(m, token, position), (h0, c0))
        out, keys, values = static_step_blocks(m.blocks, out, position, keys, values)
        return m.lm_head(m.ln_f(out))[:, 0], h1, c1, keys, values


#: registry name -> step wrapper
STEPS: dict[str, type[nn.Module]] = {"transformer": TransformerStep, "rnn_lm": RecurrentStep, "hybrid": HybridStep}


def zero_cache(specs: list[CacheSpec], batch_size: int, like: Tensor) -> list[Tensor]:
    """Zero cache tensors for a batch (the state before the first step)."""
    return [like.new_zeros([batch_size if s == "batch" else s for s in shape]) for _, _, shape in specs]
