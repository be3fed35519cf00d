"""The pandas forecasting API speaks StatsForecast's frames: on the same long frame, ``predict``,
``cross_validation`` and ``sample_paths`` give the columns, dtypes and (id, time, cutoff, y) rows StatsForecast's
own ``predict``, ``cross_validation`` and ``simulate`` give; intervals nest; exogenous columns need and use their
future values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from chainrule.core.errors import ConfigError, DataError
from chainrule.modalities.registry import model_class
from chainrule.modalities.series.frames import ChainruleForecast

statsforecast = pytest.importorskip("statsforecast")
from statsforecast.models import Naive  # noqa: E402

H = 3
TINY = {"steps": 3, "batch_size": 8, "context": 7, "num_samples": 40, **model_class("deepar", "series").TINY}


def long_frame(ids=(11, 22), n: int = 30, id_col: str = "unique_id", time_col: str = "ds",
               target_col: str = "y") -> pd.DataFrame:
    """Random walks on a daily grid, one per id, in Nixtla's long format (integer ids on purpose)."""
    rng = np.random.default_rng(0)
    return pd.concat([pd.DataFrame({id_col: uid, time_col: pd.date_range("2021-03-01", periods=n, freq="D"),
                                    target_col: 20 + rng.normal(size=n).cumsum()}) for uid in ids],
                     ignore_index=True)


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return long_frame()


@pytest.fixture(scope="module")
def fitted(frame) -> ChainruleForecast:
    return ChainruleForecast("deepar", h=H, alias="Naive", **TINY).fit(frame)


@pytest.fixture(scope="module")
def reference(frame):
    from statsforecast import StatsForecast

    return StatsForecast(models=[Naive()], freq="D").fit(frame)


def test_fit_returns_the_forecaster(frame):
    fc = ChainruleForecast("deepar", h=H, **TINY)
    assert fc.fit(frame) is fc


def test_predict_has_statsforecasts_columns_rows_and_dtypes(fitted, reference):
    ours, theirs = fitted.predict(H, level=[95, 80]), reference.predict(h=H, level=[95, 80])
    assert list(ours.columns) == list(theirs.columns)
    assert (ours.dtypes == theirs.dtypes).all()
    pd.testing.assert_frame_equal(ours[["unique_id", "ds"]], theirs[["unique_id", "ds"]].reset_index(drop=True))


def test_intervals_nest_around_the_point_forecast(fitted):
    p = fitted.predict(H, level=[80, 95])
    ordered = p[["Naive-lo-95", "Naive-lo-80", "Naive", "Naive-hi-80", "Naive-hi-95"]].to_numpy()
    assert (np.diff(ordered, axis=1) >= 0).all()
    assert (p["Naive-hi-95"] > p["Naive-lo-95"]).all()


def test_predict_quantiles_names_and_agrees_with_predict(fitted):
    q = fitted.predict_quantiles(H, quantiles=[0.1, 0.5, 0.9])
    assert list(q.columns) == ["unique_id", "ds", "Naive-q-10", "Naive-q-50", "Naive-q-90"]
    p = fitted.predict(H, level=[80])
    np.testing.assert_allclose(q["Naive-q-50"], p["Naive"])  # the same paths: the median is the point forecast
    np.testing.assert_allclose(q["Naive-q-10"], p["Naive-lo-80"])
    np.testing.assert_allclose(q["Naive-q-90"], p["Naive-hi-80"])


@pytest.mark.parametrize("step", [{"step_size": 2}, {}])  # {}: both libraries' default step
def test_cross_validation_has_statsforecasts_shape_and_truth(frame, step):
    from statsforecast import StatsForecast

    theirs = StatsForecast(models=[Naive()], freq="D").cross_validation(h=H, df=frame, n_windows=2, level=[80],
                                                                         **step)
    ours = ChainruleForecast("deepar", h=H, alias="Naive", **TINY).cross_validation(frame, h=H, n_windows=2,
                                                                                   level=[80], **step)
    assert list(ours.columns) == list(theirs.columns)
    assert (ours.dtypes == theirs.dtypes).all()
    keys = ["unique_id", "ds", "cutoff", "y"]
    pd.testing.assert_frame_equal(ours[keys], theirs[keys].reset_index(drop=True))


def test_sample_paths_is_the_long_frame_of_simulate(fitted, reference, frame):
    ours = fitted.sample_paths(H, n_paths=4)
    theirs = reference.simulate(h=H, df=frame, n_paths=4, seed=0)
    assert list(ours.columns) == list(theirs.columns)
    assert (ours.dtypes == theirs.dtypes).all()
    keys = ["unique_id", "ds", "sample_id"]
    pd.testing.assert_frame_equal(ours[keys], theirs[keys].reset_index(drop=True))
    assert ours.groupby(["unique_id", "ds"])["Naive"].nunique().gt(1).all()  # paths differ from one another


def test_column_names_are_configurable():
    df = long_frame(ids=("north", "south"), id_col="store", time_col="date", target_col="sales")
    fc = ChainruleForecast("deepar", h=H, id_col="store", time_col="date", target_col="sales", **TINY).fit(df)
    out = fc.predict(H, level=[90])
    assert list(out.columns) == ["store", "date", "deepar", "deepar-lo-90", "deepar-hi-90"]
    assert set(out["store"]) == {"north", "south"}
    cv = fc.cross_validation(df, h=H)
    assert list(cv.columns) == ["store", "date", "cutoff", "sales", "deepar"]


def test_exogenous_columns_need_and_use_their_future_values(frame):
    df = frame.assign(promo=np.tile(np.arange(30) % 2, 2).astype(float))
    fc = ChainruleForecast("deepar", h=H, **TINY).fit(df)
    with pytest.raises(DataError, match="X_df"):
        fc.predict(H)
    dates = pd.date_range(df["ds"].max() + pd.Timedelta(days=1), periods=H, freq="D")
    x_df = pd.DataFrame({"unique_id": np.repeat([11, 22], H), "ds": np.tile(dates, 2), "promo": 0.0})
    low = fc.predict(H, X_df=x_df)
    high = fc.predict(H, X_df=x_df.assign(promo=50.0))
    assert list(low.columns) == ["unique_id", "ds", "deepar"]
    assert not np.allclose(low["deepar"], high["deepar"])  # the future covariate reaches the model
    with pytest.raises(DataError, match="promo"):
        fc.predict(H, X_df=x_df.drop(columns="promo"))


@pytest.mark.parametrize("level", [[0], [100], [80, "95"], "80", [True]])
def test_bad_levels_are_one_line_errors(fitted, level):
    with pytest.raises(ConfigError, match="level"):
        fitted.predict(H, level=level)


def test_predict_before_fit_and_bad_horizon_are_errors(fitted):
    with pytest.raises(ConfigError, match="fit"):
        ChainruleForecast("deepar", h=H, **TINY).predict(H)
    with pytest.raises(ConfigError, match="h must be"):
        fitted.predict(0)
    with pytest.raises(ConfigError, match="quantiles"):
        fitted.predict_quantiles(H, quantiles=[0.5, 1.0])
