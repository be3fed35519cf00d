"""Reading series tables: grids, gaps as missing values, frequencies, and one clear error per kind of bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from chainrule.core.errors import ChainruleError, ConfigError, DataError
from chainrule.modalities.series.freq import infer_freq, season_for
from chainrule.modalities.series.table import check_length, read_table


def _write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_long_table_with_ids_gaps_and_covariates(tmp_path):
    months = pd.date_range("2020-01-01", periods=24, freq="MS")
    frame = pd.DataFrame({"month": list(months) + list(months[:10]), "shop": ["a"] * 24 + ["b"] * 10,
                          "sales": np.arange(34.0), "promo": np.arange(34) % 2})
    frame = frame.drop(index=[5, 30]).sample(frac=1.0, random_state=0)  # a gap in each series, shuffled rows
    frame.loc[frame.index == 7, "sales"] = np.nan  # an empty cell
    path = tmp_path / "shops.csv"
    frame.to_csv(path, index=False)
    ss = read_table(path, time="month", target="sales", id="shop", covariates=["promo"])
    assert ss.ids == ["a", "b"] or sorted(ss.ids) == ["a", "b"]
    a = ss.values[ss.ids.index("a")]
    b = ss.values[ss.ids.index("b")]
    assert ss.freq == "MS" and ss.season == 12 and len(a) == 24 and len(b) == 10
    assert np.isnan(a[5]) and np.isnan(a[7]) and np.isnan(b[30 - 24])  # missing, never zero-filled
    np.testing.assert_array_equal(np.delete(a, [5, 7]), np.delete(np.arange(24.0), [5, 7]))
    assert ss.covariates[ss.ids.index("a")].shape == (24, 1) and ss.covariate_names == ["promo"]
    assert ss.times[0][0] == pd.Timestamp("2020-01-01") and ss.name == str(path) and ss.target == "sales"


def test_parquet_and_business_days(tmp_path):
    days = pd.bdate_range("2021-01-04", periods=30).delete([4, 12])  # two weekday holidays
    path = tmp_path / "stock.parquet"
    pd.DataFrame({"Date": days, "Close": np.linspace(1, 2, 28)}).to_parquet(path)
    ss = read_table(path, time="Date", target="Close")
    assert ss.freq == "B" and ss.season == 5 and len(ss.values[0]) == 30 and np.isnan(ss.values[0]).sum() == 2


def test_integer_years_and_explicit_freq(tmp_path):
    path = _write(tmp_path, "years.csv", "year,v\n1990,1\n1991,2\n1993,4\n")
    ss = read_table(path, time="year", target="v")
    assert list(ss.times[0]) == [1990, 1991, 1992, 1993] and np.isnan(ss.values[0][2])
    path = _write(tmp_path, "weekly.csv", "t,v\n2020-01-04,1\n2020-01-11,2\n2020-01-25,3\n")
    assert read_table(path, time="t", target="v", freq="W-SAT").values[0].shape == (4,)
    with pytest.raises(DataError, match="weekly.csv.*'t'.*'D'|weekly.csv.*not on"):
        read_table(path, time="t", target="v", freq="MS")
    with pytest.raises(ConfigError, match="--freq"):
        read_table(path, time="t", target="v", freq="fortnightly")


def test_infer_freq_and_season():
    assert infer_freq([pd.DatetimeIndex(["2020-01-01", "2020-01-02", "2020-01-05"])]) == "D"
    assert infer_freq([pd.date_range("2000-03-31", periods=6, freq="QE-DEC").delete(2)]) == "QE-DEC"
    assert infer_freq([pd.date_range("2000-01-01 00:00", periods=5, freq="15min").delete(1)]) == "15min"
    assert season_for("MS") == 12 and season_for("W-SUN") == 52 and season_for("2h") == 12 and season_for(None) == 1


BAD = {
    "nonnumeric.csv": ("Date,Close\n2020-01-01,1\n2020-01-02,abc\n", {}, ["nonnumeric.csv", "'Close'", "abc"]),
    "duplicate.csv": ("Date,Close\n2020-01-01,1\n2020-01-02,2\n2020-01-02,3\n", {},
                      ["duplicate.csv", "duplicate timestamp 2020-01-02", "'Date'"]),
    "dup_in_series.csv": ("Date,id,Close\n2020-01-01,x,1\n2020-01-01,y,2\n2020-01-01,y,3\n", {"id": "id"},
                          ["dup_in_series.csv", "'Date'", "series 'y'"]),
    "unknown_target.csv": ("Date,Close\n2020-01-01,1\n", {"target": "Price"}, ["unknown_target.csv", "'Price'",
                                                                               "--target", "Date, Close"]),
    "unknown_time.csv": ("Day,Close\n2020-01-01,1\n", {}, ["unknown_time.csv", "'Date'", "--time"]),
    "unknown_id.csv": ("Date,Close\n2020-01-01,1\n", {"id": "ticker"}, ["unknown_id.csv", "'ticker'", "--id"]),
    "unknown_cov.csv": ("Date,Close\n2020-01-01,1\n", {"covariates": ["Volume"]},
                        ["unknown_cov.csv", "'Volume'", "--covariates"]),
    "nonnumeric_cov.csv": ("Date,Close,Vol\n2020-01-01,1,high\n", {"covariates": ["Vol"]},
                           ["nonnumeric_cov.csv", "'Vol'", "high"]),
    "bad_time.csv": ("Date,Close\n2020-01-01,1\nyesterday,2\n", {}, ["bad_time.csv", "'Date'", "yesterday"]),
    "missing_time.csv": ("Date,Close\n2020-01-01,1\n,2\n", {}, ["missing_time.csv", "'Date'", "missing time"]),
    "malformed.csv": ('Date,Close\n2020-01-01,1\n"2020-01-02,2\n', {}, ["malformed.csv", "cannot read"]),
    "empty.csv": ("", {}, ["empty.csv", "empty"]),
    "blank.csv": ("\n\n", {}, ["blank.csv", "empty"]),
    "header_only.csv": ("Date,Close\n", {}, ["header_only.csv", "no rows"]),
    "all_missing.csv": ("Date,Close\n2020-01-01,\n2020-01-02,\n", {}, ["all_missing.csv", "'Close'", "no values"]),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_tables_give_clear_errors(tmp_path, name):
    text, options, fragments = BAD[name]
    path = _write(tmp_path, name, text)
    kwargs = {"time": "Date", "target": "Close", **options}
    with pytest.raises(DataError) as info:
        read_table(path, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message


def test_unreadable_files(tmp_path):
    binary = tmp_path / "binary.csv"
    binary.write_bytes(bytes(range(256)) * 8)
    corrupt = tmp_path / "corrupt.parquet"
    corrupt.write_bytes(b"PAR1 this is not parquet")
    for path in (binary, corrupt, tmp_path / "absent.csv"):
        with pytest.raises(DataError, match=path.name):
            read_table(path, time="Date", target="Close")


def test_check_length_names_series_and_lengths(tmp_path):
    rows = ["t,id,v"] + [f"2020-01-{d:02d},long,{d}" for d in range(1, 29)] + [f"2020-01-0{d},short,{d}"
                                                                              for d in range(1, 6)]
    path = _write(tmp_path, "two.csv", "\n".join(rows) + "\n")
    ss = read_table(path, time="t", target="v", id="id")
    check_length(ss, context=3, horizon=2)
    with pytest.raises(DataError) as info:
        check_length(ss, context=10, horizon=5)
    message = str(info.value)
    for fragment in ("two.csv", "'v'", "'short'", "5 points", "10 + 5 = 15"):
        assert fragment in message, message
    assert isinstance(info.value, ChainruleError)


def test_truncate_and_subset(tmp_path):
    rows = ["t,id,v,c"] + [f"2020-01-{d:02d},{k},{d},{-d}" for k in "ab" for d in range(1, 11)]
    ss = read_table(_write(tmp_path, "t.csv", "\n".join(rows) + "\n"), time="t", target="v", id="id",
                    covariates=["c"])
    cut = ss.truncate([4, 6], covariate_extra=2)
    assert [len(v) for v in cut.values] == [4, 6] and [len(t) for t in cut.times] == [4, 6]
    assert [c.shape[0] for c in cut.covariates] == [6, 8]
    assert [len(v) for v in ss.truncate(-3).values] == [7, 7]
    sub = ss.subset([1])
    assert sub.ids == [ss.ids[1]] and len(sub) == 1 and sub.values[0] is ss.values[1]
    assert list(ss.future_times(0, 2)) == list(pd.date_range("2020-01-11", periods=2, freq="D"))
