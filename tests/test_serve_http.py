"""``chainrule serve`` over real HTTP: a uvicorn process on loopback, started once for this module.

Streaming sends one event per token and adds up to the non-streamed text; answers equal the library's own
(generate, sample, log_prob); bad requests get a 4xx with a message and the server keeps serving;
concurrent requests give exactly what they give alone (each request has its own cache and generator).
"""

from __future__ import annotations

import io
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from PIL import Image
from serve_helpers import make_image_run, make_text_run, running_server

from chainrule import api
from chainrule.modalities.image.grids import make_grid
from chainrule.serve.images import grid_scale

MAX_NEW_TOKENS = 512  # the server's own limit, below the schema's cap of 1024


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("serve")
    return {"tiny-text": make_text_run(root / "a" / "tiny-text", seed=1),
            "tiny-text-2": make_text_run(root / "b" / "tiny-text", seed=7),  # same directory name: de-duplicated
            "digits": make_image_run(root / "digits")}


@pytest.fixture(scope="module")
def base(runs, tmp_path_factory) -> str:
    log = tmp_path_factory.mktemp("serve-log") / "server.log"
    with running_server(list(runs.values()), log, "--max-new-tokens", str(MAX_NEW_TOKENS)) as url:
        yield url


@pytest.fixture(scope="module")
def client(base):
    with httpx.Client(base_url=base, timeout=120) as c:
        yield c


def sse_events(client: httpx.Client, body: dict) -> list[tuple[str, dict]]:
    """(event, data) pairs, read incrementally from the response stream."""
    events, event, data = [], "message", []
    with client.stream("POST", "/v1/generate", json={**body, "stream": True}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip(" "))
            elif line == "" and data:
                events.append((event, json.loads("\n".join(data))))
                event, data = "message", []
    return events


def test_health_and_models(client):
    assert client.get("/healthz").json()["status"] == "ok"
    models = {m["name"]: m for m in client.get("/v1/models").json()["models"]}
    assert set(models) == {"tiny-text", "tiny-text-2", "digits"}
    assert models["tiny-text"]["kind"] == "text" and models["tiny-text"]["context"] == 64
    assert models["digits"]["kind"] == "image" and models["digits"]["num_classes"] == 10


def test_stream_sends_tokens_as_events_and_matches_plain_text(client, runs):
    body = {"model": "tiny-text", "prompt": "abc", "max_new_tokens": 48, "seed": 11, "temperature": 0.9}
    plain = client.post("/v1/generate", json=body).json()
    events = sse_events(client, body)
    tokens = [d["text"] for e, d in events if e == "message"]
    assert len(tokens) == 48 and all(len(t) == 1 for t in tokens)  # one event per (character) token
    assert events[-1][0] == "done" and events[-1][1]["texts"] == [plain["text"]]
    assert "".join(tokens) == plain["text"]
    assert plain["text"] == api.generate_texts(runs["tiny-text"], "abc", max_new_tokens=48, seed=11,
                                               temperature=0.9)[0]
    other = client.post("/v1/generate", json={**body, "model": "tiny-text-2"}).json()["text"]
    assert other != plain["text"]  # the de-duplicated name reaches the other run


def test_several_samples_and_stop(client, runs):
    body = {"model": "tiny-text", "prompt": "ab", "max_new_tokens": 30, "seed": 3, "num_samples": 3}
    out = client.post("/v1/generate", json=body).json()
    assert out["texts"] == api.generate_texts(runs["tiny-text"], "ab", num_samples=3, max_new_tokens=30, seed=3)
    stop = out["texts"][0][10:12]
    cut = client.post("/v1/generate", json={**body, "stop": [stop]}).json()["texts"][0]
    assert cut == out["texts"][0][: out["texts"][0].find(stop)]
    streamed = [d for e, d in sse_events(client, body) if e == "message"]
    for i in range(3):
        assert "".join(d["text"] for d in streamed if d["sample"] == i) == out["texts"][i]


def png_pixels(data: bytes) -> np.ndarray:
    return np.array(Image.open(io.BytesIO(data)))


