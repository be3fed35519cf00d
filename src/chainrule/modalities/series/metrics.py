"""Forecast accuracy metrics (numpy, vectorised).

Point metrics take ``y`` and ``f`` of shape ``(H,)`` or ``(N, H)`` and average over the last (horizon) axis,
skipping steps where ``y`` is NaN (missing); they return a float for one series, an ``(N,)`` array for many.
Sample metrics take ``samples`` of shape ``(..., S, H)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.special import ndtr


def _mean(x: np.ndarray, y: np.ndarray) -> np.ndarray | float:
    """Mean of ``x`` over the last axis where ``y`` is observed (NaN where nothing is observed)."""
    mask = ~np.isnan(y)
    x = np.where(mask, x, 0.0)
    count = mask.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = x.sum(axis=-1) / np.where(count > 0, count, np.nan)
    return float(out) if np.ndim(out) == 0 else out


def _arrays(*xs) -> list[np.ndarray]:
    return [np.asarray(x, dtype=np.float64) for x in xs]


def mae(y, f) -> np.ndarray | float:
    """Mean absolute error."""
    y, f = _arrays(y, f)
    return _mean(np.abs(y - f), y)


def rmse(y, f) -> np.ndarray | float:
    """Root mean squared error (per series)."""
    y, f = _arrays(y, f)
    return np.sqrt(_mean((y - f) ** 2, y))


def smape(y, f) -> np.ndarray | float:
    """Symmetric MAPE in percent, M3 convention: mean of ``200 |y - f| / (|y| + |f|)`` (0 when both are 0)."""
    y, f = _arrays(y, f)
    denom = np.abs(y) + np.abs(f)
    with np.errstate(invalid="ignore", divide="ignore"):
        term = np.where(denom > 0, 200.0 * np.abs(y - f) / np.where(denom > 0, denom, 1.0), 0.0)
    return _mean(term, y)


def mase_scale(insample, season: int) -> float:
    """In-sample mean absolute seasonal difference ``mean |x_t - x_{t-m}|`` over observed pairs; the lag falls
    back to 1 when the series is not longer than ``season``. NaN when no pair is observed."""
    x = np.asarray(insample, dtype=np.float64)
    m = season if len(x) > season else 1
    if len(x) <= m:
        return float("nan")
    d = np.abs(x[m:] - x[:-m])
    d = d[~np.isnan(d)]
    return float(d.mean()) if len(d) else float("nan")


def mase(y, f, insample, season: int) -> np.ndarray | float:
    """Mean absolute scaled error: MAE divided by the in-sample seasonal-naive MAE (:func:`mase_scale`).

    ``y``/``f`` ``(H,)`` with one in-sample array, or ``(N, H)`` with a sequence of ``N`` in-sample arrays.
    A zero or undefined scale gives NaN.
    """
    y, f = _arrays(y, f)
    if y.ndim == 1:
        scales = np.array(mase_scale(insample, season))
    else:
        scales = np.array([mase_scale(x, season) for x in insample])
    err = mae(y, f)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(scales > 0, err / np.where(scales > 0, scales, 1.0), np.nan)
    return float(out) if np.ndim(out) == 0 else out


def crps_samples(y, samples, fair: bool = True) -> np.ndarray | float:
    """CRPS from sample paths, energy form ``E|X - y| - 1/2 E|X - X'|``, averaged over the horizon.

    ``E|X - X'|`` is computed exactly over all sample pairs from the sorted samples in O(S log S). With
    ``fair=True`` (default) it uses the unbiased pair estimator (divides by ``S (S - 1)``, Ferro 2014), otherwise
    the plain ``S^2`` estimator. ``y`` ``(..., H)``, ``samples`` ``(..., S, H)``; NaN samples are not allowed.
    """
    y, x = _arrays(y, samples)
    s = x.shape[-2]
    term1 = np.abs(x - y[..., None, :]).mean(axis=-2)
    xs = np.sort(x, axis=-2)
    weights = (2.0 * np.arange(1, s + 1) - s - 1).reshape((s, 1))
    pair_sum = 2.0 * (weights * xs).sum(axis=-2)  # sum over ordered pairs of |x_i - x_j|
    denom = s * (s - 1) if fair else s * s
    term2 = pair_sum / denom if denom > 0 else np.zeros_like(term1)
    return _mean(term1 - 0.5 * term2, y)


def crps_gaussian(y, mu, sigma) -> np.ndarray | float:
    """Closed-form CRPS of a Gaussian ``N(mu, sigma^2)``, averaged over the last axis (Gneiting et al. 2005)."""
    y, mu, sigma = _arrays(y, mu, sigma)
    z = (y - mu) / sigma
    pdf = np.exp(-0.5 * z * z) / np.sqrt(2.0 * np.pi)
    value = sigma * (z * (2.0 * ndtr(z) - 1.0) + 2.0 * pdf - 1.0 / np.sqrt(np.pi))
    return _mean(value, y)


def coverage(y, lo, hi) -> np.ndarray | float:
    """Fraction of observed ``y`` inside ``[lo, hi]``."""
    y, lo, hi = _arrays(y, lo, hi)
    return _mean(((y >= lo) & (y <= hi)).astype(np.float64), y)


def quantiles_from_samples(samples, qs: Sequence[float]) -> np.ndarray:
    """Empirical quantiles ``(..., Q, H)`` of ``samples`` ``(..., S, H)``."""
    x = np.asarray(samples, dtype=np.float64)
    return np.moveaxis(np.quantile(x, np.asarray(qs, dtype=np.float64), axis=-2), 0, -2)


def interval_from_samples(samples, level: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
    """Central ``level`` interval ``(lo, hi)``, each ``(..., H)``, from samples ``(..., S, H)``."""
    q = quantiles_from_samples(samples, [(1 - level) / 2, (1 + level) / 2])
    return q[..., 0, :], q[..., 1, :]


def quantile_loss(y, qpred, qs: Sequence[float]) -> np.ndarray | float:
    """Mean pinball loss over quantile levels ``qs`` and the horizon; ``qpred`` ``(..., Q, H)``."""
    y, qpred = _arrays(y, qpred)
    q = np.asarray(qs, dtype=np.float64).reshape((-1, 1))
    diff = y[..., None, :] - qpred
    loss = np.maximum(q * diff, (q - 1.0) * diff).mean(axis=-2)
    return _mean(loss, y)
