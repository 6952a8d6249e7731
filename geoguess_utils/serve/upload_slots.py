"""A cap on the uploads the server holds in memory at once.

Reading, unpacking and decoding one 15 MB upload takes about 50 MB of memory for a moment;
thirty of them at once take gigabytes. :class:`UploadSlots` lets ``max_uploads`` requests
with a body be read and decoded at once; the next ``max_waiting`` wait for a slot (their
bodies stay in the network buffers meanwhile, and the server's body time limit keeps
running), and any more are answered ``503`` with a ``Retry-After``. A route frees its slot
as soon as its photos are decoded (:func:`release_slot`), so that the forward pass, which
needs no upload, holds none.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from geoguess_utils.serve.errors import error_response

SCOPE_KEY = "geoguess.upload_slot"
"""Where the request's slot is kept in the ASGI scope."""


class _Slot:
    """One request's hold on a slot; releasing it twice is harmless."""

    def __init__(self, semaphore: asyncio.Semaphore) -> None:
        self._semaphore = semaphore
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._semaphore.release()


def release_slot(scope: dict[str, Any]) -> None:
    """Free the upload slot of the request whose ASGI scope is ``scope`` (nothing if it has none)."""
    slot = scope.get(SCOPE_KEY)
    if slot is not None:
        slot.release()


class UploadSlots:
    """ASGI middleware: at most ``max_uploads`` request bodies read at once, ``max_waiting`` more queued.

    Requests without a body (GET, HEAD, OPTIONS) pass straight through.

    Args:
        app: The wrapped ASGI app.
        max_uploads: Requests with a body being read or decoded at once.
        max_waiting: Requests with a body waiting for a slot; beyond, 503.
        retry_after_s: The ``Retry-After`` of that 503, seconds.
    """

    def __init__(self, app: ASGIApp, max_uploads: int, max_waiting: int, retry_after_s: int = 1) -> None:
        if max_uploads < 1 or max_waiting < 0:
            raise ValueError(f"max_uploads must be at least 1 and max_waiting at least 0: {max_uploads}, {max_waiting}")
        self.app = app
        self.max_uploads = max_uploads
        self.max_waiting = max_waiting
        self.retry_after_s = retry_after_s
        self._semaphore: asyncio.Semaphore | None = None  # made in the server's event loop
        self.waiting = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Hold a slot while the request's body is read and decoded."""
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self.max_uploads)
        if self._semaphore.locked() and self.waiting >= self.max_waiting:
            message = (
                f"the server is reading {self.max_uploads} uploads and {self.waiting} more wait, its most "
                "(--max-uploads, --max-waiting-uploads); try again shortly"
            )
            await error_response(503, message, "body", headers={"Retry-After": str(self.retry_after_s)})(
                scope, receive, send
            )
            return
        self.waiting += 1
        try:
            await self._semaphore.acquire()
        finally:
            self.waiting -= 1
        slot = _Slot(self._semaphore)
        scope[SCOPE_KEY] = slot
        try:
            await self.app(scope, receive, send)
        finally:
            slot.release()
