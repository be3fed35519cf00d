"""Continuous batching: many generations share one batched model ``step`` per token.

A :class:`Generation` is one request's samples with everything :func:`~.text.stream_texts` gives them when they
run alone: its own token context (prefill, window jumps), logits processors, ``torch.Generator`` and text streams
with stop strings. A :class:`DecodeBatch` holds the rows (one per sample) of every generation that joined, in one
cache: key/value buffers with a row per sample and a position per row (rows of different lengths read their own
slots under a mask, :meth:`~chainrule.core.nn.attention.CausalSelfAttention.step`), recurrent states batched on
their batch axis. :meth:`DecodeBatch.advance` picks each generation's next tokens from its own logits with its own
generator, then runs one ``step`` over all rows. Generations join (their prefilled cache copied into free rows)
and leave between steps; a leaving generation's rows are refilled from the last rows, so the buffers never move
as a whole.

Same output as alone: the draws depend only on a generation's logits and generator, and a batched step computes
each row as the lone step does, up to the float rounding of batched products (about 1e-7), so a token could differ
only if a draw landed within that distance of a boundary between two tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from chainrule.modalities.text.generation.config import GenerationConfig
from chainrule.modalities.text.generation.loop import TokenContext, check_prompt
from chainrule.modalities.text.generation.processors import choose_tokens, process_logits, race, race_noise
from chainrule.modalities.text.generation.text import TextStream, TokenDecoder, check_tokenizer

#: cache entries a batch knows how to hold: per-row buffers on axis 0, a recurrent state on axis 1 (PyTorch's
#: ``(layers, B, hidden)``), the next position, and entries every row shares (weights, rotary tables)
ROW_BUFFERS, STATE, POSITION, SHARED = ("k", "v"), "state", "pos", ("w", "rope", "batch_size", "cond")


def batchable(model: Any) -> bool:
    """Whether ``model``'s decode cache is one a :class:`DecodeBatch` can hold (unconditional, known entries)."""
    if not getattr(model, "supports_cache", False) or getattr(model, "modality", None) != "text":
        return False
    cache = model.init_cache(1)
    return cache.get("cond") is None and set(cache) <= {*ROW_BUFFERS, STATE, POSITION, *SHARED}


class Generation:
    """One request's samples: prefilled on construction (call it off the decode loop), then fed tokens.

    ``pieces`` after each token are the newly final text of every sample, as :func:`~.text.decode_stream` yields.
    """

    def __init__(self, model: Any, tokenizer: TokenDecoder, prompt_ids: Sequence[int], cfg: GenerationConfig
                 ) -> None:
        check_tokenizer(model, tokenizer)
        check_prompt(model, prompt_ids)
        self.cfg, self.tokenizer = cfg, tokenizer
        self.num_rows = cfg.num_samples
        self.generator = None if cfg.seed is None else torch.Generator(device=model.device).manual_seed(cfg.seed)
        self.streams = [TextStream(cfg.stop) for _ in range(cfg.num_samples)]
        self.made = 0
        self.done = cfg.max_new_tokens == 0
        self.rows: list[int] = []
        self.ctx: TokenContext | None = None
        if not self.done:
            prompt = torch.tensor([int(i) for i in prompt_ids], dtype=torch.long, device=model.device)
            self.ctx = TokenContext(model, prompt.reshape(1, -1).repeat(cfg.num_samples, 1), use_cache=True)
        self.logits = None if self.ctx is None else self.ctx.logits()

    def choose(self) -> Tensor:
        """The next token of every sample ``(num_samples,)``, from its logits with its own processors and
        generator (what :func:`~.loop.generate_tokens` draws)."""
        assert self.ctx is not None and self.logits is not None
        return choose_tokens(process_logits(self.logits, self.ctx.tokens, self.cfg), self.cfg, self.generator)

    def accept(self, ids: list[int]) -> list[list[str]]:
        """Feed the chosen token ids to the text streams; the piece lists to hand on (a last flush once
        ``max_new_tokens`` are made). Sets ``done`` when every sample stopped or the tokens are all made."""
        self.made += 1
        out = [[s.push(self.tokenizer.token_bytes(t)) for s, t in zip(self.streams, ids, strict=True)]]
        if all(s.done for s in self.streams):
            self.done = True
        elif self.made >= self.cfg.max_new_tokens:
            self.done = True
            out.append([s.finish() for s in self.streams])
        return out

    def flush(self) -> list[str]:
        """The held-back text of every sample (for a generation of no tokens)."""
        return [s.finish() for s in self.streams]


