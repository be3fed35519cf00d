"""OpenAI-compatible endpoints beside the native ones, so the ``openai`` client, LangChain and
lm-evaluation-harness (``local-completions``) can talk to ``chainrule serve``.

- ``POST /v1/completions``: OpenAI's completions. Generation is the native ``/v1/generate``'s (same options,
  limits, memory reservation, time limit and pool slices); ``echo`` + ``logprobs`` score the prompt (and the
  completion) with the native ``/v1/log_prob`` computation.
- ``GET /v1/models/{id}``: one model object (the list is the native ``GET /v1/models``, which carries both shapes).
- ``GET /tokenizer_info``, ``POST /tokenize``, ``POST /detokenize``: vLLM's tokenizer endpoints, which
  lm-evaluation-harness's remote tokenizer uses to split context from continuation.

Errors have OpenAI's shape (:mod:`chainrule.serve.openai_errors`) and the native status codes.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import StreamingResponse

from chainrule.core.errors import ConfigError
from chainrule.core.runs.kind import RunKind
from chainrule.serve import memory, text
from chainrule.serve.app import DeadlineStream, _cap, _fits, _until_disconnect, pick
from chainrule.serve.batching import MicroBatcher
from chainrule.serve.openai_choices import completion_id, finish_reasons, logprobs_object, recording
from chainrule.serve.openai_errors import OpenAIErrorShape, OpenAIRoute, error_response
from chainrule.serve.openai_models import model_object
from chainrule.serve.openai_schemas import CompletionRequest, DetokenizeRequest, TokenizeRequest
from chainrule.serve.registry import ServedModel
from chainrule.serve.worker import Deadline, Job

log = logging.getLogger("chainrule.serve")
ENDPOINT = "/v1/completions"


def _data(payload: dict[str, Any] | str) -> str:
    body = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    return f"data: {body}\n\n"


def prompt_tokens(served: ServedModel, prompts: list[str | list[int]]) -> tuple[list[list[int]], list[str]]:
    """Each prompt's token ids and text; :class:`ConfigError` for a token id outside the vocabulary."""
    ids, texts = [], []
    vocab = int(served.model.vocab_size)
    for i, p in enumerate(prompts):
        if isinstance(p, str):
            ids.append([int(t) for t in served.tokenizer.encode(p)])
            texts.append(p)
            continue
        bad = [t for t in p if t >= vocab]
        if bad:
            raise ConfigError(f"prompt[{i}]: token id {bad[0]} is outside model {served.name!r}'s vocabulary of "
                              f"{vocab}")
        ids.append(list(p))
        texts.append(served.tokenizer.decode(p) if p else "")
    return ids, texts


