"""Text datasets for language modelling: a corpus, a tokenizer, and windows of ``context`` tokens.

Splits: the corpus text is cut at 90% of its characters; train is the first 90%, val the last 10% (nanoGPT's
convention; cutting the text rather than the token stream gives every tokenizer the same validation text, so
bits per character compare fairly). Text corpora have no separate test split: ``test`` is the val text again.

Tokenizers (option ``tokenizer``): ``char`` (default) is fitted on the **whole** corpus, the convention for
character models (tiny Shakespeare: 65 characters, plus the unknown id); ``bpe`` is trained on the **train
split only** (``vocab_size``, default 1024); ``byte`` needs no fitting. ``tokenizer_path`` loads an existing
tokenizer JSON instead (e.g. a run's own ``tokenizer.json``). Fitted tokenizers and token streams are cached
(see :mod:`chainrule.modalities.text.data.token_cache`).

A :class:`TextDataset` serves windows of ``context`` tokens (:mod:`chainrule.core.data.token_windows`). On the
train split every window of every epoch has its own phase, a function of ``(seed, epoch, window)`` only, so each
epoch sees different cuts; val and test windows are fixed blocks so evaluations are comparable.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from chainrule.core.data.download import Downloader, cache_root
from chainrule.core.data.options import as_int, as_str
from chainrule.core.data.splits import check_split
from chainrule.core.data.token_windows import TokenWindows
from chainrule.core.errors import ConfigError, DataError
from chainrule.modalities.text.data.sources import (
    TextCorpus,
    shakespeare_corpus,
    textfile_corpus,
    tinyshakespeare_corpus,
)
from chainrule.modalities.text.data.token_cache import cached_streams, cached_tokenizer
from chainrule.modalities.text.data.tokenizers import (
    DEFAULT_BPE_VOCAB,
    TOKENIZER_KINDS,
    ByteTokenizer,
    Tokenizer,
    load_tokenizer,
    make_tokenizer,
)

TRAIN_FRACTION = 0.9
SPLIT_RULE = "chars-0.9"  # part of the token-cache key
SPLIT_NOTE = "train: first 90% of the characters, val: last 10%, test: the same text as val"
DEFAULT_CONTEXT = 256


def split_text(text: str) -> dict[str, str]:
    """``{"train": first 90% of the characters, "val": the rest}``."""
    cut = int(len(text) * TRAIN_FRACTION)
    return {"train": text[:cut], "val": text[cut:]}


class TextDataset(TokenWindows):
    """Windows of ``context`` tokens from one split's token stream (the trainer's dataset protocol).

    ``get(indices, length=None)`` returns ``(x, None)``, x long ``(b, 1, length or context)``: window ``i``
    starts at token ``starts(i)`` and a shorter ``length`` takes its first ``length`` tokens.
    ``len`` is the number of whole windows for every possible phase, so it does not change between epochs.
    """

    def __init__(self, tokens: np.ndarray, tokenizer: Tokenizer, context: int, *, name: str, split: str,
                 n_chars: int, n_bytes: int, seed: int = 0, shift: bool = True,
                 info: dict[str, Any] | None = None) -> None:
        if context < 1:
            raise ConfigError(f"data option 'context' must be at least 1; got {context}")
        self.tokens = tokens
        self.tokenizer = tokenizer
        self.context = context
        self.name, self.split = name, split
        self.n_chars, self.n_bytes = n_chars, n_bytes
        self.seed, self.shift = seed, shift
        self.info = dict(info or {})
        self.class_names: list[str] = []
        self.epoch = 0
        self.set_epoch(0)

    # -------------------------------------------------------------- protocol used by the trainer
    @property
    def n_tokens(self) -> int:
        return len(self.tokens)

    @property
    def chars_per_token(self) -> float:
        """Characters of the split's text per token (bits/char = nats/token / ln 2 / chars_per_token)."""
        return self.n_chars / max(1, self.n_tokens)

    @property
    def bytes_per_token(self) -> float:
        return self.n_bytes / max(1, self.n_tokens)

    def describe(self) -> str:
        return (f"{self.name} [{self.split}, {self.n_chars:,} chars, {self.tokenizer.kind} tokenizer "
                f"({self.tokenizer.vocab_size}), context {self.context}]")

    def __repr__(self) -> str:
        return f"TextDataset({self.describe()})"


