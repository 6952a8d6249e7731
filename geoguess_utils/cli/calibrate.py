"""``geoguess calibrate``: fit a checkpoint's calibration on its run's validation split and store it there.

Classifiers get a temperature for their reported probabilities (fitted by negative
log-likelihood; the decoded point does not change) and every model the sorted conformal
scores that size its search regions (``geoguess predict --region 0.9``). ``geoguess fit``
does this itself when training ends; this command does it for runs trained before, or
again. It reads the run's ``split.csv`` (next to ``checkpoints/``), so a run without
validation rows is refused. Prints the calibration error (ECE, 15 bins) before and after,
the reliability table and the median validation region per coverage.

Examples::

    geoguess calibrate --ckpt runs/quick_cpu/version_0/checkpoints/best.ckpt
    geoguess calibrate --ckpt model.ckpt --data /data/lumen_train --split-csv runs/x/split.csv --figure reliability.png
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the command's options."""
    parser.add_argument("--ckpt", required=True, type=Path, help="checkpoint written by geoguess fit (rewritten)")
    parser.add_argument(
        "--data",
        nargs="+",
        type=Path,
        metavar="ROOT",
        help="the run's dataset root(s) (default: those the checkpoint's run was trained on)",
    )
    parser.add_argument(
        "--split-csv", type=Path, help="the run's split.csv (default: <run>/split.csv next to checkpoints/)"
    )
    parser.add_argument("--figure", type=Path, help="also draw the reliability diagram (before and after) to this PNG")
    parser.add_argument("--batch-size", type=int, default=32, help="locations per batch (default 32)")
    parser.add_argument("--num-workers", type=int, default=0, help="image-loading processes (default 0)")
    parser.add_argument(
        "--device", default="auto", help="'auto' (a GPU when there is one), 'cpu', 'cuda', 'cuda:1', ..."
    )
    parser.add_argument("--cache-dir", type=Path, help="folder for the dataset's enriched-table cache")
    parser.add_argument("--lenient", action="store_true", help="skip broken locations instead of stopping")


def reliability_lines(stats: dict) -> list[str]:
    """The reliability table before and after, one line per non-empty bin (plain text)."""
    before, after = stats.get("reliability_before"), stats.get("reliability_after")
    if not before or not after:
        return []
    lines = ["confidence bin   n(before) conf  acc    n(after) conf  acc"]
    for i in range(len(before["lower"])):
        if before["count"][i] == 0 and after["count"][i] == 0:
            continue
        cells = [f"({before['lower'][i]:.2f}, {before['upper'][i]:.2f}]"]
        for table in (before, after):
            n, conf, acc = table["count"][i], table["confidence"][i], table["accuracy"][i]
            shown = "   -     -  " if n == 0 or math.isnan(conf) else f"{conf:5.3f} {acc:5.3f}"
            cells.append(f"{n:9d} {shown}")
        lines.append("  ".join(cells))
    return lines


def run(args: argparse.Namespace) -> int:
    """Fit, store and report the calibration."""
    import sys

    from geoguess_utils.cli.predict import roots_or_run_roots
    from geoguess_utils.data.protected_inputs import refuse_outputs_on_inputs
    from geoguess_utils.inference.calibrate import calibrate_checkpoint, describe
    from geoguess_utils.training.run_files import run_files_of_checkpoint

    roots = roots_or_run_roots("calibrate", args.data, args.ckpt)
    split_csv = args.split_csv or run_files_of_checkpoint(args.ckpt).split_csv
    refuse_outputs_on_inputs({"--figure": args.figure}, roots, {"--ckpt": args.ckpt, "--split-csv": split_csv})
    calibration, medians = calibrate_checkpoint(
        args.ckpt,
        roots,
        split_csv,
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        device=args.device,
        cache_dir=args.cache_dir,
        lenient=args.lenient,
        progress_label=None if sys.stderr.isatty() else "geoguess calibrate",
        progress=sys.stderr.isatty(),
    )
    for line in reliability_lines(dict(calibration.stats)):
        print(line)
    print(f"{describe(calibration, medians)}; written into {args.ckpt}")
    if args.figure is not None and calibration.kind == "cells":
        import numpy as np

        from geoguess_utils.viz.basemap import save_figure
        from geoguess_utils.viz.reliability import plot_reliability

        stats = calibration.stats
        tables = {
            f"before (ECE {stats['ece_before']:.3f})": stats["reliability_before"],
            f"after, T = {calibration.temperature:.2f} (ECE {stats['ece_after']:.3f})": stats["reliability_after"],
        }
        fig = plot_reliability({name: {k: np.asarray(v) for k, v in t.items()} for name, t in tables.items()})
        save_figure(fig, args.figure)
        print(f"wrote the reliability diagram to {args.figure}")
    elif args.figure is not None:
        print("no reliability diagram: a point predictor has no class probabilities", file=sys.stderr)
    return 0
