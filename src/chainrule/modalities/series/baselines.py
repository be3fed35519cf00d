"""Benchmark forecasters: naive, seasonal naive and drift, with Gaussian prediction distributions.

Each is a local method: ``fit`` does nothing and ``predict`` looks only at each context series. The per-step
standard deviation follows the benchmark-method formulas of Hyndman & Athanasopoulos, *Forecasting: Principles
and Practice* (3rd ed.), section 5.5, with ``sigma`` the root mean square of the in-sample one-step residuals
(missing values skipped):

* naive: ``sigma_h = sigma * sqrt(h)``
* seasonal naive (period ``m``): ``sigma_h = sigma * sqrt(floor((h - 1) / m) + 1)``
* drift: ``sigma_h = sigma * sqrt(h (1 + h / T))``

Sample paths are independent Gaussian draws per step around the point forecast. Missing values: the naive
forecast starts from the last observed value (its step count includes the trailing gap), seasonal naive uses
the latest observed value of the same season, drift joins the first and last observed values.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from chainrule.core.errors import ConfigError
from chainrule.modalities.series.forecaster import Forecaster, GaussianForecaster
from chainrule.modalities.series.table import SeriesSet


def _rms(e: np.ndarray) -> float:
    e = e[~np.isnan(e)]
    return float(np.sqrt(np.mean(e * e))) if len(e) else 0.0


def _observed(x: np.ndarray) -> np.ndarray:
    obs = np.flatnonzero(~np.isnan(x))
    if len(obs) == 0:
        raise ValueError("a context series has no observed values")
    return obs


def naive(x: np.ndarray, horizon: int, season: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Last observed value (``season`` is ignored); ``sigma * sqrt(h + gap)`` with ``gap`` trailing missing steps."""
    last = _observed(x)[-1]
    steps = np.arange(1, horizon + 1) + (len(x) - 1 - last)
    return np.full(horizon, x[last]), _rms(np.diff(x)) * np.sqrt(steps)


def seasonal_naive(x: np.ndarray, horizon: int, season: int) -> tuple[np.ndarray, np.ndarray]:
    """Value of the same season in the last observed cycle; naive when the context is shorter than a season."""
    if season <= 1 or len(x) < season:
        return naive(x, horizon)
    t = len(x)
    filled = x.copy()
    for phase in range(season):  # forward-fill each season position from earlier cycles (loop over m phases)
        col = filled[phase::season]
        idx = np.maximum.accumulate(np.where(np.isnan(col), -1, np.arange(len(col))))
        filled[phase::season] = np.where(idx >= 0, col[np.maximum(idx, 0)], np.nan)
    h = np.arange(1, horizon + 1)
    point = filled[t - season + (h - 1) % season]
    fallback, _ = naive(x, horizon)
    point = np.where(np.isnan(point), fallback, point)
    sigma = _rms(x[season:] - x[:-season]) * np.sqrt((h - 1) // season + 1)
    return point, sigma


def drift(x: np.ndarray, horizon: int, season: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Line through the first and last observed values, extended (``season`` is ignored);
    ``sigma * sqrt(h (1 + h / T))``."""
    obs = _observed(x)
    first, last = obs[0], obs[-1]
    slope = (x[last] - x[first]) / (last - first) if last > first else 0.0
    steps = np.arange(1, horizon + 1) + (len(x) - 1 - last)
    n = last - first + 1
    sigma = _rms(np.diff(x) - slope) * np.sqrt(steps * (1.0 + steps / n))
    return x[last] + slope * steps, sigma


class GaussianBaseline(GaussianForecaster):
    """A local benchmark method with Gaussian per-step forecast distributions."""

    def __init__(self, name: str, method: Callable[..., tuple[np.ndarray, np.ndarray]], season: int | None = None):
        self.name = name
        self._method = method
        self._season = season

    def forecast(self, context: SeriesSet, horizon: int) -> tuple[np.ndarray, np.ndarray]:
        """Means and standard deviations, each ``(N, horizon)``."""
        season = self._season if self._season is not None else context.season
        out = []
        for i, x in enumerate(context.values):
            try:
                out.append(self._method(np.asarray(x, dtype=np.float64), horizon, season))
            except ValueError as e:
                raise ValueError(f"{context.name}: series {context.ids[i]!r}: {e}") from None
        mu = np.stack([m for m, _ in out])
        sigma = np.stack([s for _, s in out])
        return mu, sigma


def _statsforecast(kind: str) -> Callable[..., Forecaster]:
    def make(season: int | None = None) -> Forecaster:
        from chainrule.modalities.series.statsforecast_models import StatsForecastModel

        return StatsForecastModel(kind, season=season)

    return make


#: name -> constructor(season=None); the statsforecast models need the ``baselines`` extra
BASELINES: dict[str, Callable[..., Forecaster]] = {
    "naive": lambda season=None: GaussianBaseline("naive", naive),
    "snaive": lambda season=None: GaussianBaseline("snaive", seasonal_naive, season),
    "drift": lambda season=None: GaussianBaseline("drift", drift),
    "theta": _statsforecast("theta"),
    "autoets": _statsforecast("autoets"),
    "autoarima": _statsforecast("autoarima"),
}
_ALIASES = {"seasonal-naive": "snaive", "seasonal_naive": "snaive", "ets": "autoets", "arima": "autoarima"}


def make_baseline(name: str, season: int | None = None) -> Forecaster:
    """A baseline by name (``season`` overrides the series set's seasonal period); ConfigError when unknown."""
    key = _ALIASES.get(name.lower(), name.lower())
    if key not in BASELINES:
        raise ConfigError(f"unknown baseline {name!r}; available: {', '.join(BASELINES)}")
    return BASELINES[key](season=season)
