"""Gather requests that arrive together into one forward pass, with a bounded queue.

Each request puts one item (one or more locations for one model) on an asyncio queue
of at most ``max_queue`` items; a full queue refuses at once (:class:`QueueFullError`,
HTTP 503). One worker takes the oldest item, waits up to ``max_wait_s`` for more items
for the same model until ``max_batch`` locations are gathered, runs them as one batch
on a single inference thread (so the event loop keeps accepting requests), and hands
each request its own results. ``max_batch=1`` turns batching off: one request, one pass.
A request may carry view masks (which of its four views are present, which headings are
known); they are concatenated with the pixels, all-true for requests that sent none.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from geoguess_utils.errors import ConfigError

log = logging.getLogger("geoguess.serve")

RunBatch = Callable[..., list[Any]]
"""``run(key, pixels (B, 4, H, W, 3), uuids) -> B results``: one forward pass for one model; when a
request of the batch sent view masks, also ``view_mask=`` and ``heading_known=``, (B, 4) bool each."""


class QueueFullError(Exception):
    """The request queue is full; the client should retry after ``retry_after_s`` seconds."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"the server is busy: the request queue is full; retry in {retry_after_s} s")
        self.retry_after_s = retry_after_s


@dataclass
class BatchStats:
    """Counters of what the batcher has done (for ``/health`` and the benchmarks)."""

    batches: int = 0
    locations: int = 0
    rejected: int = 0
    largest_batch: int = 0
    sizes: collections.Counter = field(default_factory=collections.Counter)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-ready); ``sizes`` maps batch size to how many batches had it."""
        return {
            "batches": self.batches,
            "locations": self.locations,
            "rejected": self.rejected,
            "largest_batch": self.largest_batch,
            "sizes": {str(k): v for k, v in sorted(self.sizes.items())},
        }


@dataclass
class _Item:
    key: Hashable
    pixels: np.ndarray
    uuids: list[str]
    future: asyncio.Future
    view_mask: np.ndarray | None = None
    heading_known: np.ndarray | None = None


class Batcher:
    """Batch concurrent prediction requests (see the module docstring).

    Args:
        run: Runs one batch for one model (called on the inference thread).
        max_batch: Most locations per forward pass (1 = no batching).
        max_wait_s: Longest time the first request of a batch waits for company, seconds.
        max_queue: Most requests waiting; beyond it requests are refused with :class:`QueueFullError`.
        retry_after_s: What a refused client is told to wait, seconds.
        on_thread_start: Called once on the inference thread before its first batch
            (e.g. to set torch's thread count there).

    Raises:
        ConfigError: A limit is not positive.
    """

    def __init__(
        self,
        run: RunBatch,
        max_batch: int = 32,
        max_wait_s: float = 0.005,
        max_queue: int = 64,
        retry_after_s: int = 1,
        on_thread_start: Callable[[], None] | None = None,
    ) -> None:
        if max_batch < 1 or max_queue < 1 or max_wait_s < 0 or retry_after_s < 0:
            raise ConfigError(
                f"batching limits must be positive: max_batch={max_batch}, max_queue={max_queue}, "
                f"max_wait_s={max_wait_s}, retry_after_s={retry_after_s}"
            )
        self.run = run
        self.max_batch = int(max_batch)
        self.max_wait_s = float(max_wait_s)
        self.max_queue = int(max_queue)
        self.retry_after_s = int(retry_after_s)
        self.on_thread_start = on_thread_start
        self.stats = BatchStats()
        self._queue: asyncio.Queue[_Item] | None = None
        self._worker: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None

    @property
    def queued(self) -> int:
        """Requests waiting now."""
        return 0 if self._queue is None else self._queue.qsize()

    async def start(self) -> None:
        """Start the worker (in the running event loop)."""
        if self._worker is not None:
            return
        self._queue = asyncio.Queue(maxsize=self.max_queue)
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="geoguess-infer", initializer=self.on_thread_start
        )
        self._worker = asyncio.get_running_loop().create_task(self._loop(), name="geoguess-batcher")

    async def stop(self) -> None:
        """Stop the worker; requests still queued fail with a RuntimeError."""
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        if self._queue is not None:
            while not self._queue.empty():
                item = self._queue.get_nowait()
                if not item.future.done():
                    item.future.set_exception(RuntimeError("the server is shutting down"))
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    async def submit(
        self,
        key: Hashable,
        pixels: np.ndarray,
        uuids: list[str],
        view_mask: np.ndarray | None = None,
        heading_known: np.ndarray | None = None,
    ) -> list[Any]:
        """Queue one request's locations and wait for their results.

        Args:
            key: Which model (requests are only batched with requests for the same key).
            pixels: ``uint8`` views, (B, 4, H, W, 3).
            uuids: One name per location, length B.
            view_mask: (B, 4) bool, the views present (``None``: all).
            heading_known: (B, 4) bool, the headings known (``None``: all).

        Returns:
            The B results of ``run``, in order.

        Raises:
            QueueFullError: The queue holds ``max_queue`` requests already.
            RuntimeError: The batcher is not running.
        """
        if self._queue is None or self._worker is None:
            raise RuntimeError("the batcher is not running (start() was not awaited)")
        future = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait(_Item(key, pixels, list(uuids), future, view_mask, heading_known))
        except asyncio.QueueFull:
            self.stats.rejected += 1
            raise QueueFullError(self.retry_after_s) from None
        return await future

    async def _gather(self, first: _Item, held: collections.deque[_Item]) -> list[_Item]:
        """``first`` and the items for the same model that arrive within the wait, up to ``max_batch`` locations."""
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        items, count = [first], len(first.uuids)
        deadline = loop.time() + self.max_wait_s
        while count < self.max_batch:
            if not self._queue.empty():
                item = self._queue.get_nowait()
            else:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self._queue.get(), remaining)
                except asyncio.TimeoutError:
                    break
            if item.key != first.key or count + len(item.uuids) > self.max_batch:
                held.append(item)  # served first in a later round, in arrival order
                if item.key == first.key:
                    break
                continue
            items.append(item)
            count += len(item.uuids)
        return items

    async def _loop(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        held: collections.deque[_Item] = collections.deque()
        while True:
            first = held.popleft() if held else await self._queue.get()
            if first.future.done():  # the client went away
                continue
            items = [first] if len(first.uuids) >= self.max_batch else await self._gather(first, held)
            items = [item for item in items if not item.future.done()]
            if not items:
                continue
            pixels = items[0].pixels if len(items) == 1 else np.concatenate([item.pixels for item in items])
            uuids = [uuid for item in items for uuid in item.uuids]
            run = functools.partial(self.run, first.key, pixels, uuids, **_masks(items))
            try:
                results = await loop.run_in_executor(self._executor, run)
                if len(results) != len(uuids):
                    raise RuntimeError(f"the model returned {len(results)} results for {len(uuids)} locations")
            except Exception as exc:  # each waiting request gets the error (the app logs it with an id)
                for item in items:
                    if not item.future.done():
                        item.future.set_exception(exc)
                continue
            self.stats.batches += 1
            self.stats.locations += len(uuids)
            self.stats.largest_batch = max(self.stats.largest_batch, len(uuids))
            self.stats.sizes[len(uuids)] += 1
            start = 0
            for item in items:
                stop = start + len(item.uuids)
                if not item.future.done():
                    item.future.set_result(results[start:stop])
                start = stop


def _masks(items: list[_Item]) -> dict[str, np.ndarray]:
    """The items' view masks, concatenated (all-true for an item without); empty when no item has any."""
    out = {}
    for name in ("view_mask", "heading_known"):
        if any(getattr(item, name) is not None for item in items):
            out[name] = np.concatenate(
                [
                    np.ones(item.pixels.shape[:2], dtype=bool) if getattr(item, name) is None else getattr(item, name)
                    for item in items
                ]
            )
    return out
