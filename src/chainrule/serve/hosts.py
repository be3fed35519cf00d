"""The Host-header allow-list: a defence against DNS rebinding.

A web page on another site can make a browser resolve its own domain name to 127.0.0.1 and then call a
server on this machine as if it were the same origin; the Host header still carries the attacker's name. A
server bound to a loopback address therefore answers only requests whose Host is one of its loopback names
unless told otherwise (``--allowed-hosts``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from urllib.parse import urlsplit

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) only reaches this machine."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def default_allowed_hosts(bind: str) -> list[str] | None:
    """The loopback names (and the bound address) when bound to loopback; ``None`` (any Host) otherwise."""
    if not is_loopback(bind):
        return None
    return list(dict.fromkeys([*LOOPBACK_NAMES, bind.strip("[]").lower()]))


def host_name(header: str) -> str | None:
    """The name in a Host header without its port (``[::1]:8000`` -> ``::1``); None when malformed."""
    try:
        parts = urlsplit(f"//{header}")
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        return None
    if not parts.hostname or parts.username is not None or parts.password is not None or parts.path:
        return None
    return parts.hostname


class HostAllowList:
    """ASGI middleware: 400 for a request whose Host header names none of ``allowed`` (``*.example.com`` matches
    subdomains); ``*`` allows any."""

    def __init__(self, app: ASGIApp, allowed: Iterable[str]) -> None:
        self.app = app
        self.allowed = [h.strip("[]").lower() for h in allowed]

    def allows(self, header: str | None) -> bool:
        if "*" in self.allowed:
            return True
        name = host_name(header) if header else None
        if name is None:
            return False
        return any(name == h or (h.startswith("*.") and name.endswith(h[1:])) for h in self.allowed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            header = dict(scope.get("headers", [])).get(b"host", b"").decode("latin-1")
            if not self.allows(header):
                reply = JSONResponse({"detail": f"Host {header!r} is not served here; allowed: "
                                                f"{', '.join(self.allowed)} (see --allowed-hosts)"}, 400)
                return await reply(scope, receive, send)
        await self.app(scope, receive, send)
