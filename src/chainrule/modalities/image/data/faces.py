"""Grey faces, offline: the LFW subset scikit-image ships (``skimage.data.lfw_subset``).

200 grey 25x25 images: 100 faces from Labeled Faces in the Wild, then 100 non-face patches (the labels ``face`` /
``non-face``). The split is a seeded permutation (``numpy.random.default_rng(0)``) of the 200: test 40, val 20,
train 140. Pixels are the bundled floats in [0, 1] rounded to 8 bits.
"""

from __future__ import annotations

import functools

import numpy as np

from chainrule.core.errors import DataError
from chainrule.modalities.image.data.base import ImageDataset
from chainrule.modalities.image.data.source import ImageSource

SPLIT_SIZES = {"test": 40, "val": 20}


def load_faces(split: str = "train", *, binarize: str = "none", levels: int = 256, threshold: float = 0.5,
               seed: int = 0) -> ImageDataset:
    """The ``split`` of the LFW subset (see the module doc); 256 levels keep the 8-bit values exactly."""
    return faces_source().dataset(split, binarize=binarize, levels=levels, threshold=threshold, seed=seed)


@functools.lru_cache(maxsize=1)
def faces_source() -> ImageSource:
    try:
        from skimage.data import lfw_subset
    except ImportError:
        raise DataError("faces: needs scikit-image (pip install 'chainrule[faces]')") from None
    images = lfw_subset()
    pixels = np.rint(np.clip(images, 0.0, 1.0) * 255).astype(np.uint8)[:, None]
    labels = np.repeat(np.arange(2), len(pixels) // 2)
    order = np.random.default_rng(0).permutation(len(pixels))
    test, val = SPLIT_SIZES["test"], SPLIT_SIZES["val"]
    splits = {"test": order[:test], "val": order[test:test + val], "train": order[test + val:]}
    info = {"source": "scikit-image lfw_subset (100 LFW faces, 100 non-faces)",
            "split": "seeded permutation: train 140, val 20, test 40"}
    return ImageSource(name="faces", pixels=pixels, labels=labels, splits=splits, max_value=255, info=info,
                       class_names=("face", "non-face"))
