"""Every error as JSON `{"error": "..."}` with the status that says whose fault it is.

The engine's errors keep their message (it names the bad value and what is valid):
an unknown item or user -> 404, any other bad argument -> 422, a model folder the
service cannot write or read -> 500, no trained model -> 409. FastAPI's own answers
(a validation error, an unknown route, a wrong method) and the service's limits
(401, 413, 415) take the same shape. The request-size limit runs as ASGI middleware
so a body is never read past it, whether or not it declares a Content-Length.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.errors import (
    EngineError,
    FormatVersionError,
    NotFittedError,
    UnknownItemError,
    UnknownUserError,
)
from core.folders import ModelFolderError, ModelNotFoundError
from core.integrity import DamagedModelError

log = logging.getLogger(__name__)

# First match wins: subclasses before their bases.
STATUS: list[tuple[type[BaseException] | tuple[type[BaseException], ...], int]] = [
    ((UnknownItemError, UnknownUserError), 404),
    (NotFittedError, 409),
    ((ModelFolderError, ModelNotFoundError, DamagedModelError, FormatVersionError), 500),
    (EngineError, 422),
]
REASONS = {404: "not found", 405: "method not allowed"}
_TYPE_TAGS = {"str", "int", "float", "bool", "list", "dict", "none"}


class ApiError(HTTPException):
    """An HTTP error the service raises itself (401, 404, 413, 415, 422), answered as {"error": message}.

    It derives from Starlette's HTTPException, so FastAPI passes it through untouched
    even when it is raised while the body is being read.
    """

    def __init__(self, status_code: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(status_code=status_code, detail=message, headers=headers)


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """The one error shape."""
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def status_of(exc: EngineError) -> int:
    """The HTTP status of an engine error."""
    return next(code for kinds, code in STATUS if isinstance(exc, kinds))


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error as JSON {"error": ...}."""

    @app.exception_handler(EngineError)
    async def engine_error(request: Request, exc: EngineError) -> JSONResponse:
        status = status_of(exc)
        if status >= 500:
            log.error("%s %s failed: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
        return error_response(status, str(exc))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc, ApiError) else _http_message(request, exc)
        return error_response(exc.status_code, str(message), getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(422, validation_message(exc.errors()))

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        # Starlette logs the traceback after this answer; the client learns only what failed.
        return error_response(500, f"internal error ({type(exc).__name__}) in {request.method} {request.url.path}")


def _http_message(request: Request, exc: HTTPException) -> str:
    """Starlette's bare 'Not Found' / 'Method Not Allowed', said usefully."""
    if exc.status_code == 404 and exc.detail in ("Not Found", None):
        if request.url.path.startswith("/static/"):
            return f"no file {request.url.path} among the gallery's static files"
        return f"no route {request.method} {request.url.path}; the API is listed at /docs"
    if exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        return f"{request.method} is not allowed on {request.url.path}" + (f"; allowed: {allowed}" if allowed else "")
    return str(exc.detail if exc.detail is not None else REASONS.get(exc.status_code, exc.status_code))


def validation_message(errors: Any) -> str:
    """FastAPI's validation errors as one sentence: `where (part): problem, got value`."""
    parts = []
    for error in list(errors)[:10]:
        # Drop pydantic's union-branch tags ('function-after[_text(), str]', 'int'): they name types, not places.
        loc = [str(p) for p in error.get("loc", ()) if not (isinstance(p, str) and ("[" in p or p in _TYPE_TAGS))]
        where = f"{'.'.join(loc[1:]) or loc[0]} ({loc[0]})" if loc else "request"
        message = str(error.get("msg", "invalid"))
        if "input" in error and error.get("type") != "missing" and not isinstance(error["input"], (dict, list)):
            shown = repr(error["input"])
            message += f", got {shown if len(shown) <= 60 else shown[:57] + '...'}"
        parts.append(f"{where}: {message}")
    more = len(list(errors)) - 10
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


class BodyLimit:
    """ASGI middleware: answer 413 to a request body over `max_bytes`, declared or streamed.

    A declared Content-Length above the limit is refused before a byte is read; a
    chunked body is counted as it arrives and refused once it passes the limit.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        too_large = f"the request body is over the limit of {self.max_bytes:,} bytes (ServiceConfig.max_request_bytes)"
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                length = -1
            if length < 0:
                await _send_json(send, 400, f"Content-Length {declared.decode('latin-1')!r} is not a byte count")
                return
            if length > self.max_bytes:
                await _send_json(send, 413, too_large)
                return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise ApiError(413, too_large)
            return message

        await self.app(scope, counted, send)


async def _send_json(send: Send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),  # the unread body is not drained
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
