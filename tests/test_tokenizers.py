"""Tokenizers: exact round trips, unknown characters, byte-level decoding, save/load."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chainrule.core.errors import ConfigError, DataError
from chainrule.modalities.text.data.tokenizers import (
    BPETokenizer,
    ByteTokenizer,
    CharTokenizer,
    load_tokenizer,
    make_tokenizer,
    safe_chunks,
    tokenizer_from_dict,
)

CORPUS = "\n".join(
    f"{name}: {verb} the {thing}, {name.lower()}! Ça coûte {i} € — ünïcödé {i * 7 % 13}."
    for i, (name, verb, thing) in enumerate(
        (n, v, t) for n in ("ROMEO", "JULIET", "HAMLET", "OPHELIA") for v in ("speak", "love", "fear", "see")
        for t in ("moon", "king", "ghost", "rose", "sword"))) * 3

HYPO = settings(max_examples=60, deadline=None)


@pytest.fixture(scope="module")
def bpe() -> BPETokenizer:
    return BPETokenizer.train([CORPUS], vocab_size=320)


# ------------------------------------------------------------------------------------------- round trips
@HYPO
@given(st.text())
def test_char_round_trip_on_its_own_text(text: str) -> None:
    tok = CharTokenizer.fit(text)
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert tok.unk_id not in ids  # every character is known
    assert tok.vocab_size == len(set(text)) + 1


@HYPO
@given(st.text())
def test_char_unknown_characters_become_replacement(text: str) -> None:
    tok = CharTokenizer.fit("abc xyz")
    expected = "".join(c if c in "abc xyz" else "\ufffd" for c in text)
    ids = tok.encode(text)
    assert tok.decode(ids) == expected
    assert all(0 <= i < tok.vocab_size for i in ids)
    assert [i == tok.unk_id for i in ids] == [c not in "abc xyz" for c in text]


@HYPO
@given(st.text())
def test_byte_round_trip(text: str) -> None:
    tok = ByteTokenizer()
    ids = tok.encode(text)
    assert ids == list(text.encode("utf-8"))
    assert tok.decode(ids) == text


@HYPO
@given(st.text())
def test_bpe_round_trip_and_token_bytes(bpe: BPETokenizer, text: str) -> None:
    ids = bpe.encode(text)
    assert bpe.decode(ids) == text
    assert b"".join(bpe.token_bytes(i) for i in ids) == text.encode("utf-8")


def test_bpe_compresses_its_training_text(bpe: BPETokenizer) -> None:
    assert bpe.vocab_size == 320
    assert len(bpe.encode(CORPUS)) < len(CORPUS.encode("utf-8")) / 2
    assert all(bpe.token_bytes(i) for i in range(bpe.vocab_size))  # no token stands for nothing


@HYPO
@given(st.lists(st.sampled_from(["ROMEO speaks", "a", "é€", " ", "\n", "\n\n", "  x", "日本"]), max_size=40),
       st.integers(1, 30))
def test_bpe_chunked_encoding_equals_whole_encoding(bpe: BPETokenizer, words: list[str], chunk: int) -> None:
    text = "".join(words)
    assert "".join(safe_chunks(text, chunk)) == text
    chunks = list(bpe.encode_chunks(text, chunk))
    joined = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int64)
    assert joined.tolist() == bpe.encode(text)


@pytest.mark.parametrize("make", [lambda b: CharTokenizer.fit(CORPUS), lambda b: ByteTokenizer(), lambda b: b],
                         ids=["char", "byte", "bpe"])
def test_token_bytes_concatenate_to_the_utf8_text(bpe: BPETokenizer, make) -> None:
    tok = make(bpe)
    ids = tok.encode(CORPUS)
    assert b"".join(tok.token_bytes(i) for i in ids) == CORPUS.encode("utf-8")
    assert tok.ids_to_bytes(ids) == CORPUS.encode("utf-8")


# ------------------------------------------------------------------------------ incomplete UTF-8, errors
@pytest.mark.parametrize("which", ["byte", "bpe"])
def test_incomplete_utf8_decodes_to_replacement(bpe: BPETokenizer, which: str) -> None:
    tok = ByteTokenizer() if which == "byte" else bpe
    text = "ab日本"
    ids = tok.encode(text)
    raw = tok.ids_to_bytes(ids)
    assert raw == text.encode("utf-8")
    # drop the last byte token: the final character is incomplete
    cut = ids[:-1]
    assert tok.decode(cut) == tok.ids_to_bytes(cut).decode("utf-8", errors="replace")
    assert tok.decode(cut).endswith("\ufffd")
    assert ByteTokenizer().decode([0xE6, 0x97]) == "\ufffd"  # two bytes of a three-byte character


def test_char_tokenizer_unknown_id_is_last_and_decodes_to_replacement() -> None:
    tok = CharTokenizer.fit("hello")
    assert tok.chars == ["e", "h", "l", "o"]
    assert tok.unk_id == 4 and tok.vocab_size == 5
    assert tok.encode("hez") == [1, 0, 4]
    assert tok.decode([1, 0, 4]) == "he\ufffd"
    assert tok.token_bytes(4) == "\ufffd".encode()


def test_char_tokenizer_rejects_bad_vocabularies() -> None:
    with pytest.raises(ConfigError, match="repeated"):
        CharTokenizer(["a", "a"])
    with pytest.raises(ConfigError, match="single character"):
        CharTokenizer(["ab"])


def test_out_of_range_ids_raise() -> None:
    with pytest.raises(ValueError, match="out of range"):
        ByteTokenizer().decode([256])
    with pytest.raises(ValueError, match="out of range"):
        CharTokenizer.fit("ab").decode([-1])


def test_bpe_vocab_below_byte_alphabet_is_rejected() -> None:
    with pytest.raises(ConfigError, match="256"):
        make_tokenizer("bpe", CORPUS, vocab_size=100)
    with pytest.raises(ConfigError, match="unknown tokenizer"):
        make_tokenizer("word", CORPUS)


def test_bpe_requires_a_byte_level_tokenizer() -> None:
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import models

    with pytest.raises(ConfigError, match="byte-level"):
        BPETokenizer(HFTokenizer(models.WordLevel({"a": 0}, unk_token="a")))


# ------------------------------------------------------------------------------------------- save / load
@pytest.mark.parametrize("which", ["char", "byte", "bpe"])
def test_save_load_round_trip(bpe: BPETokenizer, tmp_path, which: str) -> None:
    tok = {"char": CharTokenizer.fit(CORPUS + "日"), "byte": ByteTokenizer(), "bpe": bpe}[which]
    path = tmp_path / "tokenizer.json"
    tok.save(path)
    d = json.loads(path.read_text())
    assert d["kind"] == which
    loaded = load_tokenizer(path)
    assert type(loaded) is type(tok) and loaded == tok
    assert loaded.vocab_size == tok.vocab_size and loaded.fingerprint() == tok.fingerprint()
    assert loaded.encode(CORPUS) == tok.encode(CORPUS)
    assert tokenizer_from_dict(tok.to_dict()) == tok
    assert not list(tmp_path.glob(".tmp-*"))  # atomic write left no temporary


def test_bpe_from_hugging_face_file(bpe: BPETokenizer, tmp_path) -> None:
    path = tmp_path / "hf.json"
    bpe.hf.save(str(path))
    loaded = BPETokenizer.from_file(path)
    assert loaded.encode(CORPUS) == bpe.encode(CORPUS)
    with pytest.raises(DataError, match="hf-missing.json"):
        BPETokenizer.from_file(tmp_path / "hf-missing.json")


def test_load_tokenizer_errors_name_the_file(tmp_path) -> None:
    with pytest.raises(DataError, match="nope.json"):
        load_tokenizer(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"kind": "word"}')
    with pytest.raises(DataError, match="bad.json"):
        load_tokenizer(bad)
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json")
    with pytest.raises(DataError, match="garbage.json"):
        load_tokenizer(garbage)
