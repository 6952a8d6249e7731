"""``geoguess predict``: locate every folder of one or more dataset roots with a trained checkpoint.

Needs only the checkpoint (it carries the projection, the classes, the image size and
the backbone) and the images; ``data.csv`` is optional. Writes ``uuid,latitude,longitude``
with one row per folder, the competition's submission format. Without ``--data`` it
predicts the roots the checkpoint's run was trained on (``data.roots`` of the run's
``config.yaml``). In a terminal Lightning draws a progress bar; in logs and pipes a
plain line says how many locations are done at every tenth.

Examples::

    geoguess predict --ckpt runs/quick_cpu/version_0/checkpoints/best.ckpt --out predictions.csv
    geoguess predict --ckpt model.ckpt --data /data/lumen_train /data/external_set --out predictions.csv
    geoguess predict --ckpt model.ckpt --photo a.jpg --photo b.jpg

A location folder may hold one to four of the views (models trained with attention or mean
pooling use the ones there; the summary says how many locations had fewer than four).
``--photo`` locates one spot from one to four loose photos whose headings are unknown.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from geoguess_utils.cli import region_options

if TYPE_CHECKING:
    import pandas as pd

    from geoguess_utils.evaluation import Predictions


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the command's options."""
    parser.add_argument("--ckpt", required=True, type=Path, help="checkpoint written by geoguess fit")
    parser.add_argument(
        "--data",
        nargs="+",
        type=Path,
        metavar="ROOT",
        help="dataset root(s) holding data/ or images/ (default: the roots the checkpoint's run was trained on, "
        "from <run>/config.yaml)",
    )
    parser.add_argument(
        "--out", type=Path, help="CSV to write (uuid,latitude,longitude); required unless --photo is given"
    )
    parser.add_argument(
        "--photo",
        action="append",
        type=Path,
        metavar="FILE",
        help="a photo of unknown heading (repeat for up to four taken at one spot); predicts that one spot "
        "instead of dataset roots and prints it (also to --out when given)",
    )
    parser.add_argument("--batch-size", type=int, default=32, help="locations per batch (default 32)")
    parser.add_argument("--num-workers", type=int, default=0, help="image-loading processes (default 0)")
    parser.add_argument(
        "--device", default="auto", help="'auto' (a GPU when there is one), 'cpu', 'cuda', 'cuda:1', ..."
    )
    parser.add_argument(
        "--decoding",
        choices=_decoding_choices(),
        help="classification only: how class probabilities become a location (default: the checkpoint's)",
    )
    parser.add_argument("--cache-dir", type=Path, help="folder for the dataset's enriched-table cache")
    parser.add_argument(
        "--lenient",
        action="store_true",
        help="skip broken locations (listed in a warning) instead of stopping",
    )
    region_options.add_arguments(parser)


def _decoding_choices() -> list[str]:
    from geoguess_utils.tasks.decoding import DECODINGS

    return list(DECODINGS)


def roots_or_run_roots(command: str, roots: list[Path] | None, ckpt: Path) -> list[Path]:
    """The dataset roots given with ``--data``, else those the checkpoint's run was trained on.

    The run is the folder the checkpoint lies in (``<run>/checkpoints/<name>.ckpt``); its
    ``config.yaml`` names the roots (see :meth:`~geoguess_utils.training.run_files.RunFiles.data_roots`).
    Says on stderr which roots were taken from the run.

    Args:
        command: The sub-command, to prefix the line.
        roots: The roots given on the command line, or ``None``.
        ckpt: The checkpoint.

    Returns:
        The roots to read, in the order given or recorded.

    Raises:
        CheckpointError: When no roots are given and the checkpoint does not exist.
        ConfigError: When no roots are given and the run does not record usable ones
            (the message names its ``config.yaml``).
    """
    from geoguess_utils.errors import CheckpointError, ConfigError
    from geoguess_utils.training.run_files import run_files_of_checkpoint

    if roots:
        return list(roots)
    if not Path(ckpt).is_file():  # name the missing checkpoint, not its folder's missing config
        raise CheckpointError(f"checkpoint {ckpt} does not exist")
    run = run_files_of_checkpoint(ckpt)
    try:
        found = run.data_roots()
    except ConfigError as exc:
        raise ConfigError(f"{exc}; give the dataset roots with --data ROOT [ROOT ...]") from None
    print(
        f"geoguess {command}: the run's dataset roots (from {run.config_yaml}): {', '.join(map(str, found))}",
        file=sys.stderr,
    )
    return found


def predict_roots(ckpt: Path, roots: list[Path], **options: Any) -> pd.DataFrame:
    """The submission table (uuid, latitude, longitude in degrees) of :func:`predict_checkpoint`."""
    from geoguess_utils import inference

    return inference.submission(predict_checkpoint(ckpt, roots, **options))


def predict_checkpoint(
    ckpt: Path,
    roots: list[Path],
    batch_size: int = 32,
    num_workers: int = 0,
    device: str = "auto",
    decoding: str | None = None,
    cache_dir: Path | None = None,
    lenient: bool = False,
    progress: bool = False,
    progress_label: str | None = None,
) -> Predictions:
    """Predict every location under ``roots`` with the checkpoint ``ckpt``.

    Says on stderr what the checkpoint was trained on, and warns (one line) when a model
    trained on synthetic images is about to predict real photos. The other arguments are
    those of :func:`geoguess_utils.inference.predict` (``batch_size`` in locations).

    Returns:
        The predictions, one row per location in the order the dataset lists them, with
        the locations whose network outputs were not finite marked.
    """
    from geoguess_utils import inference
    from geoguess_utils.errors import ConfigError
    from geoguess_utils.tasks.classification import ClassificationTask
    from geoguess_utils.tasks.loading import load_task

    task = load_task(ckpt)
    report_training_data("predict", task.training_data, roots)
    if decoding is not None:
        if not isinstance(task, ClassificationTask):
            raise ConfigError("--decoding applies to classification checkpoints only")
        task.decoding = decoding
    return inference.predict(
        task,
        [str(r) for r in roots],
        batch_size=batch_size,
        device=device,
        num_workers=num_workers,
        cache_dir=cache_dir,
        lenient=lenient,
        progress=progress,
        progress_label=progress_label,
    )


