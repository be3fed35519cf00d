"""Pieces of an OpenAI completion reply: finish reasons, the ``logprobs`` object and completion ids.

Token log-probabilities come from :func:`chainrule.serve.text.token_log_prob`, the computation behind the native
``/v1/log_prob``, so ``echo`` with ``logprobs`` reports a prompt's tokens exactly as ``/v1/log_prob`` scores them.
Unlike OpenAI's models, chainrule's have a learned start vector, so the first token has a log-probability too
(OpenAI reports ``null`` there).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field, replace
from typing import Any

from chainrule.serve import text
from chainrule.serve.registry import ServedModel


@dataclass
class RecordingTokenizer:
    """The served tokenizer, also keeping every token the generation decodes, in order.

    Text generation decodes each step's tokens sample by sample, so sample ``i`` of ``n`` owns calls ``i, i+n, ...``;
    its raw text (before stop strings cut it) tells whether a stop string ended it.
    """

    tokenizer: Any
    decoded: list[bytes] = field(default_factory=list)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.tokenizer, name)

    @property
    def vocab_size(self) -> int:
        return int(self.tokenizer.vocab_size)

    def token_bytes(self, token_id: int) -> bytes:
        data = self.tokenizer.token_bytes(token_id)
        self.decoded.append(data)
        return data

    def raw_text(self, sample: int, num_samples: int) -> str:
        return b"".join(self.decoded[sample::num_samples]).decode("utf-8", errors="replace")


def recording(served: ServedModel) -> tuple[ServedModel, RecordingTokenizer]:
    """A view of ``served`` whose tokenizer records what generation decodes."""
    rec = RecordingTokenizer(served.tokenizer)
    return replace(served, tokenizer=rec), rec


def finish_reasons(rec: RecordingTokenizer | None, num_samples: int, stops: list[str]) -> list[str]:
    """``"stop"`` for each sample a stop string ended, else ``"length"`` (``rec`` is None: nothing generated)."""
    if rec is None or not stops:
        return ["length"] * num_samples
    raws = [rec.raw_text(i, num_samples) for i in range(num_samples)]
    return ["stop" if any(s in raw for s in stops) else "length" for raw in raws]


def completion_id() -> str:
    return f"cmpl-{secrets.token_hex(12)}"


def logprobs_object(served: ServedModel, ids: list[int], scored: dict[str, Any] | None, first: int,
                    offset: int) -> dict[str, Any]:
    """OpenAI's ``logprobs`` for tokens ``ids[first:]`` of a scored sequence (``scored`` from ``token_log_prob``,
    ``None`` for an empty one); ``offset`` is the character offset of the first reported token in the reply's
    text."""
    shown = ids[first:]
    tokens = text.token_strings(served, shown)
    offsets, at = [], offset
    for tok in tokens:
        offsets.append(at)
        at += len(tok)
    if scored is None:
        return {"tokens": tokens, "token_logprobs": [], "top_logprobs": None, "text_offset": offsets}
    token_logprobs = [-s for s in scored["surprisal"][first:]]
    top = None
    if "top" in scored:
        top = []
        for pairs in scored["top"][first:]:
            names = text.token_strings(served, [i for i, _ in pairs])
            alternatives: dict[str, float] = {}
            for name, (_, lp) in zip(names, pairs, strict=True):
                alternatives.setdefault(name, lp)  # most likely first: two tokens spelled alike keep the larger
            top.append(alternatives)
    return {"tokens": tokens, "token_logprobs": token_logprobs, "top_logprobs": top, "text_offset": offsets}