class DecodeBatch:
    """The rows of the generations decoding together (at most ``max_rows``, unless one generation alone needs
    more) and their shared cache. Not thread-safe: one decode loop owns it."""

    def __init__(self, model: Any, max_rows: int) -> None:
        self.model, self.max_rows = model, max(1, int(max_rows))
        self.members: list[Generation] = []
        self.owners: list[Generation] = []  # row -> its generation
        self.positions: dict[int, int] = {}  # id(generation) -> its rows' next position (no host sync to read)
        self._buffers: dict[str, list[Tensor]] = {}  # per-row buffers with spare rows: (capacity, ...)
        self._state: Any = None
        self._pos: Tensor | None = None
        self._shared: dict[str, Any] = {}

    @property
    def rows(self) -> int:
        return len(self.owners)

    def fits(self, gen: Generation) -> bool:
        return not self.owners or self.rows + gen.num_rows <= self.max_rows

    def cache_bytes(self) -> int:
        """Bytes the batch's buffers hold now (including spare rows)."""
        return sum(t.numel() * t.element_size() for bufs in self._buffers.values() for t in bufs)

    def join(self, gen: Generation) -> None:
        """Move ``gen``'s prefilled cache into rows at the end of the batch."""
        assert gen.ctx is not None and gen.ctx.cache is not None
        cache, start, b = gen.ctx.cache, self.rows, gen.num_rows
        if not self.owners:
            self._shared = {k: cache[k] for k in ("w", "rope") if k in cache}
        for key in ROW_BUFFERS:
            if key in cache:
                self._buffers[key] = [self._room(key, i, t, start + b) for i, t in enumerate(cache[key])]
                for buf, t in zip(self._buffers[key], cache[key], strict=True):
                    buf[start:start + b] = t
        if POSITION in cache:
            pos = torch.full((b,), int(cache[POSITION]), dtype=torch.long, device=self.model.device)
            self._pos = pos if self._pos is None or not self.owners else torch.cat([self._pos, pos])
            self.positions[id(gen)] = int(cache[POSITION])
        state = cache.get(STATE)
        self._state = state if not self.owners else _cat_state(self._state, state)
        gen.ctx.cache = None  # the batch holds it now
        gen.rows = list(range(start, start + b))
        self.owners += [gen] * b
        self.members.append(gen)

    def leave(self, gen: Generation) -> None:
        """Drop ``gen``'s rows: the last rows of the batch move into them."""
        self.members.remove(gen)
        self.positions.pop(id(gen), None)
        gone, end = set(gen.rows), self.rows - gen.num_rows
        holes = sorted(r for r in gone if r < end)
        movers = [r for r in range(end, self.rows) if r not in gone]
        if holes:
            src = torch.tensor(movers, device=self.model.device)
            dst = torch.tensor(holes, device=self.model.device)
            for bufs in self._buffers.values():
                for buf in bufs:
                    buf[dst] = buf[src]
            for s, d in zip(movers, holes, strict=True):
                owner = self.owners[s]
                owner.rows[owner.rows.index(s)] = d
                self.owners[d] = owner
        order = torch.arange(end, device=self.model.device)
        if holes:
            order[torch.tensor(holes, device=self.model.device)] = torch.tensor(movers, device=self.model.device)
        if self._pos is not None:
            self._pos = self._pos[order]
        self._state = _select_state(self._state, order)
        del self.owners[end:]
        gen.rows = []
        if not self.owners:  # hand the buffers back while nobody decodes
            self._buffers, self._state, self._pos, self._shared = {}, None, None, {}

    def advance(self) -> list[tuple[Generation, list[list[str]]]]:
        """One token for every member: each chooses from its own logits, then one batched ``step`` computes the
        next logits of those that continue. Returns each member's text pieces; finished members have left."""
        members = list(self.members)
        chosen = choose_all(members)
        ids = torch.cat(chosen).tolist()  # the one host sync of a step
        out, at = [], 0
        for g in members:
            out.append((g, g.accept(ids[at:at + g.num_rows])))
            at += g.num_rows
        stepping, jumped = [], []
        for g, tokens in zip(members, chosen, strict=True):
            if g.done:
                self.leave(g)
            elif g.ctx is not None and g.ctx.append(tokens):  # window jumped: a fresh prefill replaces its rows
                self.leave(g)
                jumped.append(g)
            else:
                stepping.append((g, tokens))
        if stepping:
            self._step(stepping)
        for g in jumped:
            assert g.ctx is not None
            g.logits = g.ctx.logits()
            self.join(g)
        return out

    def _step(self, stepping: list[tuple[Generation, Tensor]]) -> None:
        device = self.model.device
        where = torch.tensor([r for g, _ in stepping for r in g.rows], device=device)
        x = torch.empty(self.rows, dtype=torch.long, device=device)
        x[where] = torch.cat([t for _, t in stepping])
        cache: dict[str, Any] = {**self._shared, "batch_size": self.rows, "cond": None,
                                 **{k: [buf[:self.rows] for buf in bufs] for k, bufs in self._buffers.items()}}
        if self._pos is not None:
            cache[POSITION] = self._pos
            cache["span"] = max(self.positions.values()) + 1
        if self._state is not None or not self._buffers:
            cache[STATE] = self._state
        logits, cache = self.model.step(x.unsqueeze(1), cache)
        self._state = cache.get(STATE)
        if self._pos is not None:
            self._pos = cache[POSITION]
            for key in self.positions:
                self.positions[key] += 1
        for g, _ in stepping:
            first, last = g.rows[0], g.rows[-1]
            contiguous = last - first + 1 == g.num_rows and g.rows == list(range(first, last + 1))
            g.logits = logits[first:last + 1] if contiguous else logits[torch.tensor(g.rows, device=device)]

    def _room(self, key: str, layer: int, like: Tensor, rows: int) -> Tensor:
        """The buffer of ``key`` for ``layer`` with at least ``rows`` rows (grown by doubling, the rows in use
        copied over)."""
        bufs = self._buffers.get(key)
        buf = bufs[layer] if bufs else None
        if buf is not None and buf.shape[0] >= rows:
            return buf
        grown = like.new_zeros((max(rows, 2 * (0 if buf is None else buf.shape[0])), *like.shape[1:]))
        if buf is not None and self.owners:
            grown[:self.rows] = buf[:self.rows]
        return grown


