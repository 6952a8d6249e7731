"""Time limits and a cap on open connections, below the app: slow clients cannot hold the server.

uvicorn closes an idle keep-alive connection, but a client that opens a connection and
sends its headers (or its body) one byte at a time keeps it open for as long as it likes,
and a few thousand such clients use up the process's file descriptors. The HTTP protocol
class made by :func:`guarded_protocol` adds three limits to uvicorn's h11 protocol:

* **headers**: a request's headers must arrive within ``header_timeout_s`` of its first
  byte (of the connection, for the first request);
* **body**: its body must arrive within ``body_timeout_s`` of its headers;
* **connections**: beyond ``max_connections`` open connections, a new one is answered
  ``503`` at once and closed, so that its file descriptor is freed at once too.

A request that runs out of time is answered ``408`` when no answer has started, and its
connection is closed. Time spent answering (a forward pass) is not limited here.
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
from dataclasses import dataclass
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("geoguess.serve")

FD_RESERVE = 64
"""File descriptors kept free for the process's own files (checkpoints, logs, photos)."""


@dataclass(frozen=True)
class ConnectionLimits:
    """How long a client may take to send a request, and how many connections may be open.

    Attributes:
        header_timeout_s: Longest time from a request's first byte to the end of its
            headers, seconds.
        body_timeout_s: Longest time from the end of a request's headers to the end of its
            body, seconds (20 MB in 120 s is about 1.3 Mbit/s).
        max_connections: Most connections open at once; more are answered 503 and closed.
    """

    header_timeout_s: float = 10.0
    body_timeout_s: float = 120.0
    max_connections: int = 256

    def __post_init__(self) -> None:
        if self.header_timeout_s <= 0 or self.body_timeout_s <= 0:
            raise ValueError("header_timeout_s and body_timeout_s must be positive")
        if self.max_connections < 1:
            raise ValueError(f"max_connections must be at least 1, got {self.max_connections}")


def fitted_to_file_limit(limits: ConnectionLimits) -> ConnectionLimits:
    """``limits`` with ``max_connections`` lowered to what this process's open-file limit allows.

    Each connection is a file descriptor; ``FD_RESERVE`` of them stay free for files.
    """
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or limits.max_connections <= soft - FD_RESERVE:
        return limits
    allowed = max(1, soft - FD_RESERVE)
    log.warning(
        "--max-connections %d lowered to %d: this process may open %d files (ulimit -n)",
        limits.max_connections,
        allowed,
        soft,
    )
    return ConnectionLimits(limits.header_timeout_s, limits.body_timeout_s, allowed)


def _plain_answer(status: int, reason: bytes, message: str, extra: bytes = b"") -> bytes:
    """A whole HTTP/1.1 answer with a JSON error body, closing the connection."""
    body = json.dumps({"error": {"status": status, "message": message, "field": None, "id": None}}).encode()
    head = b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n%s\r\n" % (
        status,
        reason,
        len(body),
        extra,
    )
    return head + body


def guarded_protocol(limits: ConnectionLimits) -> type[asyncio.Protocol]:
    """The h11 HTTP protocol of uvicorn with ``limits`` (pass it as ``uvicorn.run(http=...)``)."""

    class GuardedH11Protocol(H11Protocol):
        """One connection: times the request being received and refuses connections beyond the cap."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._deadline: asyncio.TimerHandle | None = None
            self._timing: object | None = None  # the h11 state the running deadline is for

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if len(self.connections) > limits.max_connections:
                transport.write(
                    _plain_answer(
                        503,
                        b"Service Unavailable",
                        f"the server has {limits.max_connections} connections open, its most; try again shortly",
                        b"retry-after: 1\r\n",
                    )
                )
                transport.close()
                return
            self._time(h11.IDLE)

        def connection_lost(self, exc: Exception | None) -> None:
            self._time(None)
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            self._follow_state()

        def on_response_complete(self) -> None:
            # uvicorn's keep-alive timer now waits for the next request's first byte.
            self._time(None)
            super().on_response_complete()
            self._follow_state()

        def _follow_state(self) -> None:
            """Run the deadline of the part of the request being received, if any."""
            if self.transport is None or self.transport.is_closing():
                self._time(None)
                return
            state = self.conn.their_state
            if state is h11.IDLE:
                # Part of the next request's headers is here: time them. With nothing here the
                # deadline set when the connection opened goes on (or uvicorn's keep-alive wait).
                if self.conn.trailing_data[0]:
                    self._time(h11.IDLE)
            elif state is h11.SEND_BODY:
                self._time(h11.SEND_BODY)
            else:
                self._time(None)

        def _time(self, state: object | None) -> None:
            """Start the deadline for ``state`` (``None``: stop it); a running one for the same state goes on."""
            if state is not None and state is self._timing:
                return
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None
            self._timing = state
            if state is None:
                return
            seconds = limits.header_timeout_s if state is h11.IDLE else limits.body_timeout_s
            self._deadline = self.loop.call_later(seconds, self._out_of_time, state, seconds)

        def _out_of_time(self, state: object, seconds: float) -> None:
            self._deadline = None
            self._timing = None
            if self.transport is None or self.transport.is_closing():
                return
            part = "headers" if state is h11.IDLE else "body"
            answering = self.cycle is not None and self.cycle.response_started and not self.cycle.response_complete
            if not answering:
                # Once closed, the connection takes nothing more: the app's own answer is dropped.
                self.transport.write(
                    _plain_answer(408, b"Request Timeout", f"the request's {part} took longer than {seconds:g} s")
                )
            log.info("closed a connection from %s: its request's %s took longer than %g s", self.client, part, seconds)
            self.transport.close()

    return GuardedH11Protocol
