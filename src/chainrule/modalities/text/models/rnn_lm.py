"""Recurrent language model (char-rnn): RNN, GRU or LSTM over tokens, state carried across steps."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from torch import Tensor, nn

from chainrule.core.errors import ConfigError
from chainrule.core.heads.base import Head
from chainrule.core.nn.recurrent import recurrent_step
from chainrule.modalities.text.models.sequence import SequenceModel

CELLS = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}


class RNNLM(SequenceModel):
    """Embedding → stacked RNN/GRU/LSTM → linear to the vocabulary; one recurrent step per token.

    Options:
        cell: ``rnn`` (tanh), ``gru`` or ``lstm``.
        embed_dim, hidden_size, num_layers: sizes.
        dropout: between recurrent layers and before the output layer.
    """

    name: ClassVar[str] = "rnn_lm"
    supports_cache: ClassVar[bool] = True
    TINY: ClassVar[dict] = {"embed_dim": 8, "hidden_size": 12, "num_layers": 1}

    def __init__(self, event_shape: Sequence[int], head: Head, num_classes: int = 0, cell: str = "lstm",
                 embed_dim: int = 128, hidden_size: int = 256, num_layers: int = 2, dropout: float = 0.0) -> None:
        super().__init__(event_shape, head, num_classes, embed_dim=embed_dim)
        if cell not in CELLS:
            raise ConfigError(f"cell must be one of {', '.join(CELLS)}, got {cell!r}")
        self.rnn = CELLS[cell](embed_dim, hidden_size, num_layers=num_layers, batch_first=True,
                               dropout=dropout if num_layers > 1 else 0.0)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(hidden_size, self.vocab_size)

    def body(self, h: Tensor) -> Tensor:
        out, _ = self.rnn(h)
        return self.out(self.drop(out))

    def init_cache(self, batch_size: int, cond: Tensor | None = None) -> dict[str, Any]:
        return {"batch_size": batch_size, "cond": cond, "state": None}

    def step(self, x_prev: Tensor | None, cache: dict[str, Any]) -> tuple[Tensor, dict[str, Any]]:
        out, cache["state"] = recurrent_step(self.rnn, self.step_input(x_prev, cache), cache["state"])
        return self.out(out)[:, 0], cache

    def prefill(self, tokens: Tensor, cond: Tensor | None = None) -> tuple[Tensor, dict[str, Any]]:
        """Run the recurrence over the start vector and ``tokens`` (B, L) in one call."""
        cache = self.init_cache(tokens.shape[0], cond)
        out, cache["state"] = self.rnn(self.prefill_inputs(tokens, cond))
        return self.out(out[:, -1]), cache

