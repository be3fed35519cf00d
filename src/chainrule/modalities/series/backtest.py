"""Rolling-origin backtests: forecast from several origins near each series' end and score against the truth.

Window ``w`` of a series of length ``T`` has its origin at ``T - horizon - w * stride`` (counted back from the
end, so series of different lengths share windows); the forecast sees only the values before the origin. With
``refit=False`` the forecaster is fitted once on the data before the earliest origin, so no window looks ahead.
Point metrics use the forecaster's ``predict_point`` when it has one (exact means of the baselines), else the
sample median. Coverage is reported for each central interval formed by quantile pairs ``q`` / ``1 - q``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from chainrule.core.errors import DataError
from chainrule.modalities.series import metrics as M
from chainrule.modalities.series.forecaster import Forecaster
from chainrule.modalities.series.table import SeriesSet


def rolling_origins(ss: SeriesSet, horizon: int, windows: int, stride: int | None = None) -> list[int]:
    """Offsets ``k`` (earliest first): each window's origin is ``T_i - k`` for series ``i``.

    ``stride`` defaults to ``horizon`` (adjacent, non-overlapping test windows). DataError when the shortest
    series leaves fewer than two points before the earliest origin.
    """
    if horizon < 1 or windows < 1:
        raise ValueError(f"horizon and windows must be positive, got {horizon} and {windows}")
    stride = horizon if stride is None else int(stride)
    offsets = [horizon + w * stride for w in reversed(range(windows))]
    shortest = int(np.argmin(ss.lengths()))
    if ss.lengths()[shortest] - offsets[0] < 2:
        raise DataError(f"{ss.name}: series {ss.ids[shortest]!r} has {ss.lengths()[shortest]} points, too few for "
                        f"{windows} backtest window(s) of horizon {horizon} (needs at least {offsets[0] + 2})")
    return offsets


@dataclass
class BacktestResult:
    """Per-series-per-window metrics, their means and timings (forecasts kept for plots)."""

    forecaster: str
    dataset: str
    horizon: int
    windows: int
    frame: pd.DataFrame
    fit_seconds: float
    predict_seconds: float
    quantiles: tuple[float, ...] = ()
    points: np.ndarray | None = field(default=None, repr=False)  # (W, N, H)
    quantile_forecasts: np.ndarray | None = field(default=None, repr=False)  # (W, N, Q, H)
    actuals: np.ndarray | None = field(default=None, repr=False)  # (W, N, H)

    @property
    def metrics(self) -> dict[str, float]:
        """Mean of each metric over series and windows (undefined values skipped)."""
        cols = [c for c in self.frame.columns if c not in ("series", "window", "origin")]
        return {c: float(np.nanmean(self.frame[c].to_numpy(dtype=np.float64))) for c in cols}

    def to_frame(self) -> pd.DataFrame:
        return self.frame.copy()

    def to_dict(self) -> dict:
        return {"forecaster": self.forecaster, "dataset": self.dataset, "horizon": self.horizon,
                "windows": self.windows, "num_series": int(self.frame["series"].nunique()),
                "metrics": self.metrics, "fit_seconds": self.fit_seconds, "predict_seconds": self.predict_seconds}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


def _actuals(ss: SeriesSet, offset: int, horizon: int) -> np.ndarray:
    return np.stack([v[len(v) - offset: len(v) - offset + horizon] for v in ss.values])


def _score(ss: SeriesSet, context: SeriesSet, y: np.ndarray, point: np.ndarray, samples: np.ndarray,
           quantiles: tuple[float, ...]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    qf = M.quantiles_from_samples(samples, quantiles)
    out = {"mae": M.mae(y, point), "rmse": M.rmse(y, point), "smape": M.smape(y, point),
           "mase": M.mase(y, point, context.values, ss.season), "crps": M.crps_samples(y, samples)}
    if quantiles:
        out["quantile_loss"] = M.quantile_loss(y, qf, quantiles)
    for j, q in enumerate(quantiles):
        if q < 0.5 and any(np.isclose(1 - q, quantiles)):
            k = int(np.argmin(np.abs(np.asarray(quantiles) - (1 - q))))
            out[f"coverage_{round(100 * (1 - 2 * q))}"] = M.coverage(y, qf[:, j], qf[:, k])
    return out, qf


def backtest(forecaster: Forecaster, ss: SeriesSet, horizon: int, windows: int = 3, num_samples: int = 100,
             seed: int = 0, quantiles=(0.05, 0.25, 0.5, 0.75, 0.95), refit: bool = False,
             stride: int | None = None) -> BacktestResult:
    """Rolling-origin backtest of ``forecaster`` on ``ss`` (see the module docstring)."""
    quantiles = tuple(float(q) for q in quantiles)
    offsets = rolling_origins(ss, horizon, windows, stride)
    lengths = ss.lengths()
    fit_s = pred_s = 0.0
    rows, points, qfs, ys = [], [], [], []
    for w, offset in enumerate(offsets):
        if refit or w == 0:
            start = time.perf_counter()
            forecaster.fit(ss.truncate(lengths - offset))
            fit_s += time.perf_counter() - start
        context = ss.truncate(lengths - offset, covariate_extra=horizon)
        start = time.perf_counter()
        samples = forecaster.predict(context, horizon, num_samples, seed + w)
        point_fn = getattr(forecaster, "predict_point", None)
        point = point_fn(context, horizon) if callable(point_fn) else np.median(samples, axis=1)
        pred_s += time.perf_counter() - start
        expected = (len(ss), num_samples, horizon)
        if samples.shape != expected:
            raise ValueError(f"{forecaster.name}: predict returned shape {samples.shape}, expected {expected}")
        y = _actuals(ss, offset, horizon)
        scores, qf = _score(ss, context, y, point, samples, quantiles)
        origin = [t[len(t) - offset] for t in ss.times]
        rows.append(pd.DataFrame({"series": ss.ids, "window": w, "origin": [str(o) for o in origin], **scores}))
        points.append(point)
        qfs.append(qf)
        ys.append(y)
    frame = pd.concat(rows, ignore_index=True)
    return BacktestResult(forecaster=forecaster.name, dataset=ss.name, horizon=horizon, windows=windows, frame=frame,
                          fit_seconds=fit_s, predict_seconds=pred_s, quantiles=quantiles, points=np.stack(points),
                          quantile_forecasts=np.stack(qfs), actuals=np.stack(ys))
