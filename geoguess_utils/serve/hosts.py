"""Answer only requests addressed to this server: a guard against DNS rebinding.

A web page on another site can make a browser send requests to ``127.0.0.1:8000`` under a
host name of its own (DNS rebinding) and read the answers, sample photos included. Such a
request carries that foreign name in its ``Host`` header; :class:`TrustedHosts` refuses it
with a 400 JSON error, as Starlette's trusted-host middleware does, before any route runs.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

from geoguess_utils.serve.errors import error_response

LOCAL_NAMES: tuple[str, ...] = ("127.0.0.1", "localhost", "::1")
"""The names of this machine every server accepts."""

ANY_ADDRESS: tuple[str, ...] = ("0.0.0.0", "::", "")
"""Listening addresses that mean "every interface": no host name can be derived from them."""


def host_name(header: str) -> str:
    """The name in a ``Host`` header, without its port and IPv6 brackets, lower-cased."""
    header = header.strip().lower()
    if header.startswith("["):  # [::1]:8000
        return header[1 : header.find("]")] if "]" in header else header[1:]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def default_allowed_hosts(listen_host: str) -> tuple[str, ...] | None:
    """The ``Host`` names a server listening on ``listen_host`` accepts by default.

    Returns:
        This machine's names plus ``listen_host``; ``None`` (any name) for an every-interface
        address, whose names cannot be known (``geoguess serve --allowed-host`` then names them).
    """
    if listen_host.strip() in ANY_ADDRESS:
        return None
    return tuple(dict.fromkeys([*LOCAL_NAMES, host_name(listen_host)]))


class TrustedHosts:
    """ASGI middleware: refuse HTTP requests whose ``Host`` is not one of ``allowed`` (400, JSON).

    Args:
        app: The wrapped ASGI app.
        allowed: Accepted host names (no ports); a request without a ``Host`` header is refused.
    """

    def __init__(self, app: ASGIApp, allowed: Iterable[str]) -> None:
        self.app = app
        self.allowed = frozenset(host_name(name) for name in allowed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass requests for an allowed host on; answer the others with 400."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        name = host_name(headers.get(b"host", b"").decode("latin-1"))
        if name in self.allowed:
            await self.app(scope, receive, send)
            return
        message = (
            f"this server answers requests for {', '.join(sorted(self.allowed))} only, not for host {name!r} "
            "(geoguess serve --allowed-host NAME adds a name)"
        )
        await error_response(400, message, "host")(scope, receive, send)
