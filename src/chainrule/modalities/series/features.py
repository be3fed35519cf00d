"""Model inputs of the neural forecasters: scale, lags, calendar features, covariates and windows.

Conventions (documented once, used by training and forecasting alike):

- **window**: ``history = max(lags) + context`` points before the forecast origin, then ``horizon`` steps.
  Training windows have ``history + horizon`` points; the loss covers the last ``context + horizon`` of them
  (the first ``max(lags)`` only feed the lag inputs). Positions before a series' first point are missing.
- **scale** (per window, DeepAR-style): ``scale_offset + mean |y|`` over the observed values of the
  ``context`` points before the origin (over the whole history when none is observed); 1 when that is 0 or
  undefined. ``scale_offset`` is 1 for the negative-binomial head (as in DeepAR), else 0. Only values
  before the origin enter it, so a forecast never depends on what follows the origin.
- **lag inputs**: for each lag ``l``, the scaled value ``y[t-l] / scale`` and an observed flag. A missing
  value's input is the last observed value (0 before the first), always with flag 0; missing *targets* are
  masked out of the loss, never replaced.
- **time features**: calendar sin/cos pairs chosen from the frequency (none for integer indexes or unknown
  frequencies), then covariates standardised with the training set's mean and std (missing -> 0).
- **static**: ``log1p(scale)`` is appended to every step's input by the model.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from chainrule.core.contract import Condition
from chainrule.core.errors import DataError
from chainrule.modalities.series.table import SeriesSet

_SUB_HOURLY = ("min", "T", "s", "S", "ms", "L", "us", "U", "ns", "N")
_MONTHLY = ("M", "MS", "ME", "BM", "BMS", "BME", "CBMS", "CBME", "SM", "SMS", "SME")
_QUARTERLY = ("Q", "QS", "QE", "BQ", "BQS", "BQE")
_YEARLY = ("A", "AS", "Y", "YS", "YE", "BA", "BAS", "BY", "BYS", "BYE")

#: calendar feature -> (value from a DatetimeIndex, period)
CALENDAR: dict[str, tuple[Any, float]] = {
    "hour_of_day": (lambda ix: ix.hour + ix.minute / 60.0, 24.0),
    "day_of_week": (lambda ix: ix.dayofweek, 7.0),
    "day_of_year": (lambda ix: ix.dayofyear - 1, 365.25),
    "week_of_year": (lambda ix: ix.isocalendar().week.to_numpy() - 1, 52.18),
    "month_of_year": (lambda ix: ix.month - 1, 12.0),
    "quarter_of_year": (lambda ix: ix.quarter - 1, 4.0),
}


def _base(freq: str | None) -> tuple[str, int] | None:
    if not freq:
        return None
    try:
        off = pd.tseries.frequencies.to_offset(freq)
    except ValueError:
        return None
    return off.name.split("-")[0], off.n


def default_lags(freq: str | None, season: int) -> list[int]:
    """Lags from the frequency: hourly 1,24,168; daily 1,7,14,28; business-daily 1,5,10,20; weekly 1,4,52;
    monthly 1,12,24; quarterly 1,4,8; yearly 1; otherwise 1 and the season."""
    b = _base(freq)
    if b is not None and b[1] == 1:
        base = b[0]
        if base in ("h", "H"):
            return [1, 24, 168]
        if base == "D":
            return [1, 7, 14, 28]
        if base in ("B", "C"):
            return [1, 5, 10, 20]
        if base == "W":
            return [1, 4, 52]
        if base in _MONTHLY:
            return [1, 12, 24]
        if base in _QUARTERLY:
            return [1, 4, 8]
        if base in _YEARLY:
            return [1]
    return [1, season] if season > 1 else [1]


def calendar_names(freq: str | None) -> list[str]:
    """Calendar features for a frequency (empty for yearly, integer-indexed or unknown frequencies)."""
    b = _base(freq)
    if b is None:
        return []
    base = b[0]
    if base in ("h", "H") or base in _SUB_HOURLY:
        return ["hour_of_day", "day_of_week"]
    if base in ("D", "B", "C"):
        return ["day_of_week", "day_of_year"]
    if base == "W":
        return ["week_of_year"]
    if base in _MONTHLY:
        return ["month_of_year"]
    if base in _QUARTERLY:
        return ["quarter_of_year"]
    return []


def calendar_features(index: pd.Index, names: list[str]) -> np.ndarray:
    """``(T, 2·len(names))`` sin/cos of each calendar feature of a DatetimeIndex."""
    if not names:
        return np.zeros((len(index), 0), dtype=np.float32)
    if not isinstance(index, pd.DatetimeIndex):
        raise DataError(f"calendar features {', '.join(names)} need datetime timestamps, got an integer index")
    cols = []
    for name in names:
        fn, period = CALENDAR[name]
        angle = 2 * math.pi * np.asarray(fn(index), dtype=np.float64) / period
        cols += [np.sin(angle), np.cos(angle)]
    return np.stack(cols, axis=1).astype(np.float32)


def extended_index(index: pd.Index, freq: str | None, before: int, after: int) -> pd.Index | None:
    """``index`` with ``before`` earlier and ``after`` later times on the ``freq`` grid (None without freq)."""
    if not isinstance(index, pd.DatetimeIndex) or not freq:
        return None
    start = pd.date_range(end=index[0], periods=before + 1, freq=freq)[0] if before else index[0]
    return pd.date_range(start, periods=before + len(index) + after, freq=freq)


@dataclass
class FeatureSpec:
    """Everything needed to turn a series into model inputs; saved in a run's ``config.yaml`` spec."""

    context: int
    horizon: int
    lags: list[int]
    freq: str | None = None
    season: int = 1
    calendar: list[str] = field(default_factory=list)
    covariates: list[str] = field(default_factory=list)
    covariate_mean: list[float] = field(default_factory=list)
    covariate_std: list[float] = field(default_factory=list)
    scale_offset: float = 0.0

    @property
    def max_lag(self) -> int:
        return max(self.lags)

    @property
    def history(self) -> int:
        """Points before the forecast origin fed to the model."""
        return self.max_lag + self.context

    @property
    def num_time_features(self) -> int:
        return 2 * len(self.calendar) + len(self.covariates)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeatureSpec:
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in names})

    @classmethod
    def for_series(cls, ss: SeriesSet, context: int, horizon: int, lags: list[int] | None = None,
                   scale_offset: float = 0.0, calendar: bool = True) -> FeatureSpec:
        """Lags and calendar features from the set's frequency; covariate statistics from its values."""
        lags = sorted({int(v) for v in (lags or default_lags(ss.freq, ss.season))})
        if not lags or lags[0] < 1:
            raise DataError(f"{ss.name}: lags must be positive integers, got {lags}")
        dated = all(isinstance(t, pd.DatetimeIndex) for t in ss.times)
        mean, std = [], []
        if ss.covariates is not None and ss.covariate_names:
            stacked = np.concatenate([c[: len(v)] for c, v in zip(ss.covariates, ss.values, strict=True)])
            with np.errstate(all="ignore"):
                mean = np.nan_to_num(np.nanmean(stacked, axis=0)).tolist()
                std = np.nan_to_num(np.nanstd(stacked, axis=0), nan=1.0).tolist()
            std = [s if s > 0 else 1.0 for s in std]
        return cls(context=int(context), horizon=int(horizon), lags=lags, freq=ss.freq, season=int(ss.season),
                   calendar=calendar_names(ss.freq) if calendar and dated else [],
                   covariates=list(ss.covariate_names) if ss.covariates is not None else [],
                   covariate_mean=[float(m) for m in mean], covariate_std=[float(s) for s in std],
                   scale_offset=float(scale_offset))

    # ------------------------------------------------------------------ per-series arrays
    def time_rows(self, ss: SeriesSet, i: int, before: int, after: int, where: str = "") -> np.ndarray:
        """Time features ``(before + T_i + after, F)`` of series ``i``: calendar of the (extended) timestamps,
        then standardised covariates (0 outside the known rows; ``after`` rows must be known)."""
        n = len(ss.values[i])
        rows = np.zeros((before + n + after, self.num_time_features), dtype=np.float32)
        if self.calendar:
            ix = extended_index(ss.times[i], self.freq, before, after)
            if ix is None:
                raise DataError(f"{ss.name}: the model uses calendar features ({', '.join(self.calendar)}) but the "
                                f"series {ss.ids[i]!r} has no regular datetime index")
            rows[:, : 2 * len(self.calendar)] = calendar_features(ix, self.calendar)
        if self.covariates:
            cov = None if ss.covariates is None else ss.covariates[i]
            if cov is None or cov.shape[1] != len(self.covariates):
                raise DataError(f"{ss.name}: the model needs covariates {', '.join(self.covariates)}")
            if len(cov) < n + after:
                raise DataError(f"{ss.name}: series {ss.ids[i]!r} needs covariates {', '.join(self.covariates)} for "
                                f"the {after} forecast steps after its last target value{where}; add those rows "
                                "with an empty target")
            c = (cov[: n + after] - np.asarray(self.covariate_mean)) / np.asarray(self.covariate_std)
            rows[before:, 2 * len(self.calendar):] = np.nan_to_num(c, nan=0.0, posinf=0.0, neginf=0.0)
        return rows


