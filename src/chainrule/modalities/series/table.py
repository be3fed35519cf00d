"""Series sets and reading them from CSV or Parquet tables (one or many series, long format)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from chainrule.core.errors import ConfigError, DataError
from chainrule.modalities.series.freq import future_index, grid, infer_freq, season_for

#: a series is reindexed to a regular grid (gaps become NaN) of at most this many points per row: more means a
#: stray timestamp (three rows at times 0, 1 and 500,000,000 would ask for 500 million points), not sparse data
MAX_GRID_PER_ROW = 100


@dataclass
class SeriesSet:
    """One or many univariate series with their times; NaN marks a missing value (never filled with zeros)."""

    name: str
    ids: list[str]
    values: list[np.ndarray]
    times: list[pd.Index]
    freq: str | None
    season: int
    horizon: int | None = None
    covariates: list[np.ndarray] | None = None
    covariate_names: list[str] = field(default_factory=list)
    target: str | None = None

    def __len__(self) -> int:
        return len(self.values)

    def subset(self, idx: Sequence[int] | slice | np.ndarray) -> SeriesSet:
        """The series at positions ``idx`` (a slice, integer positions or a boolean mask)."""
        pos = np.arange(len(self))[idx] if isinstance(idx, slice) else np.asarray(idx)
        if pos.dtype == bool:
            pos = np.flatnonzero(pos)
        pick = [int(i) for i in np.atleast_1d(pos)]
        return replace(self, ids=[self.ids[i] for i in pick], values=[self.values[i] for i in pick],
                       times=[self.times[i] for i in pick],
                       covariates=None if self.covariates is None else [self.covariates[i] for i in pick])

    def truncate(self, cut: Sequence[int] | int, covariate_extra: int = 0) -> SeriesSet:
        """Keep the first ``cut`` (or ``cut[i]``) points of each series; covariates keep ``covariate_extra`` more
        rows (known future covariates for a forecast)."""
        cuts = [int(cut)] * len(self) if np.isscalar(cut) else [int(c) for c in cut]
        if len(cuts) != len(self):
            raise ValueError(f"truncate: {len(cuts)} cuts for {len(self)} series")
        cuts = [c if c >= 0 else max(0, len(v) + c) for c, v in zip(cuts, self.values, strict=True)]
        covs = None
        if self.covariates is not None:
            covs = [c[: k + covariate_extra] for c, k in zip(self.covariates, cuts, strict=True)]
        return replace(self, values=[v[:k] for v, k in zip(self.values, cuts, strict=True)],
                       times=[t[:k] for t, k in zip(self.times, cuts, strict=True)], covariates=covs)

    def lengths(self) -> np.ndarray:
        return np.array([len(v) for v in self.values], dtype=np.int64)

    def future_times(self, i: int, horizon: int) -> pd.Index:
        """The ``horizon`` times following series ``i``."""
        return future_index(self.times[i], self.freq, horizon)


def check_length(ss: SeriesSet, context: int, horizon: int) -> None:
    """DataError naming the file/dataset, the series and the lengths when a series has fewer than
    ``context + horizon`` points."""
    need = context + horizon
    short = [(sid, len(v)) for sid, v in zip(ss.ids, ss.values, strict=True) if len(v) < need]
    if short:
        first, n = short[0]
        more = f" ({len(short)} of {len(ss)} series are too short)" if len(short) > 1 else ""
        column = f" column {ss.target!r}," if ss.target else ""
        raise DataError(f"{ss.name}:{column} series {first!r} has {n} points, fewer than context + horizon = "
                        f"{context} + {horizon} = {need}{more}; shorten --context/--horizon or drop the series")


def read_table(path: str | Path, time: str, target: str, id: str | None = None, covariates: Sequence[str] = (),
               freq: str | None = None) -> SeriesSet:
    """Read a CSV or Parquet table with a time column, a numeric target and optionally a series-id column and
    numeric covariates. Each series is sorted by time and reindexed to its regular grid (gaps become NaN).

    Raises :class:`DataError` naming the file (and column) for a missing, unreadable or empty file, an unknown
    column, a non-numeric target or covariate, an unparseable time or a duplicate timestamp within a series.
    """
    path = Path(path)
    return from_frame(_read_frame(path), str(path), time, target, id, covariates, freq)


def from_frame(frame: pd.DataFrame, name: str, time: str, target: str, id: str | None = None,
               covariates: Sequence[str] = (), freq: str | None = None,
               max_grid_per_row: float = MAX_GRID_PER_ROW) -> SeriesSet:
    """A :class:`SeriesSet` from a long-format data frame; ``name`` (a file or dataset name) prefixes errors.

    Integer time columns (e.g. years) give integer indexes; text or datetime columns give datetime indexes. A
    series whose regular grid would exceed ``max_grid_per_row`` points per row is a :class:`DataError`.
    """
    covariates = [c for c in covariates if c]
    _check_columns(name, frame, {"--time": [time], "--target": [target], "--id": [id] if id else [],
                                 "--covariates": list(covariates)})
    if frame.empty:
        raise DataError(f"{name}: the table has no rows")
    frame = frame.copy()
    frame[time] = _parse_times(name, frame[time], time)
    for column in [target, *covariates]:
        frame[column] = _numeric(name, frame[column], column, "target" if column == target else "covariate")
    if freq is not None:
        freq = _check_freq(name, freq)
    groups = list(frame.groupby(frame[id].astype(str), sort=False)) if id else [(Path(name).stem, frame)]
    ids, indexes, parts = [], [], []
    for sid, part in groups:
        part = part.sort_values(time, kind="stable")
        index = pd.Index(part[time].to_numpy()) if not _is_dated(part[time]) else pd.DatetimeIndex(part[time])
        dup = index.duplicated()
        if dup.any():
            where = f" in series {sid!r} (column {id!r})" if id else ""
            raise DataError(f"{name}: duplicate timestamp {_fmt(index[dup][0])} in column {time!r}{where}")
        _check_grid_size(name, time, str(sid), index, freq, max_grid_per_row)
        ids.append(str(sid))
        indexes.append(index)
        parts.append(part)
    if freq is None:
        freq = infer_freq(indexes)
    values, times, covs = [], [], []
    for sid, index, part in zip(ids, indexes, parts, strict=True):
        full = grid(index, freq) if (freq or not isinstance(index, pd.DatetimeIndex)) else None
        if freq and full is None:
            raise DataError(f"{name}: times in column {time!r} of series {sid!r} are not on a regular {freq!r} grid")
        full = index if full is None else full
        pos = full.get_indexer(index)
        v = np.full(len(full), np.nan)
        v[pos] = part[target].to_numpy(dtype=np.float64)
        if np.isnan(v).all():
            raise DataError(f"{name}: column {target!r} has no values for series {sid!r}")
        values.append(v)
        times.append(full)
        if covariates:
            c = np.full((len(full), len(covariates)), np.nan)
            c[pos] = part[list(covariates)].to_numpy(dtype=np.float64)
            covs.append(c)
    return SeriesSet(name=name, ids=ids, values=values, times=times, freq=freq, season=season_for(freq),
                     covariates=covs if covariates else None, covariate_names=list(covariates), target=target)


def _check_grid_size(name: str, time: str, sid: str, index: pd.Index, freq: str | None, per_row: float) -> None:
    """DataError before the grid is built when it would hold more than ``per_row`` points per row: its finest
    possible step is the smallest gap between times (or ``freq``'s step when that is finer)."""
    if len(index) < 2:
        return
    step = (index[1:] - index[:-1]).min()
    if freq is not None and isinstance(index, pd.DatetimeIndex):
        ahead = pd.date_range(index[0], periods=2, freq=freq)
        step = min(step, ahead[1] - ahead[0])
    points = (index[-1] - index[0]) / step + 1
    if points > per_row * len(index):
        raise DataError(f"{name}: the times in column {time!r} of series {sid!r} span {points:,.0f} steps of "
                        f"{_fmt(step)} from {_fmt(index[0])} to {_fmt(index[-1])} but the series has only "
                        f"{len(index)} rows (at most {per_row:g} steps per row); check for a stray time")


def _read_frame(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        sep = "\t" if suffix == ".tsv" else ","
        return pd.read_csv(path, sep=sep)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty (no header row)") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError) as e:
        kind = "Parquet" if suffix in (".parquet", ".pq") else "CSV"
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(f"{path}: cannot read as {kind} ({first})") from None
    except Exception as e:  # pyarrow raises its own error types for a corrupt Parquet file
        raise DataError(f"{path}: cannot read ({type(e).__name__}: {e})") from None


def _fmt(t) -> str:
    if isinstance(t, pd.Timestamp) and t == t.normalize():
        return str(t.date())
    return str(t)


def _check_columns(path: str, frame: pd.DataFrame, wanted: dict[str, list[str]]) -> None:
    have = [str(c) for c in frame.columns]
    for option, columns in wanted.items():
        for column in columns:
            if column not in frame.columns:
                raise DataError(f"{path}: unknown column {column!r} (given as {option}); columns: {', '.join(have)}")


def _is_dated(column: pd.Series) -> bool:
    return pd.api.types.is_datetime64_any_dtype(column)


def _parse_times(path: str, column: pd.Series, name: str) -> pd.Series:
    """Datetimes, or integers (e.g. years) kept as an integer index; DataError naming the bad row otherwise."""
    missing = column.isna()
    if missing.any():
        raise DataError(f"{path}: column {name!r} has a missing time in data row {int(np.flatnonzero(missing)[0]) + 1}")
    if pd.api.types.is_integer_dtype(column) or (pd.api.types.is_float_dtype(column)
                                                 and np.all(np.mod(column.to_numpy(), 1) == 0)):
        return column.astype(np.int64)
    if _is_dated(column):
        return column.dt.tz_localize(None) if getattr(column.dt, "tz", None) is not None else column
    try:
        parsed = pd.to_datetime(column, errors="coerce", format="mixed")
    except (ValueError, TypeError):
        parsed = pd.Series(pd.NaT, index=column.index)
    bad = parsed.isna()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(f"{path}: column {name!r} is not a time: data row {row + 1} has {column.iloc[row]!r}")
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_convert(None)
    return parsed


def _numeric(path: str, column: pd.Series, name: str, role: str) -> pd.Series:
    if pd.api.types.is_bool_dtype(column):
        return column.astype(np.float64)
    converted = pd.to_numeric(column, errors="coerce")
    bad = converted.isna() & column.notna()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(f"{path}: {role} column {name!r} is not numeric: data row {row + 1} has {column.iloc[row]!r}")
    return converted.astype(np.float64)


def _check_freq(path: str, freq: str) -> str:
    try:
        return pd.tseries.frequencies.to_offset(freq).freqstr
    except ValueError:
        raise ConfigError(f"{path}: --freq {freq!r} is not a pandas frequency (e.g. D, B, W, MS, QS, YS, h)") from None
