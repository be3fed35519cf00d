"""A forecasting run's configuration: the ``data``/``model``/``train``/``output`` sections of every run, merged
by :func:`chainrule.core.runs.config.resolve_config` over the forecasters' own defaults.

- ``data``: ``source`` (a CSV/Parquet file or a registered dataset), ``time``, ``target``, ``id``,
  ``covariates``, ``freq`` (the column options matter for files only);
- ``model``: ``name`` (lstm, deepar, transformer), ``head``, ``horizon``, ``context``, ``lags``, ``calendar``
  and the architecture's options (e.g. ``hidden_size``);
- ``train``: :class:`chainrule.core.training.TrainConfig` options over :data:`TRAIN_DEFAULTS`;
- ``output``: kept with the run (forecasting writes no outputs while training).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from chainrule.core.errors import ConfigError
from chainrule.core.runs.config import resolve_config

#: the forecasters' training defaults, under the user's ``train`` section: no validation split (every window
#: of the series is training data), so no evaluation
TRAIN_DEFAULTS: dict[str, Any] = {"steps": 1000, "batch_size": 64, "lr": 1e-3, "weight_decay": 1e-2,
                                  "warmup_steps": 50, "min_lr_ratio": 0.1, "grad_clip": 10.0, "log_every": 50,
                                  "eval_every": 0}
DATA_KEYS = ("source", "time", "target", "id", "covariates", "freq")
#: model-section keys that configure the forecaster's inputs rather than the architecture
INPUT_KEYS = ("horizon", "context", "lags", "calendar")
DEFAULT_MODEL = "deepar"


def default_forecast_config() -> dict[str, Any]:
    return {"data": {}, "model": {"name": DEFAULT_MODEL}, "train": dict(TRAIN_DEFAULTS), "output": {}}


def forecast_config(config_file: str | Path | None = None, flags: dict[str, Any] | None = None,
                    overrides: Iterable[str] = ()) -> dict[str, Any]:
    """Defaults <- config file <- flags (None = not given) <- ``--set`` overrides, with the data section checked."""
    cfg = resolve_config(default_forecast_config(), config_file, flags, overrides)
    data = cfg["data"]
    unknown = sorted(set(data) - set(DATA_KEYS))
    if unknown:
        raise ConfigError(f"unknown data option{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} "
                          f"for forecasting; valid options: {', '.join(DATA_KEYS)}")
    if not data.get("source"):
        raise ConfigError("no data given (positional DATA, or data.source in the config)")
    data["covariates"] = as_names(data.get("covariates"), "data.covariates")
    if not cfg["model"].get("name"):
        raise ConfigError("no model given (--model or model.name in the config)")
    return cfg


def as_names(value: Any, what: str) -> list[str]:
    """A list of column names from a list or a comma-separated string (None -> [])."""
    if value is None:
        return []
    if isinstance(value, str):
        return [s.strip() for s in value.split(",") if s.strip()]
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ConfigError(f"{what} must be column names (a list or comma-separated); got {value!r}")


def forecaster_options(model_section: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """``(name, NeuralForecaster keyword arguments)`` from a model section; ``num_time_features`` (saved with a
    run, derived from the data) is dropped."""
    opts = dict(model_section)
    name = opts.pop("name")
    opts.pop("num_time_features", None)
    return str(name), opts
