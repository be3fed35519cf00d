"""Request guards: the body-size limit (413) and one clear JSON message for every kind of error.

Every error reply is ``{"detail": "<one line>"}`` with a 4xx status for the user's mistakes (validation
422, unknown model 404, body too large 413, bad values 400) and 504 past the time limit. Nothing a request
sends can stop the server: unexpected failures are logged and answered with 500.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chainrule.core.errors import ChainruleError
from chainrule.serve.worker import RequestTimeout

log = logging.getLogger("chainrule.serve")


def _too_large(limit: int) -> str:
    return f"request body too large: the limit is {limit:,} bytes"


class BodyLimit:
    """ASGI middleware: refuse bodies over ``max_bytes`` (by Content-Length, or while reading a chunked body)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers", [])).get(b"content-length")
        if length is not None:
            if not length.isdigit():
                return await JSONResponse({"detail": "invalid Content-Length header"}, 400)(scope, receive, send)
            if int(length) > self.max_bytes:
                return await JSONResponse({"detail": _too_large(self.max_bytes)}, 413)(scope, receive, send)
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise HTTPException(413, _too_large(self.max_bytes))
            return message

        await self.app(scope, limited, send)


def _location(loc: tuple) -> str:
    parts = [str(p) for p in loc if p != "body"]
    return ".".join(parts) or "body"


def validation_message(exc: RequestValidationError) -> str:
    """Pydantic's errors as one line: ``field: problem; field: problem``."""
    msgs = []
    for err in exc.errors()[:5]:
        if err.get("type") == "json_invalid":
            msgs.append(f"body is not valid JSON ({err.get('ctx', {}).get('error', 'decode error')})")
        else:
            msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")  # our validators' own sentences
            msgs.append(f"{_location(tuple(err.get('loc', ())))}: {msg}")
    return "; ".join(msgs) or "invalid request"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": validation_message(exc)}, 422)

    @app.exception_handler(ChainruleError)
    async def _user_error(_: Request, exc: ChainruleError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, 400)

    @app.exception_handler(RequestTimeout)
    async def _timeout(_: Request, exc: RequestTimeout) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, 504)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("error serving %s %s", request.method, request.url.path)
        return JSONResponse({"detail": f"internal error ({type(exc).__name__}); see the server log"}, 500)
