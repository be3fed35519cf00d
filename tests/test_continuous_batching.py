"""Continuous batching of text generation: generations that share batched decode steps give exactly what each
gives alone (own seed, processors, stop strings, window jumps), joins and leaves between steps do not disturb
the others, and both the native and the OpenAI routes decode through the batch."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch
from serve_helpers import TEXT_CHARS, make_text_run

from chainrule.modalities.registry import build_model, model_class
from chainrule.modalities.text.data.tokenizers import CharTokenizer
from chainrule.modalities.text.generation import GenerationConfig, generate_strings
from chainrule.modalities.text.generation.batch import DecodeBatch, Generation, batchable
from chainrule.serve.app import create_app
from chainrule.serve.continuous import ContinuousBatcher
from chainrule.serve.registry import load_registry
from chainrule.serve.schemas import Limits
from chainrule.serve.worker import Deadline, Job, RequestTimeout, Worker

TOKENIZER = CharTokenizer.fit(TEXT_CHARS)
#: (prompt, options): different seeds, lengths, temperatures, processors, stop strings and sample counts; the
#: third prompt is longer than the 24-position context and the longer ones run past it (window jumps)
REQUESTS: list[tuple[str, dict[str, Any]]] = [
    ("abc", {"max_new_tokens": 40, "seed": 1}),
    ("", {"max_new_tokens": 9, "temperature": 0.7, "top_k": 3, "stop": ["ab"], "seed": 2, "num_samples": 2}),
    ("h" * 30, {"max_new_tokens": 60, "temperature": 0, "repetition_penalty": 1.3, "seed": 3}),
    ("de f", {"max_new_tokens": 25, "temperature": 1.5, "stop": ["h"], "seed": 4, "num_samples": 3}),
    ("a", {"max_new_tokens": 30, "top_p": 0.8, "no_repeat_ngram_size": 2, "seed": 5}),
    ("gg", {"max_new_tokens": 0, "seed": 6}),
    ("b", {"max_new_tokens": 20, "seed": 8}),  # processed in one block with the first (same processors)
    ("ce", {"max_new_tokens": 15, "temperature": 0.7, "top_k": 3, "seed": 9}),  # ... with the second
    ("ha", {"max_new_tokens": 12, "temperature": 0, "seed": 10, "num_samples": 2}),
    ("hb", {"max_new_tokens": 14, "temperature": 0, "seed": 11}),
]


def tiny_model(name: str, max_len: int = 24) -> Any:
    """A tiny text model with sharpened random weights (so samples have structure) in eval mode."""
    torch.manual_seed(1)
    model = build_model(name, (1, max_len), TOKENIZER.vocab_size, head="categorical", **model_class(name, "text").TINY)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3.0)
    return model.eval()


def alone(model: Any, prompt: str, options: dict[str, Any]) -> list[str]:
    return generate_strings(model, TOKENIZER, prompt, GenerationConfig(**options))


@pytest.mark.parametrize("name", ["transformer", "rnn_lm", "hybrid"])
@torch.inference_mode()
def test_batched_generations_match_each_alone_with_joins_mid_decoding(name: str) -> None:
    model = tiny_model(name)
    assert batchable(model)
    gens = [Generation(model, TOKENIZER, TOKENIZER.encode(p), GenerationConfig(**o)) for p, o in REQUESTS]
    texts = [[""] * g.num_rows for g in gens]
    batch, waiting, step = DecodeBatch(model, max_rows=64), list(range(len(gens))), 0
    while waiting or batch.members:
        if step in (0, 3, 11):  # two start, the others join while those decode
            for i in waiting[:2] if step < 11 else list(waiting):
                waiting.remove(i)
                if gens[i].done:
                    texts[i] = gens[i].flush()
                else:
                    batch.join(gens[i])
        for gen, pieces in batch.advance() if batch.members else []:
            i = gens.index(gen)
            for p in pieces:
                texts[i] = [a + b for a, b in zip(texts[i], p, strict=True)]
        step += 1
    assert batch.rows == 0 and batch.cache_bytes() == 0  # everyone left; the buffers were handed back
    assert texts == [alone(model, p, o) for p, o in REQUESTS]


@torch.inference_mode()
def test_batch_row_limit_holds_generations_back() -> None:
    model = tiny_model("transformer")
    batch = DecodeBatch(model, max_rows=3)
    first, second = (Generation(model, TOKENIZER, [1], GenerationConfig(max_new_tokens=5, num_samples=2, seed=s))
                     for s in (1, 2))
    assert batch.fits(first)
    batch.join(first)
    assert not batch.fits(second)  # 2 + 2 rows > 3
    big = Generation(model, TOKENIZER, [1], GenerationConfig(max_new_tokens=5, num_samples=5, seed=3))
    assert not batch.fits(big)
    assert DecodeBatch(model, max_rows=3).fits(big)  # more rows than the limit: alone in an empty batch


async def _collect(stream: Any) -> list[str]:
    texts: list[str] | None = None
    async for pieces in stream:
        texts = pieces if texts is None else [a + b for a, b in zip(texts, pieces, strict=True)]
    assert texts is not None
    return texts


def test_cancelled_and_timed_out_requests_leave_the_others_unaffected() -> None:
    model = tiny_model("transformer")
    worker = Worker(2)
    batcher = ContinuousBatcher(model, worker, max_rows=64)

    async def run() -> None:
        def start(prompt: str, options: dict[str, Any], job: Job) -> Any:
            return batcher.stream(TOKENIZER, TOKENIZER.encode(prompt), GenerationConfig(**options), job)

        normal = [(p, o) for p, o in REQUESTS if o["max_new_tokens"]]
        jobs = [Job(Deadline(60)) for _ in normal]
        timed_out, cancelled = Job(Deadline(0.3)), Job(Deadline(60))
        endless = {"max_new_tokens": 1_000_000, "seed": 7}

        async def cancel_after_first_piece() -> None:
            with pytest.raises(RequestTimeout):  # a reader still there when its job stopped: the time limit
                async for _ in start("b", endless, cancelled):
                    cancelled.stop()  # as when the client disconnects

        async def time_out() -> None:
            with pytest.raises(RequestTimeout):
                await _collect(start("c", endless, timed_out))

        results = await asyncio.gather(*(_collect(start(p, o, j)) for (p, o), j in zip(normal, jobs, strict=True)),
                                       cancel_after_first_piece(), time_out())
        assert list(results[:len(normal)]) == [alone(model, p, o) for p, o in normal]
        for job in (*jobs, timed_out, cancelled):  # every row has left: the reservations can be handed back
            await asyncio.wait_for(_idle(job), 10)

    asyncio.run(run())
    worker.shutdown()
    assert batcher.batch.rows == 0 and batcher.most_rows >= 2


async def _idle(job: Job) -> None:
    done = asyncio.Event()
    job.when_idle(done.set)
    await done.wait()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    """An app serving a tiny text run (in process), and that run's model."""
    run = make_text_run(tmp_path_factory.mktemp("batching") / "chars")
    models = load_registry([run])
    return create_app(models, Limits(max_new_tokens=200)), models["chars"].model


