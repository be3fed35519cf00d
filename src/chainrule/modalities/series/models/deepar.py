"""DeepAR-style probabilistic LSTM (Salinas et al., 2020): a distribution head on the LSTM forecaster."""

from __future__ import annotations

from typing import ClassVar

from chainrule.modalities.series.models.lstm import LSTMForecaster


class DeepAR(LSTMForecaster):
    """Probabilistic LSTM: Student-t by default; ``head`` = gaussian, student_t or negative_binomial.

    Per-series scaling, lag and calendar features come from :mod:`chainrule.modalities.series.features`; forecasts
    are ancestral sample paths. Options as for ``lstm`` (hidden_size, num_layers, dropout).
    """

    name: ClassVar[str] = "deepar"
    default_head: ClassVar[str] = "student_t"
