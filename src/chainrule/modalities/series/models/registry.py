"""Forecaster registry: adding an architecture means one new file plus one line here."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

from chainrule.core.errors import ConfigError
from chainrule.modalities.series.models.base import ForecastModel

#: name -> "module:Class" (imported lazily)
FORECAST_MODELS: dict[str, str] = {
    "lstm": "chainrule.modalities.series.models.lstm:LSTMForecaster",
    "deepar": "chainrule.modalities.series.models.deepar:DeepAR",
    "transformer": "chainrule.modalities.series.models.transformer:TransformerForecaster",
}


def forecast_model_class(name: str) -> type[ForecastModel]:
    key = name.replace("-", "_").lower()
    if key not in FORECAST_MODELS:
        raise ConfigError(f"unknown forecasting model {name!r}; available: {', '.join(FORECAST_MODELS)}")
    module, cls = FORECAST_MODELS[key].split(":")
    return getattr(importlib.import_module(module), cls)


def build_forecast_model(name: str, lags: Sequence[int], num_time_features: int, head: str | None = None,
                         **options: Any) -> ForecastModel:
    """Build a registered forecaster; unknown options raise :class:`ConfigError` naming them."""
    cls = forecast_model_class(name)
    try:
        model = cls(head=head, lags=lags, num_time_features=num_time_features, **options)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"forecasting model {cls.name!r} with options {options}: {e}") from None
    model._config = {"head": model.head.name, "lags": list(model.lags), "num_time_features": num_time_features,
                     **options}
    return model
