"""Every failure as a JSON error body; internal errors logged with an id and never shown.

4xx answers say what is wrong and which field; a 500 answer carries only an id, and
the traceback goes to the ``geoguess.serve`` log under that id. :class:`BodyLimit`
refuses request bodies over the upload limit before any of them is parsed.
"""

from __future__ import annotations

import logging
import uuid as uuidlib
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from geoguess_utils.errors import DataError
from geoguess_utils.serve.batcher import QueueFullError
from geoguess_utils.serve.registry import ModelNotFoundError, ModelUnusableError
from geoguess_utils.serve.uploads import UploadError

log = logging.getLogger("geoguess.serve")


class ApiError(Exception):
    """A request the server refuses on purpose.

    Args:
        status: HTTP status.
        message: What is wrong, in words.
        field: The field or parameter at fault.
        headers: Extra response headers.
    """

    def __init__(
        self, status: int, message: str, field: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.headers = headers or {}


def error_response(
    status: int,
    message: str,
    field: str | None = None,
    error_id: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """The JSON error body ``{"error": {"status", "message", "field", "id"}}``."""
    body = {"error": {"status": status, "message": message, "field": field, "id": error_id}}
    return JSONResponse(body, status_code=status, headers=headers)


def _validation_field(errors: list[dict[str, Any]]) -> str | None:
    for error in errors:
        location = [str(part) for part in error.get("loc", ()) if part not in ("body", "query", "path")]
        if location:
            return ".".join(location)
    return None


def install_error_handlers(app: FastAPI) -> None:
    """Answer every exception raised by a route as a JSON error body."""

    @app.exception_handler(ApiError)
    async def _api(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.message, exc.field, headers=exc.headers)

    @app.exception_handler(UploadError)
    async def _upload(request: Request, exc: UploadError) -> JSONResponse:
        return error_response(exc.status, str(exc), exc.field)

    @app.exception_handler(ModelNotFoundError)
    async def _not_found(request: Request, exc: ModelNotFoundError) -> JSONResponse:
        return error_response(404, str(exc), "name")

    @app.exception_handler(ModelUnusableError)
    async def _unusable(request: Request, exc: ModelUnusableError) -> JSONResponse:
        return error_response(400, str(exc), "name")

    @app.exception_handler(DataError)
    async def _data(request: Request, exc: DataError) -> JSONResponse:
        return error_response(400, str(exc))

    @app.exception_handler(QueueFullError)
    async def _busy(request: Request, exc: QueueFullError) -> JSONResponse:
        return error_response(503, str(exc), headers={"Retry-After": str(exc.retry_after_s)})

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        field = _validation_field(errors)
        detail = errors[0].get("msg", "invalid request") if errors else "invalid request"
        return error_response(400, f"{field or 'request'}: {detail}", field)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else "request refused"
        return error_response(exc.status_code, message, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        error_id = uuidlib.uuid4().hex[:12]
        log.error("internal error %s on %s %s", error_id, request.method, request.url.path, exc_info=exc)
        return error_response(500, "internal server error; quote the id when reporting it", error_id=error_id)


class BodyLimit:
    """ASGI middleware: refuse request bodies larger than ``max_bytes`` with a 413 JSON error.

    A declared ``Content-Length`` over the limit is refused before reading; otherwise
    the body is read up to the limit and handed on whole.

    Args:
        app: The wrapped ASGI app.
        max_bytes: Largest accepted request body, bytes.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = int(max_bytes)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = (
            f"the request body is larger than the limit of {self.max_bytes} bytes "
            f"({self.max_bytes / 1e6:g} MB; the server's --max-upload-mb)"
        )
        await error_response(413, message, "body")(scope, receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the body size of HTTP requests, pass everything else through."""
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        chunks.clear()
        delivered = False

        async def replay() -> Message:
            nonlocal delivered, body
            if not delivered:
                delivered = True
                whole, body = body, b""  # handed on: not held here while the request runs
                return {"type": "http.request", "body": whole, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
