"""The server under hostile load: abandoned work stops, memory is bounded by request size, slow clients are cut off.

In-process (the app through ``httpx.ASGITransport`` or raw ASGI calls, models slowed by a short sleep per step
so that work outlives its time limit): a request that times out, or whose client leaves, stops computing within
a step and keeps its reservations until then; requests over the memory limit are refused before any work; the
memory budget queues, then refuses. Against a real server process on 127.0.0.1: clients sending headers or a
body byte by byte are disconnected, idle sockets cannot lock out new clients, and foreign Host headers are
refused. Times in these tests are only generous bounds for failing, never asserted.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest
import torch
from serve_helpers import make_image_run, make_text_run, running_server

from chainrule.core.contract import Condition
from chainrule.core.sampling import SamplingStopped, ancestral_sample, stop_when
from chainrule.modalities.registry import build_model, model_class
from chainrule.modalities.text.generation import GenerationConfig, generate_tokens
from chainrule.serve.app import create_app
from chainrule.serve.hosts import HostAllowList, default_allowed_hosts
from chainrule.serve.logs import RateLimit
from chainrule.serve.registry import load_registry
from chainrule.serve.schemas import Limits

BOUND_S = 60.0  # failure bound of every wait below


# ------------------------------------------------------------------ the stop hook in the sampling loops
class StopAfter:
    """A stop check that answers True from its ``n``-th call on, counting its calls."""

    def __init__(self, n: int) -> None:
        self.n, self.calls = n, 0

    def __call__(self) -> bool:
        self.calls += 1
        return self.calls >= self.n


def test_every_sampling_loop_stops_between_steps():
    torch.manual_seed(0)
    image = build_model("gated_pixelcnn", (1, 8, 8), 2, **model_class("gated_pixelcnn", "image").TINY)
    text = build_model("transformer", (1, 32), 10, head="categorical", **model_class("transformer", "text").TINY)
    series = build_model("deepar", modality="series", lags=[1], num_time_features=0,
                         **model_class("deepar", "series").TINY)
    horizon = 50
    cond = Condition(time_features=torch.zeros(1, 10 + horizon, 0), scale=torch.ones(1))
    loops: dict[str, Callable[[], object]] = {
        "image": lambda: ancestral_sample(image, 2),
        "text": lambda: list(generate_tokens(text, [1, 2], GenerationConfig(max_new_tokens=50, seed=0))),
        "series": lambda: series.sample_paths(torch.ones(1, 10), cond, horizon, 4),
        "series uncached": lambda: series.sample_paths(torch.ones(1, 10), cond, horizon, 4, use_cache=False),
    }
    for name, run in loops.items():
        check = StopAfter(4)
        with stop_when(check), pytest.raises(SamplingStopped):
            run()
        assert check.calls == 4, name  # asked once per step, and nothing ran after the answer was yes
        run()  # outside stop_when nothing is checked


# ------------------------------------------------------------------ in-process app
@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    from chainrule.modalities.series import api as ts_api

    root = tmp_path_factory.mktemp("hostile")
    ts = ts_api.train_forecaster("airpassengers", "deepar", steps=2, progress=False, run_dir=root / "passengers",
                                 hidden_size=8, num_layers=1)
    return {"lm": make_text_run(root / "lm"), "img": make_image_run(root / "img"), "passengers": ts.path}


@pytest.fixture
def models(runs):
    """Freshly loaded models per test (tests slow them down by patching)."""
    return load_registry(list(runs.values()))


class SlowSteps:
    """Patch a model class's method (the served runs load their own instances): sleep ``delay_s`` per call, count
    the calls, and record what ``probe()`` says at each (the reservations held while the work computes)."""

    def __init__(self, monkeypatch, model: object, method: str, delay_s: float,
                 probe: Callable[[], object] = lambda: None) -> None:
        inner = getattr(type(model), method)
        self.delay_s, self.probe = delay_s, probe
        self.calls, self.seen = 0, []

        def slowed(this, *args, **kwargs):
            self.calls += 1
            self.seen.append(self.probe())
            time.sleep(self.delay_s)
            return inner(this, *args, **kwargs)

        monkeypatch.setattr(type(model), method, slowed)


async def until(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition`` on the event loop (whose callbacks hand reservations back) for up to BOUND_S."""
    stop = time.monotonic() + BOUND_S
    while not condition():
        assert time.monotonic() < stop, f"still waiting after {BOUND_S:g} s for: {what}"
        await asyncio.sleep(0.02)


