"""Real RGB photographs, offline: 32x32 patches cut from the photos bundled with installed packages.

scikit-learn ships two photographs (``china.jpg``, ``flower.jpg``, both 640x427) and matplotlib, a dependency
too, ships a third (``grace_hopper.jpg``, 512x600); scikit-image is not a dependency, so its photos are not
used. Patches do not overlap (stride 32) and form a grid centred on each photo (the remainder, under 32 pixels
per axis, is cropped off). The split is by photo, so no patch of a photo used for training is ever evaluated on:

- train: china, 13 x 20 = 260 patches;
- val: flower, 13 x 20 = 260 patches;
- test: grace_hopper, 18 x 16 = 288 patches.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np

from chainrule.core.errors import DataError
from chainrule.modalities.image.data.base import ImageDataset
from chainrule.modalities.image.data.source import ImageSource

PATCH = 32
#: split -> (package, file inside the package) of its photos
PHOTOS: dict[str, tuple[tuple[str, str], ...]] = {
    "train": (("sklearn", "datasets/images/china.jpg"),),
    "val": (("sklearn", "datasets/images/flower.jpg"),),
    "test": (("matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),),
}


def load_photos(split: str = "train", *, binarize: str = "none", levels: int = 256, threshold: float = 0.5,
                seed: int = 0) -> ImageDataset:
    """32x32 RGB patches as intensities ``v / 255``; the default 256 levels keep the 8-bit values exactly.
    The split is fixed, by photo (see the module doc)."""
    return photos_source().dataset(split, binarize=binarize, levels=levels, threshold=threshold, seed=seed)


@functools.lru_cache(maxsize=1)
def photos_source() -> ImageSource:
    parts: list[np.ndarray] = []
    splits: dict[str, np.ndarray] = {}
    for split, photos in PHOTOS.items():
        start = sum(len(p) for p in parts)
        parts += [patch_grid(read_photo(package, file)) for package, file in photos]
        splits[split] = np.arange(start, sum(len(p) for p in parts))
    info = {"source": "photographs bundled with scikit-learn (china, flower) and matplotlib (grace_hopper)",
            "split": "by photo: " + ", ".join(f"{s} {'+'.join(Path(f).stem for _, f in p)} ({len(splits[s])})"
                                              for s, p in PHOTOS.items())}
    return ImageSource(name="photos", pixels=np.concatenate(parts), labels=None, splits=splits, max_value=255,
                       info=info)


def patch_grid(image: np.ndarray, size: int = PATCH) -> np.ndarray:
    """Non-overlapping ``size`` x ``size`` patches of an ``(H, W, 3)`` image, in raster order over a grid centred
    on the image: ``(rows * cols, 3, size, size)``."""
    rows, cols = image.shape[0] // size, image.shape[1] // size
    top, left = (image.shape[0] - rows * size) // 2, (image.shape[1] - cols * size) // 2
    grid = image[top:top + rows * size, left:left + cols * size]
    patches = grid.reshape(rows, size, cols, size, 3).transpose(0, 2, 4, 1, 3)
    return np.ascontiguousarray(patches.reshape(rows * cols, 3, size, size))


def read_photo(package: str, file: str) -> np.ndarray:
    """The RGB pixels ``(H, W, 3)`` uint8 of ``file`` inside an installed ``package``; :class:`DataError` when the
    package or the file is missing."""
    from PIL import Image

    spec = importlib.util.find_spec(package)
    path = Path(spec.origin).parent / file if spec and spec.origin else None
    if path is None or not path.is_file():
        raise DataError(f"photos: {file} of the {package} package is not installed")
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.uint8)
