"""Stability check: retrain a forecaster from several seeds and initial conditions and measure the spread.

Run ``r`` (0-based) trains with seed ``seed + r`` on the series with their first ``r · start_shift`` points
dropped (a different start of the earliest context window; never so many that a series gets shorter than
``keep``), then runs the same rolling-origin backtest — origins are counted from the end of each series, so
every run forecasts the same windows. Reported: per-run metrics, their mean / std / min / max across runs,
and the spread of the forecast median across runs (per series, window and step, then summarised).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from chainrule.core.errors import ConfigError
from chainrule.modalities.series.forecaster import Forecaster
from chainrule.modalities.series.table import SeriesSet


@dataclass
class StabilityResult:
    forecaster: str
    dataset: str
    horizon: int
    runs: pd.DataFrame  # one row per run: run, seed, start_shift and the mean metrics
    metrics: pd.DataFrame  # one row per metric: mean, std, min, max across runs
    median_spread: dict[str, float]  # spread of the forecast median across runs
    medians: np.ndarray  # (R, W, N, H) forecast medians of every run

    def to_dict(self) -> dict[str, Any]:
        return {"forecaster": self.forecaster, "dataset": self.dataset, "horizon": self.horizon,
                "runs": self.runs.to_dict(orient="records"), "metrics": self.metrics.to_dict(orient="records"),
                "median_spread": self.median_spread}


def drop_start(ss: SeriesSet, k: int, keep: int) -> SeriesSet:
    """Drop the first ``k`` points of each series (fewer where the series would get shorter than ``keep``)."""
    cuts = [max(0, min(k, len(v) - keep)) for v in ss.values]
    covs = None if ss.covariates is None else [c[j:] for c, j in zip(ss.covariates, cuts, strict=True)]
    return replace(ss, values=[v[j:] for v, j in zip(ss.values, cuts, strict=True)],
                   times=[t[j:] for t, j in zip(ss.times, cuts, strict=True)], covariates=covs)


def median_spread(medians: np.ndarray) -> dict[str, float]:
    """Across-run spread of forecast medians ``(R, ...)``: std, relative std and range, averaged over cells."""
    std = medians.std(axis=0, ddof=1 if medians.shape[0] > 1 else 0)
    rng = medians.max(axis=0) - medians.min(axis=0)
    level = np.abs(medians.mean(axis=0))
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(level > 0, std / level, np.nan)
    return {"median_std_mean": float(np.nanmean(std)), "median_std_max": float(np.nanmax(std)),
            "median_rel_std_mean": float(np.nanmean(rel)), "median_range_mean": float(np.nanmean(rng)),
            "median_range_max": float(np.nanmax(rng)), "median_min": float(np.nanmin(medians)),
            "median_max": float(np.nanmax(medians))}


def stability_check(make: Callable[[int], Forecaster], ss: SeriesSet, horizon: int, runs: int = 3,
                    seed: int = 0, start_shift: int | None = None, windows: int = 1, num_samples: int = 100,
                    quantiles: Sequence[float] = (0.05, 0.25, 0.5, 0.75, 0.95),
                    keep: int | None = None) -> StabilityResult:
    """Backtest ``make(seed + r)`` for ``r < runs`` on progressively later-starting series (see module docs).

    ``start_shift`` defaults to the season (half the horizon for non-seasonal data); ``keep`` (the shortest a
    series may get) to ``horizon · (windows + 2)``. Forecast sampling uses the same ``seed`` in every run, so
    the spread reflects training alone.
    """
    from chainrule.modalities.series.backtest import backtest

    if runs < 2:
        raise ConfigError(f"a stability check needs at least 2 runs, got {runs}")
    shift = start_shift if start_shift is not None else (ss.season if ss.season > 1 else max(1, horizon // 2))
    keep = keep if keep is not None else horizon * (windows + 2)
    rows, medians, name = [], [], ""
    for r in range(runs):
        f = make(seed + r)
        res = backtest(f, drop_start(ss, r * shift, keep), horizon, windows=windows, num_samples=num_samples,
                       seed=seed, quantiles=quantiles)
        name = res.forecaster
        rows.append({"run": r, "seed": seed + r, "start_shift": r * shift, **res.metrics})
        medians.append(res.points)
    per_run = pd.DataFrame(rows)
    stats = [{"metric": c, "mean": float(per_run[c].mean()), "std": float(per_run[c].std(ddof=1)),
              "min": float(per_run[c].min()), "max": float(per_run[c].max())}
             for c in per_run.columns if c not in ("run", "seed", "start_shift")]
    stacked = np.stack(medians)
    return StabilityResult(forecaster=name, dataset=ss.name, horizon=horizon, runs=per_run,
                           metrics=pd.DataFrame(stats), median_spread=median_spread(stacked), medians=stacked)