def run_with_client(app, body: Callable[[httpx.AsyncClient], Awaitable[None]]) -> None:
    async def go():
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=BOUND_S) as c:
            await body(c)

    asyncio.run(go())


def idle(app) -> bool:
    s = app.state
    return s.worker.busy == 0 and s.budget.used == 0 and s.forecast_slots.used == 0


def test_timed_out_forecast_stops_computing_and_keeps_its_slot_until_then(models, monkeypatch):
    app = create_app(models, Limits(timeout_s=0.5))
    state = app.state
    gate = threading.Event()
    # the fourth step of the roll-out hangs until the test opens the gate: past the time limit
    slow = SlowSteps(monkeypatch, models["passengers"].forecaster, "network_step", 0.0,
                     probe=lambda: slow.calls == 4 and gate.wait(BOUND_S))

    async def body(c: httpx.AsyncClient) -> None:
        r = await c.post("/v1/forecast", json={"history": [100.0 + i % 12 for i in range(40)], "horizon": 200,
                                               "num_samples": 10})
        assert r.status_code == 504, r.text
        # answered, but its step still runs: the slot and the memory stay reserved
        assert state.worker.busy == 1 and state.forecast_slots.used == 1 and state.budget.used > 0
        gate.set()
        await until(lambda: idle(app), "the abandoned forecast to stop and hand back its reservations")
        assert slow.calls == 4  # no step after the one that was running
        r = await c.post("/v1/forecast", json={"history": [100.0] * 40, "horizon": 12})  # the slot is free again
        assert r.status_code == 200, r.text

    run_with_client(app, body)


def test_timed_out_image_sampling_stops_computing(models, monkeypatch):
    app = create_app(models, Limits(timeout_s=0.5))
    slow = SlowSteps(monkeypatch, models["img"].model, "step", 0.05, probe=lambda: app.state.budget.used)

    async def body(c: httpx.AsyncClient) -> None:
        r = await c.post("/v1/sample", json={"model": "img", "num_samples": 4})
        assert r.status_code == 504, r.text
        await until(lambda: idle(app), "the abandoned sampling to stop")
        assert 0 < slow.calls < 64  # 8 x 8 positions: stopped long before the last

    run_with_client(app, body)
    assert all(used > 0 for used in slow.seen)


async def asgi_post(app, path: str, body: dict, leave: asyncio.Event | None = None,
                    read_messages: int | None = None) -> list[dict]:
    """Call the app as a server would; the client disconnects once ``leave`` is set, or stops reading the reply
    (``send`` blocks for good) after ``read_messages`` messages. Returns the messages read."""
    payload = json.dumps(body).encode()
    scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
             "root_path": "", "headers": [(b"host", b"test"), (b"content-type", b"application/json"),
                                          (b"content-length", str(len(payload)).encode())],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80), "state": {}}
    sent, delivered = [], False
    never = asyncio.Event()

    async def receive() -> dict:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": payload, "more_body": False}
        await (leave or never).wait()
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        if read_messages is not None and len(sent) >= read_messages:
            await never.wait()
        sent.append(message)

    await asyncio.wait_for(app(scope, receive, send), BOUND_S)
    return sent


@pytest.mark.parametrize("stream", [False, True])
def test_generation_stops_when_its_client_leaves(models, stream, monkeypatch):
    app = create_app(models, Limits(timeout_s=BOUND_S))
    slow = SlowSteps(monkeypatch, models["lm"].model, "step", 0.01)

    async def go() -> None:
        leave = asyncio.Event()
        loop = asyncio.get_running_loop()
        slow.probe = lambda: slow.calls == 20 and loop.call_soon_threadsafe(leave.set)  # leave after 20 tokens
        await asgi_post(app, "/v1/generate", {"model": "lm", "max_new_tokens": 1000, "stream": stream}, leave)
        await until(lambda: idle(app), "the generation to stop after its client left")
        assert 20 <= slow.calls < 200  # a full run takes about 970 steps (the rest are window refills)

    asyncio.run(go())


def test_stream_not_read_by_its_client_ends_at_the_time_limit(models, monkeypatch):
    app = create_app(models, Limits(timeout_s=1.0))
    slow = SlowSteps(monkeypatch, models["lm"].model, "step", 0.01, probe=lambda: app.state.budget.used)

    async def go() -> None:
        sent = await asgi_post(app, "/v1/generate", {"model": "lm", "max_new_tokens": 1000, "stream": True},
                               read_messages=4)  # the headers and three events, then the client reads no more
        await until(lambda: idle(app), "the unread stream to let go of its generation")
        assert len(sent) == 4 and 3 <= slow.calls < 200

    asyncio.run(go())
    assert all(used > 0 for used in slow.seen)