def context_scale(y: Tensor, context: int, offset: float = 0.0) -> Tensor:
    """Per-row scale ``(B,)`` from the last ``context`` columns of ``y`` ``(B, T)`` (see the module docs)."""
    def mean_abs(v: Tensor) -> tuple[Tensor, Tensor]:
        obs = torch.isfinite(v)
        n = obs.sum(1)
        return torch.where(obs, v.abs(), 0).sum(1) / n.clamp(min=1), n

    m_ctx, n_ctx = mean_abs(y[:, -context:] if context > 0 else y[:, :0])
    m_all, _ = mean_abs(y)
    s = torch.where(n_ctx > 0, m_ctx, m_all) + offset
    return torch.where(torch.isfinite(s) & (s > 0), s, torch.ones_like(s)).detach()


def ffill_scaled(y: Tensor, scale: Tensor) -> tuple[Tensor, Tensor]:
    """``y / scale`` with missing values replaced by the last observed one (0 before the first), and the
    observed mask; both ``(B, T)``."""
    z = y / scale[:, None]
    obs = torch.isfinite(z)
    pos = torch.arange(z.shape[1], device=z.device).expand_as(z)
    last = torch.where(obs, pos, -1).cummax(dim=1).values
    filled = torch.gather(torch.where(obs, z, 0.0), 1, last.clamp(min=0))
    return torch.where(last >= 0, filled, 0.0), obs