def test_native_and_openai_routes_decode_in_one_batch(served: tuple[Any, Any]) -> None:
    app, model = served
    bodies = [{"prompt": "abc", "max_new_tokens": 120, "seed": 11},  # past the 64-token context
              {"prompt": "h", "max_new_tokens": 30, "temperature": 0.5, "stop": ["a"], "seed": 12, "num_samples": 2},
              {"prompt": "", "max_new_tokens": 50, "top_k": 4, "seed": 13, "stream": True}]
    completion = {"prompt": "fed", "max_tokens": 40, "temperature": 0.9, "seed": 14, "n": 2, "stream": False}

    async def run() -> list[Any]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost", timeout=60) as c:
            return await asyncio.gather(*(c.post("/v1/generate", json=b) for b in bodies),
                                        c.post("/v1/completions", json=completion),
                                        c.post("/v1/completions", json={**completion, "stream": True}))

    *native, openai_plain, openai_stream = asyncio.run(run())
    for body, reply in zip(bodies, native, strict=True):
        assert reply.status_code == 200, reply.text
        options = {k: v for k, v in body.items() if k not in ("prompt", "stream")}
        expected = alone(model, body["prompt"], options)
        if body.get("stream"):
            assert '"texts": ' + str(expected).replace("'", '"') in reply.text
        else:
            assert reply.json()["texts"] == expected
    expected = alone(model, "fed", {"max_new_tokens": 40, "temperature": 0.9, "seed": 14, "num_samples": 2})
    assert [c["text"] for c in openai_plain.json()["choices"]] == expected
    streamed = ["", ""]
    for line in openai_stream.text.splitlines():
        if line.startswith("data: {"):
            for choice in httpx.Response(200, content=line[6:]).json()["choices"]:
                streamed[choice["index"]] += choice["text"]
    assert streamed == expected
    decoder = app.state.decoders["chars"]
    assert decoder is not None and decoder.most_rows >= 2 and decoder.batch.rows == 0
    joined = decoder.joined
    reply = asyncio.run(_post(app, "/v1/completions", {"prompt": ["a", "b"], "max_tokens": 5, "seed": 1}))
    assert reply.status_code == 200 and decoder.joined == joined + 2  # one generation per prompt, in the batch


async def _post(app: Any, path: str, body: dict[str, Any]) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost") as c:
        return await c.post(path, json=body, timeout=60)


def test_cli_rejects_a_batch_of_no_rows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from chainrule.cli import main

    assert main(["serve", str(make_text_run(tmp_path / "chars")), "--max-batch", "0"]) == 1
    assert "--max-batch" in capsys.readouterr().err
