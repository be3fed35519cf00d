"""Forecast metrics: CRPS estimators against the Gaussian closed form, MASE/sMAPE against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from chainrule.modalities.series import metrics as M
from chainrule.modalities.series.baselines import seasonal_naive


def test_sample_crps_matches_closed_form_gaussian():
    rng = np.random.default_rng(0)
    y = np.array([[-2.0, -0.3, 0.0, 0.7, 3.1], [5.0, 4.0, 6.5, 5.2, 5.9]])
    mu = np.array([[0.0] * 5, [5.0] * 5])
    sigma = np.array([[1.0] * 5, [0.5, 1.0, 2.0, 0.7, 1.3]])
    samples = mu[:, None, :] + sigma[:, None, :] * rng.standard_normal((2, 40_000, 5))
    exact = M.crps_gaussian(y, mu, sigma)
    for fair in (True, False):
        np.testing.assert_allclose(M.crps_samples(y, samples, fair=fair), exact, rtol=0.02)


def test_crps_gaussian_known_value():
    # y = mu: sigma * (2 phi(0) - 1 / sqrt(pi))
    expected = 2 / np.sqrt(2 * np.pi) - 1 / np.sqrt(np.pi)
    assert M.crps_gaussian([0.0], [0.0], [1.0]) == pytest.approx(expected, rel=1e-12)
    assert M.crps_gaussian([3.0], [3.0], [2.0]) == pytest.approx(2 * expected, rel=1e-12)


def test_crps_samples_small_cases():
    # samples {0, 2}, y = 1: E|X - y| = 1; ordered-pair sum of |x_i - x_j| = 4
    samples = np.array([[0.0], [2.0]])
    assert M.crps_samples([1.0], samples, fair=False) == pytest.approx(1 - 0.5 * 4 / 4)
    assert M.crps_samples([1.0], samples, fair=True) == pytest.approx(1 - 0.5 * 4 / 2)
    # a point forecast (identical samples) has CRPS = absolute error
    y = np.array([1.0, 4.0, -2.0])
    f = np.array([1.5, 2.0, -2.0])
    assert M.crps_samples(y, np.repeat(f[None], 7, axis=0)) == pytest.approx(M.mae(y, f))


def test_crps_brute_force_pairs():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(9, 3))
    y = rng.normal(size=3)
    pairs = np.abs(x[:, None, :] - x[None, :, :]).sum(axis=(0, 1))
    brute = (np.abs(x - y).mean(axis=0) - 0.5 * pairs / (9 * 8)).mean()
    assert M.crps_samples(y, x) == pytest.approx(brute, rel=1e-12)


def test_mase_of_seasonal_naive_hand_computed():
    insample = np.array([1.0, 2, 3, 4, 2, 3, 5, 5])
    y = np.array([3.0, 3, 4, 6])
    point, _ = seasonal_naive(insample, 4, season=4)
    np.testing.assert_array_equal(point, [2, 3, 5, 5])
    # scale: mean(|2-1|, |3-2|, |5-3|, |5-4|) = 1.25; MAE: mean(1, 0, 1, 1) = 0.75
    assert M.mase(y, point, insample, season=4) == pytest.approx(0.75 / 1.25)
    assert M.mase_scale(insample, 4) == pytest.approx(1.25)


def test_mase_batched_skips_missing_and_falls_back_to_lag_one():
    insample = [np.array([1.0, np.nan, 3.0, 4.0]), np.array([2.0, 2.0])]
    y = np.array([[5.0, 6.0], [2.0, 4.0]])
    f = np.array([[4.0, 4.0], [2.0, 2.0]])
    # series 0, season 2: pairs (3-1) only (4-nan skipped) -> scale 2; MAE 1.5.  series 1 shorter than a
    # season -> lag 1 -> scale 0 -> undefined (NaN)
    out = M.mase(y, f, insample, season=2)
    assert out[0] == pytest.approx(0.75)
    assert np.isnan(out[1])


def test_smape_m3_convention_and_missing_values():
    assert M.smape([100.0], [110.0]) == pytest.approx(200 * 10 / 210)
    assert M.smape([0.0, 0.0], [0.0, 0.0]) == 0.0
    assert M.smape([100.0, np.nan], [110.0, 1e9]) == pytest.approx(200 * 10 / 210)
    np.testing.assert_allclose(M.smape([[1.0, 2.0], [4.0, 4.0]], [[1.0, 2.0], [2.0, 4.0]]), [0.0, 100 / 3])


def test_point_metrics_and_coverage():
    y = np.array([1.0, 2.0, 3.0, np.nan])
    f = np.array([2.0, 2.0, 1.0, 100.0])
    assert M.mae(y, f) == pytest.approx(1.0)
    assert M.rmse(y, f) == pytest.approx(np.sqrt(5 / 3))
    assert M.coverage(y, f - 1.5, f + 1.5) == pytest.approx(2 / 3)


def test_quantiles_and_interval_shapes():
    samples = np.arange(2 * 101 * 3, dtype=float).reshape(2, 101, 3)
    q = M.quantiles_from_samples(samples, [0.0, 0.5, 1.0])
    assert q.shape == (2, 3, 3)
    np.testing.assert_array_equal(q[:, 1], samples[:, 50])
    lo, hi = M.interval_from_samples(samples, 0.9)
    assert lo.shape == hi.shape == (2, 3) and np.all(lo < hi)


def test_quantile_loss_of_median_is_half_mae():
    y = np.array([1.0, 5.0, -3.0])
    f = np.array([2.0, 2.0, 0.0])
    assert M.quantile_loss(y, f[None, :], [0.5]) == pytest.approx(0.5 * M.mae(y, f))
