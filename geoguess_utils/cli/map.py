"""``geoguess map``: draw a checkpoint's predictions on an interactive map (one HTML file).

The page shows true and predicted points joined by lines coloured by the error, a popup
per location with its uuid, error and four views, the grid cells coloured by their mean
error and, for a classifier, one location's probability over the cells as a layer that
can be switched on. A calibrated checkpoint (``geoguess calibrate``) adds the search region
of coverage ``--region`` (default 0.9) of the location clicked, the median-error location's
at first; an uncalibrated one says so in the legend. Leaflet is embedded, so the page opens
offline; only the optional OpenStreetMap tiles need the internet.

Without ``--data`` it draws the roots the checkpoint's run was trained on (``data.roots``
of the run's ``config.yaml``); ``--split`` needs those roots, all of them, because the
run's ``split.csv`` lists every location of them.

Examples::

    geoguess map --ckpt runs/demo/classification/checkpoints/best.ckpt --split test
    geoguess map --ckpt model.ckpt --data /data/lumen_external --out figures/external_map.html
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEFAULT_OUT = Path("figures") / "predictions_map.html"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the command's options."""
    parser.add_argument("--ckpt", required=True, type=Path, help="checkpoint written by geoguess fit")
    parser.add_argument(
        "--data",
        nargs="+",
        type=Path,
        metavar="ROOT",
        help="dataset root(s) with data.csv, the truth being needed (default: the roots the checkpoint's run was "
        "trained on, from <run>/config.yaml)",
    )
    parser.add_argument(
        "--split",
        choices=("train", "val", "test"),
        help="draw only this split of the training run (needs its split.csv and all the roots it was trained on); "
        "default: every location of the roots",
    )
    parser.add_argument(
        "--split-csv",
        type=Path,
        help="the run's split.csv (default: split.csv in the checkpoint's run folder, <run>/checkpoints/../)",
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"HTML file to write (default {DEFAULT_OUT.as_posix()})"
    )
    parser.add_argument("--title", help="heading of the legend (default: the task and the data drawn)")
    parser.add_argument(
        "--focus", help="uuid whose class probabilities the optional layer shows (default: the median-error location)"
    )
    parser.add_argument(
        "--max-locations", type=int, default=400, help="draw at most this many locations (default 400; 0: all)"
    )
    parser.add_argument(
        "--region",
        type=float,
        default=0.9,
        metavar="C",
        help="draw the search region of nominal coverage C in (0, 1) of the location clicked, for a calibrated "
        "checkpoint (default 0.9; 0: none)",
    )
    parser.add_argument("--thumbnail-px", type=int, default=64, help="side of the thumbnails in popups (default 64)")
    parser.add_argument("--no-thumbnails", action="store_true", help="leave the views out of the popups (smaller file)")
    parser.add_argument("--batch-size", type=int, default=64, help="locations per batch (default 64)")
    parser.add_argument("--device", default="auto", help="'auto' (a GPU when there is one), 'cpu', 'cuda', ...")
    parser.add_argument(
        "--cache-dir", type=Path, help="folder for the dataset's enriched-table cache (default ~/.cache/geoguess)"
    )