def report_training_data(command: str, info: dict | None, roots: list[Path]) -> None:
    """Print what a checkpoint was trained on, and the synthetic-meets-real warning, on stderr.

    Args:
        command: The sub-command, to prefix the lines.
        info: The checkpoint's ``training_data`` record field (``None`` for older checkpoints).
        roots: The dataset roots being predicted.
    """
    from geoguess_utils.checkpoints.record import describe_training_data, synthetic_model_warning

    print(f"geoguess {command}: {describe_training_data(info)}", file=sys.stderr)
    warning = synthetic_model_warning(info, roots)
    if warning:
        print(f"geoguess {command}: {warning}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    """Predict and write the CSV atomically."""
    from geoguess_utils.data.protected_inputs import refuse_outputs_on_inputs
    from geoguess_utils.inference import submission
    from geoguess_utils.inference.non_finite import OutputCount
    from geoguess_utils.inference.predictions import fewer_views_note
    from geoguess_utils.io import atomic_write_csv

    if args.photo:
        return _run_photos(args)
    if args.out is None:
        from geoguess_utils.errors import ConfigError

        raise ConfigError("--out FILE is required (the CSV to write), unless --photo is given")
    roots = roots_or_run_roots("predict", args.data, args.ckpt)
    outputs_named = {"--out": args.out, "--cache-dir": args.cache_dir, "--region-geojson": args.region_geojson}
    refuse_outputs_on_inputs(outputs_named, roots, {"--ckpt": args.ckpt})
    regions = region_options.search_regions(args)  # None without --region; refuses an uncalibrated checkpoint
    terminal = sys.stderr.isatty()
    predictions = predict_checkpoint(
        args.ckpt,
        roots,
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        device=args.device,
        decoding=args.decoding,
        cache_dir=args.cache_dir,
        lenient=args.lenient,
        progress=terminal,  # Lightning's bar in a terminal; plain lines in logs and pipes
        progress_label=None if terminal else "geoguess predict",
    )
    table = region_options.add_regions(submission(predictions), predictions, regions, args)
    outputs = OutputCount.of(predictions)
    atomic_write_csv(table, args.out)
    outputs.warn("predict")
    to_stdout = os.path.abspath(args.out) in ("/dev/stdout", "/proc/self/fd/1", "/dev/fd/1")
    summary = f"wrote {len(table)} predictions to {args.out} ({outputs.summary()}{fewer_views_note(predictions)})"
    print(summary, file=sys.stderr if to_stdout else sys.stdout)  # keep a CSV sent to stdout clean
    return 0


def _run_photos(args: argparse.Namespace) -> int:
    """``--photo``: locate one spot from loose photos; print it, and write it to ``--out`` when given."""
    import pandas as pd

    from geoguess_utils.data.layout import IMAGE_SUFFIXES
    from geoguess_utils.data.protected_inputs import refuse_outputs_on_inputs
    from geoguess_utils.errors import ConfigError
    from geoguess_utils.inference.photos import PHOTOS_UUID, predict_photos
    from geoguess_utils.io import atomic_write_csv
    from geoguess_utils.tasks.loading import load_task

    if args.data:
        raise ConfigError("give either --photo (loose photos) or --data (dataset roots), not both")
    if args.out is not None and args.out.suffix.lower() in IMAGE_SUFFIXES:
        raise ConfigError(f"--out {args.out} names an image file; give the CSV to write, e.g. --out prediction.csv")
    parents = sorted({photo.resolve().parent for photo in args.photo})
    outputs = {"--out": args.out, "--region-geojson": args.region_geojson}
    refuse_outputs_on_inputs(outputs, (), {"--ckpt": args.ckpt, **_photo_inputs(args.photo)})
    regions = region_options.search_regions(args)  # None without --region; refuses an uncalibrated checkpoint
    task = load_task(args.ckpt)
    report_training_data("predict", task.training_data, parents)
    result = predict_photos(task, args.photo, device=args.device)
    lat, lon = (float(v) for v in result["latlon"][0])
    used = int(result["views"][0])
    print(f"geoguess predict: {lat:.5f}, {lon:.5f} (from {used} photo{'s' if used != 1 else ''} of unknown heading)")
    row = {"uuid": [PHOTOS_UUID], "latitude": [lat], "longitude": [lon]}
    if regions is not None:
        probabilities = result.get("probabilities")
        region = regions.region(
            args.region,
            probabilities=None if probabilities is None else probabilities[0],
            latlon=(lat, lon),
        )
        print(f"geoguess predict: search region of {region['coverage']:.0%}: {region['area_km2']:,.0f} km²")
        row.update(region_coverage=[region["coverage"]], region_km2=[region["area_km2"]])
        if args.region_geojson is not None:
            region_options.write_geojson(args.region_geojson, [region["geojson"]])
    if args.out is not None:
        atomic_write_csv(pd.DataFrame(row), args.out)
        print(f"wrote 1 prediction to {args.out}", file=sys.stderr)
    return 0


def _photo_inputs(photos: list[Path]) -> dict[str, Path]:
    """The photos as named inputs, so that ``--out`` can never be one of them."""
    return {f"--photo {photo}": photo for photo in photos}
