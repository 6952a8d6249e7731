"""The options both downloaders take: how fast, how often and how long to try."""

from __future__ import annotations

import argparse

from geoguess_utils.datasets.http_retry import MAX_RETRY_AFTER_S


def add_request_options(parser: argparse.ArgumentParser, concurrency: int, rate_per_s: float, timeout_s: float) -> None:
    """Register ``--concurrency``, ``--rate``, ``--retries``, ``--max-retry-after`` and ``--timeout``.

    Args:
        parser: The downloader command's parser.
        concurrency: Default locations fetched at once.
        rate_per_s: Default most requests started per second.
        timeout_s: Default seconds allowed per request.
    """
    parser.add_argument(
        "--concurrency", type=int, default=concurrency, help=f"locations fetched at once (default {concurrency})"
    )
    parser.add_argument(
        "--rate", type=float, default=rate_per_s, help=f"most requests per second (default {rate_per_s:g})"
    )
    parser.add_argument("--retries", type=int, default=5, help="retries per request (default 5)")
    parser.add_argument(
        "--max-retry-after",
        type=float,
        default=MAX_RETRY_AFTER_S,
        help=f"longest Retry-After a server may ask for, seconds (default {MAX_RETRY_AFTER_S:g}); "
        "a longer one fails the point now, retried on the next run",
    )
    parser.add_argument(
        "--timeout", type=float, default=timeout_s, help=f"seconds allowed per request (default {timeout_s:g})"
    )
