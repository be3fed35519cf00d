"""Audio runs in the server: ``POST /v1/sample`` answers with a 16-bit WAV at the run's rate, the same bytes as
``chainrule sample --seconds`` for the same seed; ``GET /v1/models`` lists the run as audio with its rate; the
memory estimate counts the Fast WaveNet queues; hostile values are a 4xx naming the field and the server keeps
serving; the web page plays the WAV."""

from __future__ import annotations

import asyncio
import io
import json
import math

import httpx
import pytest
import soundfile
from audio_runs import RATE, make_audio_run
from serve_helpers import chromium, running_server

from chainrule.cli import main
from chainrule.serve import memory
from chainrule.serve.app import create_app
from chainrule.serve.registry import load_registry
from chainrule.serve.schemas import Limits


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("audio-serve")
    return {"speech": make_audio_run(root / "speech"), "pcm": make_audio_run(root / "pcm", "linear16", num_classes=2)}


@pytest.fixture(scope="module")
def models(runs):
    return load_registry([runs["speech"], runs["pcm"]])


def call(app, method: str, path: str, body: dict | None = None) -> httpx.Response:
    async def go():
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            content = None if body is None else json.dumps(body)  # NaN and Infinity as JavaScript writes them
            return await c.request(method, path, content=content, headers={"content-type": "application/json"})

    return asyncio.run(go())


def test_wav_at_the_run_rate_and_length_and_reproducible(models):
    app = create_app(models)
    r = call(app, "POST", "/v1/sample", {"model": "speech", "seconds": 0.02, "seed": 3})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "audio/wav" and r.headers["x-chainrule-seed"] == "3"
    wave, rate = soundfile.read(io.BytesIO(r.content), dtype="int16")
    info = soundfile.info(io.BytesIO(r.content))
    assert rate == RATE and info.subtype == "PCM_16" and wave.shape == (160,)
    assert len(set(wave.tolist())) > 20  # a waveform, not silence
    again = call(app, "POST", "/v1/sample", {"model": "speech", "seconds": 0.02, "seed": 3})
    assert again.content == r.content
    other = call(app, "POST", "/v1/sample", {"model": "speech", "seconds": 0.02, "seed": 4})
    assert other.content != r.content
    two = call(app, "POST", "/v1/sample", {"model": "pcm", "seconds": 0.01, "num_samples": 2, "class": "speaker1"})
    assert two.status_code == 200, two.text
    wave, rate = soundfile.read(io.BytesIO(two.content))
    assert rate == RATE and wave.shape == (2 * 80 + RATE // 4,)  # two waveforms, a quarter second apart


@pytest.mark.parametrize("name", ["speech", "pcm"])
def test_wav_equals_what_the_cli_writes(name, models, runs, tmp_path):
    r = call(create_app(models), "POST", "/v1/sample", {"model": name, "seconds": 0.04, "seed": 7})
    out = tmp_path / "x.wav"
    assert main(["sample", str(runs[name]), "--seconds", "0.04", "--seed", "7", "--out", str(out)]) == 0
    assert r.content == out.read_bytes()


def test_models_lists_the_run_as_audio_with_its_rate(models):
    listed = {m["name"]: m for m in call(create_app(models), "GET", "/v1/models").json()["models"]}
    assert listed["speech"]["kind"] == "audio" and listed["speech"]["sample_rate"] == RATE
    assert listed["speech"]["quantization"] == "mulaw8" and listed["pcm"]["quantization"] == "linear16"
    assert listed["pcm"]["class_names"] == ["speaker0", "speaker1"]


def test_memory_estimate_counts_the_queues(models):
    served = models["speech"]
    model = served.model
    cache = model.init_cache(3, length=10)
    held = sum(t.numel() * t.element_size() for t in [cache["prev"], *cache["queues"]])
    assert model.cache_bytes_per_sample() * 3 == held
    base = memory.audio_bytes(served, 3, 800)
    model.dilations = [d * 1000 for d in model.dilations]  # queues 1000x longer
    try:
        grown = memory.audio_bytes(served, 3, 800)
    finally:
        model.dilations = [d // 1000 for d in model.dilations]
    assert grown - base >= 3 * 999 * model.res * sum(model.dilations) * 4
    small = create_app(models, Limits(max_request_bytes=memory.audio_bytes(served, 1, RATE // 10)))
    assert call(small, "POST", "/v1/sample", {"model": "speech", "seconds": 0.1}).status_code == 200
    r = call(small, "POST", "/v1/sample", {"model": "speech", "seconds": 1, "num_samples": 4})
    assert r.status_code == 422 and "seconds" in r.json()["detail"]


@pytest.mark.parametrize("body, field", [
    ({"seconds": -1}, "seconds"), ({"seconds": 0}, "seconds"), ({"seconds": 1e9}, "seconds"),
    ({"seconds": math.nan}, "seconds"), ({"seconds": math.inf}, "seconds"), ({"seconds": "1"}, "seconds"),
    ({"seconds": 5.0}, "seconds"),  # over this server's limit below
    ({"temperature": math.nan}, "temperature"), ({"temperature": 0}, "temperature"),
    ({"num_samples": 0}, "num_samples"),
    ({"nrow": 2}, "nrow"), ({"class": 1}, "class"), ({"seed": -1}, "seed"),
])
def test_hostile_values_are_a_4xx_naming_the_field_and_the_server_keeps_serving(body, field, models):
    app = create_app(models, Limits(max_seconds=2.0))
    r = call(app, "POST", "/v1/sample", {"model": "speech", **body})
    assert 400 <= r.status_code < 500, r.text
    assert field in r.text
    ok = call(app, "POST", "/v1/sample", {"model": "speech", "seconds": 0.01})
    assert ok.status_code == 200 and ok.headers["content-type"] == "audio/wav"


def test_log_prob_on_an_audio_run_is_a_4xx_naming_the_kind(models):
    app = create_app(models)
    r = call(app, "POST", "/v1/log_prob", {"model": "speech", "images": [[[0, 1]]]})
    assert r.status_code == 422 and "audio model" in r.text and "images" not in r.json()["detail"]


def test_the_web_page_plays_the_returned_wav(runs, tmp_path):
    """The page's Audio tab posts to /v1/sample and loads the WAV into its player (allowed by the page's CSP)."""
    with running_server([runs["speech"]], tmp_path / "server.log") as base, chromium() as browser:
        page = browser.new_context(base_url=base).new_page()
        page.set_default_timeout(60_000)
        page.goto("/")
        page.wait_for_selector("body[data-ready='1']")
        assert page.locator("#tab-audio").evaluate("el => el.classList.contains('active')")  # the only model
        page.fill("#audio-seconds", "0.1")
        page.fill("#audio-seed", "2")
        page.click("#sample-audio")
        page.wait_for_function("() => document.getElementById('audio-player').readyState >= 1")
        assert page.locator("#audio-player").evaluate("a => a.duration") == pytest.approx(0.1, abs=0.005)
        assert page.text_content("#audio-status") == "0.1 s at 8000 Hz (seed 2)"
