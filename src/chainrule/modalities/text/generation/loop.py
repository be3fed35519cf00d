"""The token generation loop for sequence models: cached (``step``) or recomputed (teacher-forced) logits.

Context window: a model of ``max_len`` positions predicts position ``t`` from the ``t`` tokens before it,
so it sees at most ``W = max_len - 1`` tokens of context. When the context would grow past ``W``, the
window jumps forward and keeps the most recent ``W // 2`` tokens; the cached path rebuilds its cache on
them in one batched ``prefill`` pass, then continues one ``step`` per token until the window is full
again. So a long generation costs about one step per token with the cache instead of one full pass per
token, and each
token is predicted from between ``W // 2`` and ``W`` tokens of context. The uncached path uses the same
window rule, re-running the network on the window for every token, and both paths draw the same random
numbers, so under one seed they give the same tokens.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from chainrule.core.errors import ConfigError
from chainrule.core.sampling import check_stop
from chainrule.modalities.text.generation.config import GenerationConfig
from chainrule.modalities.text.generation.engine import Decoder
from chainrule.modalities.text.generation.processors import choose_tokens, process_logits

if TYPE_CHECKING:
    from chainrule.modalities.text.models.sequence import SequenceModel


class TokenContext:
    """The tokens so far ``(B, L)`` and the model's logits ``(B, V)`` for the next one.

    Args:
        model: a sequence model (in eval mode, under ``torch.inference_mode``).
        prompt: ``(B, L)`` long tokens on the model's device (``L`` may be 0).
        use_cache: feed tokens one ``step`` at a time when the model supports it; otherwise (or once the
            window slides) re-run the network on the window.
        engine: how each cached step runs (``eager``, ``static`` or ``compiled``; see
            :mod:`chainrule.modalities.text.generation.engine`).
    """

    def __init__(self, model: SequenceModel, prompt: Tensor, use_cache: bool = True, engine: str = "eager") -> None:
        self.model = model
        self.decoder = Decoder(model, engine)
        self._buffer, self._length = prompt, prompt.shape[1]  # grown by doubling: a push costs O(1) amortised
        self.window = max(int(model.max_len) - 1, 1)
        self.keep = max(self.window // 2, 1)
        self.start = 0  # index of the first token in the context window
        self.cached = use_cache and model.supports_cache
        self.cache = None
        if self.tokens.shape[1] > self.window:
            self.start = self.tokens.shape[1] - self.keep
        self._next = self._prefill() if self.cached else self._recompute()

    @property
    def tokens(self) -> Tensor:
        """All tokens so far, ``(B, L)``."""
        return self._buffer[:, :self._length]

    def logits(self) -> Tensor:
        """Logits ``(B, V)`` of the next token given the context window."""
        return self._next

    def push(self, token: Tensor) -> None:
        """Append the next token ``(B,)`` and compute the logits after it."""
        if self.append(token):
            return
        if self.cached:
            self._next, self.cache = self.decoder.step(token.unsqueeze(1), self.cache)
        else:
            self._next = self._recompute()

    def append(self, token: Tensor) -> bool:
        """Append the next token ``(B,)``; True when the window jumped forward, which rebuilt the logits (and
        cache) already. Otherwise the caller computes the logits after it (:meth:`push` does; a batched decoder
        steps many contexts' caches at once)."""
        if self._length == self._buffer.shape[1]:
            grown = self._buffer.new_zeros(self._buffer.shape[0], max(2 * self._length, 16))
            grown[:, :self._length] = self._buffer
            self._buffer = grown
        self._buffer[:, self._length] = token
        self._length += 1
        if self._length - self.start > self.window:  # full: jump the window forward
            self.start = self._length - self.keep
            self._next = self._prefill() if self.cached else self._recompute()
            return True
        return False

    def context(self) -> Tensor:
        """The tokens in the current window, ``(B, L)`` with ``L <= max_len - 1``: what the model sees."""
        return self.tokens[:, self.start:]

    def _prefill(self) -> Tensor:
        """A fresh cache holding the start vector and the window's tokens (one batched pass)."""
        logits, self.cache = self.model.prefill(self.context())
        return logits

    def _recompute(self) -> Tensor:
        """Teacher-forced pass over the window plus a placeholder token; params at the placeholder's
        position depend on the earlier tokens only."""
        ctx = self.context()
        x = torch.cat([ctx, ctx.new_zeros(ctx.shape[0], 1)], dim=1).unsqueeze(1)  # (B, 1, W + 1)
        return self.model(x)[:, :, -1]


def check_prompt(model: SequenceModel, prompt_ids: Sequence[int]) -> None:
    """:class:`ConfigError` unless ``model`` is a token model and every prompt id is in its vocabulary."""
    if getattr(model, "modality", None) != "text":
        raise ConfigError(f"{getattr(model, 'name', type(model).__name__)} is not a text model; "
                          "generation needs a sequence model")
    bad = [i for i in prompt_ids if not 0 <= int(i) < model.vocab_size]
    if bad:
        raise ConfigError(f"prompt token id {bad[0]} is outside the model's vocabulary of {model.vocab_size}")


@torch.inference_mode()
def generate_tokens(
    model: SequenceModel,
    prompt_ids: Sequence[int],
    cfg: GenerationConfig,
    use_cache: bool = True,
    generator: torch.Generator | None = None,
    engine: str = "eager",
) -> Iterator[Tensor]:
    """Yield each new token of all ``cfg.num_samples`` samples, ``(num_samples,)`` long, ``cfg.max_new_tokens``
    times. The model is in eval mode while this runs. ``generator`` defaults to one seeded with ``cfg.seed``
    (global randomness when that is ``None``). ``engine``: how cached steps run (see :class:`TokenContext`)."""
    check_prompt(model, prompt_ids)
    device = model.device
    if generator is None and cfg.seed is not None:
        generator = torch.Generator(device=device).manual_seed(cfg.seed)
    prompt = torch.tensor([int(i) for i in prompt_ids], dtype=torch.long, device=device)
    prompt = prompt.reshape(1, -1).repeat(cfg.num_samples, 1)
    was_training = model.training
    model.eval()
    try:
        ctx = TokenContext(model, prompt, use_cache, engine)
        for i in range(cfg.max_new_tokens):
            check_stop()  # a server may abandon the generation between tokens (see chainrule.core.sampling)
            token = choose_tokens(process_logits(ctx.logits(), ctx.tokens, cfg), cfg, generator)
            yield token
            if i + 1 < cfg.max_new_tokens:
                ctx.push(token)
    finally:
        model.train(was_training)
