"""Retrying HTTP GETs for the downloaders: rate limit, backoff, Retry-After, and the two failure kinds."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

RETRY_HTTP = frozenset({408, 429, 500, 502, 503, 504})
"""HTTP statuses worth trying again."""

T = TypeVar("T")

MAX_RETRY_AFTER_S = 300.0
"""Longest ``Retry-After`` a download obeys by default, seconds: a longer one marks the row to retry later."""


class RetryableError(Exception):
    """A request failed in a way that may succeed when tried again."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class RowError(Exception):
    """This point cannot be downloaded now (recorded as FAILED, retried on the next run)."""


class RateLimiter:
    """Spaces request starts at least ``1 / rate_per_s`` seconds apart (asyncio)."""

    def __init__(self, rate_per_s: float) -> None:
        self._interval = 1.0 / float(rate_per_s)
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        """Return when the next request may start."""
        loop = asyncio.get_running_loop()
        async with self._lock:
            now = loop.time()
            start = max(now, self._next)
            self._next = start + self._interval
        if start > now:
            await asyncio.sleep(start - now)


def retry_after_s(headers: Mapping[str, str]) -> float | None:
    """The seconds a ``Retry-After`` header asks to wait, when it gives a number (not a date)."""
    header = headers.get("Retry-After", "")
    return float(header) if header.replace(".", "", 1).isdigit() else None


async def with_retries(
    call: Callable[[], Awaitable[T]],
    limiter: RateLimiter,
    max_retries: int,
    backoff_s: float,
    unreachable: Callable[[BaseException], Exception],
    describe: Callable[[BaseException], str],
    max_retry_after_s: float = MAX_RETRY_AFTER_S,
) -> T:
    """Await ``call()`` after the rate limiter, trying again with jittered exponential backoff.

    Args:
        call: One attempt; raises :class:`RetryableError`, an aiohttp client error or a
            timeout when it may be tried again.
        limiter: Spaces the attempts of every caller.
        max_retries: Attempts after the first.
        backoff_s: First delay, seconds; doubled per attempt up to 60 s, or longer when
            the server's ``Retry-After`` asks for it.
        unreachable: The error to raise when the last attempt could not connect at all
            (the whole download stops and resumes later).
        describe: The failure's text for the :class:`RowError` of the last attempt.
        max_retry_after_s: Longest ``Retry-After`` obeyed, seconds. A server asking for more
            does not put the run to sleep: the row fails at once, to be retried on the next run.

    Raises:
        RowError: Every attempt failed ("gave up after N attempts: ..."), or the server asked
            to wait longer than ``max_retry_after_s``.
    """
    import aiohttp

    attempt = 0
    while True:
        await limiter.wait()
        try:
            return await call()
        except (RetryableError, aiohttp.ClientError, asyncio.TimeoutError) as exc:
            if attempt >= max_retries:
                if isinstance(exc, aiohttp.ClientConnectorError):  # no connection at all: stop, resume later
                    raise unreachable(exc) from None
                raise RowError(f"gave up after {attempt + 1} attempts: {describe(exc)}") from None
            retry_after = exc.retry_after_s if isinstance(exc, RetryableError) else None
            if retry_after is not None and retry_after > max_retry_after_s:
                raise RowError(
                    f"the server asks to wait {retry_after:g} s before trying again (Retry-After), more than the "
                    f"{max_retry_after_s:g} s this run waits; the point is retried on the next run"
                ) from None
            delay = min(60.0, backoff_s * 2**attempt) * (0.75 + 0.5 * random.random())
            await asyncio.sleep(max(delay, retry_after or 0.0))
            attempt += 1


async def read_capped(response: Any, limit: int, what: str) -> bytes:
    """The whole body of an aiohttp response, never more than ``limit`` bytes in memory.

    A declared length over the limit is refused before reading; an undeclared or lying one
    is refused as soon as the bytes read pass it.

    Args:
        response: An aiohttp ``ClientResponse`` whose body is not read yet.
        limit: Largest body accepted, bytes.
        what: How messages name the body (``"image"``, ``"metadata answer"``).

    Raises:
        RowError: The body is larger than ``limit``.
        RetryableError: Fewer bytes came than the declared length (a cut connection).
    """
    declared = response.content_length
    if declared is not None and declared > limit:
        raise RowError(f"the {what} is {declared} bytes, more than the limit of {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(1 << 16):
        size += len(chunk)
        if size > limit:
            raise RowError(f"the {what} exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    if declared is not None and size != declared:
        raise RetryableError(f"truncated {what}: {size} of {declared} bytes")
    return b"".join(chunks)
