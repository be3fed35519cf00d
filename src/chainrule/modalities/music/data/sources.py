"""Where pieces come from: music21's bundled corpus (Bach chorales, Essen folksongs) and folders of MIDI files.

Parsing the corpus takes minutes (about 0.3 s per chorale, 0.2 s per folksong), so each collection is parsed
once and cached as one ``.npz`` of note lists under ``$CHAINRULE_DATA/music`` (the dataset cache directory);
MIDI folders are read directly (reading MIDI is fast).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np

from chainrule.core.data.download import cache_root
from chainrule.core.errors import DataError
from chainrule.core.runs.atomic import atomic_write_bytes
from chainrule.modalities.music.data.piece import Piece, pack, unpack

CACHE_VERSION = 1
MIDI_SUFFIXES = (".mid", ".midi")


def cached_pieces(key: str, parse: Callable[[], list[Piece]], root: str | Path | None = None) -> list[Piece]:
    """The pieces of collection ``key``, parsed by ``parse`` on the first call and read from the cache after."""
    path = cache_root(root) / "music" / f"{key}-v{CACHE_VERSION}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as f:
                return unpack({k: f[k] for k in f.files})
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache is parsed again
    pieces = parse()
    buf = io.BytesIO()
    np.savez_compressed(buf, **pack(pieces))
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buf.getvalue())
    return pieces


def score_to_piece(score, name: str) -> Piece:  # noqa: ANN001 (a music21 Score or Part)
    """Every note of every part of a music21 score (ties merged), shifted so that bar lines fall at multiples of
    the first time signature's bar length."""
    from music21 import meter, stream

    parts = list(score.parts) if isinstance(score, stream.Score) else [score]
    sigs = list(score.recurse().getElementsByClass(meter.TimeSignature))
    bar = float(sigs[0].barDuration.quarterLength) if sigs else 4.0
    rows: list[tuple[float, float, int, int]] = []
    shift = 0.0
    for voice, part in enumerate(parts):
        measures = list(part.getElementsByClass(stream.Measure))
        if voice == 0 and measures:
            shift = float(measures[0].paddingLeft or 0.0)  # a pickup bar starts part-way into its bar
        for n in part.stripTies().flatten().notes:
            dur = float(n.quarterLength)
            if dur <= 0:
                continue  # grace notes take no time
            rows.extend((float(n.offset) + shift, dur, int(p.midi), voice) for p in n.pitches)
    return Piece(name, np.array(rows, dtype=np.float64).reshape(-1, 4), bar)


def parse_chorales() -> list[Piece]:
    """The 371 four-part Bach chorales of music21's ``corpus.chorales.Iterator`` (Riemenschneider numbering)."""
    from music21 import corpus

    names = list(corpus.chorales.Iterator(returnType="filename"))
    return [score_to_piece(corpus.parse(n), n) for n in names]


def essen_paths() -> list[Path]:
    """The ABC files of the Essen folksong collection in music21's corpus (``essenFolksong/*.abc``, 31 files of
    about 8,500 tunes), sorted; :class:`DataError` when the installed music21 lacks them."""
    from music21 import corpus

    paths = sorted(Path(p) for p in corpus.getPaths(fileExtensions=("abc",)) if "essenFolksong" in str(p))
    if not paths:
        raise DataError("folksongs: the installed music21 corpus has no essenFolksong/*.abc files")
    return paths


def parse_folksongs(paths: list[Path] | None = None) -> list[Piece]:
    """Every tune of the Essen folksong collection (or of the given ABC files of it), monophonic."""
    from music21 import corpus, stream

    pieces = []
    for path in essen_paths() if paths is None else paths:
        opus = corpus.parse(str(path))
        scores = opus.scores if isinstance(opus, stream.Opus) else [opus]
        for i, s in enumerate(scores):
            piece = score_to_piece(s, f"{Path(path).stem}/{i}")
            if len(piece.notes):
                pieces.append(piece)
    return pieces


def midi_to_piece(path: Path) -> Piece:
    """A MIDI file's notes (drum tracks left out; one voice per track); :class:`DataError` naming a file that
    is not valid MIDI or holds no notes."""
    import symusic

    try:
        score = symusic.Score(str(path), ttype="quarter")
    except Exception as e:  # symusic raises bare RuntimeError/ValueError for damaged files
        raise DataError(f"{path}: not a readable MIDI file ({str(e).splitlines()[0] if str(e) else type(e).__name__})"
                        ) from None
    rows = [(n.time, n.duration, n.pitch, v) for v, t in enumerate(score.tracks) if not t.is_drum
            for n in t.notes if n.duration > 0]
    if not rows:
        raise DataError(f"{path}: MIDI file without (non-drum) notes")
    sigs = score.time_signatures
    bar = float(sigs[0].numerator * 4 / sigs[0].denominator) if len(sigs) else 4.0
    return Piece(path.name, np.array(rows, dtype=np.float64), bar)


def midi_files(folder: str | Path) -> list[Path]:
    """The MIDI files under ``folder`` (recursively, sorted); :class:`DataError` when there are none."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise DataError(f"{folder}: not a folder of MIDI files")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in MIDI_SUFFIXES)
    if not files:
        raise DataError(f"{folder}: no MIDI files (*.mid, *.midi) found")
    return files
