"""The audio datasets: ``speech`` and ``music-audio`` (Debian packages, offline) and ``audiofolder:PATH``.

Splits are fixed and documented (docs/audio.md):

- ``speech``: asterisk-core-sounds-en-wav, 568 prompts by one speaker at 8 kHz. Split by prompt: a
  ``numpy.random.default_rng(0)`` permutation of the prompts sorted by relative path; test = the first 57, val
  the next 28, train the other 483. Transcripts (``name: text``) come from the asterisk-core-sounds-en
  package's ``core-sounds-en.txt.gz`` when it is installed.
- ``music-audio``: asterisk-moh-opsound-wav, 5 tracks at 8 kHz. Split by time inside every track: train the
  first 80%, val the next 10%, test the last 10%; the track is the class.
- ``audiofolder:PATH``: WAV/FLAC/OGG files under PATH (classes from sub-folders when there are several). Ten
  files or more: split by file, seeded (``default_rng(0)``) 80/10/10; fewer: by time inside every file, as
  for music. An optional transcript file (``transcripts=FILE``, or ``transcripts.txt`` in PATH) names recordings
  by relative path without suffix.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from chainrule.core.data.options import as_int
from chainrule.core.data.splits import check_split, seeded_split
from chainrule.core.errors import DataError
from chainrule.modalities.audio.data.dataset import AudioDataset, build_split
from chainrule.modalities.audio.data.files import check_rate, list_audio, read_audio, read_transcripts
from chainrule.modalities.audio.data.quantize import quantizer_for

SPEECH_ROOTS = ("/usr/share/asterisk/sounds/en_US_f_Allison", "/usr/share/asterisk/sounds/en")
SPEECH_TRANSCRIPTS = ("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz",
                      "/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt")
MUSIC_ROOT = "/usr/share/asterisk/moh"
SPEECH_TEST, SPEECH_VAL = 0.10, 0.05  # of the prompts: 57 and 28 of 568
TIME_FRACTIONS = (0.8, 0.1, 0.1)
MIN_FILES_FOR_FILE_SPLIT = 10
DEFAULT_RATE, DEFAULT_CROP = 8000, 2048


def load_speech(split: str = "train", *, rate: Any = DEFAULT_RATE, crop: Any = DEFAULT_CROP,
                quantization: Any = "mulaw8", seed: Any = 0, path: Any = None) -> AudioDataset:
    """``speech``: one speaker's studio prompts (Debian asterisk-core-sounds-en-wav), split by prompt."""
    root = Path(path) if path else _first_dir(SPEECH_ROOTS, "speech", "asterisk-core-sounds-en-wav")
    files = list_audio(root)
    names = [_stem(f, root) for f in files]
    parts = seeded_split(len(files), round(len(files) * SPEECH_VAL), round(len(files) * SPEECH_TEST))
    transcript = next((Path(p) for p in SPEECH_TRANSCRIPTS if Path(p).is_file()), None)
    said = read_transcripts(transcript) if transcript else {}
    return _by_file(root, files, names, parts, [0] * len(files), [], said, "speech", split,
                    rate, crop, quantization, seed)


def load_music_audio(split: str = "train", *, rate: Any = DEFAULT_RATE, crop: Any = DEFAULT_CROP,
                     quantization: Any = "mulaw8", seed: Any = 0, path: Any = None) -> AudioDataset:
    """``music-audio``: 5 music tracks (Debian asterisk-moh-opsound-wav), split by time; the track is the class."""
    root = Path(path) if path else _first_dir((MUSIC_ROOT,), "music-audio", "asterisk-moh-opsound-wav")
    files = list_audio(root)
    names = [_stem(f, root) for f in files]
    return _by_time(root, files, list(range(len(files))), names, {}, "music-audio", split,
                    rate, crop, quantization, seed)


