"""Serving pieces in-process: the micro-batcher, model names, time limits (504) and unexpected errors (500)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from fastapi import HTTPException
from serve_helpers import make_image_run, make_text_run

from chainrule.serve import images
from chainrule.serve.app import create_app, pick
from chainrule.serve.batching import MicroBatcher
from chainrule.serve.registry import load_registry, unique_names
from chainrule.serve.schemas import Limits
from chainrule.serve.worker import Deadline, Job, RequestTimeout, Worker


class Recorder:
    """A batched function that doubles numbers, records each call and refuses 'bad'."""

    def __init__(self) -> None:
        self.calls: list[list] = []

    def __call__(self, examples: list) -> list:
        self.calls.append(list(examples))
        if "bad" in examples:
            raise ValueError("bad example")
        return [2 * e for e in examples]


def submit_all(batcher: MicroBatcher, requests: list[list]) -> list:
    async def go():
        deadline = Deadline(60)
        return await asyncio.gather(*(batcher.submit(r, deadline) for r in requests), return_exceptions=True)

    return asyncio.run(go())


def test_batcher_stacks_waiting_requests_and_routes_results():
    fn, worker = Recorder(), Worker(2)
    batcher = MicroBatcher(fn, worker)
    out = submit_all(batcher, [[1, 2], [3], [4, 5, 6]])
    assert out == [[2, 4], [6], [8, 10, 12]]
    assert fn.calls == [[1, 2, 3, 4, 5, 6]] and batcher.batches == 1 and batcher.requests == 3
    worker.shutdown()


def test_batcher_respects_max_examples():
    fn, worker = Recorder(), Worker(1)
    out = submit_all(MicroBatcher(fn, worker, max_examples=3), [[1, 2], [3, 4], [5]])
    assert out == [[2, 4], [6, 8], [10]]
    assert all(len(c) <= 3 for c in fn.calls) and sorted(e for c in fn.calls for e in c) == [1, 2, 3, 4, 5]
    worker.shutdown()


def test_batcher_isolates_a_failing_request():
    fn, worker = Recorder(), Worker(1)
    out = submit_all(MicroBatcher(fn, worker), [["a"], ["bad"], ["c"]])
    assert out[0] == ["aa"] and out[2] == ["cc"]
    assert isinstance(out[1], ValueError)
    worker.shutdown()


def test_unique_names_and_lookup_by_name_only(tmp_path):
    assert unique_names([Path("x/run"), Path("y/run"), Path("z/other"), Path("w/run")]) == [
        "run", "run-2", "other", "run-3"]
    runs = [make_text_run(tmp_path / "a" / "lm"), make_text_run(tmp_path / "b" / "lm", seed=3)]
    models = load_registry(runs)
    assert list(models) == ["lm", "lm-2"]
    assert pick(models, "lm-2", ("text",), "/v1/generate").run.path == runs[1]
    for name in ["../lm", "a/lm", str(runs[0]), str(runs[0].resolve()), "lm/..", "", "LM"]:
        with pytest.raises(HTTPException) as e:
            pick(models, name, ("text",), "/v1/generate")
        assert e.value.status_code == 404 and "unknown model" in e.value.detail


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("units")
    return load_registry([make_text_run(root / "lm"), make_image_run(root / "img")])


def post(app, path: str, body: dict) -> httpx.Response:
    async def go():
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            return await c.post(path, json=body)

    return asyncio.run(go())


def test_time_limit_gives_504(models):
    app = create_app(models, Limits(timeout_s=1e-9))
    for path, body in [("/v1/generate", {"model": "lm", "max_new_tokens": 50}),
                       ("/v1/sample", {"model": "img", "num_samples": 2}),
                       ("/v1/log_prob", {"model": "lm", "texts": ["abc"]})]:
        r = post(app, path, body)
        assert r.status_code == 504, r.text
        assert "time limit" in r.json()["detail"]


def test_iteration_stops_between_steps_past_the_deadline_and_closes():
    deadline, consumed, closed = Deadline(60), [], []

    def steps():
        try:
            for i in range(100):
                consumed.append(i)
                if i == 2:
                    deadline.at = 0.0  # the time limit passes during the third step
                yield i
        finally:
            closed.append(True)

    async def go(out: list):
        async for item in worker.iterate(steps(), Job(deadline), slice_s=0.0):  # one step per pool task
            out.append(item)

    worker, out = Worker(1), []
    with pytest.raises(RequestTimeout, match="time limit"):
        asyncio.run(go(out))
    assert out == [0, 1, 2] and consumed == [0, 1, 2] and closed == [True]
    worker.shutdown()


def test_unexpected_error_is_500_and_app_keeps_serving(models, monkeypatch):
    app = create_app(models)

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(images, "sample_png", broken)
    r = post(app, "/v1/sample", {"model": "img", "num_samples": 2})
    assert r.status_code == 500 and "internal error" in r.json()["detail"]
    r = post(app, "/v1/generate", {"model": "lm", "max_new_tokens": 5})
    assert r.status_code == 200 and len(r.json()["text"]) == 5


def test_mask_ensemble_samples_are_isolated(tmp_path):
    """MADE keeps its current mask on the module; the server holds a per-model lock around it."""
    import torch

    from chainrule.core.training.checkpoint import save_weights
    from chainrule.modalities.registry import build_model
    from chainrule.runs import Run

    path = tmp_path / "made"
    path.mkdir()
    torch.manual_seed(0)
    opts = {"hidden_sizes": [32], "num_masks": 4}
    save_weights(build_model("made", (1, 8, 8), 2, **opts), path / "best.safetensors")
    Run(path=path, config={"spec": {"kind": "image", "event_shape": [1, 8, 8], "levels": 2, "num_classes": 0},
                           "model": {"name": "made", **opts}}).save_config()
    models = load_registry([path])
    assert models["made"].lock is not None
    app = create_app(models, threads=4)
    bodies = [{"num_samples": 8, "seed": s} for s in range(6)]
    alone = [post(app, "/v1/sample", b).content for b in bodies]

    async def together():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            return await asyncio.gather(*(c.post("/v1/sample", json=b) for b in bodies))

    assert [r.content for r in asyncio.run(together())] == alone
    assert len(set(alone)) == 6