def run(args: argparse.Namespace) -> int:
    """Predict, draw and write the map; print a summary line and where the file is."""
    from geoguess_utils import evaluation, inference
    from geoguess_utils.checkpoints.record import describe_training_data, synthetic_model_warning
    from geoguess_utils.cli.predict import report_training_data, roots_or_run_roots
    from geoguess_utils.data.protected_inputs import refuse_outputs_on_inputs
    from geoguess_utils.errors import ConfigError, DataError
    from geoguess_utils.inference.non_finite import OutputCount
    from geoguess_utils.tasks.loading import load_task
    from geoguess_utils.training.run_files import run_files_of_checkpoint
    from geoguess_utils.viz import webmap
    from geoguess_utils.viz.prediction_map import prediction_map

    if args.max_locations < 0 or args.thumbnail_px < 8:
        raise ConfigError("--max-locations must be >= 0 and --thumbnail-px at least 8")
    if not 0 <= args.region < 1:
        raise ConfigError(
            f"--region must lie in [0, 1): a coverage such as 0.9, or 0 for no region (got {args.region})"
        )
    roots = roots_or_run_roots("map", args.data, args.ckpt)
    written = {"--out": args.out, "--cache-dir": args.cache_dir}
    refuse_outputs_on_inputs(written, roots, {"--ckpt": args.ckpt, "--split-csv": args.split_csv})
    split_csv = args.split_csv
    if args.split is not None and split_csv is None:
        split_csv = run_files_of_checkpoint(args.ckpt).split_csv
        if not split_csv.is_file():
            raise ConfigError(
                f"--split {args.split} needs the run's split.csv; {split_csv} does not exist (give --split-csv)"
            )
    task = load_task(args.ckpt)
    if args.split is not None:
        _check_split_roots(args.split, roots, task.training_data, args.ckpt)
    report_training_data("map", task.training_data, roots)
    notes = [describe_training_data(task.training_data)]
    warning = synthetic_model_warning(task.training_data, roots)
    if warning:
        notes.append(warning)
    search_regions = None
    if args.region > 0:
        if task.calibration is None:
            notes.append(
                f"no search region: the model is not calibrated (run geoguess calibrate --ckpt {args.ckpt.as_posix()})"
            )
        else:
            from geoguess_utils.tasks.regions import SearchRegions

            search_regions = SearchRegions.of_task(task, str(args.ckpt))
    from geoguess_utils.inference.predictions import fewer_views_note

    predictions = inference.predict(
        task,
        roots,
        split=args.split,
        split_csv=split_csv,
        batch_size=args.batch_size,
        device=args.device,
        cache_dir=args.cache_dir,
        progress=sys.stderr.isatty(),  # Lightning's bar in a terminal; plain lines in logs and pipes
        progress_label=None if sys.stderr.isatty() else "geoguess map",
    )
    outputs = OutputCount.of(predictions)
    outputs.warn("map")
    if not predictions.labelled:
        raise DataError(f"{', '.join(map(str, roots))}: the map needs true positions (a data.csv with coordinates)")
    summary = evaluation.summarise(predictions)
    drawn = "every location" if args.split is None else f"{args.split} split"
    title = args.title or f"{predictions.task_name} model, {drawn} ({', '.join(p.name for p in roots)})"
    fmap = prediction_map(
        predictions,
        title=title,
        focus=args.focus,
        thumbnail_px=None if args.no_thumbnails else args.thumbnail_px,
        max_locations=args.max_locations or None,
        notes=notes,
        search_regions=search_regions,
        coverage=args.region or 0.9,
    )
    path = webmap.save_map(fmap, args.out)
    shown = min(len(predictions.table), args.max_locations or len(predictions.table))
    print(
        f"{drawn}: {summary['count']} locations, mean {summary['mean_km']:.1f} km, "
        f"median {summary['median_km']:.1f} km, within 25 km {summary['acc_25_km']:.1%}; {outputs.summary()}"
        f"{fewer_views_note(predictions)}"
    )
    print(f"wrote the map of {shown} locations to {path} (open it in a browser)")
    return 0


def _check_split_roots(split: str, roots: list[Path], training_data: dict | None, ckpt: Path) -> None:
    """Refuse ``--split`` over other roots than the run's: its split file lists every location of all of them.

    Compares folder names with those the checkpoint records (``training_data["roots"]``),
    so a copy of the data elsewhere still passes; an older checkpoint without the record
    is left to the split file's own check.

    Raises:
        ConfigError: When the names differ (the message names the checkpoint and both lists).
    """
    from geoguess_utils.errors import ConfigError

    trained = (training_data or {}).get("roots")
    if not trained or any(name in (".", "..") or "/" in name for name in trained):
        return  # no record, or not plain folder names to compare
    given = [p.resolve().name or str(p) for p in roots]
    if sorted(given) != sorted(trained):
        raise ConfigError(
            f"--split {split} draws rows of the run's split file, which covers every root {ckpt} was trained on "
            f"({', '.join(trained)}); --data gives {', '.join(given)}: give all of them, or leave --data out to "
            "use the run's roots"
        )
