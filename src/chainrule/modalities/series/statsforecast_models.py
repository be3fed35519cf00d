"""statsforecast's AutoETS, AutoARIMA and Theta as optional comparators (``pip install 'chainrule[baselines]'``).

Each context series is fitted on its own (a local model). statsforecast needs complete series, so interior
missing values are linearly interpolated, trailing ones carry the last value and leading ones are dropped.
Sample paths: the per-step standard deviation is derived from the model's 90% prediction interval as
``sigma = (hi - lo) / (2 * z_0.95)`` and Gaussian draws are taken around the mean forecast (exact for the
Gaussian intervals these models report; an approximation otherwise). A model that fails on a series falls back
to the naive forecast (statsforecast's ``fallback_model``). AutoARIMA selects its model with the CSS
approximation (``approximation=True``; R's ``auto.arima`` does the same for long or high-frequency series), about
three times faster than exact likelihood on M3 monthly series. ``n_jobs`` (default: the ``CHAINRULE_SF_JOBS``
environment variable, else 1) spreads series over processes.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
from scipy.stats import norm

from chainrule.core.errors import ConfigError
from chainrule.modalities.series.forecaster import GaussianForecaster
from chainrule.modalities.series.table import SeriesSet

_LEVEL = 90
_KINDS = {"autoets": "AutoETS", "autoarima": "AutoARIMA", "theta": "Theta"}


def _complete(x: np.ndarray) -> np.ndarray:
    s = pd.Series(np.asarray(x, dtype=np.float64))
    s = s.loc[s.first_valid_index():] if s.notna().any() else s
    return s.interpolate(limit_direction="forward").to_numpy()


class StatsForecastModel(GaussianForecaster):
    """A statsforecast model (``autoets``, ``autoarima`` or ``theta``) behind the Forecaster protocol."""

    def __init__(self, kind: str, season: int | None = None, n_jobs: int | None = None):
        if kind not in _KINDS:
            raise ConfigError(f"unknown statsforecast model {kind!r}; available: {', '.join(_KINDS)}")
        try:
            import statsforecast  # noqa: F401
        except ImportError:
            raise ConfigError(f"{kind} needs statsforecast: pip install 'chainrule[baselines]'") from None
        self.name = kind
        self.kind = kind
        self._season = season
        self._n_jobs = int(n_jobs if n_jobs is not None else os.environ.get("CHAINRULE_SF_JOBS", 1))

    def forecast(self, context: SeriesSet, horizon: int) -> tuple[np.ndarray, np.ndarray]:
        """Mean forecasts and per-step standard deviations, each ``(N, horizon)``."""
        from statsforecast import StatsForecast
        from statsforecast import models as sfm

        season = max(1, int(self._season if self._season is not None else context.season))
        model = {"autoets": lambda: sfm.AutoETS(season_length=season),
                 "autoarima": lambda: sfm.AutoARIMA(season_length=season, approximation=True),
                 "theta": lambda: sfm.Theta(season_length=season)}[self.kind]()
        series = [_complete(x) for x in context.values]
        frame = pd.DataFrame({
            "unique_id": np.repeat(np.arange(len(series)), [len(s) for s in series]),
            "ds": np.concatenate([np.arange(len(s)) for s in series]),
            "y": np.concatenate(series),
        })
        sf = StatsForecast(models=[model], freq=1, n_jobs=self._n_jobs, fallback_model=sfm.Naive())
        out = sf.forecast(h=horizon, df=frame, level=[_LEVEL])
        out = out.sort_values(["unique_id", "ds"], kind="stable")
        col = _KINDS[self.kind]
        mu = out[col].to_numpy(dtype=np.float64).reshape(len(series), horizon)
        lo = out[f"{col}-lo-{_LEVEL}"].to_numpy(dtype=np.float64).reshape(len(series), horizon)
        hi = out[f"{col}-hi-{_LEVEL}"].to_numpy(dtype=np.float64).reshape(len(series), horizon)
        sigma = np.maximum(hi - lo, 0.0) / (2.0 * norm.ppf(0.5 + _LEVEL / 200.0))
        return mu, sigma
