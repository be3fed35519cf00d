"""LSTM forecaster: point forecasts trained with squared error, rolled out autoregressively."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from torch import Tensor, nn

from chainrule.core.contract import Condition
from chainrule.core.heads.continuous import ContinuousHead
from chainrule.modalities.series.models.base import ForecastModel


class LSTMForecaster(ForecastModel):
    """Stacked LSTM over the step inputs, a linear layer to the head's parameters (default: point forecast).

    Options:
        hidden_size, num_layers: LSTM sizes.
        dropout: between LSTM layers (training only).
    """

    name: ClassVar[str] = "lstm"
    supports_cache: ClassVar[bool] = True
    default_head: ClassVar[str] = "squared_error"
    TINY: ClassVar[dict[str, Any]] = {"hidden_size": 8, "num_layers": 1}

    def __init__(self, head: ContinuousHead | str | None = None, lags: Sequence[int] = (1,), num_time_features: int = 0,
                 hidden_size: int = 40, num_layers: int = 2, dropout: float = 0.1) -> None:
        super().__init__(head, lags, num_time_features)
        self.rnn = nn.LSTM(self.num_inputs, hidden_size, num_layers=num_layers, batch_first=True,
                           dropout=dropout if num_layers > 1 else 0.0)
        self.out = nn.Linear(hidden_size, self.num_params_out)

    def network(self, inputs: Tensor, cond: Condition | None = None) -> Tensor:
        out, _ = self.rnn(inputs)
        return self.out(out)

    def network_prefill(self, inputs: Tensor, capacity: int) -> Any:
        _, state = self.rnn(inputs)
        return state

    def repeat_state(self, state: Any, n: int) -> Any:
        return tuple(h.repeat_interleave(n, 1) for h in state)  # (layers, B, hidden)

    def network_step(self, inputs: Tensor, state: Any, pos: int) -> tuple[Tensor, Any]:
        out, state = self.rnn(inputs[:, None], state)
        return self.out(out[:, 0]), state
