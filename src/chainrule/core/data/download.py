"""Checksummed, cached, atomic downloads of dataset files.

The cache directory is the ``root`` option, else ``$CHAINRULE_DATA``, else ``~/.cache/chainrule/datasets``.
``CHAINRULE_OFFLINE=1`` forbids downloads. A download goes to a temporary file in the target directory, is
checked against its sha256 and only then renamed into place, so an interrupted run never leaves a file
that looks complete. The function doing the transfer is injectable (tests pass one that never touches the
network).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

from chainrule.core.errors import DataError

#: ``downloader(url, dest)`` writes the resource at ``url`` to the file ``dest`` or raises OSError.
Downloader = Callable[[str, Path], None]


class DownloadUnavailable(DataError):
    """No copy could be fetched (offline, or every mirror failed with a network error)."""


def cache_root(root: str | Path | None = None) -> Path:
    """The dataset cache directory (not created)."""
    if root:
        return Path(root).expanduser()
    env = os.environ.get("CHAINRULE_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "chainrule" / "datasets"


def offline_requested() -> bool:
    """True when ``CHAINRULE_OFFLINE`` is set to 1/true/yes/on."""
    return os.environ.get("CHAINRULE_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify_sha256(path: Path, expected: str) -> None:
    """Raise :class:`DataError` naming ``path`` if its sha256 is not ``expected``."""
    got = sha256_of(path)
    if got != expected.lower():
        raise DataError(f"{path}: sha256 mismatch (expected {expected}, got {got}); delete the file to "
                        f"download it again")


def urllib_download(url: str, dest: Path, timeout: float = 60.0) -> None:
    """Default downloader: stream ``url`` to ``dest`` with a tqdm progress bar."""
    from tqdm import tqdm

    request = urllib.request.Request(url, headers={"User-Agent": "chainrule"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response, open(dest, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=url.rsplit("/", 1)[-1], leave=False) as bar:
                for chunk in iter(lambda: response.read(1 << 16), b""):
                    out.write(chunk)
                    bar.update(len(chunk))
    except http.client.HTTPException as e:  # not an OSError; normalise for the caller
        raise OSError(f"{type(e).__name__}: {e}") from e


def fetch(filename: str, urls: Sequence[str], sha256: str, directory: Path, *, download: bool = True,
          downloader: Downloader | None = None) -> Path:
    """``directory/filename``, downloading it from the first working mirror in ``urls`` if absent.

    A cached file with a wrong checksum raises :class:`DataError` (it is never silently replaced). Raises
    :class:`DownloadUnavailable` when the file is absent and cannot be fetched, :class:`DataError` when
    every mirror served bytes with the wrong checksum.
    """
    target = directory / filename
    if target.is_file():
        verify_sha256(target, sha256)
        return target
    if not download:
        raise DownloadUnavailable(f"{target}: not cached and downloads are disabled")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DownloadUnavailable(f"{directory}: cannot create the cache directory ({e})") from None
    get = downloader or urllib_download
    failures: list[str] = []
    bad_checksum = False
    for url in urls:
        tmp = directory / f".{filename}.{os.getpid()}.part"
        try:
            get(url, tmp)
            verify_sha256(tmp, sha256)
        except DataError as e:
            bad_checksum = True
            failures.append(f"{url}: {str(e).split(': ', 1)[-1]}")
        except OSError as e:
            failures.append(f"{url}: {e}")
        else:
            os.replace(tmp, target)
            return target
        finally:
            tmp.unlink(missing_ok=True)
    error = DataError if bad_checksum else DownloadUnavailable
    raise error(f"{target}: download failed ({'; '.join(failures)})")
