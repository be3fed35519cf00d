"""The ``.cr`` file: what a compressed file holds and how it is checked before and after decoding.

Layout (integers little-endian)::

    magic "\\x89CR\\x1a" | format version (1 byte) | run fingerprint (32 bytes, sha256)
    | content checksum (32 bytes, sha256 of the original bytes or pixels) | metadata length (4 bytes)
    | metadata (UTF-8 JSON: the codec, file name(s), lengths or shapes, batch) | payload length in words (4 bytes)
    | payload (32-bit range-coder words) | CRC-32 of everything before it (4 bytes)

The CRC catches truncation and corruption before any decoding; the fingerprint catches the wrong run; the
content checksum, verified after decoding, catches anything else (e.g. a different torch build computing
slightly different probabilities), so a decoder never hands back garbage.
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from chainrule.core.errors import DataError

MAGIC = b"\x89CR\x1a"
FORMAT_VERSION = 1
_FIXED = struct.Struct("<4sB32s32sI")  # magic, version, fingerprint, checksum, metadata length
_WORDS = struct.Struct("<I")
_CRC = struct.Struct("<I")


class CompressedFileError(DataError):
    """A ``.cr`` file that cannot be decoded as asked: not one, truncated, corrupt, or for another run."""


@dataclass(frozen=True)
class Container:
    """One compressed file: the run it needs, the checksum of what it holds, the codec's metadata, the payload."""

    fingerprint: bytes
    checksum: bytes
    metadata: dict[str, Any]
    words: np.ndarray

    def _metadata_bytes(self) -> bytes:
        return json.dumps(self.metadata, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()

    def to_bytes(self) -> bytes:
        meta = self._metadata_bytes()
        words = np.asarray(self.words, dtype="<u4")
        body = b"".join([_FIXED.pack(MAGIC, FORMAT_VERSION, self.fingerprint, self.checksum, len(meta)), meta,
                         _WORDS.pack(len(words)), words.tobytes()])
        return body + _CRC.pack(zlib.crc32(body))

    @property
    def header_bytes(self) -> int:
        """Bytes of the file that are not payload (the constant overhead)."""
        return _FIXED.size + len(self._metadata_bytes()) + _WORDS.size + _CRC.size

    @classmethod
    def from_bytes(cls, data: bytes, where: str = "compressed file") -> Container:
        """Parse and check a ``.cr`` file; :class:`CompressedFileError` (one line, naming ``where``) otherwise."""
        if len(data) < len(MAGIC) or data[:len(MAGIC)] != MAGIC:
            raise CompressedFileError(f"{where}: not a chainrule compressed file (.cr)")
        if len(data) < _FIXED.size:
            raise CompressedFileError(f"{where}: truncated ({len(data)} bytes)")
        _, version, fingerprint, checksum, meta_len = _FIXED.unpack_from(data)
        if version != FORMAT_VERSION:
            raise CompressedFileError(f"{where}: format version {version}; this chainrule reads version "
                                      f"{FORMAT_VERSION}")
        at = _FIXED.size + meta_len
        if len(data) < at + _WORDS.size:
            raise CompressedFileError(f"{where}: truncated ({len(data)} bytes)")
        (n_words,) = _WORDS.unpack_from(data, at)
        end = at + _WORDS.size + 4 * n_words
        if len(data) < end + _CRC.size:
            raise CompressedFileError(f"{where}: truncated ({len(data)} of {end + _CRC.size} bytes)")
        if len(data) > end + _CRC.size:
            raise CompressedFileError(f"{where}: corrupt ({len(data) - end - _CRC.size} unexpected trailing bytes)")
        if _CRC.unpack_from(data, end)[0] != zlib.crc32(data[:end]):
            raise CompressedFileError(f"{where}: corrupt (CRC-32 mismatch: the file was damaged)")
        try:
            metadata = json.loads(data[_FIXED.size:at].decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            metadata = None
        if not isinstance(metadata, dict):
            raise CompressedFileError(f"{where}: corrupt metadata")
        words = np.frombuffer(data, dtype="<u4", count=n_words, offset=at + _WORDS.size).copy()
        return cls(fingerprint=fingerprint, checksum=checksum, metadata=metadata, words=words)
