"""``geoguess download-streetview``: collect real Street View data with your own API key.

Street View images belong to Google. You bring your own key, pay for its requests and
accept Google's terms; the project never bundles or shares the images.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from geoguess_utils.cli.download_options import add_request_options

KEY_VARIABLE = "GEOGUESS_STREETVIEW_KEY"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the command's options."""
    from geoguess_utils.datasets import streetview

    parser.description = (
        "Sample points on Croatia's mainland, find the nearest Street View panorama of each and download its "
        "four views (0/90/180/270, 640x640) in the LUMEN layout. Running it again resumes."
    )
    parser.epilog = f"{streetview.TERMS_NOTICE} {parser.epilog or ''}".strip()
    parser.add_argument(
        "--key",
        default=os.environ.get(KEY_VARIABLE),
        help=f"YOUR Google Maps Platform API key (or set {KEY_VARIABLE}); never written to disk",
    )
    parser.add_argument("--locations", type=int, required=True, help="number of points to sample")
    parser.add_argument("--out", type=Path, required=True, help="dataset root to write or resume")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampled points (default 0)")
    parser.add_argument("--radius", type=int, default=1000, help="search radius for a panorama, metres (default 1000)")
    add_request_options(parser, concurrency=8, rate_per_s=20.0, timeout_s=30.0)
    parser.add_argument("--base-url", default=streetview.DEFAULT_BASE_URL, help="Street View Static API address")


def run(args: argparse.Namespace) -> int:
    """Run (or resume) the download."""
    from geoguess_utils.data.layout import CSV_NAME
    from geoguess_utils.datasets import streetview

    settings = streetview.DownloadSettings(
        key=args.key or "",
        n_locations=args.locations,
        out_dir=args.out,
        seed=args.seed,
        radius_m=args.radius,
        concurrency=args.concurrency,
        rate_per_s=args.rate,
        max_retries=args.retries,
        max_retry_after_s=args.max_retry_after,
        timeout_s=args.timeout,
        base_url=args.base_url,
    )
    table = streetview.download_streetview(settings)
    complete = int((table["status"] == "OK").sum())
    print(f"{complete} complete locations in {args.out} ({CSV_NAME}, {streetview.STATUS_CSV})")
    return 0