def test_requests_over_the_memory_limit_are_refused_before_any_work(models, monkeypatch):
    app = create_app(models)
    slow = SlowSteps(monkeypatch, models["passengers"].forecaster, "network_step", 0.0)
    lm = SlowSteps(monkeypatch, models["lm"].model, "step", 0.0)
    big = [("/v1/forecast", {"history": [100.0] * 40, "horizon": 10_000, "num_samples": 10_000}),
           ("/v1/generate", {"model": "lm", "prompt": "abcdefgh " * 11_000, "num_samples": 64,
                             "no_repeat_ngram_size": 64, "max_new_tokens": 10})]

    async def body(c: httpx.AsyncClient) -> None:
        for path, payload in big:
            r = await c.post(path, json=payload)
            assert r.status_code == 422, r.text
            assert "memory" in r.json()["detail"] and "limit" in r.json()["detail"]
        r = await c.post("/v1/forecast", json={"history": [100.0] * 40, "horizon": 12})
        assert r.status_code == 200, r.text

    run_with_client(app, body)
    assert lm.calls == 0 and 0 < slow.calls <= 12  # only the small forecast ran


def memory_for_one_sample_request(models) -> int:
    from chainrule.serve import memory

    return memory.sample_bytes(models["img"], 4)


def test_memory_budget_queues_requests_then_refuses_at_the_deadline(models, monkeypatch):
    need = memory_for_one_sample_request(models)
    limits = Limits(timeout_s=BOUND_S, memory_budget_bytes=need, max_request_bytes=need)
    app = create_app(models, limits)
    running, most = [0], [0]
    lock = threading.Lock()
    cls = type(models["img"].model)
    inner = cls.step  # image sampling runs the model's cached step once per position

    def step(self, *args, **kwargs):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        try:
            time.sleep(0.005)
            return inner(self, *args, **kwargs)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(cls, "step", step)

    async def body(c: httpx.AsyncClient) -> None:
        rs = await asyncio.gather(*(c.post("/v1/sample", json={"model": "img", "num_samples": 4, "seed": s})
                                    for s in range(3)))
        assert [r.status_code for r in rs] == [200, 200, 200]  # waited in line, none refused

    run_with_client(app, body)
    assert most[0] == 1  # the budget held one request's worth: never two at work at once

    short = create_app(models, Limits(timeout_s=0.5, memory_budget_bytes=need, max_request_bytes=need))
    gate = threading.Event()
    monkeypatch.setattr(cls, "step", lambda self, *a, **k: gate.wait(BOUND_S) and inner(self, *a, **k))  # hangs

    async def crowded(c: httpx.AsyncClient) -> None:
        rs = await asyncio.gather(*(c.post("/v1/sample", json={"model": "img", "num_samples": 4}) for _ in range(2)))
        assert sorted(r.status_code for r in rs) == [503, 504]  # one at work past its limit, one still in line
        busy = next(r for r in rs if r.status_code == 503)
        assert "busy" in busy.json()["detail"] and busy.headers["retry-after"] == "1"
        assert short.state.budget.used == need and short.state.worker.busy == 1  # held while the step runs
        gate.set()
        await until(lambda: idle(short), "the timed-out sampling to stop once its step ends")

    run_with_client(short, crowded)


def test_host_allow_list():
    allowed = default_allowed_hosts("127.0.0.1")
    assert default_allowed_hosts("0.0.0.0") is None and default_allowed_hosts("::1") == allowed
    guard = HostAllowList(None, allowed)
    for header in ["127.0.0.1:8000", "localhost", "LOCALHOST:80", "[::1]:8000", "127.0.0.1"]:
        assert guard.allows(header), header
    for header in ["evil.example", "evil.example:8000", "127.0.0.1.evil.example", "localhost.evil.example", "",
                   None, "127.0.0.1:80/x", "user@127.0.0.1", "127.0.0.1:port", "[::2]:8000"]:
        assert not guard.allows(header), header
    assert HostAllowList(None, ["*.example.com"]).allows("api.example.com:443")
    assert not HostAllowList(None, ["*.example.com"]).allows("example.com.evil.net")
    assert HostAllowList(None, ["*"]).allows("anything")