def lag_inputs(zf: Tensor, obs: Tensor, lags: list[int]) -> Tensor:
    """Teacher-forced lag inputs ``(B, T, 2·len(lags))``: ``[z[t-l], observed[t-l]]`` per lag, 0 before 0."""
    b, t = zf.shape
    cols = []
    o = obs.to(zf.dtype)
    for lag in lags:  # a loop over lags, not over time
        k = min(lag, t)
        pad = zf.new_zeros(b, k)
        cols += [torch.cat([pad, zf[:, : t - k]], 1), torch.cat([pad, o[:, : t - k]], 1)]
    return torch.stack(cols, dim=-1)


def lag_inputs_at(zf: Tensor, obs: Tensor, t: int, lags: list[int]) -> Tensor:
    """The lag inputs ``(B, 2·len(lags))`` of position ``t`` from buffers holding positions ``< t``."""
    cols = []
    for lag in lags:
        if t - lag >= 0:
            cols += [zf[:, t - lag], obs[:, t - lag].to(zf.dtype)]
        else:
            cols += [zf.new_zeros(zf.shape[0]), zf.new_zeros(zf.shape[0])]
    return torch.stack(cols, dim=-1)


# ---------------------------------------------------------------------------- model inputs
class TrainingWindows:
    """Every training window of a series set as an indexed dataset: window ``i`` is a fixed (series, end) pair.

    Windows have ``history + horizon`` steps; ends range from ``min(T_i, context + horizon)`` to ``T_i``, so
    indexing ``range(len(self))`` uniformly (the trainer's seeded per-epoch permutation) weights series by their
    length, and a resumed run continues from the same data position. All series are stored flat (each
    left-padded with ``history + horizon`` missing steps), so a batch is one vectorised gather. ``get`` returns
    the targets ``y`` ``(B, T)`` (NaN = missing) and their :class:`Condition` (time features, per-window scale,
    and ``observed``: the last ``context + horizon`` steps where a value is known).

    A set with fewer windows than ``min_size`` (one training batch) lists each window ``repeats`` times, so
    short series still train with the configured batch size (some batches then hold a window twice).
    """

    labels = None

    def __init__(self, ss: SeriesSet, spec: FeatureSpec, min_size: int = 1) -> None:
        self.spec = spec
        self.name = ss.name
        self.num_series = len(ss)
        self.width = spec.history + spec.horizon
        pad = self.width
        lengths = ss.lengths()
        if len(ss) == 0 or lengths.max(initial=0) == 0:
            raise DataError(f"{ss.name}: no series to train on")
        self.offsets = np.concatenate([[0], np.cumsum(lengths + pad)[:-1]]).astype(np.int64)
        self.values = torch.from_numpy(np.concatenate(
            [np.concatenate([np.full(pad, np.nan), v]) for v in ss.values]).astype(np.float32))
        self.feats = torch.from_numpy(np.concatenate(
            [spec.time_rows(ss, i, pad, 0) for i in range(len(ss))]).astype(np.float32))
        self.first_end = np.minimum(lengths, spec.context + spec.horizon).clip(min=1)
        self.counts = np.where(lengths > 0, lengths - self.first_end + 1, 0)
        self.cum = np.cumsum(self.counts)
        self.repeats = max(1, math.ceil(min_size / self.num_windows))

    @property
    def num_windows(self) -> int:
        """Distinct windows (``len`` counts each of them ``repeats`` times)."""
        return int(self.cum[-1])

    @property
    def event_shape(self) -> tuple[int]:
        return (self.width,)

    def __len__(self) -> int:
        return self.num_windows * self.repeats

    def set_epoch(self, epoch: int) -> None:
        """Windows are fixed; nothing changes between epochs."""

    def describe(self) -> str:
        return f"{self.name}: {self.num_windows} windows of {self.width} steps from {self.num_series} series"

    def locate(self, indices: Tensor) -> tuple[np.ndarray, np.ndarray]:
        """(series, end) of each window index."""
        u = np.asarray(indices, dtype=np.int64) % self.num_windows
        series = np.searchsorted(self.cum, u, side="right")
        return series, self.first_end[series] + (u - (self.cum[series] - self.counts[series]))

    def get(self, indices: Tensor) -> tuple[Tensor, Condition]:
        return self.gather(*self.locate(indices))

    def gather(self, series: np.ndarray, ends: np.ndarray) -> tuple[Tensor, Condition]:
        """Windows ending (exclusive) at ``ends`` of ``series``; scored over the last context + horizon steps."""
        start = self.offsets[series] + ends  # padded coordinates: window = [start, start + width)
        idx = torch.from_numpy(start[:, None] + np.arange(self.width)[None, :])
        y = self.values[idx]
        spec = self.spec
        scale = context_scale(y[:, : spec.history], spec.context, spec.scale_offset)
        observed = torch.isfinite(y)
        observed[:, : spec.max_lag] = False
        return y, Condition(time_features=self.feats[idx], scale=scale, observed=observed)


def history_batch(ss: SeriesSet, spec: FeatureSpec, horizon: int) -> tuple[Tensor, Condition]:
    """Forecast inputs: the last ``history`` points of each series, ``y`` ``(S, history)`` left-padded with
    missing values, and their :class:`Condition`: time features for those points and ``horizon`` more
    ``(S, history + horizon, F)`` and the scale."""
    hist = spec.history
    ys, feats = [], []
    for i, v in enumerate(ss.values):
        n = len(v)
        if n == 0 or not np.isfinite(v).any():
            raise DataError(f"{ss.name}: series {ss.ids[i]!r} has no observed values to forecast from")
        pad = max(0, hist - n)
        ys.append(np.concatenate([np.full(pad, np.nan), v[-hist:]]))
        rows = spec.time_rows(ss, i, pad, horizon)
        feats.append(rows[len(rows) - hist - horizon:])
    y = torch.from_numpy(np.stack(ys).astype(np.float32))
    scale = context_scale(y, spec.context, spec.scale_offset)
    return y, Condition(time_features=torch.from_numpy(np.stack(feats)), scale=scale)
