"""Logits processors: functions on next-token logits ``(B, V)``, vectorised over the batch.

Each returns new logits (banned tokens at ``-inf``) and leaves its input untouched. ``tokens`` is the
context so far, ``(B, L)`` long (prompt + generated). :func:`process_logits` applies them in the usual
order — repetition penalty, no-repeat-n-gram, temperature, top-k, top-p — and :func:`choose_tokens`
draws (or, at temperature 0, takes the argmax of) the next token.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from chainrule.modalities.text.generation.config import GenerationConfig

NEG_INF = float("-inf")


def apply_temperature(logits: Tensor, temperature: float) -> Tensor:
    """Divide by ``temperature``; at 0 keep only the argmax (the limit ``temperature -> 0``: greedy).

    Ties for the maximum at temperature 0 go to the lowest token id (as ``torch.argmax``).
    """
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if temperature == 0:
        keep = torch.zeros_like(logits, dtype=torch.bool).scatter_(1, logits.argmax(1, keepdim=True), True)
        return logits.masked_fill(~keep, NEG_INF)
    return logits / temperature


def top_k_filter(logits: Tensor, k: int | None) -> Tensor:
    """Keep exactly the ``k`` largest logits of each row, set the rest to ``-inf``.

    Tie rule: when several tokens share the k-th largest value, the ones with the lowest token ids are
    kept, so exactly ``k`` tokens survive (``min(k, V)``). ``None``/0 or ``k >= V`` keeps everything.
    """
    if not k or k >= logits.shape[1]:
        return logits.clone()
    order = torch.sort(logits, dim=1, descending=True, stable=True).indices  # stable: lower id first on ties
    keep = torch.zeros_like(logits, dtype=torch.bool).scatter_(1, order[:, :k], True)
    return logits.masked_fill(~keep, NEG_INF)


def top_p_filter(logits: Tensor, p: float) -> Tensor:
    """Nucleus filter: keep the smallest set of most likely tokens whose probability sums to >= ``p``.

    Probabilities are the softmax of ``logits`` as given (so after top-k they are renormalised over the
    surviving tokens). The most likely token is always kept; ties are ordered by lower token id first.
    ``p = 1`` keeps everything.
    """
    if not 0 < p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {p}")
    if p >= 1:
        return logits.clone()
    probs = torch.softmax(logits.float(), dim=1)
    sorted_probs, order = torch.sort(probs, dim=1, descending=True, stable=True)
    mass_before = sorted_probs.cumsum(1) - sorted_probs
    drop_sorted = mass_before >= p  # the set reached p before this token; the first token has 0 before it
    drop_sorted[:, 0] = False
    drop = torch.zeros_like(drop_sorted).scatter_(1, order, drop_sorted)
    return logits.masked_fill(drop, NEG_INF)


def seen_mask(tokens: Tensor, vocab_size: int) -> Tensor:
    """``(B, V)`` bool: which token ids occur in each row of ``tokens`` ``(B, L)``."""
    mask = torch.zeros(tokens.shape[0], vocab_size, dtype=torch.bool, device=tokens.device)
    if tokens.shape[1]:
        mask.scatter_(1, tokens, True)
    return mask


def repetition_penalty(logits: Tensor, tokens: Tensor, penalty: float) -> Tensor:
    """CTRL penalty for every token id present in ``tokens``: positive logits are divided by ``penalty``,
    negative ones multiplied by it. With ``penalty > 1`` each such token's logit drops (a logit of exactly
    0 stays 0), so its probability relative to every unseen token drops."""
    if penalty == 1.0:
        return logits.clone()
    seen = seen_mask(tokens, logits.shape[1])
    penalised = torch.where(logits > 0, logits / penalty, logits * penalty)
    return torch.where(seen, penalised, logits)


def banned_ngram_mask(tokens: Tensor, n: int, vocab_size: int) -> Tensor:
    """``(B, V)`` bool: tokens that would complete an n-gram already present in ``tokens`` ``(B, L)``.

    The candidate n-gram is the last ``n - 1`` tokens followed by the new token; for ``n = 1`` every
    token already present is banned.
    """
    b, length = tokens.shape
    banned = torch.zeros(b, vocab_size, dtype=torch.bool, device=tokens.device)
    if n < 1 or length < n:
        return banned
    grams = tokens.unfold(1, n, 1)  # (B, L - n + 1, n)
    prefix = tokens[:, length - n + 1:]  # (B, n - 1)
    match = (grams[:, :, :-1] == prefix.unsqueeze(1)).all(-1)  # (B, L - n + 1)
    hits = torch.zeros(b, vocab_size, device=tokens.device).scatter_add_(1, grams[:, :, -1], match.float())
    return hits > 0


def no_repeat_ngram(logits: Tensor, tokens: Tensor, n: int) -> Tensor:
    """Set to ``-inf`` exactly the tokens that would repeat an n-gram of ``tokens`` (``n = 0``: off)."""
    if n <= 0:
        return logits.clone()
    return logits.masked_fill(banned_ngram_mask(tokens, n, logits.shape[1]), NEG_INF)


def process_logits(logits: Tensor, tokens: Tensor, cfg: GenerationConfig) -> Tensor:
    """All processors of ``cfg`` in order: repetition penalty, no-repeat-n-gram, temperature, top-k, top-p.

    A row whose tokens are all banned by the n-gram rule falls back to its penalised logits, so a
    token can always be chosen.
    """
    logits = repetition_penalty(logits.float(), tokens, cfg.repetition_penalty)
    allowed = no_repeat_ngram(logits, tokens, cfg.no_repeat_ngram_size)
    none_left = torch.isneginf(allowed).all(1, keepdim=True)
    logits = torch.where(none_left, logits, allowed)
    logits = apply_temperature(logits, cfg.temperature)
    logits = top_k_filter(logits, cfg.top_k)
    return top_p_filter(logits, cfg.top_p)


def choose_tokens(logits: Tensor, cfg: GenerationConfig, generator: torch.Generator | None = None) -> Tensor:
    """Next token ``(B,)`` from processed logits: argmax at temperature 0 (no random draw), otherwise one draw
    per row from their softmax (:func:`race`)."""
    if cfg.temperature == 0:
        return logits.argmax(1)
    probs = torch.softmax(logits, dim=1)
    return race(probs, race_noise(probs, generator))


def race_noise(probs: Tensor, generator: torch.Generator | None) -> Tensor:
    """The random numbers of one draw per row of ``probs``: an ``Exp(1)`` variable per token, from ``generator``."""
    return torch.empty_like(probs).exponential_(1, generator=generator)


def race(probs: Tensor, noise: Tensor) -> Tensor:
    """The token of each row whose ``probs / noise`` is largest: with ``Exp(1)`` noise, token ``i`` wins with
    probability ``probs[i]`` (the exponential race; ``torch.multinomial`` draws one sample this way, from the same
    random numbers). Written out so rows of many generations can race at once, each with its own noise."""
    return (probs / noise).argmax(1)
