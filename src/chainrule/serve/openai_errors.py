"""Errors of the OpenAI-compatible endpoints in OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``.

The status codes are the native endpoints' (422 validation, 400 bad value, 404 unknown model, 413 body too large,
503 busy, 504 past the time limit, 500 unexpected); only the body differs, so OpenAI clients (``openai``,
LangChain, lm-evaluation-harness) raise their own typed errors with the message.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chainrule.core.errors import ChainruleError
from chainrule.serve.admission import ServerBusy
from chainrule.serve.guards import validation_message
from chainrule.serve.worker import RequestTimeout

log = logging.getLogger("chainrule.serve")
ERROR_TYPES = {404: "not_found_error", 500: "server_error", 503: "server_busy", 504: "timeout"}


def error_body(message: str, status: int, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    """OpenAI's error object; 4xx without a more specific type are ``invalid_request_error``."""
    return {"error": {"message": message, "type": ERROR_TYPES.get(status, "invalid_request_error"), "param": param,
                      "code": code}}


def error_response(exc: Exception, path: str) -> JSONResponse:
    """The reply to ``exc`` raised while serving ``path``, with the status the native endpoints use."""
    headers: dict[str, str] | None = None
    param = code = None
    if isinstance(exc, RequestValidationError):
        status, message = 422, validation_message(exc)
        first = exc.errors()[0] if exc.errors() else {}
        param = next((str(p) for p in first.get("loc", ()) if p != "body"), None)
    elif isinstance(exc, HTTPException):
        status, message, headers = exc.status_code, str(exc.detail), exc.headers
        code = "model_not_found" if status == 404 else None
    elif isinstance(exc, ChainruleError):
        status, message = 400, str(exc)
    elif isinstance(exc, ServerBusy):
        status, message, headers = 503, str(exc), {"Retry-After": "1"}
    elif isinstance(exc, RequestTimeout):
        status, message = 504, str(exc)
    else:
        log.exception("error serving %s", path)
        status, message = 500, f"internal error ({type(exc).__name__}); see the server log"
    return JSONResponse(error_body(message, status, param, code), status, headers=headers)


class OpenAIRoute(APIRoute):
    """A route whose every error, request validation included, is answered in OpenAI's shape."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as exc:  # every error becomes a reply; nothing a request sends stops the server
                return error_response(exc, request.url.path)

        return handle


class OpenAIErrorShape:
    """ASGI middleware: errors answered before any route runs (body too large, bad Content-Length, Host not
    allowed: the native ``{"detail": ...}``) get OpenAI's shape, with their status, on the OpenAI paths."""

    def __init__(self, app: ASGIApp, paths: tuple[str, ...], prefixes: tuple[str, ...] = ()) -> None:
        self.app, self.paths, self.prefixes = app, paths, prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not (path in self.paths or path.startswith(self.prefixes)):
            return await self.app(scope, receive, send)
        start: Message | None = None
        body = b""

        async def reshape(message: Message) -> None:
            nonlocal start, body
            if message["type"] == "http.response.start" and message["status"] >= 400:
                start = message  # held until the body is known
                return
            if start is None or message["type"] != "http.response.body":
                return await send(message)
            body += message.get("body", b"")
            if message.get("more_body", False):
                return
            body = _openai_body(body, start["status"])
            headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
            await send({**start, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, reshape)


def _openai_body(body: bytes, status: int) -> bytes:
    """A native ``{"detail": message}`` error body as OpenAI's; any other body unchanged."""
    try:
        data = json.loads(body)
    except ValueError:
        return body
    if not isinstance(data, dict) or set(data) != {"detail"}:
        return body
    return json.dumps(error_body(str(data["detail"]), status)).encode()
