"""Connections a client cannot hold open: read deadlines for every request, and room kept for new clients.

uvicorn waits for a request's headers and body as long as the client likes, so a client sending a byte at a
time (slow loris) holds a connection, and a file descriptor, forever. :func:`guarded_protocol` builds uvicorn's
h11 protocol with two deadlines: a request's headers must all have arrived ``header_timeout`` seconds after the
connection opened (or after the previous response on it), its body ``body_timeout`` seconds after the headers;
otherwise the connection is closed (408 when no response is under way). And at most ``max_connections`` are
open: a new connection at the limit pushes out the one that has waited longest for a request, so idle sockets
cannot lock real clients out; when none is waiting, the newcomer gets 503 and is closed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, ClassVar

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("chainrule.serve")

REQUEST_TIMEOUT = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
BUSY_BODY = b'{"detail": "server busy: too many open connections; retry later"}'
BUSY = (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\n"
        b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(BUSY_BODY), BUSY_BODY))


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with read deadlines and a connection limit (configured by :func:`guarded_protocol`,
    which gives each server its own subclass and so its own line of waiting connections)."""

    header_timeout: ClassVar[float] = 10.0
    body_timeout: ClassVar[float] = 30.0
    max_connections: ClassVar[int] = 512
    #: connections waiting for a request's headers, oldest first (the first to be pushed out)
    waiting: ClassVar[dict[GuardedH11Protocol, None]] = {}
    #: connections closed by a deadline or to make room, by reason (for logs and tests)
    closed: ClassVar[dict[str, int]] = {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._phase: str | None = None
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections and not self._make_room():
            self._close("no room", BUSY)
            return
        self._watch()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._watch()

    def connection_lost(self, exc: Exception | None) -> None:
        self._enter(None)
        super().connection_lost(exc)

    def _watch(self) -> None:
        """Start the deadline of the part of the request the connection now waits for (none while answering)."""
        state = None if self.transport.is_closing() else self.conn.their_state
        self._enter("headers" if state is h11.IDLE else "body" if state is h11.SEND_BODY else None)

    def _enter(self, phase: str | None) -> None:
        if phase == self._phase:  # bytes trickling in do not extend a deadline
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.waiting.pop(self, None)
        self._phase = phase
        if phase == "headers":
            self.waiting[self] = None
            self._timer = self.loop.call_later(self.header_timeout, self._expire)
        elif phase == "body":
            self._timer = self.loop.call_later(self.body_timeout, self._expire)

    def _expire(self) -> None:
        self._timer = None
        self._close(f"{self._phase} timeout", REQUEST_TIMEOUT if self._phase == "headers" else b"")

    def _make_room(self) -> bool:
        """Close the connection that has waited longest for a request; False when none is waiting."""
        victim = next((c for c in self.waiting if c is not self), None)
        if victim is None:
            return False
        victim._close("pushed out", REQUEST_TIMEOUT)
        return True

    def _close(self, reason: str, reply: bytes) -> None:
        self._enter(None)
        if self.transport.is_closing():
            return
        self.closed[reason] = self.closed.get(reason, 0) + 1
        client = f"{self.client[0]}:{self.client[1]}" if self.client else "unknown client"
        log.warning("connection closed: %s (%s)", reason, client)
        if reply:
            self.transport.write(reply)
        self.transport.close()


def guarded_protocol(header_timeout: float, body_timeout: float, max_connections: int
                     ) -> Callable[..., GuardedH11Protocol]:
    """A :class:`GuardedH11Protocol` subclass with these limits, for ``uvicorn.Config(http=...)``."""
    return type("ServerH11Protocol", (GuardedH11Protocol,), {
        "header_timeout": float(header_timeout), "body_timeout": float(body_timeout),
        "max_connections": int(max_connections), "waiting": {}, "closed": {}})
