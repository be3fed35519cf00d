"""Text generation from an exported step graph, with chainrule's context-window rule.

The step graph takes ``(token, position, *cache)``; position 0 feeds the start vector. A model exported
with a context of ``N`` positions sees at most ``W = N - 1`` tokens; when the context would grow past
``W`` it keeps the most recent ``W // 2`` tokens and rebuilds the cache on them (as
:class:`chainrule.modalities.text.generation.TokenContext` does), so long generations never overflow the cache.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from chainrule.core.limits import check_count
from chainrule.edge.errors import EdgeError
from chainrule.edge.model import EdgeModel
from chainrule.edge.sampling import check_options, choose_tokens
from chainrule.edge.tokenizer import EdgeTokenizer


class StepRunner:
    """The step graph with its cache, for a batch of ``batch_size`` sequences."""

    def __init__(self, model: EdgeModel, batch_size: int) -> None:
        self.model, self.batch_size = model, batch_size
        self.specs = model.metadata["cache"]
        self.reset()

    def reset(self) -> None:
        """Empty cache; the next step feeds the start vector."""
        self.position = 0
        self.cache = [np.zeros([self.batch_size if d == "batch" else int(d) for d in s["shape"]],
                               dtype=self.model.input_dtypes.get(s["input"], np.float32)) for s in self.specs]

    def step(self, token: np.ndarray) -> np.ndarray:
        """Feed ``token`` (B,) (ignored at position 0) and return the next logits ``(B, V)``."""
        feeds = {"token": np.asarray(token, dtype=np.int64).reshape(self.batch_size),
                 "position": np.array(self.position, dtype=np.int64)}
        feeds.update({s["input"]: c for s, c in zip(self.specs, self.cache, strict=True)})
        logits, *self.cache = self.model.run(feeds)
        self.position += 1
        return logits

    def prefill(self, tokens: np.ndarray) -> np.ndarray:
        """A fresh cache holding the start vector and ``tokens`` (B, L); the logits after them."""
        self.reset()
        logits = self.step(np.zeros(self.batch_size, dtype=np.int64))
        for t in range(tokens.shape[1]):
            logits = self.step(tokens[:, t])
        return logits


class TokenWindow:
    """Tokens so far ``(B, L)`` and the logits of the next one, within the model's context window."""

    def __init__(self, model: EdgeModel, prompt: np.ndarray) -> None:
        self.runner = StepRunner(model, prompt.shape[0])
        self.tokens = prompt
        self.window = max(int(model.metadata["max_context"]) - 1, 1)
        self.keep = max(self.window // 2, 1)
        self.start = prompt.shape[1] - self.keep if prompt.shape[1] > self.window else 0
        self.next_logits = self.runner.prefill(self.tokens[:, self.start:])

    def push(self, token: np.ndarray) -> None:
        self.tokens = np.concatenate([self.tokens, token[:, None]], axis=1)
        if self.tokens.shape[1] - self.start > self.window:  # full: jump the window forward
            self.start = self.tokens.shape[1] - self.keep
            self.next_logits = self.runner.prefill(self.tokens[:, self.start:])
        else:
            self.next_logits = self.runner.step(token)


def text_model(model: EdgeModel) -> EdgeTokenizer:
    """The embedded tokenizer of a text step model (checked against the model's vocabulary)."""
    model.require("text", "generate")
    if model.graph != "step" or "cache" not in model.metadata:
        raise EdgeError(f"{model.path}: generation needs an exported incremental step graph")
    tokenizer = EdgeTokenizer(model.metadata.get("tokenizer") or {})
    if tokenizer.vocab_size != int(model.metadata["vocab_size"]):
        raise EdgeError(f"{model.path}: the tokenizer has {tokenizer.vocab_size} tokens but the model predicts "
                        f"{model.metadata['vocab_size']}")
    return tokenizer


def generate_tokens(model: EdgeModel, prompt_ids: Sequence[int], max_new_tokens: int = 200,
                    temperature: float = 1.0, top_k: int | None = None, top_p: float = 1.0, seed: int | None = 0,
                    num_samples: int = 1) -> Iterator[np.ndarray]:
    """An iterator over the next token of each of ``num_samples`` samples, ``(num_samples,)``, ``max_new_tokens``
    times. Options are checked before this returns (:class:`EdgeError`)."""
    check_options(temperature, top_k, top_p)
    num_samples = check_count(num_samples, "samples", EdgeError)
    max_new_tokens = check_count(max_new_tokens, "max-new-tokens", EdgeError, minimum=0)
    vocab = int(model.metadata["vocab_size"])
    bad = [i for i in prompt_ids if not 0 <= int(i) < vocab]
    if bad:
        raise EdgeError(f"prompt token id {bad[0]} is outside the model's vocabulary of {vocab}")
    prompt = np.tile(np.asarray(list(prompt_ids), dtype=np.int64).reshape(1, -1), (num_samples, 1))
    return _token_loop(model, prompt, max_new_tokens, temperature, top_k, top_p, np.random.default_rng(seed))


def _token_loop(model: EdgeModel, prompt: np.ndarray, max_new_tokens: int, temperature: float, top_k: int | None,
                top_p: float, rng: np.random.Generator) -> Iterator[np.ndarray]:
    if max_new_tokens == 0:
        return
    ctx = TokenWindow(model, prompt)
    for i in range(max_new_tokens):
        token = choose_tokens(ctx.next_logits, temperature, top_k, top_p, rng)
        yield token
        if i + 1 < max_new_tokens:
            ctx.push(token)


def generate_text(model: EdgeModel, prompt: str = "", **options: Any) -> Iterator[str]:
    """Stream one sample's continuation of ``prompt`` as text pieces (complete UTF-8 characters only).
    Options are checked before this returns (:class:`EdgeError`).

    ``options``: ``max_new_tokens``, ``temperature``, ``top_k``, ``top_p``, ``seed``.
    """
    tokenizer = text_model(model)
    return _decode(tokenizer, generate_tokens(model, tokenizer.encode(prompt), **options))


def _decode(tokenizer: EdgeTokenizer, steps: Iterator[np.ndarray]) -> Iterator[str]:
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    for token in steps:
        piece = decoder.decode(tokenizer.token_bytes(int(token[0])))
        if piece:
            yield piece
    tail = decoder.decode(b"", final=True)
    if tail:
        yield tail