def install_openai(app: FastAPI) -> None:
    """Add the OpenAI-compatible routes to ``app`` (from :func:`chainrule.serve.app.create_app`), sharing its
    models, limits, worker pool and memory budget."""
    models: dict[str, ServedModel] = app.state.models
    limits, worker, budget = app.state.limits, app.state.worker, app.state.budget
    generation = app.state.generation  # the native route's generation: same batch, limits and checks
    scorers: dict[tuple[str, int], MicroBatcher] = {}
    router = APIRouter(route_class=OpenAIRoute)

    def scorer(served: ServedModel, top: int) -> MicroBatcher:
        """Batched scoring like the native ``/v1/log_prob``'s, with ``top`` alternatives per token."""
        key = (served.name, top)
        if key not in scorers:
            scorers[key] = MicroBatcher(lambda ex: text.token_log_prob(served.model, ex, top=top), worker)
        return scorers[key]

    def text_model(name: str | None) -> ServedModel:
        return pick(models, name, (RunKind.TEXT,), ENDPOINT)

    @router.post(ENDPOINT, response_model=None)
    async def completions(req: CompletionRequest, request: Request) -> dict[str, Any] | StreamingResponse:
        job = Job(Deadline(limits.timeout_s))
        served = text_model(req.model)
        n, new = req.n, req.new_tokens
        _cap(new, limits.max_new_tokens, "max_tokens")
        ids, prompts = prompt_tokens(served, req.prompts())
        _cap(n * len(prompts), limits.max_samples, "n × number of prompts")
        context = int(served.model.max_len)
        if req.logprobs is not None:
            longest = max(len(p) for p in ids) + new
            if longest > context:
                raise ConfigError(f"logprobs: a prompt of {longest - new} tokens plus max_tokens {new} is over model "
                                  f"{served.name!r}'s context of {context} tokens, the most it scores at once")
        need = max(memory.generate_bytes(served, p, n, new, 0) for p in prompts) if new else 0
        if req.logprobs is not None:
            need += memory.log_prob_bytes(served, n * len(prompts), context)
        need = _fits(need, limits, "fewer prompts or samples (n), shorter prompts or fewer tokens (max_tokens)")
        seed = text.pick_seed(req.seed)
        meta = {"id": completion_id(), "object": "text_completion", "created": int(time.time()),
                "model": served.name}

        def start(i: int) -> tuple[Any, Any]:
            """Prompt ``i``'s generation (the native one, in the model's continuous batch), seeded ``seed + i``,
            and what records its tokens."""
            view, rec = recording(served)
            steps, _ = generation(view, prompts[i], req.generation_options((seed + i) % 2**63), job,
                                  whole=not req.stream)
            return steps, rec

        if req.stream:
            return DeadlineStream(_chunks(req, prompts, start, job, need, meta), job.deadline,
                                  media_type="text/event-stream",
                                  headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no",
                                           "X-Chainrule-Seed": str(seed)})
        texts: list[list[str]] = []
        reasons: list[list[str]] = []
        async with _until_disconnect(request, job), budget.reserve(need, job):
            for i in range(len(prompts)):
                out, rec = [""] * n, None
                if new:
                    steps, rec = start(i)
                    async for pieces in steps:
                        out = [t + p for t, p in zip(out, pieces, strict=True)]
                texts.append(out)
                reasons.append(finish_reasons(rec, n, req.stops()))
            scored = await _score(served, req, ids, texts, job)
        choices = []
        for i, (prompt, outs) in enumerate(zip(prompts, texts, strict=True)):
            for j, completion in enumerate(outs):
                k = i * n + j
                choice: dict[str, Any] = {"text": (prompt if req.echo else "") + completion, "index": k,
                                          "logprobs": None, "finish_reason": reasons[i][j]}
                if scored is not None:
                    full, result = scored[k]
                    first = 0 if req.echo else len(ids[i])
                    choice["logprobs"] = logprobs_object(served, full, result, first, 0 if req.echo else len(prompt))
                choices.append(choice)
        completion_tokens = sum(len(served.tokenizer.encode(c)) for outs in texts for c in outs)
        prompt_count = sum(len(p) for p in ids)
        return {**meta, "choices": choices, "usage": {"prompt_tokens": prompt_count,
                                                      "completion_tokens": completion_tokens,
                                                      "total_tokens": prompt_count + completion_tokens}}

    async def _score(served: ServedModel, req: CompletionRequest, ids: list[list[int]], texts: list[list[str]],
                     job: Job) -> list[tuple[list[int], dict[str, Any] | None]] | None:
        """Each choice's prompt + completion tokens and their scores (None when no logprobs were asked for)."""
        if req.logprobs is None:
            return None
        full = [p + [int(t) for t in served.tokenizer.encode(c)] for p, outs in zip(ids, texts, strict=True)
                for c in outs]
        context = int(served.model.max_len)
        for seq in full:  # a completion re-encodes to at most as many tokens as were generated, but check
            if len(seq) > context:
                raise ConfigError(f"logprobs: prompt and completion are {len(seq)} tokens, over model "
                                  f"{served.name!r}'s context of {context}")
        nonempty = [seq for seq in full if seq]
        results = iter(await scorer(served, req.logprobs).submit(nonempty, job.deadline) if nonempty else [])
        return [(seq, next(results) if seq else None) for seq in full]

    async def _chunks(req: CompletionRequest, prompts: list[str], start: Any, job: Job, need: int,
                      meta: dict[str, Any]) -> AsyncIterator[str]:
        """The completion as server-sent chunks ending in ``data: [DONE]``; an error after the reply started is
        a chunk holding OpenAI's error object (which OpenAI clients raise)."""
        n = req.n
        try:
            async with budget.reserve(need, job):
                for i, prompt in enumerate(prompts):
                    if req.echo:
                        for j in range(n):
                            yield _data(_chunk(meta, i * n + j, prompt))
                    rec = None
                    if req.new_tokens:
                        steps, rec = start(i)
                        async for pieces in steps:
                            for j, piece in enumerate(pieces):
                                if piece:
                                    yield _data(_chunk(meta, i * n + j, piece))
                    for j, reason in enumerate(finish_reasons(rec, n, req.stops())):
                        yield _data(_chunk(meta, i * n + j, "", reason))
        except Exception as e:  # headers are sent: report in the stream, keep serving
            yield _data(json.loads(error_response(e, ENDPOINT).body))
            return
        yield _data("[DONE]")

    @router.get("/v1/models/{model_id}")
    async def one_model(model_id: str) -> dict[str, Any]:
        served = models.get(model_id)
        if served is None or served.kind is not RunKind.TEXT:
            text_names = [m.name for m in models.values() if m.kind is RunKind.TEXT]
            raise HTTPException(404, f"unknown model {model_id!r}; served text models: {', '.join(text_names)}")
        return model_object(served)

    @router.get("/tokenizer_info")
    async def tokenizer_info(model: str | None = None) -> dict[str, Any]:
        served = text_model(model)
        return {"model": served.name, "tokenizer_class": type(served.tokenizer).__name__, "eos_token": None,
                "bos_token": None, "pad_token": None, "model_max_length": int(served.model.max_len),
                "vocab_size": int(served.model.vocab_size)}

    @router.post("/tokenize")
    async def tokenize(req: TokenizeRequest) -> dict[str, Any]:
        served = text_model(req.model)
        tokens = [int(t) for t in served.tokenizer.encode(req.prompt)]
        return {"tokens": tokens, "count": len(tokens), "max_model_len": int(served.model.max_len)}

    @router.post("/detokenize")
    async def detokenize(req: DetokenizeRequest) -> dict[str, Any]:
        served = text_model(req.model)
        _, texts = prompt_tokens(served, [req.tokens])
        return {"prompt": texts[0]}

    app.include_router(router)
    app.add_middleware(OpenAIErrorShape, paths=(ENDPOINT, "/tokenizer_info", "/tokenize", "/detokenize"),
                       prefixes=("/v1/models/",))


def _chunk(meta: dict[str, Any], index: int, piece: str, finish_reason: str | None = None) -> dict[str, Any]:
    return {**meta, "choices": [{"text": piece, "index": index, "logprobs": None, "finish_reason": finish_reason}]}
