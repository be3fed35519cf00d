"""A folder of PNG/JPEG images as a dataset (Pillow only).

Classes are the sorted names of the folder's sub-folders (images found recursively inside each); a folder
without sub-folders gives unlabelled images. Images are resized to ``size`` (height, width) when given;
otherwise they must all have the size of the first one. ``channels`` is 1 (grayscale) or 3 (RGB); by default
3 if any image is colour (an RGB image whose three channels are identical counts as grey). Alpha is dropped,
16-bit images are scaled to 8 bits. The train/val/test split is a seeded permutation (``split_seed``) cut by
``fractions``.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np

from chainrule.core.data.options import as_int
from chainrule.core.data.splits import fraction_split, parse_fractions
from chainrule.core.errors import ConfigError, DataError
from chainrule.modalities.image.data.base import ImageDataset
from chainrule.modalities.image.data.source import ImageSource

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def load_imagefolder(path: str | Path, split: str = "train", *, size: Any = None, channels: Any = None,
                     fractions: Any = (0.8, 0.1, 0.1), split_seed: int = 0, binarize: str = "none",
                     levels: int = 256, threshold: float = 0.5, seed: int = 0) -> ImageDataset:
    """The ``split`` of the images under ``path`` (see the module docstring)."""
    source = folder_source(path, size=size, channels=channels, fractions=fractions, split_seed=split_seed)
    return source.dataset(split, binarize=binarize, levels=levels, threshold=threshold, seed=seed)


def folder_source(path: str | Path, *, size: Any = None, channels: Any = None,
                  fractions: Any = (0.8, 0.1, 0.1), split_seed: Any = 0) -> ImageSource:
    """Decoded images of ``path``, cached per process until a file is added, removed or modified."""
    hw, ch = parse_size(size), parse_channels(channels)
    fracs, seed = parse_fractions(fractions), as_int("split_seed", split_seed)
    root = Path(path).expanduser()
    if not root.exists():
        raise DataError(f"{root}: no such folder")
    if not root.is_dir():
        raise DataError(f"{root}: not a folder")
    files, labels, class_names = scan_folder(root)
    stamps = tuple((str(f), st.st_mtime_ns, st.st_size) for f, st in ((f, f.stat()) for f in files))
    return _decode(str(root.resolve()), stamps, labels, class_names, hw, ch, fracs, seed)


def scan_folder(root: Path) -> tuple[list[Path], tuple[int, ...] | None, tuple[str, ...]]:
    """Image files under ``root`` with their class indices (``None`` without sub-folders) and class names."""
    subdirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    top = _images_in(root, recursive=False)
    per_class = {d.name: _images_in(d, recursive=True) for d in subdirs}
    if not top and not any(per_class.values()):
        raise DataError(f"{root}: no images found ({', '.join(IMAGE_SUFFIXES)})")
    if not subdirs:
        return top, None, ()
    if top:
        raise DataError(f"{top[0]}: image outside the class sub-folders of {root}; move it into one")
    for d in subdirs:
        if not per_class[d.name]:
            raise DataError(f"{d}: class folder has no images ({', '.join(IMAGE_SUFFIXES)})")
    files = [f for d in subdirs for f in per_class[d.name]]
    labels = tuple(k for k, d in enumerate(subdirs) for _ in per_class[d.name])
    return files, labels, tuple(d.name for d in subdirs)


def _images_in(folder: Path, recursive: bool) -> list[Path]:
    found = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in found if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def read_image(path: Path, size: tuple[int, int] | None = None) -> np.ndarray:
    """``path`` as uint8 ``(H, W)`` (grey) or ``(H, W, 3)`` (colour), resized to ``size`` = (H, W) if given.

    Raises :class:`DataError` ``"path: cannot read image (...)"`` for a corrupt or unsupported file.
    """
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
            if im.mode.startswith("I"):  # 16/32-bit grey: scale 0..65535 to 0..255
                arr = np.clip(np.rint(np.asarray(im, dtype=np.float64) / 257.0), 0, 255).astype(np.uint8)
            elif im.mode in ("1", "L", "LA", "F"):
                arr = np.asarray(im.convert("L"))
            else:
                arr = np.asarray(im.convert("RGB"))
                if (arr[..., 0] == arr[..., 1]).all() and (arr[..., 1] == arr[..., 2]).all():
                    arr = arr[..., 0]
            if size is not None and arr.shape[:2] != size:
                resized = Image.fromarray(np.ascontiguousarray(arr)).resize(size[::-1], Image.Resampling.BILINEAR)
                arr = np.asarray(resized)
    except Exception as e:  # decoders raise OSError, SyntaxError, ValueError, DecompressionBombError, ...
        raise DataError(f"{path}: cannot read image ({type(e).__name__}: {e})") from None
    return np.ascontiguousarray(arr)


@functools.lru_cache(maxsize=4)
def _decode(root: str, stamps: tuple[tuple[str, int, int], ...], labels: tuple[int, ...] | None,
            class_names: tuple[str, ...], size: tuple[int, int] | None, channels: int | None,
            fractions: tuple[float, float, float], split_seed: int) -> ImageSource:
    files = [Path(s[0]) for s in stamps]
    arrays = [read_image(f, size) for f in files]
    h0, w0 = arrays[0].shape[:2]
    for f, a in zip(files, arrays, strict=True):
        if a.shape[:2] != (h0, w0):
            raise DataError(f"{f}: image is {a.shape[0]}x{a.shape[1]} but {files[0].name} is {h0}x{w0} "
                            f"(height x width); set the 'size' option to resize all images")
    c = channels or (3 if any(a.ndim == 3 for a in arrays) else 1)
    pixels = np.stack([_to_channels(a, c) for a in arrays])  # (N, C, H, W)
    name = f"imagefolder:{Path(root).name}"
    info = {"source": f"image folder {root}", "split": f"seeded fractions train/val/test "
            f"{'/'.join(f'{f:g}' for f in fractions)} (split_seed {split_seed})"}
    return ImageSource(name=name, pixels=pixels,
                       labels=np.asarray(labels, dtype=np.int64) if labels is not None else None,
                       splits=fraction_split(len(pixels), fractions, split_seed), max_value=255,
                       class_names=class_names, info=info)


def _to_channels(arr: np.ndarray, channels: int) -> np.ndarray:
    from PIL import Image

    if channels == 1:
        grey = arr if arr.ndim == 2 else np.asarray(Image.fromarray(arr).convert("L"))
        return grey[None]
    rgb = arr if arr.ndim == 3 else np.repeat(arr[..., None], 3, axis=2)
    return rgb.transpose(2, 0, 1)


def parse_size(value: Any) -> tuple[int, int] | None:
    """``None``, an int ``s`` (s x s), ``"HxW"`` / ``"H,W"`` or a pair ``(H, W)`` -> ``(H, W)``."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "auto", "none")):
        return None
    items: Any = value
    if isinstance(value, str):
        items = value.lower().replace("x", ",").split(",")
    elif not isinstance(value, (list, tuple)):
        items = (value, value)
    if len(items) == 1:
        items = (items[0], items[0])
    if len(items) != 2:
        raise ConfigError(f"data option 'size' must be an int or height x width; got {value!r}")
    h, w = as_int("size", items[0]), as_int("size", items[1])
    if h <= 0 or w <= 0:
        raise ConfigError(f"data option 'size' must be positive; got {value!r}")
    return h, w


def parse_channels(value: Any) -> int | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "auto")):
        return None
    c = as_int("channels", value)
    if c not in (1, 3):
        raise ConfigError(f"data option 'channels' must be 1 (grayscale) or 3 (RGB); got {value!r}")
    return c