def test_sample_png_equals_library_samples(client, runs):
    r = client.post("/v1/sample", json={"model": "digits", "num_samples": 6, "class": 3, "seed": 5})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    x = api.sample(runs["digits"], 6, cls=3, seed=5)
    assert np.array_equal(png_pixels(r.content), np.array(make_grid(x, 2, scale=grid_scale(8))))
    by_name = client.post("/v1/sample", json={"model": "digits", "num_samples": 6, "class": "c3", "seed": 5})
    assert by_name.content == r.content
    other = client.post("/v1/sample", json={"model": "digits", "num_samples": 6, "class": 3, "seed": 6})
    assert other.content != r.content


def test_log_prob_text_matches_model(client, runs):
    texts = ["abc", "hhh ggg\nabcdefgh", "a"]
    out = client.post("/v1/log_prob", json={"model": "tiny-text", "texts": texts}).json()
    model, tok = api.load_text_run(runs["tiny-text"])
    for text, res in zip(texts, out["results"], strict=True):
        assert res["tokens"] == list(text)
        with torch.no_grad():
            lp = model.log_prob_positions(torch.tensor(tok.encode(text)).view(1, 1, -1))[0].double()
        assert np.allclose(res["surprisal"], (-lp).tolist(), rtol=1e-5, atol=1e-6)
        assert res["nll"] == pytest.approx(sum(res["surprisal"]), rel=1e-9)


def test_log_prob_images_matches_model(client, runs):
    from sklearn.datasets import load_digits

    imgs = (load_digits().images[:3] / 16.0 > 0.5).astype("int64")
    out = client.post("/v1/log_prob", json={"model": "digits", "images": imgs.tolist(), "class": 2}).json()
    model = api.open_run(runs["digits"]).load_model()
    with torch.no_grad():
        lp = model.log_prob_positions(torch.from_numpy(imgs).unsqueeze(1), torch.full((3,), 2)).double()
    for i, res in enumerate(out["results"]):
        assert np.allclose(res["surprisal"], (-lp[i]).numpy(), rtol=1e-5, atol=1e-6)
        assert res["nll"] == pytest.approx(-float(lp[i].sum()), rel=1e-5)


BAD_REQUESTS = [
    ("/v1/generate", {"model": "tiny-text", "prompt": "x" * 1_200_000}, 413, "too large"),
    ("/v1/generate", {"model": "tiny-text", "max_new_tokens": "many"}, 422, "max_new_tokens"),
    ("/v1/generate", '{"model": "tiny-text", "temperature": NaN}', 422, "temperature"),
    ("/v1/generate", '{"model": "tiny-text", "top_p": Infinity}', 422, "top_p"),
    ("/v1/forecast", '{"history": [1.0, NaN, 2.0]}', 422, "history"),
    ("/v1/generate", {"model": "gpt-17", "prompt": "a"}, 404, "unknown model"),
    ("/v1/generate", {"model": "tiny-text", "max_new_tokens": 5000}, 422, "max_new_tokens"),
    ("/v1/generate", {"model": "tiny-text", "max_new_tokens": MAX_NEW_TOKENS + 1}, 422, f"limit of {MAX_NEW_TOKENS}"),
    ("/v1/generate", {"model": "../x", "prompt": "a"}, 404, "unknown model"),
    ("/v1/generate", {"model": "../../../etc/passwd"}, 404, "unknown model"),
    ("/v1/generate", {"model": "/etc/passwd"}, 404, "unknown model"),
    ("/v1/sample", {"model": "../digits"}, 404, "unknown model"),
    ("/v1/log_prob", {"model": "tiny-text/../digits", "texts": ["a"]}, 404, "unknown model"),
    ("/v1/generate", '{"model": "tiny-text", ', 422, "not valid JSON"),
    ("/v1/generate", {"model": "tiny-text", "max_tokens": 5}, 422, "max_tokens"),
    ("/v1/generate", {"model": "tiny-text", "top_p": 0}, 422, "top_p"),
    ("/v1/generate", {"model": "tiny-text", "num_samples": 100}, 422, "num_samples"),
    ("/v1/generate", {"model": "digits"}, 400, "image model"),
    ("/v1/generate", {"prompt": "a"}, 400, "name the model"),
    ("/v1/sample", {"model": "digits", "class": "cat"}, 400, "unknown class"),
    ("/v1/sample", {"model": "digits", "class": 10}, 400, "out of range"),
    ("/v1/sample", {"model": "digits", "num_samples": 0}, 422, "num_samples"),
    ("/v1/log_prob", {"model": "tiny-text", "texts": ["abcdefgh" * 9]}, 400, "context"),
    ("/v1/log_prob", {"model": "tiny-text", "texts": []}, 422, "texts"),
    ("/v1/log_prob", {"model": "tiny-text", "images": [[[0]]]}, 422, "text model"),
    ("/v1/log_prob", {"model": "digits", "images": [[[0, 1], [1, 0]]], "class": 1}, 400, "shape"),
    ("/v1/log_prob", {"model": "digits", "images": [[[0.5] * 8] * 8], "class": 1}, 422, "integers"),
    ("/v1/log_prob", {"model": "digits", "images": [[[3] * 8] * 8], "class": 1}, 400, "levels"),
    ("/v1/log_prob", {"model": "digits", "images": [[[0] * 8] * 8]}, 400, "class"),
    ("/v1/forecast", {"model": "tiny-text", "history": [1.0, 2.0]}, 400, "text model"),
    ("/v1/forecast", {"history": []}, 422, "history"),
]