# ------------------------------------------------------------------------------------------------ building
def text_dataset(corpus: TextCorpus, split: str, *, cache_name: str, tokenizer: Any = None,
                 vocab_size: Any = DEFAULT_BPE_VOCAB, context: Any = DEFAULT_CONTEXT, tokenizer_path: Any = None,
                 seed: Any = 0, root: Any = None) -> TextDataset:
    """The ``split`` of ``corpus`` as a :class:`TextDataset` (see the module docstring for the options)."""
    check_split(split)
    context, seed = as_int("context", context), as_int("seed", seed)
    if context < 1:
        raise ConfigError(f"data option 'context' must be at least 1; got {context}")
    texts = split_text(corpus.text)
    directory = cache_root(root) / "text" / f"{cache_name}-{corpus.sha256[:16]}"
    tok = _tokenizer(corpus, texts["train"], directory, tokenizer, vocab_size, tokenizer_path)
    key = hashlib.sha256(f"{corpus.sha256}|{tok.fingerprint()}|{SPLIT_RULE}".encode()).hexdigest()[:24]
    stream = cached_streams(directory, key, texts, tok)["train" if split == "train" else "val"]
    info = {**corpus.info, "split": SPLIT_NOTE, "cache": str(directory)}
    ds = TextDataset(stream.tokens, tok, context, name=corpus.name, split=split, n_chars=stream.n_chars,
                     n_bytes=stream.n_bytes, seed=seed, shift=split == "train", info=info)
    if len(ds) == 0:
        raise DataError(f"{corpus.name}: the {split} split has {ds.n_tokens:,} tokens, not enough for one window of "
                        f"context {context}{' at every window phase' if ds.shift else ''}; lower data.context or "
                        f"use a bigger corpus")
    return ds


def _tokenizer(corpus: TextCorpus, train_text: str, directory: Path, kind: Any, vocab_size: Any,
               tokenizer_path: Any) -> Tokenizer:
    want = as_str("tokenizer", kind) if kind is not None else None
    if want is not None and want not in TOKENIZER_KINDS:
        raise ConfigError(f"data option 'tokenizer' must be one of {', '.join(TOKENIZER_KINDS)}; got {kind!r}")
    if tokenizer_path:
        tok = load_tokenizer(tokenizer_path)
        if want is not None and want != tok.kind:
            raise ConfigError(f"{tokenizer_path}: a {tok.kind} tokenizer, but data.tokenizer is {want!r}")
        return tok
    want = want or "char"
    if want == "byte":
        return ByteTokenizer()
    if want == "char":
        return cached_tokenizer(directory, "char", lambda: make_tokenizer("char", corpus.text))
    vocab = as_int("vocab_size", vocab_size)
    if vocab < 256:
        raise ConfigError(f"data option 'vocab_size' must be at least 256 (the byte alphabet); got {vocab}")
    return cached_tokenizer(directory, f"bpe-{vocab}", lambda: make_tokenizer("bpe", train_text, vocab))


# ------------------------------------------------------------------------------------------ public loaders
def load_shakespeare(split: str = "train", *, tokenizer: str | None = None, vocab_size: int = DEFAULT_BPE_VOCAB,
                     context: int = DEFAULT_CONTEXT, tokenizer_path: str | None = None, seed: int = 0,
                     root: str | None = None) -> TextDataset:
    """Shakespeare's complete works (~5.1 M characters) from the ``shakespeare`` package's data."""
    return text_dataset(shakespeare_corpus(), split, cache_name="shakespeare", tokenizer=tokenizer,
                        vocab_size=vocab_size, context=context, tokenizer_path=tokenizer_path, seed=seed, root=root)


def load_tinyshakespeare(split: str = "train", *, path: str | None = None, tokenizer: str | None = None,
                         vocab_size: int = DEFAULT_BPE_VOCAB, context: int = DEFAULT_CONTEXT,
                         tokenizer_path: str | None = None, seed: int = 0, root: str | None = None,
                         download: bool = True, downloader: Downloader | None = None) -> TextDataset:
    """Tiny Shakespeare (1,115,394 characters): ``path``, else the cached or downloaded copy."""
    corpus = tinyshakespeare_corpus(path=path, root=root, download=download, downloader=downloader)
    return text_dataset(corpus, split, cache_name="tinyshakespeare", tokenizer=tokenizer, vocab_size=vocab_size,
                        context=context, tokenizer_path=tokenizer_path, seed=seed, root=root)


def load_textfile(path: str, split: str = "train", *, tokenizer: str | None = None,
                  vocab_size: int = DEFAULT_BPE_VOCAB, context: int = DEFAULT_CONTEXT,
                  tokenizer_path: str | None = None, seed: int = 0, root: str | None = None) -> TextDataset:
    """``textfile:PATH``: a UTF-8 file or all ``*.txt`` files under a folder."""
    return text_dataset(textfile_corpus(path), split, cache_name="textfile", tokenizer=tokenizer,
                        vocab_size=vocab_size, context=context, tokenizer_path=tokenizer_path, seed=seed, root=root)
