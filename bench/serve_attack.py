"""Hostile clients for ``bench/serve.py``: slow headers, slow bodies, unread streams, oversized requests and
requests at the limits (the most work a request may ask for; generation past the time limit), each kind looping
until the attack ends.

Every client connects to 127.0.0.1 only, and every loop is bounded by the attack's end time (and each wait by
a timeout), so the attack stops when the load does. ``AttackStats`` counts what happened to each kind:
connections the server closed (and how long they lasted), and reply statuses.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx

#: seconds between two bytes of a slow client
TRICKLE_S = 1.0


@dataclass
class AttackStats:
    closed: Counter = field(default_factory=Counter)  # connections the server closed, by kind
    lifetimes: dict[str, list[float]] = field(default_factory=dict)  # seconds each lasted before that
    statuses: dict[str, Counter] = field(default_factory=dict)  # reply statuses by kind
    failures: Counter = field(default_factory=Counter)  # connections refused or reset, by kind

    def status(self, kind: str, code: int | str) -> None:
        self.statuses.setdefault(kind, Counter())[str(code)] += 1

    def summary(self) -> dict:
        return {"closed_by_server": dict(self.closed), "failures": dict(self.failures),
                "max_connection_s": {k: round(max(v), 1) for k, v in self.lifetimes.items() if v},
                "statuses": {k: dict(v) for k, v in self.statuses.items()}}


async def _read_closed(reader: asyncio.StreamReader) -> bool:
    """True when the server closed the connection (end of stream after any reply bytes)."""
    try:
        while True:
            chunk = await asyncio.wait_for(reader.read(4096), 0.001)
            if not chunk:
                return True
    except asyncio.TimeoutError:
        return False
    except OSError:
        return True


async def _trickler(port: int, kind: str, head: bytes, trickle: bytes, until: float, stats: AttackStats) -> None:
    """Open a connection, send ``head`` at once and then ``trickle`` a byte per TRICKLE_S; reconnect when the
    server closes it; stop at ``until``."""
    while time.monotonic() < until:
        start = time.monotonic()
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 10)
        except (OSError, asyncio.TimeoutError):
            stats.failures[kind] += 1
            await asyncio.sleep(TRICKLE_S)
            continue
        try:
            writer.write(head)
            for i in range(len(trickle)):
                if time.monotonic() >= until:
                    return
                await asyncio.sleep(TRICKLE_S)
                writer.write(trickle[i:i + 1])
                await writer.drain()
                if await _read_closed(reader):
                    break
            stats.closed[kind] += 1
            stats.lifetimes.setdefault(kind, []).append(time.monotonic() - start)
        except OSError:
            stats.closed[kind] += 1
            stats.lifetimes.setdefault(kind, []).append(time.monotonic() - start)
        finally:
            writer.close()


async def _unread_stream(port: int, model: str, until: float, hold_s: float, stats: AttackStats) -> None:
    """Ask for a long streamed generation and never read the reply (a tiny receive buffer, nothing read), for
    ``hold_s`` seconds at a time; then hang up and ask again."""
    body = (f'{{"model": "{model}", "prompt": "ROMEO:", "max_new_tokens": 1024, "num_samples": 16, '
            f'"stream": true}}').encode()
    request = (b"POST /v1/generate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
               b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    while time.monotonic() < until:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        try:
            await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port)), 10)
            await asyncio.get_running_loop().sock_sendall(sock, request)
            stats.status("unread stream", "sent")
            await asyncio.sleep(max(0.0, min(hold_s, until - time.monotonic())))
        except (OSError, asyncio.TimeoutError):
            stats.failures["unread stream"] += 1
            await asyncio.sleep(TRICKLE_S)
        finally:
            sock.close()


async def _requests(base: str, kind: str, requests: list[tuple[str, dict]], until: float, stats: AttackStats,
                    timeout: float) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=timeout) as c:
        i = 0
        while time.monotonic() < until:
            path, body = requests[i % len(requests)]
            i += 1
            try:
                r = await c.post(path, json=body)
                stats.status(kind, r.status_code)
            except httpx.HTTPError as e:
                stats.status(kind, type(e).__name__)
                await asyncio.sleep(0.1)


def oversized(models: dict[str, str | None]) -> list[tuple[str, dict]]:
    """Requests whose estimated memory is over any sensible per-request limit (expected: 422)."""
    out = [("/v1/generate", {"model": models["text"], "prompt": "To be, or not to be " * 4_900, "num_samples": 64,
                             "no_repeat_ngram_size": 64, "max_new_tokens": 1024})]
    if models.get("forecast"):
        out.append(("/v1/forecast", {"model": models["forecast"], "history": [100.0] * 48, "horizon": 10_000,
                                     "num_samples": 10_000}))
    return out


def at_the_limits(models: dict[str, str | None]) -> list[tuple[str, dict]]:
    """The most work a request may ask for within the default memory limit: a generation that runs past the
    time limit (expected: 504; its n-gram rule compares every step against a 21,000-token history) and the
    longest, widest forecast the tiny forecaster's calendar allows (seconds of work holding the forecast slot)."""
    out = [("/v1/generate", {"model": models["text"], "prompt": "ROMEO: " * 3_000, "num_samples": 64,
                             "no_repeat_ngram_size": 64, "max_new_tokens": 1024})]
    if models.get("forecast"):
        out.append(("/v1/forecast", {"model": models["forecast"], "history": [100.0] * 48, "horizon": 3_500,
                                     "num_samples": 1_500, "start": "1700-01-01"}))
    return out


async def attack(base: str, models: dict[str, str | None], until: float, slow_headers: int, slow_bodies: int,
                 unread_streams: int, oversized_clients: int, heavy_clients: int, request_timeout: float
                 ) -> AttackStats:
    """Run every kind of hostile client until ``until``; returns what happened to them."""
    port = int(base.rsplit(":", 1)[1])
    stats = AttackStats()
    headers = b"POST /v1/generate HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    body_head = (b"POST /v1/generate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 100000\r\n\r\n")
    tasks = [_trickler(port, "slow headers", headers, b"X-Slow: " + b"a" * 10_000, until, stats)
             for _ in range(slow_headers)]
    tasks += [_trickler(port, "slow body", body_head, b"1" * 100_000, until, stats) for _ in range(slow_bodies)]
    tasks += [_unread_stream(port, models["text"], until, request_timeout, stats) for _ in range(unread_streams)]
    tasks += [_requests(base, "oversized", oversized(models), until, stats, request_timeout)
              for _ in range(oversized_clients)]
    tasks += [_requests(base, "at the limits", at_the_limits(models), until, stats, request_timeout)
              for _ in range(heavy_clients)]
    await asyncio.gather(*tasks)
    return stats
