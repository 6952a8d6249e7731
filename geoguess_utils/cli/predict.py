"""``geoguess predict``: locate every folder of a dataset root with a trained checkpoint.

Needs only the checkpoint (it carries the projection, the classes, the image size and
the backbone) and the images; ``data.csv`` is optional. Writes ``uuid,latitude,longitude``
with one row per folder, the competition's submission format.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from geoguess_utils.evaluation import Predictions


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the command's options."""
    parser.add_argument("--ckpt", required=True, type=Path, help="checkpoint written by geoguess fit")
    parser.add_argument("--data", required=True, nargs="+", type=Path, help="dataset root(s) holding data/ or images/")
    parser.add_argument("--out", required=True, type=Path, help="CSV to write (uuid,latitude,longitude)")
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


def _decoding_choices() -> list[str]:
    from geoguess_utils.tasks.decoding import DECODINGS

    return list(DECODINGS)


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
) -> Predictions:
    """Predict every location under ``roots`` with the checkpoint ``ckpt``.

    Says on stderr what the checkpoint was trained on, and warns (one line) when a model
    trained on synthetic images is about to predict real photos.

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
    from geoguess_utils.io import atomic_write_csv

    refuse_outputs_on_inputs({"--out": args.out, "--cache-dir": args.cache_dir}, args.data, {"--ckpt": args.ckpt})
    predictions = predict_checkpoint(
        args.ckpt,
        list(args.data),
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        device=args.device,
        decoding=args.decoding,
        cache_dir=args.cache_dir,
        lenient=args.lenient,
        progress=sys.stderr.isatty(),  # Lightning's bar in a terminal; nothing in logs and pipes
    )
    table = submission(predictions)
    outputs = OutputCount.of(predictions)
    atomic_write_csv(table, args.out)
    outputs.warn("predict")
    to_stdout = os.path.abspath(args.out) in ("/dev/stdout", "/proc/self/fd/1", "/dev/fd/1")
    summary = f"wrote {len(table)} predictions to {args.out} ({outputs.summary()})"
    print(summary, file=sys.stderr if to_stdout else sys.stdout)  # keep a CSV sent to stdout clean
    return 0