def choose_all(members: Sequence[Generation]) -> list[Tensor]:
    """Every generation's next tokens. Generations whose processors read no token history (no repetition
    penalty or n-gram ban) and agree on the others are processed as one block (every processor works row by
    row), and race with each one's own noise from its own generator, so each draws what it draws alone."""
    chosen: list[Tensor | None] = [None] * len(members)
    blocks: dict[tuple[float, int, float], list[int]] = {}
    for i, g in enumerate(members):
        c = g.cfg
        if c.repetition_penalty == 1.0 and not c.no_repeat_ngram_size:
            blocks.setdefault((c.temperature, c.top_k or 0, c.top_p), []).append(i)
        else:
            chosen[i] = g.choose()
    for (temperature, _, _), block in blocks.items():
        gens = [members[i] for i in block]
        if len(gens) == 1:
            chosen[block[0]] = gens[0].choose()
            continue
        logits = torch.cat([g.logits for g in gens])  # type: ignore[misc]
        logits = process_logits(logits, logits.new_zeros((logits.shape[0], 0), dtype=torch.long), gens[0].cfg)
        if temperature == 0:
            tokens = logits.argmax(1)
        else:
            probs = torch.softmax(logits, dim=1)
            tokens = race(probs, torch.cat([race_noise(probs[:g.num_rows], g.generator) for g in gens]))
        for i, part in zip(block, tokens.split([g.num_rows for g in gens]), strict=True):
            chosen[i] = part
    return chosen  # type: ignore[return-value]


def _cat_state(a: Any, b: Any) -> Any:
    """Two recurrent states (``h`` or a tuple ``(h, c)``, batch on axis 1) side by side."""
    if a is None or b is None:
        return a if b is None else b
    if isinstance(a, tuple):
        return tuple(torch.cat([x, y], dim=1) for x, y in zip(a, b, strict=True))
    return torch.cat([a, b], dim=1)


def _select_state(state: Any, order: Tensor) -> Any:
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(s.index_select(1, order) for s in state)
    return state.index_select(1, order)
