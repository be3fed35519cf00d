"""One-step-ahead surprisal (anomaly scores) of a series: equal to the forecasting path's own first-step
density, blind to the future, unscored where nothing came before, and highest at an injected outlier."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from chainrule.modalities.series import api
from chainrule.modalities.series.anomaly import one_step_log_probs
from chainrule.modalities.series.datasets import load_timeseries
from chainrule.modalities.series.features import history_batch


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return api.train_forecaster("airpassengers", "deepar", steps=60, progress=False,
                                run_dir=tmp_path_factory.mktemp("anomaly") / "passengers", hidden_size=8, num_layers=1)


@pytest.fixture(scope="module")
def forecaster(run):
    return api.forecaster_from_run(run)


def test_surprisal_equals_the_forecast_density_of_the_next_step(forecaster):
    """Step t's score is -log p(y_t | y_<t) exactly as a forecast from the origin t would give it."""
    ss = load_timeseries("airpassengers")
    lp = one_step_log_probs(forecaster.model, forecaster.spec, ss)
    assert lp.shape == (len(ss.values[0]),) and np.isnan(lp[0]) and np.isfinite(lp[1:]).all()
    model = forecaster.model
    for t in (5, 40, 100, len(ss.values[0]) - 1):
        y, hist_cond = history_batch(ss.truncate(t), forecaster.spec, 1)
        with torch.no_grad():
            params, _ = model.prefill(y, hist_cond)
            ref = model.head.log_prob(params, torch.tensor([ss.values[0][t]], dtype=torch.float32), hist_cond.scale)
        assert lp[t] == pytest.approx(float(ref[0]), abs=1e-4)


def test_no_look_ahead_and_missing_values(forecaster):
    ss = load_timeseries("airpassengers")
    base = one_step_log_probs(forecaster.model, forecaster.spec, ss)
    changed = ss.truncate(len(ss.values[0]))
    changed.values[0] = changed.values[0].copy()
    changed.values[0][80:] *= 3.0
    changed.values[0][30] = np.nan
    lp = one_step_log_probs(forecaster.model, forecaster.spec, changed)
    np.testing.assert_array_equal(lp[:30], base[:30])  # earlier steps never see later values
    assert np.isnan(lp[30]) and np.isfinite(np.delete(lp, [0, 30])).all()
    assert not np.allclose(lp[81:], base[81:])  # later steps do see them, so the check can fail


def test_an_outlier_is_the_most_surprising_step(run):
    history = load_timeseries("airpassengers").values[0].tolist()
    history[100] *= 4.0
    history[20] = None
    out = api.surprisal_from_history(run, history)
    s = np.array([np.nan if v is None else v for v in out["surprisal"]])
    assert out["surprisal"][0] is None and out["surprisal"][20] is None  # nothing before it; missing
    assert out["scored"] == len(history) - 2
    assert int(np.nanargmax(s)) == 100
    assert out["nll"] == pytest.approx(float(np.nansum(s)), rel=1e-9)
