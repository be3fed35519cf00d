"""The FastAPI app: health, model list, generate (JSON or server-sent events), sample, log_prob, forecast, page.

Every model request is a :class:`Job` with a deadline: its memory is estimated first (:mod:`memory`; over
``Limits.max_request_bytes`` it is refused with 422), then reserved from the server's memory budget
(:mod:`admission`; it waits in line, 503 at its deadline), and its work stops at the next step once it times out
(504) or its client disconnects. The reservation is handed back only when the work has stopped. ``log_prob``
requests share batched forward passes that are bounded in size and not stopped early. ``/openapi.json``
(the schema of every endpoint) is public, like the rest of the API: put the server behind an authenticating
proxy if it must not be reachable.

>>> from chainrule.serve.app import create_app
>>> from chainrule.serve.registry import load_registry
>>> app = create_app(load_registry(["runs/shakespeare-transformer"]))
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from chainrule.core.errors import ChainruleError
from chainrule.core.runs.kind import RunKind
from chainrule.modalities.text.generation import GenerationConfig
from chainrule.modalities.text.generation.batch import batchable
from chainrule.serve import audio, images, memory, text
from chainrule.serve import forecast as forecast_work
from chainrule.serve.admission import Budget, ServerBusy
from chainrule.serve.batching import MicroBatcher
from chainrule.serve.continuous import ContinuousBatcher
from chainrule.serve.guards import BodyLimit, install_error_handlers
from chainrule.serve.hosts import HostAllowList
from chainrule.serve.openai_models import model_list
from chainrule.serve.registry import ServedModel
from chainrule.serve.schemas import ForecastRequest, GenerateRequest, Limits, LogProbRequest, SampleRequest
from chainrule.serve.worker import Deadline, Job, RequestTimeout, Worker

log = logging.getLogger("chainrule.serve")
STATIC = Path(__file__).resolve().parent / "static"
PAGE_HEADERS = {"Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; "
                                           "object-src 'none'; "
                                           "base-uri 'none'; frame-ancestors 'none'",
                "X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}
USE = {RunKind.TEXT: "/v1/generate", RunKind.IMAGE: "/v1/sample", RunKind.SERIES: "/v1/forecast",
       RunKind.AUDIO: "/v1/sample"}


def pick(models: dict[str, ServedModel], name: str | None, kinds: tuple[RunKind, ...], endpoint: str) -> ServedModel:
    """The requested model (looked up by name only); 404 for an unknown name, 400 for the wrong kind."""
    if name is None:
        fits = [m for m in models.values() if m.kind in kinds]
        if len(fits) == 1:
            return fits[0]
        what = " or ".join(kinds)
        raise HTTPException(400, f"name the model: {len(fits)} {what} models are served "
                                 f"({', '.join(m.name for m in fits) or 'none'})")
    served = models.get(name)
    if served is None:
        raise HTTPException(404, f"unknown model {name!r}; served models: {', '.join(models)}")
    if served.kind not in kinds:
        article = "an" if served.kind[0] in "aeiou" else "a"
        raise HTTPException(400, f"model {name!r} is {article} {served.kind} model; {endpoint} needs a "
                                 f"{' or '.join(kinds)} model (use {USE[served.kind]})")
    return served


def _cap(value: int, limit: int, what: str) -> None:
    if value > limit:
        raise HTTPException(422, f"{what}: {value} is over this server's limit of {limit}")


def _sse(data: dict[str, Any], event: str | None = None) -> str:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data, ensure_ascii=False)}\n\n"


def _fits(estimate: int, limits: Limits, what: str) -> int:
    """``estimate`` (bytes), or 422 when one request may not use that much memory."""
    limit = min(limits.max_request_bytes, limits.memory_budget_bytes)
    if estimate > limit:
        raise HTTPException(422, f"this request would need about {memory.megabytes(estimate)} of memory, over this "
                                 f"server's limit of {memory.megabytes(limit)} per request; ask for {what}")
    return estimate


@asynccontextmanager
async def _until_disconnect(request: Request, job: Job) -> AsyncIterator[None]:
    """Stop ``job`` if the client disconnects while the block runs (a plain reply is only sent at the end, so
    nothing else would notice). The body has been read, so the next message is the disconnect."""
    async def watch() -> None:
        if (await request.receive())["type"] == "http.disconnect":
            job.stop()

    watcher = asyncio.create_task(watch())
    try:
        yield
    finally:
        watcher.cancel()


class DeadlineStream(StreamingResponse):
    """A streamed reply that ends at the request's deadline even when the client stops reading: a client that
    never reads would otherwise hold the generation, and its memory, for as long as it likes."""

    def __init__(self, content: AsyncIterator[str], deadline: Deadline, grace_s: float = 5.0, **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self.deadline, self.grace_s = deadline, grace_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await asyncio.wait_for(super().__call__(scope, receive, send), max(self.deadline.remaining(), 0.0)
                                   + self.grace_s)
        except asyncio.TimeoutError:  # not the builtin before Python 3.11
            log.warning("closed a streamed reply its client did not read within the time limit")
        finally:  # a stream cut short (deadline, client gone) would otherwise wait for garbage collection
            aclose = getattr(self.body_iterator, "aclose", None)
            if aclose is not None:
                await aclose()


def create_app(models: dict[str, ServedModel], limits: Limits | None = None, threads: int = 4,
               allowed_hosts: Sequence[str] | None = None) -> FastAPI:
    """The app serving ``models`` (from :func:`chainrule.serve.registry.load_registry`); ``allowed_hosts``: the
    names a request's Host header may carry (:mod:`chainrule.serve.hosts`; ``None`` allows any)."""
    limits = limits or Limits()
    worker = Worker(threads)
    batchers: dict[str, MicroBatcher] = {}
    budget = Budget(limits.memory_budget_bytes, f"memory budget ({memory.megabytes(limits.memory_budget_bytes)})")
    forecast_slots = Budget(limits.max_concurrent_forecasts, "forecast slots")  # fairness, see Limits

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        worker.shutdown()

    app = FastAPI(title="chainrule", summary="Autoregressive generative models over HTTP", lifespan=lifespan,
                  docs_url=None, redoc_url=None)  # the docs pages load scripts from a CDN; the page is offline
    app.add_middleware(BodyLimit, max_bytes=limits.max_body_bytes)
    if allowed_hosts is not None:
        app.add_middleware(HostAllowList, allowed=allowed_hosts)
    install_error_handlers(app)
    app.state.models, app.state.limits, app.state.batchers = models, limits, batchers
    app.state.worker, app.state.budget, app.state.forecast_slots = worker, budget, forecast_slots

    @app.exception_handler(ServerBusy)
    async def _busy(_: Request, exc: ServerBusy) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, 503, headers={"Retry-After": "1"})

    decoders: dict[str, ContinuousBatcher | None] = {}
    app.state.decoders = decoders

    def generation(served: ServedModel, prompt: str, options: dict[str, Any], job: Job, whole: bool = False
                   ) -> tuple[AsyncIterator[list[str]], GenerationConfig]:
        """A generation's per-step text pieces, checked now (:class:`ConfigError`) and run once iterated: in the
        model's continuous batch when its cache can join one, else token by token in pool slices. ``whole``: the
        caller only needs the text at the end (the batch then hands it on once)."""
        if served.name not in decoders:
            decoders[served.name] = (ContinuousBatcher(served.model, worker, limits.max_batch_rows)
                                     if batchable(served.model) else None)
        decoder = decoders[served.name]
        if decoder is None:
            steps, cfg = text.start_generation(served, prompt, options)
            return worker.iterate(steps, job), cfg
        ids, cfg = text.prepare_generation(served, prompt, options)
        return decoder.stream(served.tokenizer, ids, cfg, job, whole), cfg

    app.state.generation = generation

    def batcher(served: ServedModel) -> MicroBatcher:
        if served.name not in batchers:
            fn = ((lambda ex: text.token_log_prob(served.model, ex)) if served.kind is RunKind.TEXT
                  else (lambda ex: images.image_log_prob(served, ex)))
            batchers[served.name] = MicroBatcher(fn, worker)
        return batchers[served.name]

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers=PAGE_HEADERS)

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "models": len(models)}

    @app.get("/v1/models")
    async def list_models() -> dict[str, Any]:
        return {"models": [m.info() for m in models.values()],
                "limits": {"max_new_tokens": limits.max_new_tokens, "max_samples": limits.max_samples,
                           "max_seconds": limits.max_seconds,
                           "max_history": limits.max_history, "max_body_bytes": limits.max_body_bytes,
                           "timeout_s": limits.timeout_s, "max_request_bytes": limits.max_request_bytes,
                           "memory_budget_bytes": limits.memory_budget_bytes},
                **model_list(models)}  # OpenAI's list shape beside the native one

    @app.post("/v1/generate", response_model=None)
    async def generate(req: GenerateRequest, request: Request) -> dict[str, Any] | StreamingResponse:
        job = Job(Deadline(limits.timeout_s))
        served = pick(models, req.model, (RunKind.TEXT,), "/v1/generate")
        _cap(req.max_new_tokens, limits.max_new_tokens, "max_new_tokens")
        _cap(req.num_samples, limits.max_samples, "num_samples")
        need = _fits(memory.generate_bytes(served, req.prompt, req.num_samples, req.max_new_tokens,
                                           req.no_repeat_ngram_size), limits,
                     "fewer samples, a shorter prompt or fewer new tokens, or a smaller no_repeat_ngram_size")
        seed = text.pick_seed(req.seed)
        steps, cfg = generation(served, req.prompt, {**req.options(), "seed": seed}, job, whole=not req.stream)
        meta = {"model": served.name, "seed": seed}
        if not req.stream:
            texts = [""] * cfg.num_samples
            async with _until_disconnect(request, job), budget.reserve(need, job):
                async for pieces in steps:
                    texts = [t + p for t, p in zip(texts, pieces, strict=True)]
            return {**meta, "text": texts[0], "texts": texts}
        return DeadlineStream(_events(steps, cfg.num_samples, job, need, meta), job.deadline,
                              media_type="text/event-stream",
                              headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    async def _events(steps: AsyncIterator[list[str]], n: int, job: Job, need: int, meta: dict) -> AsyncIterator[str]:
        """The generation as server-sent events; the memory is reserved once the reply has started (an error
        after that is an ``error`` event), and handed back when the stream ends or its client leaves."""
        texts = [""] * n
        try:
            async with budget.reserve(need, job):
                async for pieces in steps:
                    for i, piece in enumerate(pieces):
                        if piece:
                            texts[i] += piece
                            yield _sse({"text": piece, "sample": i})
        except (RequestTimeout, ServerBusy, ChainruleError) as e:
            yield _sse({"detail": str(e)}, "error")
            return
        except Exception as e:  # headers are sent: report in the stream, keep serving
            log.exception("error while streaming")
            yield _sse({"detail": f"internal error ({type(e).__name__}); see the server log"}, "error")
            return
        yield _sse({**meta, "texts": texts}, "done")

    @app.post("/v1/sample", response_class=Response)
    async def sample(req: SampleRequest, request: Request) -> Response:
        job = Job(Deadline(limits.timeout_s))
        served = pick(models, req.model, (RunKind.IMAGE, RunKind.AUDIO), "/v1/sample")
        if served.kind is RunKind.AUDIO:
            return await _sample_audio(req, request, job, served)
        if req.seconds is not None:
            raise HTTPException(422, f"seconds: model {served.name!r} is an image model; seconds apply to audio")
        n = 16 if req.num_samples is None else req.num_samples
        _cap(n, limits.max_samples, "num_samples")
        need = _fits(memory.sample_bytes(served, n), limits, "fewer samples")
        seed = text.pick_seed(req.seed)
        if req.cls is not None:
            images.class_index(served, req.cls)  # unknown class -> 400 before any work
        async with _until_disconnect(request, job), budget.reserve(need, job):
            png = await worker.call(job, images.sample_png, served, n, req.cls, req.temperature, seed, req.nrow)
        return Response(png, media_type="image/png",
                        headers={"X-Chainrule-Model": served.name, "X-Chainrule-Seed": str(seed)})

    async def _sample_audio(req: SampleRequest, request: Request, job: Job, served: ServedModel) -> Response:
        """Waveforms as one 16-bit WAV at the run's rate (the bytes ``chainrule sample --seconds`` writes)."""
        if req.nrow is not None:
            raise HTTPException(422, f"nrow: model {served.name!r} is an audio model; nrow applies to image grids")
        n = 1 if req.num_samples is None else req.num_samples
        seconds = audio.DEFAULT_SECONDS if req.seconds is None else req.seconds
        _cap(n, limits.max_samples, "num_samples")
        if seconds > limits.max_seconds:
            raise HTTPException(422, f"seconds: {seconds:g} is over this server's limit of {limits.max_seconds:g}")
        need = _fits(memory.audio_bytes(served, n, audio.num_samples_of(served, seconds)), limits,
                     "fewer waveforms (num_samples) or fewer seconds")
        seed = text.pick_seed(req.seed)
        if req.cls is not None:
            images.class_index(served, req.cls)  # unknown class -> 400 before any work
        async with _until_disconnect(request, job), budget.reserve(need, job):
            wav = await worker.call(job, audio.sample_wav, served, n, seconds, req.cls, req.temperature, seed)
        return Response(wav, media_type="audio/wav",
                        headers={"X-Chainrule-Model": served.name, "X-Chainrule-Seed": str(seed),
                                 "X-Chainrule-Sample-Rate": str(served.extra["sample_rate"])})

    @app.post("/v1/log_prob")
    async def log_prob(req: LogProbRequest, request: Request) -> dict[str, Any]:
        job = Job(Deadline(limits.timeout_s))
        given = {k for k, v in ((RunKind.TEXT, req.texts), (RunKind.IMAGE, req.images), (RunKind.SERIES, req.series))
                 if v is not None}
        kinds = tuple(given) if req.model is None and len(given) == 1 else tuple(RunKind)
        served = pick(models, req.model, kinds, "/v1/log_prob")
        if served.kind is RunKind.SERIES:
            if req.series is None or req.texts is not None or req.images is not None:
                raise HTTPException(422, f"model {served.name!r} is a forecaster: send 'series' (lists of numbers, "
                                         "null for missing)")
            for s in req.series:
                _cap(len(s), limits.max_history, "series length")
            need = _fits(memory.series_log_prob_bytes(served, [len(s) for s in req.series]), limits,
                         "fewer or shorter series")
            async with _until_disconnect(request, job), forecast_slots.reserve(1, job), budget.reserve(need, job):
                results = await worker.call(job, forecast_work.surprisal, served, req.series, req.start)
        elif served.kind is RunKind.TEXT:
            if req.texts is None or req.images is not None or req.cls is not None:
                raise HTTPException(422, f"model {served.name!r} is a text model: send 'texts' (a list of strings)")
            ids = text.encode_texts(served, req.texts)
            need = _fits(memory.log_prob_bytes(served, len(ids), max(len(t) for t in ids)), limits, "fewer texts")
            async with budget.reserve(need, job):
                results = await batcher(served).submit(ids, job.deadline)
            for r, tok in zip(results, ids, strict=True):
                r["tokens"] = text.token_strings(served, tok)
        elif served.kind is not RunKind.IMAGE:
            raise HTTPException(422, f"model {served.name!r} is an {served.kind.value} model: /v1/log_prob scores "
                                     "text, image and series models ('chainrule eval' scores the others)")
        else:
            if req.images is None or req.texts is not None:
                raise HTTPException(422, f"model {served.name!r} is an image model: send 'images' "
                                         "(nested lists of integer levels)")
            cls = images.class_index(served, req.cls)
            examples = [(x, cls) for x in images.parse_images(served, req.images)]
            need = _fits(memory.log_prob_bytes(served, len(examples), int(served.model.num_positions)), limits,
                         "fewer images")
            async with budget.reserve(need, job):
                results = await batcher(served).submit(examples, job.deadline)
        return {"model": served.name, "unit": "nats", "results": results}

    @app.post("/v1/forecast")
    async def forecast(req: ForecastRequest, request: Request) -> dict[str, Any]:
        job = Job(Deadline(limits.timeout_s))
        served = pick(models, req.model, (RunKind.SERIES,), "/v1/forecast")
        _cap(len(req.history), limits.max_history, "history length")
        if all(v is None for v in req.history):
            raise HTTPException(422, "history: every value is missing (null)")
        quantiles = sorted(set(req.quantiles))
        need = _fits(memory.forecast_bytes(served, req.horizon, req.num_samples, len(quantiles)), limits,
                     "fewer samples (num_samples) or a shorter horizon")
        async with _until_disconnect(request, job), forecast_slots.reserve(1, job), budget.reserve(need, job):
            out = await worker.call(job, forecast_work.forecast, served, req.history, req.horizon, quantiles,
                                    req.num_samples, req.seed, req.start)
        return {"model": served.name, **out}

    from chainrule.serve.openai_api import install_openai  # built on this module's helpers, so imported late

    install_openai(app)
    return app
