"""Model work for text models: generation (whole or streamed) and per-token surprisal."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import torch

from chainrule.core.errors import ConfigError
from chainrule.modalities.text.generation import GenerationConfig, stream_texts
from chainrule.modalities.text.generation.loop import check_prompt
from chainrule.modalities.text.generation.text import check_tokenizer
from chainrule.serve.registry import ServedModel

#: largest logits tensor (elements) one log-prob chunk may build
LOGITS_BUDGET = 1 << 25


def pick_seed(seed: int | None) -> int:
    """The request's seed, or a fresh one (reported back so the result can be reproduced)."""
    return seed if seed is not None else secrets.randbits(63)


def start_generation(served: ServedModel, prompt: str, options: dict[str, Any]
                     ) -> tuple[Iterator[list[str]], GenerationConfig]:
    """Check the options and the prompt (:class:`ConfigError`) and return the lazy per-step text pieces.

    Nothing runs the model until the iterator is advanced; each call has its own token context and cache.
    """
    cfg = GenerationConfig.from_options(**options)
    return stream_texts(served.model, served.tokenizer, prompt, cfg), cfg


def prepare_generation(served: ServedModel, prompt: str, options: dict[str, Any]
                       ) -> tuple[list[int], GenerationConfig]:
    """The prompt's token ids and the checked options (:class:`ConfigError`), for the batched decode loop."""
    cfg = GenerationConfig.from_options(**options)
    check_tokenizer(served.model, served.tokenizer)
    ids = [int(t) for t in served.tokenizer.encode(prompt)]
    check_prompt(served.model, ids)
    return ids, cfg


def encode_texts(served: ServedModel, texts: list[str]) -> list[list[int]]:
    """Token ids of each text; :class:`ConfigError` when one is empty or longer than the model's context."""
    out = []
    for i, text in enumerate(texts):
        ids = [int(t) for t in served.tokenizer.encode(text)]
        if not ids:
            raise ConfigError(f"texts[{i}] encodes to no tokens")
        if len(ids) > served.model.max_len:
            raise ConfigError(f"texts[{i}] is {len(ids)} tokens; model {served.name!r} scores at most "
                              f"{served.model.max_len} tokens (its context)")
        out.append(ids)
    return out


def token_log_prob(model: Any, examples: list[list[int]], top: int = 0) -> list[dict[str, Any]]:
    """Per-token surprisal (nats) and total NLL of each token list, right-padded into shared passes; with ``top``,
    also each position's ``top`` most likely tokens as ``[id, log-prob]`` pairs, read off the same log-softmax
    (so a token that is the most likely has exactly its surprisal's log-probability there).

    The model is causal, so padding after a sequence does not change its log-probabilities.
    """
    out: list[dict[str, Any]] = []
    longest = max(len(e) for e in examples)
    rows = max(1, LOGITS_BUDGET // max(longest * int(model.vocab_size), 1))
    for start in range(0, len(examples), rows):
        chunk = examples[start:start + rows]
        width = max(len(e) for e in chunk)
        x = torch.zeros(len(chunk), 1, width, dtype=torch.long, device=model.device)
        for i, ids in enumerate(chunk):
            x[i, 0, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        if not top:
            lp = model.log_prob_positions(x).double().cpu()  # (B, T)
        else:  # the same two steps as log_prob_positions, keeping the parameters for the alternatives
            params = model(x)
            lp = model.head.log_prob(params, x).double().cpu()
            levels = torch.log_softmax(model.head.logits(params), dim=2)[:, 0]  # (B, V, T), as the head computes it
            best = levels.topk(min(top, levels.shape[1]), dim=1)
            best_lp, best_id = best.values.double().cpu(), best.indices.cpu()  # (B, k, T)
        for i, ids in enumerate(chunk):
            s = -lp[i, : len(ids)]
            out.append({"nll": float(s.sum()), "surprisal": s.tolist()})
            if top:
                at_ids, at_lps = best_id[i, :, : len(ids)].T.tolist(), best_lp[i, :, : len(ids)].T.tolist()
                out[-1]["top"] = [list(zip(a, b, strict=True)) for a, b in zip(at_ids, at_lps, strict=True)]
    return out


def token_strings(served: ServedModel, ids: list[int]) -> list[str]:
    """Each token's text (bytes decoded leniently: a character split across tokens shows as U+FFFD)."""
    return [served.tokenizer.token_bytes(t).decode("utf-8", errors="replace") for t in ids]
