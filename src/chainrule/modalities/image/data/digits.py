"""scikit-learn's bundled 8x8 handwritten digits (1,797 images, values 0..16, always available offline)."""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np

from chainrule.core.data.splits import seeded_split
from chainrule.modalities.image.data.base import ImageDataset
from chainrule.modalities.image.data.source import ImageSource

N_VAL, N_TEST, SPLIT_SEED = 200, 300, 0


def load_digits(split: str = "train", *, binarize: str = "none", levels: int = 17, threshold: float = 0.5,
                seed: int = 0) -> ImageDataset:
    """8x8 digits as intensities ``v / 16``; the default 17 levels recover the original values exactly.

    Fixed split: ``numpy.random.default_rng(0).permutation(1797)``; its first 300 indices are the test set,
    the next 200 the validation set, the remaining 1,297 the training set (each in permutation order).
    """
    return digits_source().dataset(split, binarize=binarize, levels=levels, threshold=threshold, seed=seed)


@functools.lru_cache(maxsize=1)
def digits_source() -> ImageSource:
    values, labels = _read_digits()
    pixels = values.astype(np.uint8).reshape(-1, 1, 8, 8)  # (1797, 1, 8, 8), values 0..16
    info = {"source": "sklearn.datasets.load_digits (UCI optical digits, bundled)",
            "split": f"seeded permutation (numpy default_rng({SPLIT_SEED})): test {N_TEST}, val {N_VAL}, "
                     f"train {len(pixels) - N_TEST - N_VAL:,}"}
    return ImageSource(name="digits", pixels=pixels, labels=labels,
                       splits=seeded_split(len(pixels), N_VAL, N_TEST, SPLIT_SEED), max_value=16,
                       class_names=tuple(str(d) for d in range(10)), info=info)


def _read_digits() -> tuple[np.ndarray, np.ndarray]:
    """(1797, 64) values and labels. Reads scikit-learn's bundled CSV directly when it is where scikit-learn
    keeps it (importing ``sklearn.datasets`` costs seconds), else calls ``load_digits``."""
    spec = importlib.util.find_spec("sklearn")
    csv = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz" if spec and spec.origin else None
    if csv is not None and csv.is_file():
        table = np.loadtxt(csv, delimiter=",", dtype=np.float32)
        if table.shape == (1797, 65):
            return table[:, :64], table[:, 64].astype(np.int64)
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    return np.asarray(bunch.data), np.asarray(bunch.target, dtype=np.int64)
