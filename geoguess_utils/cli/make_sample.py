"""``geoguess make-sample``: write the synthetic "procedural Croatia" dataset.

The images are drawn offline from real geography (coastline, landscape zones,
mountains, settlements); every row of ``data.csv`` is labelled ``source=synthetic``.
The same seed gives the same bytes.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the command's options."""
    from geoguess_utils.datasets.synthetic import density, render

    parser.add_argument("--out", required=True, type=Path, help="dataset root to create (data.csv + images/)")
    parser.add_argument("--locations", type=int, default=2000, help="number of locations (default 2000)")
    parser.add_argument(
        "--size",
        type=int,
        default=render.DEFAULT_SIZE,
        help=f"image side in pixels, {render.MIN_SIZE}..{render.MAX_SIZE} (default {render.DEFAULT_SIZE})",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of everything (default 0)")
    parser.add_argument(
        "--workers", type=int, default=None, help="processes drawing images (default: one per CPU core)"
    )
    parser.add_argument(
        "--density",
        choices=density.DENSITIES,
        default="uniform",
        help="where locations lie: uniform by area (default), or settlements: dense around towns, "
        "along roads and the coast, sparse in the mountains, like real Street View coverage",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing dataset in --out")


def run(args: argparse.Namespace) -> int:
    """Generate the dataset and print where it went."""
    from geoguess_utils.datasets.synthetic import write

    start = time.perf_counter()
    last = [0.0]

    def progress(done: int, total: int) -> None:
        now = time.perf_counter()
        if now - last[0] > 5.0 or done == total:
            last[0] = now
            print(f"  {done}/{total} locations drawn", file=sys.stderr)

    table = write.generate_dataset(
        args.out,
        args.locations,
        size=args.size,
        seed=args.seed,
        workers=args.workers,
        overwrite=args.overwrite,
        progress=progress,
        density=args.density,
    )
    elapsed = time.perf_counter() - start
    print(
        f"wrote {len(table)} SYNTHETIC locations ({args.size}x{args.size} px, seed {args.seed}, "
        f"{args.density} density) to {args.out} "
        f"in {elapsed:.1f} s"
    )
    return 0
