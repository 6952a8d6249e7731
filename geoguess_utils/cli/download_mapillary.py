"""``geoguess download-mapillary``: real, openly licensed photos (CC BY-SA 4.0) from Mapillary's 360° images.

A free Mapillary access token is needed (https://www.mapillary.com/dashboard/developers);
it may come from the ``MAPILLARY_TOKEN`` variable and is never written anywhere.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from geoguess_utils.cli.download_options import add_request_options

TOKEN_VARIABLE = "MAPILLARY_TOKEN"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the command's options."""
    from geoguess_utils.datasets import mapillary

    parser.description = (
        "Sample points on Croatia's mainland, take the nearest Mapillary 360° image of each and cut four square "
        "90° views (true headings 0/90/180/270) in the LUMEN layout, with an ATTRIBUTION.md. Running it again "
        "resumes; an existing root is extended."
    )
    parser.epilog = f"{mapillary.TERMS_NOTICE} {parser.epilog or ''}".strip()
    parser.add_argument(
        "--token",
        default=os.environ.get(TOKEN_VARIABLE),
        help=f"YOUR Mapillary access token (or set {TOKEN_VARIABLE}); never written anywhere",
    )
    parser.add_argument("--locations", type=int, required=True, help="complete locations wanted in the root")
    parser.add_argument("--out", type=Path, required=True, help="dataset root to write, resume or extend")
    parser.add_argument("--api-url", default=mapillary.DEFAULT_API_URL, help="Graph API address (default Mapillary's)")
    parser.add_argument("--size", type=int, default=640, help="side of the square views, pixels (default 640)")
    parser.add_argument(
        "--radius-m", type=float, default=100.0, help="search a box this many metres around each point (default 100)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampled points (default 0)")
    parser.add_argument(
        "--max-points", type=int, default=None, help="most points to sample in all (default 50 x --locations)"
    )
    add_request_options(parser, concurrency=4, rate_per_s=10.0, timeout_s=60.0)


def run(args: argparse.Namespace) -> int:
    """Run (or resume, or extend) the download."""
    from geoguess_utils.datasets import mapillary

    settings = mapillary.MapillarySettings(
        token=args.token or "",
        n_locations=args.locations,
        out_dir=args.out,
        seed=args.seed,
        size=args.size,
        radius_m=args.radius_m,
        max_points=args.max_points,
        concurrency=args.concurrency,
        rate_per_s=args.rate,
        max_retries=args.retries,
        max_retry_after_s=args.max_retry_after,
        timeout_s=args.timeout,
        api_url=args.api_url,
    )
    table = mapillary.download_mapillary(settings)
    complete = int((table["status"] == "OK").sum())
    print(
        f"{complete} complete locations in {args.out} "
        f"({mapillary.CSV_NAME}, {mapillary.STATUS_CSV}, {mapillary.ATTRIBUTION_MD})"
    )
    return 0
