"""Forecasting on pandas data frames the way Nixtla's StatsForecast / NeuralForecast users expect.

A long frame (``unique_id``, ``ds``, ``y`` and any other column as an exogenous variable; the three names are
configurable) goes in; frames with StatsForecast's column names come out: ``<model>``, ``<model>-lo-<level>``,
``<model>-hi-<level>`` (``predict``, ``cross_validation``), ``<model>-q-<percent>`` (``predict_quantiles``, as
Nixtla's TimeGPT names quantiles) and ``sample_id`` (``sample_paths``, as ``StatsForecast.simulate``).

It is a thin layer: the frame becomes a :class:`SeriesSet` (:func:`~chainrule.modalities.series.table.from_frame`,
with its checks), the model is a :class:`NeuralForecaster` trained by the one Trainer, and cross-validation is the
rolling-origin :func:`~chainrule.modalities.series.backtest.backtest`. Every number comes from sample paths: the
point forecast is their median (what backtests score) and intervals and quantiles are their empirical quantiles.

>>> fc = ChainruleForecast("deepar", h=12, freq="MS", steps=300).fit(df)
>>> fc.predict(12, level=[80, 95])            # unique_id, ds, deepar, deepar-lo-80, ..., deepar-hi-95
>>> fc.cross_validation(df, h=12, n_windows=3, step_size=12)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from chainrule.core.errors import ConfigError, DataError
from chainrule.core.limits import check_count
from chainrule.modalities.series.backtest import backtest, rolling_origins
from chainrule.modalities.series.neural import NeuralForecaster
from chainrule.modalities.series.table import SeriesSet, from_frame

#: the name a data frame goes by in error messages
FRAME_NAME = "DataFrame"


class ChainruleForecast:
    """A neural forecaster fitted on a long-format pandas frame.

    Args:
        model: registry name (``deepar``, ``lstm``, ``transformer``).
        h: training horizon (forecasts may be longer).
        freq: pandas frequency of ``ds`` (default: inferred from the data).
        alias: the model's column name in the output (default: the forecaster's name, e.g. ``deepar``).
        num_samples: sample paths behind every forecast; ``seed``: their seed.
        id_col, time_col, target_col: column names (Nixtla's defaults ``unique_id``, ``ds``, ``y``); every other
            column is an exogenous variable, whose future values ``predict`` takes as ``X_df``.
        **options: :class:`NeuralForecaster` options (``steps``, ``context``, ``batch_size``, ``head``, ...).
    """

    def __init__(self, model: str = "deepar", h: int | None = None, freq: str | None = None, alias: str | None = None,
                 num_samples: int = 200, seed: int = 0, id_col: str = "unique_id", time_col: str = "ds",
                 target_col: str = "y", **options: Any) -> None:
        self.model_name, self.h, self.freq, self.options = model, h, freq, options
        self.num_samples = check_count(num_samples, "num_samples", ConfigError)
        self.seed = seed
        self.id_col, self.time_col, self.target_col = id_col, time_col, target_col
        self.alias = alias or self._new_forecaster(h).name
        self.forecaster: NeuralForecaster | None = None
        self._train: pd.DataFrame | None = None
        self._exog: list[str] = []

    # ------------------------------------------------------------------ fit
    def fit(self, df: pd.DataFrame) -> ChainruleForecast:
        """Train on every series of ``df``; returns the forecaster itself (so ``fit(df).predict(h)`` reads well)."""
        if self.h is None:
            raise ConfigError("ChainruleForecast: give the training horizon h")
        ss = self._series(df)
        f = self._new_forecaster(self.h)
        f.fit(ss)
        self.forecaster, self._train, self._exog = f, df.copy(), list(ss.covariate_names)
        return self

    def _new_forecaster(self, h: int | None) -> NeuralForecaster:
        return NeuralForecaster(self.model_name, horizon=h, **self.options)

    def _series(self, df: pd.DataFrame) -> SeriesSet:
        if not isinstance(df, pd.DataFrame):
            raise DataError(f"{FRAME_NAME}: expected a pandas DataFrame, got {type(df).__name__}")
        exog = [c for c in df.columns if c not in (self.id_col, self.time_col, self.target_col)]
        return from_frame(df, FRAME_NAME, self.time_col, self.target_col, self.id_col, exog, self.freq)

    # ------------------------------------------------------------------ forecasts
    def predict(self, h: int, level: Sequence[float] | None = None, X_df: pd.DataFrame | None = None,
                seed: int | None = None) -> pd.DataFrame:
        """``h`` steps after each series' last observed value: ``id, ds, <model>`` (the median) and, for each
        level, ``<model>-lo-<level>`` / ``<model>-hi-<level>``, the central interval of that coverage."""
        levels = check_levels(level)
        lows = [(100 - lv) / 200 for lv in levels]
        qs = [0.5, *lows, *(1 - q for q in lows)]
        names = [self.alias, *(f"{self.alias}-lo-{_num(lv)}" for lv in levels),
                 *(f"{self.alias}-hi-{_num(lv)}" for lv in levels)]
        return self._quantile_frame(h, qs, names, X_df, seed)

    def predict_quantiles(self, h: int, quantiles: Sequence[float] = (0.1, 0.5, 0.9),
                          X_df: pd.DataFrame | None = None, seed: int | None = None) -> pd.DataFrame:
        """``id, ds`` and one column ``<model>-q-<percent>`` per quantile (0.1 -> ``deepar-q-10``)."""
        qs = check_quantiles(quantiles)
        return self._quantile_frame(h, qs, [f"{self.alias}-q-{_num(100 * q)}" for q in qs], X_df, seed)

    def sample_paths(self, h: int, n_paths: int | None = None, X_df: pd.DataFrame | None = None,
                     seed: int | None = None) -> pd.DataFrame:
        """Sample paths as a long frame ``id, ds, sample_id, <model>`` (the shape of ``StatsForecast.simulate``),
        ordered by series, path, time."""
        n = self.num_samples if n_paths is None else check_count(n_paths, "n_paths", ConfigError)
        ss, times, samples = self._samples(h, X_df, n, seed)
        steps = samples.shape[2]
        return self._with_ids(pd.DataFrame({
            self.id_col: np.repeat(ss.ids, n * steps),
            self.time_col: np.concatenate([np.tile(t, n) for t in times]),
            "sample_id": np.tile(np.repeat(np.arange(n), steps), len(ss)),
            self.alias: samples.ravel(),
        }))

    def _quantile_frame(self, h: int, qs: Sequence[float], names: Sequence[str], X_df: pd.DataFrame | None,
                        seed: int | None) -> pd.DataFrame:
        ss, times, samples = self._samples(h, X_df, self.num_samples, seed)
        values = np.quantile(samples, list(qs), axis=1)  # (Q, S, H)
        cols = {self.id_col: np.repeat(ss.ids, samples.shape[2]), self.time_col: np.concatenate(times)}
        cols.update({name: v.ravel() for name, v in zip(names, values, strict=True)})
        return self._with_ids(pd.DataFrame(cols))

    def _samples(self, h: int, X_df: pd.DataFrame | None, n: int,
                 seed: int | None) -> tuple[SeriesSet, list[np.ndarray], np.ndarray]:
        """The series cut after their last observed value (with ``X_df``'s future exogenous rows), the ``h`` times
        after each and their sample paths ``(S, n, h)``."""
        from chainrule.modalities.series.api import _timestamps_in_range, until_last_observed

        h = check_count(h, "h", ConfigError)
        if self.forecaster is None or self._train is None:
            raise ConfigError("ChainruleForecast: call fit(df) before predicting")
        if self._exog and X_df is None:
            raise DataError(f"{FRAME_NAME}: the model uses exogenous columns {', '.join(self._exog)}; give their "
                            f"future values as X_df ({self.id_col}, {self.time_col}, {', '.join(self._exog)})")
        frame = self._train if X_df is None else pd.concat([self._train, self._future_rows(X_df)], ignore_index=True)
        ss = until_last_observed(self._series(frame))
        with _timestamps_in_range(h):
            times = [np.asarray(ss.future_times(i, h)) for i in range(len(ss))]
            samples = self.forecaster.predict(ss, h, n, self.seed if seed is None else seed)
        return ss, times, samples

    def _future_rows(self, X_df: pd.DataFrame) -> pd.DataFrame:
        missing = [c for c in (self.id_col, self.time_col, *self._exog) if c not in X_df.columns]
        if missing:
            raise DataError(f"X_df: missing column {missing[0]!r}; it needs {self.id_col}, {self.time_col}, "
                            f"{', '.join(self._exog)}")
        return X_df[[self.id_col, self.time_col, *self._exog]].assign(**{self.target_col: np.nan})

    def _with_ids(self, frame: pd.DataFrame, like: pd.DataFrame | None = None) -> pd.DataFrame:
        """``frame`` with its id column as the caller's frame (``like``, default the training frame) had it: the
        series set holds ids as text."""
        source = self._train if like is None else like
        assert source is not None
        first = source[self.id_col].drop_duplicates()
        lookup = dict(zip(first.astype(str), first, strict=True))
        frame[self.id_col] = frame[self.id_col].map(lookup).astype(first.dtype)
        return frame

    # ------------------------------------------------------------------ cross-validation
    def cross_validation(self, df: pd.DataFrame, h: int, n_windows: int = 1, step_size: int = 1,
                         level: Sequence[float] | None = None, refit: bool = False,
                         seed: int | None = None) -> pd.DataFrame:
        """Rolling-origin evaluation in StatsForecast's shape: ``id, ds, cutoff, y, <model>`` (+ intervals).

        The last window ends at each series' end and earlier ones start ``step_size`` steps apart (StatsForecast's
        default 1; ``step_size=h`` gives adjacent windows);
        a fresh model is fitted on the data before the earliest cutoff (before every cutoff with ``refit``), so no
        window sees its own future. The fitted forecaster of :meth:`fit` is left as it is.
        """
        h = check_count(h, "h", ConfigError)
        n_windows = check_count(n_windows, "n_windows", ConfigError)
        step = check_count(step_size, "step_size", ConfigError)
        levels = check_levels(level)
        lows = [(100 - lv) / 200 for lv in levels]
        ss = self._series(df)
        f = self._new_forecaster(self.h or h)
        res = backtest(f, ss, h, windows=n_windows, num_samples=self.num_samples,
                       seed=self.seed if seed is None else seed, quantiles=[*lows, *(1 - q for q in lows)],
                       refit=refit, stride=step)
        offsets = rolling_origins(ss, h, n_windows, step)
        parts = []
        for i, (values, times) in enumerate(zip(ss.values, ss.times, strict=True)):
            for w, offset in enumerate(offsets):
                start = len(values) - offset
                part = {self.id_col: [ss.ids[i]] * h, self.time_col: times[start: start + h],
                        "cutoff": np.repeat(times[start - 1: start], h), self.target_col: values[start: start + h],
                        self.alias: res.points[w, i]}
                for j, lv in enumerate(levels):
                    part[f"{self.alias}-lo-{_num(lv)}"] = res.quantile_forecasts[w, i, j]
                for j, lv in enumerate(levels):
                    part[f"{self.alias}-hi-{_num(lv)}"] = res.quantile_forecasts[w, i, len(levels) + j]
                parts.append(pd.DataFrame(part))
        return self._with_ids(pd.concat(parts, ignore_index=True), like=df)


def check_levels(level: Sequence[float] | None) -> list[float]:
    """Interval coverages in percent, sorted: numbers strictly between 0 and 100 (``None`` = none)."""
    if level is None:
        return []
    if isinstance(level, (str, bytes)) or not isinstance(level, Sequence):
        raise ConfigError(f"level must be a list of percentages such as [80, 95], got {level!r}")
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < 100 or not math.isfinite(v)
           for v in level):
        raise ConfigError(f"level must hold percentages strictly between 0 and 100, e.g. [80, 95]; got {level!r}")
    return sorted(set(level))


def check_quantiles(quantiles: Sequence[float]) -> list[float]:
    """Quantile levels strictly between 0 and 1, at least one."""
    if isinstance(quantiles, (str, bytes)) or not isinstance(quantiles, Sequence) or not quantiles or any(
            isinstance(q, bool) or not isinstance(q, (int, float)) or not 0 < q < 1 for q in quantiles):
        raise ConfigError(f"quantiles must be numbers strictly between 0 and 1, e.g. [0.1, 0.5, 0.9]; got "
                          f"{quantiles!r}")
    return [float(q) for q in quantiles]


def _num(x: float) -> str:
    """80 -> '80', 97.5 -> '97.5' (StatsForecast writes integral levels without a decimal point)."""
    return f"{x:g}"
