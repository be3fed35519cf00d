"""No look-ahead through the series scale: the DeepAR-style scale of a training window or a forecast is the mean
``|y|`` of the ``context`` points before the origin, so nothing after the origin (the window's horizon targets,
or the series' later values) can move it, nor the model's parameters for the steps up to the origin.

The look-ahead tests of ``test_ts_models.py`` pass a fixed scale; these compute it from the data, through
``context_scale``, the training windows' ``get``, ``history_batch`` and ``NeuralForecaster``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from chainrule.modalities.registry import build_model, model_class
from chainrule.modalities.series.features import FeatureSpec, TrainingWindows, context_scale, history_batch
from chainrule.modalities.series.neural import NeuralForecaster
from chainrule.modalities.series.table import SeriesSet

CONTEXT, HORIZON = 14, 7


def series_set(values: list[np.ndarray]) -> SeriesSet:
    times = [pd.date_range("2021-03-01", periods=len(v), freq="D") for v in values]
    return SeriesSet(name="toy", ids=[f"s{i}" for i in range(len(values))], values=values, times=times, freq="D",
                     season=7, horizon=HORIZON)


def toy_values(t: int = 60) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    values = [10 + 5 * np.sin(np.arange(t) * 2 * np.pi / 7) + rng.normal(size=t) + 30 * i for i in range(2)]
    values[0][20] = np.nan  # a missing value inside some contexts
    return values


def changed_after(values: list[np.ndarray], series: int, origin: int) -> list[np.ndarray]:
    """A copy with series ``series`` rewritten from ``origin`` on (far larger values, so any leak shows)."""
    out = [v.copy() for v in values]
    out[series][origin:] = out[series][origin:] * 10 + 500
    return out


def identical(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal values, NaN (missing) where the other is NaN too."""
    return a.shape == b.shape and torch.allclose(a, b, rtol=0, atol=0, equal_nan=True)


def test_context_scale_is_the_mean_abs_of_the_last_context_points() -> None:
    y = torch.tensor([[1000.0, 1.0, -3.0, float("nan"), 5.0], [float("nan")] * 3 + [2.0, -4.0]])
    torch.testing.assert_close(context_scale(y, 3), torch.tensor([4.0, 3.0]))
    torch.testing.assert_close(context_scale(y, 3, offset=1.0), torch.tensor([5.0, 4.0]))
    # no observed value in the context: the whole history; none at all: 1
    gap = torch.tensor([[6.0, -2.0, float("nan"), float("nan")], [float("nan")] * 4])
    torch.testing.assert_close(context_scale(gap, 2), torch.tensor([4.0, 1.0]))


def test_training_window_scale_and_parameters_ignore_the_window_horizon() -> None:
    values = toy_values()
    ss = series_set(values)
    spec = FeatureSpec.for_series(ss, context=CONTEXT, horizon=HORIZON)
    hist = spec.history
    windows = TrainingWindows(ss, spec)
    pick = torch.randperm(len(windows), generator=torch.Generator().manual_seed(0))[:12]
    series, ends = windows.locate(pick)
    y, cond = windows.get(pick)
    torch.manual_seed(0)
    model = build_model("deepar", modality="series", lags=spec.lags, num_time_features=spec.num_time_features,
                        **model_class("deepar", "series").TINY).eval()
    for k, (s, end) in enumerate(zip(series.tolist(), ends.tolist(), strict=True)):
        origin = end - HORIZON  # first horizon step of this window, in series coordinates
        context = values[s][max(0, origin - CONTEXT):origin]
        assert float(cond.scale[k]) == pytest.approx(np.nanmean(np.abs(context)), rel=1e-6)  # by hand
        other = TrainingWindows(series_set(changed_after(values, s, origin)), spec)
        y2, cond2 = other.get(pick[k:k + 1])
        assert not identical(y2[0, hist:], y[k, hist:])  # the horizon targets did change
        assert identical(y2[0, :hist], y[k, :hist]) and torch.equal(cond2.scale, cond.scale[k:k + 1])
        with torch.no_grad():
            params = model(y[k:k + 1], cond.map(lambda t, k=k: t[k:k + 1]))
            params2 = model(y2, cond2)
        # the parameters of every step up to the first forecast step see nothing after the origin
        assert torch.equal(params[..., : hist + 1], params2[..., : hist + 1])


def test_forecast_scale_and_paths_ignore_values_after_the_origin() -> None:
    values = toy_values()
    origin = 45
    ss, ss2 = series_set(values), series_set(changed_after(changed_after(values, 0, origin), 1, origin))
    f = NeuralForecaster("deepar", context=CONTEXT, horizon=HORIZON, steps=5, seed=0,
                         **model_class("deepar", "series").TINY)
    f.fit(ss.truncate(origin))
    assert f.spec is not None
    y, cond = history_batch(ss.truncate(origin), f.spec, HORIZON)
    y2, cond2 = history_batch(ss2.truncate(origin), f.spec, HORIZON)
    by_hand = [np.nanmean(np.abs(v[origin - CONTEXT:origin])) for v in values]
    assert cond.scale.tolist() == pytest.approx(by_hand, rel=1e-6)
    assert torch.equal(cond2.scale, cond.scale) and identical(y2, y)
    paths = f.predict(ss.truncate(origin, covariate_extra=HORIZON), HORIZON, 20, seed=1)
    assert np.array_equal(paths, f.predict(ss2.truncate(origin, covariate_extra=HORIZON), HORIZON, 20, seed=1))
    # the comparison can fail: forecasting from a later origin gives other paths
    assert not np.array_equal(paths, f.predict(ss.truncate(origin + 1), HORIZON, 20, seed=1))
