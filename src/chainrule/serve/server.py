"""Running the app under uvicorn with the connection guards: read deadlines, a connection limit, keep-alive
limit, enough file descriptors for that limit, and rate-limited noisy log lines."""

from __future__ import annotations

import resource
import sys
from dataclasses import dataclass

import uvicorn
from fastapi import FastAPI

from chainrule.serve.connections import guarded_protocol
from chainrule.serve.logs import rate_limit_noisy_lines

#: file descriptors kept for everything but client connections (runs, logs, the pool, the listening socket)
SPARE_FDS = 128


@dataclass(frozen=True)
class ConnectionLimits:
    """How long a client may take to send a request, how long an idle keep-alive connection stays open, and
    how many connections (hence requests in progress) the server holds at once."""

    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    keep_alive_s: float = 5.0
    max_connections: int = 512


def raise_fd_limit(wanted: int) -> int:
    """Raise this process's soft limit on open files towards ``wanted`` (up to the hard limit); the new limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


def serve_app(app: FastAPI, host: str, port: int, limits: ConnectionLimits) -> None:
    """Serve ``app`` until interrupted."""
    max_connections = limits.max_connections
    fds = raise_fd_limit(max_connections + SPARE_FDS)
    if max_connections + SPARE_FDS > fds:
        max_connections = max(1, fds - SPARE_FDS)
        print(f"chainrule: only {fds} open files allowed (ulimit -n): at most {max_connections} connections",
              file=sys.stderr, flush=True)
    protocol = guarded_protocol(limits.header_timeout_s, limits.body_timeout_s, max_connections)
    # uvicorn answers 503 from limit_concurrency on; the protocol keeps connections (each serving one request
    # at a time) at max_connections, so that limit only catches requests still running after their client left
    config = uvicorn.Config(app, host=host, port=port, http=protocol, limit_concurrency=max_connections + 1,
                            timeout_keep_alive=limits.keep_alive_s, timeout_graceful_shutdown=5, log_level="info")
    rate_limit_noisy_lines()
    uvicorn.Server(config).run()