@pytest.mark.parametrize("path,body,status,needle", BAD_REQUESTS,
                         ids=[f"{i}-{c[2]}-{c[3]}" for i, c in enumerate(BAD_REQUESTS)])
def test_bad_request_is_a_clear_4xx_and_server_keeps_serving(client, path, body, status, needle):
    if isinstance(body, str):
        r = client.post(path, content=body, headers={"content-type": "application/json"})
    else:
        r = client.post(path, json=body)
    assert r.status_code == status, r.text
    detail = r.json()["detail"]
    assert isinstance(detail, str) and needle in detail, detail
    assert client.get("/healthz").status_code == 200


def test_other_bad_requests(client):
    r = client.post("/v1/generate", content=b"prompt=hi", headers={"content-type": "text/plain"})
    assert r.status_code == 422 and r.json()["detail"]
    assert client.get("/v1/generate").status_code == 405
    chunks = (b"x" * 100_000 for _ in range(12))  # no Content-Length: counted while reading
    r = client.post("/v1/generate", content=chunks, headers={"content-type": "application/json"})
    assert r.status_code == 413 and "too large" in r.json()["detail"]
    r = client.get("/static/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd")
    assert r.status_code == 404 and "root:" not in r.text
    assert client.post("/v1/generate", json={"model": "tiny-text", "max_new_tokens": 3}).status_code == 200


def test_concurrent_requests_equal_alone(client, base):
    """Requests with different seeds and models, all at once, give what each gives alone."""
    jobs = [("gen", {"model": "tiny-text", "prompt": "ab", "max_new_tokens": 60, "seed": s}) for s in range(4)]
    jobs += [("gen", {"model": "tiny-text-2", "prompt": "h", "max_new_tokens": 60, "seed": s}) for s in range(2)]
    jobs += [("stream", {"model": "tiny-text", "prompt": "ab", "max_new_tokens": 60, "seed": s}) for s in (0, 9)]
    jobs += [("sample", {"model": "digits", "num_samples": 4, "seed": s}) for s in range(3)]
    jobs += [("logp", {"model": "tiny-text", "texts": t}) for t in (["abc", "defgh"], ["h" * 40], ["a b c"])]

    def run(job: tuple[str, dict]):
        kind, body = job
        with httpx.Client(base_url=base, timeout=120) as c:
            if kind == "gen":
                return c.post("/v1/generate", json=body).json()["text"]
            if kind == "stream":
                return "".join(d["text"] for e, d in sse_events(c, body) if e == "message")
            if kind == "sample":
                return c.post("/v1/sample", json=body).content
            return [r["surprisal"] for r in c.post("/v1/log_prob", json=body).json()["results"]]

    alone = [run(j) for j in jobs]
    assert alone[0] == alone[6] and len(set(alone[:4])) == 4  # stream == plain for seed 0; seeds differ
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        together = list(pool.map(run, jobs))
    for job, a, b in zip(jobs, alone, together, strict=True):
        if job[0] == "logp":
            for x, y in zip(a, b, strict=True):
                assert np.allclose(x, y, rtol=1e-5, atol=1e-6), job
        else:
            assert a == b, job