def load_audiofolder(path: str, split: str = "train", *, rate: Any = DEFAULT_RATE, crop: Any = DEFAULT_CROP,
                     quantization: Any = "mulaw8", seed: Any = 0, transcripts: Any = None) -> AudioDataset:
    """``audiofolder:PATH``: any WAV/FLAC/OGG files; classes from sub-folders; an optional transcript file."""
    root = Path(path).expanduser()
    files = list_audio(root)
    names = [_stem(f, root) for f in files]
    groups = [f.relative_to(root).parts[0] if len(f.relative_to(root).parts) > 1 else "" for f in files]
    class_names = sorted(set(groups)) if len(set(groups)) > 1 else []
    labels = [class_names.index(g) for g in groups] if class_names else [0] * len(files)
    tfile = Path(transcripts).expanduser() if transcripts else root / "transcripts.txt"
    if transcripts and not tfile.is_absolute():
        tfile = root / tfile
    if transcripts and not tfile.is_file():
        raise DataError(f"{tfile}: transcript file not found")
    said = read_transcripts(tfile, set(names)) if tfile.is_file() else {}
    name = f"audiofolder:{path}"
    if len(files) < MIN_FILES_FOR_FILE_SPLIT:
        return _by_time(root, files, labels, class_names, said, name, split, rate, crop, quantization, seed)
    n_held = round(len(files) * TIME_FRACTIONS[1])
    parts = seeded_split(len(files), n_held, n_held)
    return _by_file(root, files, names, parts, labels, class_names, said, name, split, rate, crop, quantization,
                    seed)


# ------------------------------------------------------------------ helpers
def _first_dir(candidates: tuple[str, ...], dataset: str, package: str) -> Path:
    for c in candidates:
        if Path(c).is_dir():
            return Path(c)
    raise DataError(f"dataset {dataset!r}: the Debian package {package} is not installed (looked in "
                    f"{', '.join(candidates)}); install it or give data.path=FOLDER")


def _stem(f: Path, root: Path) -> str:
    return f.relative_to(root).with_suffix("").as_posix()


@lru_cache(maxsize=8)
def _decoded(files: tuple[Path, ...], rate: int) -> tuple[np.ndarray, ...]:
    """Each file decoded once per process and rate (train, val and test share the decode)."""
    return tuple(read_audio(f, rate) for f in files)


def _options(rate: Any, crop: Any, quantization: Any, seed: Any) -> dict[str, Any]:
    return {"rate": check_rate(as_int("rate", rate)), "crop": as_int("crop", crop),
            "quantizer": quantizer_for(quantization), "seed": as_int("seed", seed)}


def _by_file(root: Path, files: list[Path], names: list[str], parts: dict[str, np.ndarray], labels: list[int],
             class_names: list[str], said: dict[str, str], name: str, split: str, rate: Any, crop: Any,
             quantization: Any, seed: Any) -> AudioDataset:
    check_split(split)
    opts = _options(rate, crop, quantization, seed)
    waves = _decoded(tuple(files), opts["rate"])
    keep = sorted(int(i) for i in parts[split])
    return build_split([waves[i] for i in keep], [labels[i] for i in keep], opts.pop("quantizer"),
                       rate=opts["rate"], crop=opts["crop"], seed=opts["seed"], name=name, split=split,
                       class_names=class_names, random_crops=split == "train",
                       transcripts={names[i]: said[names[i]] for i in keep if names[i] in said})


def _by_time(root: Path, files: list[Path], labels: list[int], class_names: list[str], said: dict[str, str],
             name: str, split: str, rate: Any, crop: Any, quantization: Any, seed: Any) -> AudioDataset:
    check_split(split)
    opts = _options(rate, crop, quantization, seed)
    waves = _decoded(tuple(files), opts["rate"])
    lo, hi = {"train": (0.0, 0.8), "val": (0.8, 0.9), "test": (0.9, 1.0)}[split]
    parts = [w[int(len(w) * lo):int(len(w) * hi)] for w in waves]
    return build_split(parts, labels, opts.pop("quantizer"), rate=opts["rate"], crop=opts["crop"],
                       seed=opts["seed"], name=name, split=split, class_names=class_names,
                       random_crops=split == "train", transcripts=dict(said))
