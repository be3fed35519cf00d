"""Causal Transformer forecaster: pre-norm blocks with rotary positions, causal SDPA and a KV cache."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from torch import Tensor, nn

from chainrule.core.contract import Condition
from chainrule.core.heads.continuous import ContinuousHead
from chainrule.core.nn.attention import Block, kv_buffers, run_blocks, step_blocks
from chainrule.modalities.series.models.base import ForecastModel


class TransformerForecaster(ForecastModel):
    """Linear embedding of the step inputs -> causal self-attention blocks -> the head's parameters.

    Attention is ``scaled_dot_product_attention(is_causal=True)``; positions are rotary (relative), so a
    forecast may run past the training window. ``step`` attends to cached keys/values.

    Options:
        embed_dim, num_layers, num_heads, mlp_ratio: sizes.
        dropout: on attention weights and residual branches (training only).
    """

    name: ClassVar[str] = "transformer"
    supports_cache: ClassVar[bool] = True
    default_head: ClassVar[str] = "student_t"
    TINY: ClassVar[dict[str, Any]] = {"embed_dim": 16, "num_layers": 1, "num_heads": 2}

    def __init__(self, head: ContinuousHead | str | None = None, lags: Sequence[int] = (1,), num_time_features: int = 0,
                 embed_dim: int = 32, num_layers: int = 2, num_heads: int = 4, mlp_ratio: float = 2.0,
                 dropout: float = 0.1) -> None:
        super().__init__(head, lags, num_time_features)
        self.embed = nn.Linear(self.num_inputs, embed_dim)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList([Block(embed_dim, num_heads, mlp_ratio, dropout, bias=True, rotary=True,
                                           eps=1e-5) for _ in range(num_layers)])
        self.ln_f = nn.LayerNorm(embed_dim)
        self.out = nn.Linear(embed_dim, self.num_params_out)

    def network(self, inputs: Tensor, cond: Condition | None = None) -> Tensor:
        h = run_blocks(self.blocks, self.drop(self.embed(inputs)), None)
        return self.out(self.ln_f(h))

    def network_prefill(self, inputs: Tensor, capacity: int) -> dict[str, Any]:
        cache = {"pos": 0, **kv_buffers(self.blocks, inputs.shape[0], capacity, inputs)}
        run_blocks(self.blocks, self.drop(self.embed(inputs)), cache)
        cache["pos"] = inputs.shape[1]
        return cache

    def repeat_state(self, state: dict[str, Any], n: int) -> dict[str, Any]:
        """Copy the key/value buffers per path; anything else in the state (position, rotary tables) is shared."""
        return {**state, "k": [t.repeat_interleave(n, 0) for t in state["k"]],
                "v": [t.repeat_interleave(n, 0) for t in state["v"]]}

    def network_step(self, inputs: Tensor, state: dict[str, Any], pos: int) -> tuple[Tensor, dict[str, Any]]:
        state["pos"] = pos
        h = self.drop(self.embed(inputs))[:, None]
        h = step_blocks(self.blocks, h, state)
        return self.out(self.ln_f(h))[:, 0], state
