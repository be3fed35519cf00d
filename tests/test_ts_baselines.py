"""Baselines (hand-computed forecasts and FPP3 interval widths), seeded samples, backtests without look-ahead and
the statsforecast comparators."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from chainrule.core.errors import ConfigError, DataError
from chainrule.modalities.series.backtest import backtest, rolling_origins
from chainrule.modalities.series.baselines import drift, make_baseline, naive, seasonal_naive
from chainrule.modalities.series.datasets import load_timeseries
from chainrule.modalities.series.table import SeriesSet

X = np.array([1.0, 3.0, 2.0, 4.0, 6.0])


def _set(values: list[np.ndarray], season: int = 1, name: str = "toy") -> SeriesSet:
    return SeriesSet(name=name, ids=[f"s{i}" for i in range(len(values))],
                     values=[np.asarray(v, float) for v in values], times=[pd.RangeIndex(len(v)) for v in values],
                     freq=None, season=season)


def test_naive_hand_computed():
    point, sigma = naive(X, 3)
    np.testing.assert_array_equal(point, [6, 6, 6])
    s = np.sqrt((4 + 1 + 4 + 4) / 4)  # one-step residuals 2, -1, 2, 2
    np.testing.assert_allclose(sigma, s * np.sqrt([1, 2, 3]))


def test_seasonal_naive_hand_computed():
    point, sigma = seasonal_naive(X, 5, season=2)
    np.testing.assert_array_equal(point, [4, 6, 4, 6, 4])
    s = np.sqrt((1 + 1 + 16) / 3)  # seasonal residuals 1, 1, 4
    np.testing.assert_allclose(sigma, s * np.sqrt([1, 1, 2, 2, 3]))


def test_drift_hand_computed():
    point, sigma = drift(X, 3)
    np.testing.assert_allclose(point, [7.25, 8.5, 9.75])  # slope (6 - 1) / 4
    s = np.sqrt((3 * 0.75**2 + 2.25**2) / 4)  # residuals 0.75, -2.25, 0.75, 0.75
    h = np.array([1.0, 2, 3])
    np.testing.assert_allclose(sigma, s * np.sqrt(h * (1 + h / 5)))


def test_missing_values_in_context():
    x = np.array([1.0, 3.0, np.nan, 4.0, 6.0, np.nan, np.nan])
    point, sigma = naive(x, 2)
    np.testing.assert_array_equal(point, [6, 6])  # last observed value
    s = 2.0  # only fully observed differences: 3 - 1, 6 - 4
    np.testing.assert_allclose(sigma, s * np.sqrt([3, 4]))  # two trailing gaps add two steps
    point, _ = seasonal_naive(np.array([1.0, 2.0, 3.0, 10.0, np.nan, 30.0]), 3, season=3)
    np.testing.assert_array_equal(point, [10, 2, 30])  # the missing season position falls back a cycle
    point, _ = drift(np.array([np.nan, 2.0, np.nan, 6.0, np.nan]), 2)
    np.testing.assert_allclose(point, [10, 12])  # slope 2 from observed ends; one trailing gap
    assert not np.isnan(point).any()


def test_sample_paths_are_gaussian_and_reproducible():
    ss = _set([X, X[::-1] * 2], season=2)
    for name in ("naive", "snaive", "drift"):
        model = make_baseline(name)
        a = model.predict(ss, 4, 50, seed=7)
        assert a.shape == (2, 50, 4) and a.dtype == np.float64
        np.testing.assert_array_equal(a, model.predict(ss, 4, 50, seed=7))
        assert not np.array_equal(a, model.predict(ss, 4, 50, seed=8))
    mu, sigma = make_baseline("drift").forecast(ss, 4)
    many = make_baseline("drift").predict(ss, 4, 20_000, seed=0)
    np.testing.assert_allclose(many.mean(axis=1), mu, atol=0.05 * sigma.max())
    np.testing.assert_allclose(many.std(axis=1), sigma, rtol=0.03)


def test_unknown_baseline():
    with pytest.raises(ConfigError, match="naive"):
        make_baseline("prophet")


def test_rolling_origins():
    ss = _set([np.arange(40.0), np.arange(30.0)])
    assert rolling_origins(ss, 6, 3) == [18, 12, 6]
    assert rolling_origins(ss, 6, 3, stride=1) == [8, 7, 6]
    with pytest.raises(DataError, match="s1"):
        rolling_origins(ss, 10, 3)


class _Recorder:
    """Wraps a forecaster and records the lengths it was fitted on."""

    def __init__(self, inner):
        self.inner, self.name, self.fit_lengths = inner, inner.name, []

    def fit(self, train):
        self.fit_lengths.append(list(train.lengths()))

    def predict(self, context, horizon, num_samples, seed):
        return self.inner.predict(context, horizon, num_samples, seed)

    def predict_point(self, context, horizon):
        return self.inner.predict_point(context, horizon)


@pytest.mark.parametrize("name", ["snaive", "drift"])
def test_backtest_has_no_look_ahead(name):
    ss = load_timeseries("airpassengers")
    ss = _set([ss.values[0], ss.values[0][20:] * 0.5], season=12)
    h, windows = 12, 3
    offsets = rolling_origins(ss, h, windows)
    rec = _Recorder(make_baseline(name))
    base = backtest(rec, ss, h, windows=windows, num_samples=20)
    assert rec.fit_lengths == [[len(v) - offsets[0] for v in ss.values]]  # fitted once, before the first origin
    assert base.points.shape == (windows, 2, h) and base.quantile_forecasts.shape == (windows, 2, 5, h)
    for w, offset in enumerate(offsets):
        changed = _set([v.copy() for v in ss.values], season=12)
        for v in changed.values:
            v[len(v) - offset:] = v[len(v) - offset:] * 3 + 100  # rewrite everything from this origin on
        other = backtest(make_baseline(name), changed, h, windows=windows, num_samples=20)
        np.testing.assert_array_equal(other.points[: w + 1], base.points[: w + 1])
        np.testing.assert_array_equal(other.quantile_forecasts[: w + 1], base.quantile_forecasts[: w + 1])
        if w + 1 < windows:  # later windows see the change: the comparison above can fail
            assert not np.array_equal(other.points[w + 1], base.points[w + 1])


def test_backtest_result_metrics():
    ss = load_timeseries("airpassengers")
    res = backtest(make_baseline("snaive"), ss, 12, windows=2, num_samples=200)
    frame = res.to_frame()
    assert list(frame["window"]) == [0, 1] and set(frame["series"]) == {"airpassengers"}
    assert {"mae", "rmse", "smape", "mase", "crps", "coverage_90", "coverage_50"} <= set(frame.columns)
    m = res.metrics
    assert m["crps"] < m["mae"]  # a spread forecast beats its own point's MAE
    # coverage by hand: actuals inside the forecast's own 5%-95% quantiles (the default quantile levels)
    assert res.quantiles == (0.05, 0.25, 0.5, 0.75, 0.95)
    lo, hi = res.quantile_forecasts[:, :, 0], res.quantile_forecasts[:, :, -1]
    assert m["coverage_90"] == pytest.approx(((res.actuals >= lo) & (res.actuals <= hi)).mean())
    lo, hi = res.quantile_forecasts[:, :, 1], res.quantile_forecasts[:, :, -2]
    assert m["coverage_50"] == pytest.approx(((res.actuals >= lo) & (res.actuals <= hi)).mean())
    # last window = the final 12 months: seasonal naive repeats the previous year
    np.testing.assert_array_equal(res.points[-1, 0], ss.values[0][-24:-12])
    data = json.loads(res.to_json())
    assert data["num_series"] == 1 and data["windows"] == 2 and data["forecaster"] == "snaive"


@pytest.mark.parametrize("name", ["theta", "autoets", "autoarima"])
def test_statsforecast_models_on_airpassengers(name):
    pytest.importorskip("statsforecast")
    ss = load_timeseries("airpassengers")
    context = ss.truncate(-12)
    model = make_baseline(name)
    model.fit(context)
    samples = model.predict(context, 12, 64, seed=0)
    assert samples.shape == (1, 64, 12) and np.isfinite(samples).all()
    mu, sigma = model.forecast(context, 12)
    assert np.all(sigma > 0) and sigma[0, -1] > sigma[0, 0]  # uncertainty grows with the horizon
    from chainrule.modalities.series.metrics import smape

    assert smape(ss.values[0][-12:], mu[0]) < 15  # a sensible forecast of the seasonal pattern
    np.testing.assert_array_equal(samples, model.predict(context, 12, 64, seed=0))
