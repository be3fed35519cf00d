"""Base class for token-sequence models (language models): the image contract specialised to 1-D.

Data ``x`` is a long tensor ``(B, 1, T)`` of token ids (one channel, ``T <= max_len`` positions) with a
Categorical head over the vocabulary, so ``params`` is ``(B, V, T)``. :meth:`encode` embeds the tokens,
``(B, T, D)``; :meth:`network` shifts that right by one behind a learned start-of-sequence vector and
runs the causal body, so params at ``t`` see tokens ``< t`` only. The gradient test differentiates the
params with respect to the embeddings. ``step`` takes the previous token ``(B, 1)`` (``None`` first).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import Tensor, nn

from chainrule.core.contract import AutoregressiveModel
from chainrule.core.errors import ConfigError, InputError
from chainrule.core.heads.base import Head
from chainrule.core.heads.categorical import Categorical


class SequenceModel(AutoregressiveModel):
    """Token embedding + start vector + causal body; subclasses implement :meth:`body`.

    Args (beyond the contract's): ``embed_dim`` — width of the token embedding.
    """

    modality: ClassVar[str] = "text"

    def __init__(self, event_shape: Sequence[int], head: Head, num_classes: int = 0, embed_dim: int = 128) -> None:
        super().__init__(event_shape, head, num_classes)
        if len(self.event_shape) != 2 or self.event_shape[0] != 1:
            raise ConfigError(f"{self.name} models token sequences: event shape (1, max_len), got {self.event_shape}")
        if not isinstance(head, Categorical):
            raise ConfigError(f"{self.name} needs a categorical head over the vocabulary")
        self.vocab_size = head.levels
        self.max_len = self.event_shape[1]
        self.embed_dim = embed_dim
        self.token_embedding = nn.Embedding(self.vocab_size, embed_dim)
        self.start = nn.Parameter(torch.zeros(embed_dim))
        self.class_embedding = nn.Embedding(num_classes, embed_dim) if num_classes > 0 else None

    def check_shape(self, x: Tensor) -> None:
        """Any length up to the context, not only ``max_len`` (token ids and labels are checked by the contract)."""
        if x.ndim != 3 or x.shape[1] != 1 or not 1 <= x.shape[2] <= self.max_len:
            raise InputError(f"{self.name}: expected tokens of shape (B, 1, T) with T <= {self.max_len}, "
                             f"got {tuple(x.shape)}")

    def encode(self, x: Tensor) -> Tensor:
        """Token ids ``(B, 1, T)`` -> embeddings ``(B, T, D)``."""
        return self.token_embedding(x[:, 0])

    def shifted(self, emb: Tensor, cond: Tensor | None) -> Tensor:
        """Inputs for the causal body: the start vector (plus class embedding) then tokens ``0..T-2``."""
        start = self.start.expand(emb.shape[0], 1, -1)
        if cond is not None and self.class_embedding is not None:
            start = start + self.class_embedding(cond).unsqueeze(1)
        return torch.cat([start, emb[:, :-1]], dim=1)

    def network(self, inputs: Tensor, cond: Tensor | None = None) -> Tensor:
        """Embeddings ``(B, T, D)`` -> params ``(B, V, T)``."""
        return self.body(self.shifted(inputs, cond)).transpose(1, 2)

    def body(self, h: Tensor) -> Tensor:
        """Causal map ``(B, T, D)`` -> logits ``(B, T, V)``: output ``t`` sees inputs ``<= t``."""
        raise NotImplementedError

    def start_input(self, batch_size: int, cond: Tensor | None) -> Tensor:
        """The body's input at position 0, ``(B, 1, D)``, for incremental decoding."""
        return self.shifted(self.start.new_zeros(batch_size, 1, self.embed_dim), cond)[:, :1]

    def step_input(self, x_prev: Tensor | None, cache: dict) -> Tensor:
        """The body's input for the next position: the start vector first, then the previous token."""
        if x_prev is None:
            return self.start_input(cache["batch_size"], cache.get("cond"))
        return self.token_embedding(x_prev[:, 0]).unsqueeze(1)

    def prefill_inputs(self, tokens: Tensor, cond: Tensor | None) -> Tensor:
        """Body inputs for the start vector followed by every token of ``tokens`` (B, L): ``(B, L + 1, D)``."""
        start = self.start_input(tokens.shape[0], cond)
        return torch.cat([start, self.token_embedding(tokens)], dim=1)

