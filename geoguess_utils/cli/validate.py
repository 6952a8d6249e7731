"""``geoguess validate``: check LUMEN dataset roots and list every problem by uuid and file."""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the command's options."""
    from geoguess_utils.data import reader, validation

    parser.add_argument("roots", nargs="+", type=Path, help="dataset roots (each holding data/ or images/)")
    parser.add_argument(
        "--lenient",
        action="store_true",
        help="exit 0 despite problems; the locations that would be skipped are written to --report",
    )
    parser.add_argument("--report", type=Path, help="write the problems as CSV (uuid, file, kind, message)")
    parser.add_argument("--deep", action="store_true", help="decode every image, not only its header")
    parser.add_argument(
        "--expected-size",
        type=int,
        metavar="PIXELS",
        help="required image side (640 for LUMEN); default: flag sizes that differ from the most common one",
    )
    parser.add_argument(
        "--coast-tolerance-km",
        type=float,
        default=validation.DEFAULT_COAST_TOLERANCE_KM,
        help=f"accept points this close to Croatia (default {validation.DEFAULT_COAST_TOLERANCE_KM:g})",
    )
    parser.add_argument(
        "--max-pixels",
        type=int,
        default=reader.DEFAULT_MAX_PIXELS,
        help=f"refuse images with more pixels (default {reader.DEFAULT_MAX_PIXELS})",
    )
    parser.add_argument(
        "--require-four-views",
        action="store_true",
        help="a location missing any of the four views is a problem (default: a warning; models trained with "
        "attention or mean pooling take one to four views)",
    )


def run(args: argparse.Namespace) -> int:
    """Validate the roots, print every problem; return 1 on problems unless lenient."""
    from geoguess_utils.data import validation
    from geoguess_utils.data.protected_inputs import refuse_outputs_on_inputs
    from geoguess_utils.errors import ConfigError

    if args.lenient and args.report is None:
        raise ConfigError("--lenient needs --report FILE to record what would be skipped and why")
    refuse_outputs_on_inputs({"--report": args.report}, args.roots)
    size = (args.expected_size, args.expected_size) if args.expected_size else None
    start = time.perf_counter()
    report = validation.validate_roots(
        args.roots,
        deep=args.deep,
        expected_size=size,
        coast_tolerance_km=args.coast_tolerance_km,
        max_pixels=args.max_pixels,
        require_four_views=args.require_four_views,
    )
    seconds = time.perf_counter() - start
    for problem in report.problems:
        print(validation.format_problem(problem))
    for warning in report.warnings:
        print("warning\t" + validation.format_problem(warning))
    print(f"{report.summary()} ({seconds:.1f} s)")
    if args.report is not None:
        report.write_csv(args.report)
        print(f"report: {args.report}")
    if report.ok:
        return 0
    if args.lenient:
        kept = len(report.clean_locations())
        print(f"lenient: {len(report.locations) - kept} locations would be skipped, {kept} kept")
        return 0
    return 1