def test_noisy_log_lines_are_rate_limited():
    logger = logging.getLogger("test-serve-hostile")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())  # type: ignore[method-assign]
    logger.addHandler(handler)
    limit = RateLimit(interval_s=3600)
    logger.addFilter(limit)
    try:
        for _ in range(1000):
            logger.error("socket.accept() out of system resource", exc_info=OSError(24, "Too many open files"))
            logger.warning("Exceeded concurrency limit.")
        logger.info("an ordinary line")
        limit._last = {k: v - 7200 for k, v in limit._last.items()}  # an interval later
        logger.warning("Exceeded concurrency limit.")
    finally:
        logger.removeHandler(handler)
        logger.removeFilter(limit)
    assert seen[:2] == ["socket.accept() out of system resource", "Exceeded concurrency limit."]
    assert seen[2] == "an ordinary line"
    assert seen[3] == "Exceeded concurrency limit. (999 more like this held back)" and len(seen) == 4


# ------------------------------------------------------------------ a real server on loopback
HEADER_TIMEOUT, LIMIT = 2, 12


@pytest.fixture(scope="module")
def server(runs, tmp_path_factory):
    log = tmp_path_factory.mktemp("hostile-server") / "server.log"
    with running_server([runs["lm"]], log, "--header-timeout", str(HEADER_TIMEOUT), "--body-timeout",
                        str(HEADER_TIMEOUT), "--limit-concurrency", str(LIMIT)) as url:
        yield url, log


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def open_socket(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.setblocking(False)
    return s


def closed_by_server(s: socket.socket) -> bool:
    """True once the server closed ``s`` (end of stream, possibly after a 408 reply, or a reset)."""
    try:
        while True:
            data = s.recv(4096)
            if not data:
                return True
    except BlockingIOError:
        return False
    except OSError:
        return True


def trickle(sockets: list[socket.socket], data: bytes, until: float) -> dict[socket.socket, bool]:
    """Send ``data`` a byte at a time on every socket (10 bytes a second) until each is closed or ``until``."""
    closed = {s: False for s in sockets}
    for i in range(len(data)):
        if all(closed.values()) or time.monotonic() > until:
            break
        for s in sockets:
            if not closed[s]:
                try:
                    s.send(data[i:i + 1])
                except OSError:
                    closed[s] = True
                closed[s] = closed[s] or closed_by_server(s)
        time.sleep(0.1)
    return closed


def test_slow_loris_clients_are_cut_off_and_health_still_answers(server):
    url, _ = server
    port = port_of(url)
    pad = b"x" * 2000
    headers = b"POST /v1/generate HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: " + pad + b"\r\n\r\n"
    body = (b"POST /v1/generate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 5000\r\n\r\n")
    slow_headers = [open_socket(port) for _ in range(4)]
    slow_bodies = [open_socket(port) for _ in range(3)]
    for s in slow_bodies:
        s.send(body)  # the headers at once, then the body a byte at a time
    answers = []

    def health() -> None:
        with httpx.Client(timeout=10) as c:
            for _ in range(3):
                answers.append(c.get(f"{url}/healthz").status_code)
                time.sleep(0.2)

    checker = threading.Thread(target=health)
    checker.start()
    closed = trickle(slow_headers + slow_bodies, headers[:60] + pad, time.monotonic() + BOUND_S)
    checker.join(BOUND_S)
    for s in slow_headers + slow_bodies:
        s.close()
    assert all(closed.values()), "a slow client kept its connection"
    assert answers == [200, 200, 200]


def test_idle_sockets_cannot_lock_out_new_clients(server):
    url, _ = server
    port = port_of(url)
    idle_sockets = [open_socket(port) for _ in range(3 * LIMIT)]  # more than the server holds; they send nothing
    try:
        with httpx.Client(timeout=10) as c:  # a new client pushes out the connection that waited longest
            assert [c.get(f"{url}/healthz").status_code for _ in range(3)] == [200, 200, 200]
    finally:
        for s in idle_sockets:
            s.close()


def test_foreign_host_header_is_refused_on_loopback(server):
    url, _ = server
    with httpx.Client(timeout=10) as c:
        assert c.get(f"{url}/healthz").status_code == 200
        r = c.get(f"{url}/healthz", headers={"Host": "rebound.example:8000"})
        assert r.status_code == 400 and "not served here" in r.json()["detail"]
        assert c.get(f"{url}/openapi.json", headers={"Host": f"localhost:{port_of(url)}"}).status_code == 200
