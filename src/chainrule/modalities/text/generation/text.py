"""From tokens to streamed text: incremental UTF-8 decoding and stop strings, one stream per sample.

A token stands for raw bytes (``tokenizer.token_bytes``); a character may be split across byte or BPE
tokens, so each stream keeps the bytes generated so far and emits only completed characters (bytes that
can never form valid UTF-8 become U+FFFD, as in ``tokenizer.decode``). Stop strings are matched in the
generated text only (not the prompt); text that might be the start of a stop string is held back until
it is clear, so the output never contains any part of the stop string that ended it.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Protocol

from torch import Tensor

from chainrule.core.errors import ConfigError
from chainrule.modalities.text.generation.config import GenerationConfig
from chainrule.modalities.text.generation.loop import check_prompt, generate_tokens

if TYPE_CHECKING:
    import torch

    from chainrule.modalities.text.models.sequence import SequenceModel


class TokenDecoder(Protocol):
    """What generation needs from a tokenizer (see ``chainrule.modalities.text.data.tokenizers.Tokenizer``)."""

    @property
    def vocab_size(self) -> int: ...

    def encode(self, text: str) -> list[int]: ...

    def token_bytes(self, id: int) -> bytes: ...


class TextStream:
    """One sample's generated text, fed token bytes, emitting the newly safe text after each push."""

    def __init__(self, stop: Sequence[str] = ()) -> None:
        self.stop = [s for s in stop if s]
        self.text = ""  # decoded text so far (cut before the stop string once one is found)
        self.done = False
        self._emitted = 0
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def push(self, data: bytes) -> str:
        """Add a token's bytes; return the text that became final ('' if none or already done)."""
        if self.done:
            return ""
        self.text += self._decoder.decode(data)
        return self._advance(final=False)

    def finish(self) -> str:
        """End of generation: flush incomplete bytes (as U+FFFD) and held-back text."""
        if self.done:
            return ""
        self.text += self._decoder.decode(b"", final=True)
        return self._advance(final=True)

    def _advance(self, final: bool) -> str:
        # no stop string can start in text already emitted (its start would have been held back)
        hits = [i for i in (self.text.find(s, self._emitted) for s in self.stop) if i >= 0]
        if hits:
            self.text, self.done = self.text[:min(hits)], True
            end = len(self.text)
        else:
            end = len(self.text) if final else len(self.text) - self._held_back()
            self.done = final
        out, self._emitted = self.text[self._emitted:end], max(end, self._emitted)
        return out

    def _held_back(self) -> int:
        """Length of the longest tail of the unemitted text that begins some stop string."""
        tail = self.text[self._emitted:]
        for k in range(min(max((len(s) for s in self.stop), default=1) - 1, len(tail)), 0, -1):
            if any(s.startswith(tail[-k:]) for s in self.stop):
                return k
        return 0


def decode_stream(steps: Iterable[Tensor], tokenizer: TokenDecoder, num_samples: int,
                  stop: Sequence[str] = ()) -> Iterator[list[str]]:
    """Turn per-step tokens ``(num_samples,)`` into per-step text pieces, one per sample ('' when a sample
    has nothing new or has finished). Stops consuming ``steps`` once every sample hit a stop string; a
    last list flushes what was held back."""
    streams = [TextStream(stop) for _ in range(num_samples)]
    it = iter(steps)
    try:
        for tokens in it:
            ids = tokens.tolist()
            yield [s.push(tokenizer.token_bytes(t)) for s, t in zip(streams, ids, strict=True)]
            if all(s.done for s in streams):
                return
        yield [s.finish() for s in streams]
    finally:
        close = getattr(it, "close", None)
        if close is not None:
            close()


def check_tokenizer(model: SequenceModel, tokenizer: TokenDecoder) -> None:
    """:class:`ConfigError` when the tokenizer and the model disagree on the vocabulary size."""
    if tokenizer.vocab_size != model.vocab_size:
        raise ConfigError(f"the tokenizer has {tokenizer.vocab_size} tokens but the model predicts "
                          f"{model.vocab_size}; they do not belong together")


def stream_texts(model: SequenceModel, tokenizer: TokenDecoder, prompt: str, cfg: GenerationConfig,
                 use_cache: bool = True, generator: torch.Generator | None = None,
                 engine: str = "eager") -> Iterator[list[str]]:
    """Generate ``cfg.num_samples`` continuations of ``prompt``; yield the new text of every sample as it
    is produced (the prompt itself is not repeated). ``engine``: see :mod:`.engine`."""
    check_tokenizer(model, tokenizer)
    prompt_ids = tokenizer.encode(prompt)
    check_prompt(model, prompt_ids)
    steps = generate_tokens(model, prompt_ids, cfg, use_cache=use_cache, generator=generator, engine=engine)
    return decode_stream(steps, tokenizer, cfg.num_samples, cfg.stop)


def generate_strings(model: SequenceModel, tokenizer: TokenDecoder, prompt: str, cfg: GenerationConfig,
                     use_cache: bool = True, generator: torch.Generator | None = None,
                     engine: str = "eager") -> list[str]:
    """The full generated text of each sample (stop strings applied)."""
    parts: list[list[str]] = [[] for _ in range(cfg.num_samples)]
    for pieces in stream_texts(model, tokenizer, prompt, cfg, use_cache, generator, engine):
        for acc, piece in zip(parts, pieces, strict=True):
            acc.append(piece)
    return ["".join(p) for p in parts]
