"""Frequency inference and regular time grids for series indexes (pandas offset aliases)."""

from __future__ import annotations

import numpy as np
import pandas as pd

_SEASONS = {"D": 7, "B": 5, "W": 52, "MS": 12, "ME": 12, "M": 12, "SMS": 24, "SME": 24, "QS": 4, "QE": 4, "Q": 4,
            "YS": 1, "YE": 1, "Y": 1, "A": 1, "AS": 1, "h": 24, "H": 24, "min": 60, "T": 60, "s": 60, "S": 60}
_MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
_DAYS = ["MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"]


def season_for(freq: str | None) -> int:
    """Seasonal period for an offset alias: 7 daily, 5 business-daily, 52 weekly, 12 monthly, 4 quarterly,
    1 yearly, 24 hourly (24/n for n-hourly), 1 when unknown."""
    if not freq:
        return 1
    try:
        off = pd.tseries.frequencies.to_offset(freq)
    except ValueError:
        return 1
    base = off.name.split("-")[0]
    season = _SEASONS.get(base, 1)
    if base in ("h", "H") and off.n > 1:
        season = 24 // off.n if 24 % off.n == 0 else 1
    elif off.n > 1:
        season = max(1, season // off.n) if season % off.n == 0 else 1
    return season


def grid(index: pd.Index, freq: str | None) -> pd.Index | None:
    """The regular grid from the first to the last time of ``index`` at ``freq`` when every time of ``index``
    lies on it, else None. Integer indexes use a step (``freq`` None: the smallest difference)."""
    if len(index) == 0:
        return None
    if not isinstance(index, pd.DatetimeIndex):
        values = np.asarray(index, dtype=np.int64)
        if len(values) == 1:
            return pd.RangeIndex(values[0], values[0] + 1)
        step = int(np.diff(values).min())
        if step <= 0 or np.any((values - values[0]) % step):
            return None
        return pd.RangeIndex(values[0], values[-1] + step, step)
    if freq is None:
        return None
    try:
        full = pd.date_range(index[0], index[-1], freq=freq)
    except ValueError:
        return None
    if len(full) == 0 or full[0] != index[0] or not index.isin(full).all():
        return None
    return full


def _candidates(index: pd.DatetimeIndex) -> list[str]:
    first = index[0]
    step = (index[1:] - index[:-1]).min()
    fixed = pd.tseries.frequencies.to_offset(step).freqstr
    if step < pd.Timedelta(days=1) or step % pd.Timedelta(days=1):
        return [fixed]
    mon = _MONTHS[first.month - 1]
    qs, qe = _MONTHS[(first.month - 1) % 3], _MONTHS[(first.month - 1) % 3 + 9]  # canonical quarter anchors
    return ["B", "D", f"W-{_DAYS[first.dayofweek]}", "MS", "ME", f"QS-{qs}", f"QE-{qe}", f"YS-{mon}",
            f"YE-{mon}", fixed]


def infer_freq(indexes: list[pd.Index]) -> str | None:
    """The coarsest offset alias on whose grid every time of every index lies (gaps allowed), or None
    (irregular times or integer indexes)."""
    dated = [ix for ix in indexes if isinstance(ix, pd.DatetimeIndex) and len(ix) >= 2]
    if not dated:
        return None
    longest = max(dated, key=len)
    guess = pd.infer_freq(longest) if len(longest) >= 3 else None
    options = ([guess] if guess else []) + _candidates(longest)
    best: tuple[int, str] | None = None
    for freq in options:
        grids = [grid(ix, freq) for ix in dated]
        if all(g is not None for g in grids):
            size = sum(len(g) for g in grids)
            if best is None or size < best[0]:
                best = (size, freq)
    return best[1] if best else None


def future_index(index: pd.Index, freq: str | None, horizon: int) -> pd.Index:
    """The ``horizon`` times after the end of ``index`` (integer steps when there is no datetime frequency)."""
    if isinstance(index, pd.DatetimeIndex) and freq:
        return pd.date_range(index[-1], periods=horizon + 1, freq=freq)[1:]
    if isinstance(index, pd.DatetimeIndex):
        step = (index[-1] - index[-2]) if len(index) > 1 else pd.Timedelta(days=1)
        return pd.DatetimeIndex([index[-1] + step * (k + 1) for k in range(horizon)])
    values = np.asarray(index, dtype=np.int64)
    step = int(values[-1] - values[-2]) if len(values) > 1 else 1
    return pd.RangeIndex(values[-1] + step, values[-1] + step * (horizon + 1), step)
