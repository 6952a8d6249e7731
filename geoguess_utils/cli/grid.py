"""``geoguess grid``: build the square grid over Croatia, print its size, draw it."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the command's options."""
    parser.add_argument("--spacing", type=float, default=0.3, help="cell side in degrees (default 0.3)")
    parser.add_argument("--variant", choices=("mainland", "full"), default="mainland", help="which Croatia")
    parser.add_argument("--figures", type=Path, default=Path("figures"), help="folder for the figure")


def run(args: argparse.Namespace) -> int:
    """Build the grid, print the cell count and write ``grid_<spacing>.png``."""
    import matplotlib

    matplotlib.use("Agg")
    from geoguess_utils.cells import square
    from geoguess_utils.viz import basemap, cell_maps

    cells = square.build_grid(args.spacing, args.variant)
    title = f"{len(cells)} cells of {args.spacing:g} deg intersecting Croatia ({args.variant})"
    path = basemap.save_figure(
        cell_maps.plot_grid(cells, title, args.variant), args.figures / f"grid_{args.spacing:g}.png"
    )
    print(f"cells: {len(cells)} (spacing {args.spacing:g} deg, variant {args.variant})")
    print(f"figure: {path}")
    return 0
