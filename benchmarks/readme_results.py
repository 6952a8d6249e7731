"""Write the README's results table from finished training runs, so it cannot drift from the code.

It trains nothing. It reads what each run logged when it tested its best checkpoint
(``metrics.csv``), the run's ``split.csv`` and ``config.yaml`` (for the dataset roots),
and computes the two baselines that ignore the photos on the same test split
(:func:`geoguess_utils.evaluation.baselines`): predicting the training split's mean
position, and the best constant point in hindsight. The table replaces whatever lies
between ``<!-- results:start -->`` and ``<!-- results:end -->`` in ``README.md``.

Make the runs first, then write the table::

    make demo                                          # runs/demo/classification
    (cd notebooks && jupyter nbconvert --to notebook --execute 04_training.ipynb --stdout > /dev/null)
    python benchmarks/readme_results.py --roots data/synthetic   # and runs/course/{classification,regression}
    python benchmarks/readme_results.py --check        # exit status 1 when README.md is out of date
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from geoguess_utils import evaluation
from geoguess_utils.course import runs
from geoguess_utils.data import loading, splits
from geoguess_utils.errors import DataError, GeoguessError
from geoguess_utils.io import atomic_write_text

REPO = Path(__file__).resolve().parents[1]
START = "<!-- results:start -->"
END = "<!-- results:end -->"

DEFAULT_RUNS: tuple[tuple[str, str], ...] = (
    ("QUICK classifier (notebook 04 defaults)", "runs/course/classification"),
    ("QUICK regressor (notebook 04 defaults)", "runs/course/regression"),
    ("`make demo` classifier (`configs/quick_cpu.yaml`)", "runs/demo/classification"),
)
"""(label, run folder relative to the project) of the rows, in order."""


@dataclass(frozen=True)
class RunResult:
    """What one finished run scored on its test split."""

    label: str
    run_dir: Path
    mean_km: float
    median_km: float
    acc_25_km: float
    epochs: int
    test_uuids: tuple[str, ...]
    roots: tuple[Path, ...]


def run_roots(run_dir: Path, project: Path) -> tuple[Path, ...]:
    """The dataset roots a run trained on, from its ``config.yaml`` (relative ones from ``project``)."""
    config = run_dir / "config.yaml"
    if not config.is_file():
        raise DataError(
            f"{config} is missing (geoguess fit writes it; a run trained from Python does not): "
            "name the run's dataset roots with --roots"
        )
    try:
        roots = yaml.safe_load(config.read_text(encoding="utf-8"))["data"]["roots"]
    except (yaml.YAMLError, KeyError, TypeError) as exc:
        raise DataError(f"{config}: no data.roots in it ({exc})") from exc
    return tuple(Path(r) if Path(r).is_absolute() else project / r for r in roots)


def read_run(label: str, run_dir: Path, project: Path, roots: Sequence[Path] | None = None) -> RunResult:
    """Read one run's logged test results, epochs, test split and roots.

    Args:
        label: The row's name in the table.
        run_dir: The run folder.
        project: Folder that relative roots in the run's ``config.yaml`` are relative to.
        roots: The run's dataset roots; read from its ``config.yaml`` when ``None``.

    Raises:
        DataError: When the run is unfinished (no test results, no split) or its files are unreadable.
    """
    files = runs.RunFiles(run_dir)
    tested = runs.logged_test_results(files.metrics_csv)
    missing = [name for name in ("mean_km", "median_km", "acc_25_km") if name not in tested]
    if missing:
        raise DataError(f"{files.metrics_csv} has no test/{missing[0]}: the run did not test its best checkpoint")
    split = splits.load_split(files.split_csv)
    return RunResult(
        label=label,
        run_dir=run_dir,
        mean_km=tested["mean_km"],
        median_km=tested["median_km"],
        acc_25_km=tested["acc_25_km"],
        epochs=len(runs.read_metrics(files.metrics_csv)),
        test_uuids=tuple(sorted(split.loc[split["split"] == "test", "uuid"])),
        roots=tuple(Path(r) for r in roots) if roots else run_roots(run_dir, project),
    )


def baseline_rows(result: RunResult) -> dict[str, float]:
    """The baselines (km) on a run's test split, the mean taken over its training split."""
    locations = loading.load_locations(list(result.roots))
    split = splits.load_split(result.run_dir / "split.csv")
    table = locations.merge(split, on="uuid")
    train = table.loc[table["split"] == "train", ["latitude", "longitude"]].to_numpy(dtype=np.float64)
    test = table.loc[table["split"] == "test", ["latitude", "longitude"]].to_numpy(dtype=np.float64)
    return evaluation.baselines(train, test)


def results_table(results: Sequence[RunResult]) -> str:
    """The Markdown table: the two baselines first, then one row per run.

    Raises:
        DataError: When there is no run, or the runs were tested on different splits
            (their numbers would not be comparable).
    """
    if not results:
        raise DataError("no finished run to report")
    first = results[0]
    for other in results[1:]:
        if other.test_uuids != first.test_uuids:
            raise DataError(
                f"{other.run_dir} and {first.run_dir} were tested on different splits; "
                "train them with the same data and seed"
            )
    base = baseline_rows(first)
    lines = [
        f"On the test split of {len(first.test_uuids)} locations ({', '.join(r.name for r in first.roots)}), "
        f"written by `python benchmarks/readme_results.py` from the runs' own logs:",
        "",
        "| model | epochs | mean km | median km | within 25 km |",
        "|---|---|---|---|---|",
        f"| baseline: always the training split's mean position | – | {base['baseline_mean_km']:.1f} | – | – |",
        f"| baseline: the best constant point, in hindsight | – | {base['baseline_best_constant_km']:.1f} | – | – |",
    ]
    for result in results:
        lines.append(
            f"| {result.label} | {result.epochs} | {result.mean_km:.1f} | {result.median_km:.1f} "
            f"| {100 * result.acc_25_km:.1f} % |"
        )
    return "\n".join(lines)


def replace_between_markers(text: str, block: str, where: str = "README.md") -> str:
    """``text`` with everything between :data:`START` and :data:`END` replaced by ``block``.

    Raises:
        DataError: When the markers are missing, repeated or in the wrong order.
    """
    if text.count(START) != 1 or text.count(END) != 1 or text.index(START) > text.index(END):
        raise DataError(f"{where} needs exactly one {START} followed by one {END}")
    head, rest = text.split(START)
    _, tail = rest.split(END)
    return f"{head}{START}\n{block}\n{END}{tail}"


def main(argv: Sequence[str] | None = None) -> int:
    """Command line; returns the exit status (0 written or up to date, 1 out of date with --check, 2 refused)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readme", type=Path, default=REPO / "README.md", help="the file holding the markers")
    parser.add_argument("--project", type=Path, default=REPO, help="folder the run folders are relative to")
    parser.add_argument(
        "--run",
        nargs=2,
        action="append",
        metavar=("LABEL", "RUN_DIR"),
        help="a row (repeatable); default: the QUICK runs of notebook 04 and the make demo run",
    )
    parser.add_argument(
        "--roots", type=Path, nargs="+", help="dataset roots of every run (default: each run's config.yaml)"
    )
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 when the table is out of date")
    args = parser.parse_args(argv)
    chosen = args.run or [(label, args.project / folder) for label, folder in DEFAULT_RUNS]
    try:
        results = [read_run(label, Path(folder), args.project, args.roots) for label, folder in chosen]
        text = args.readme.read_text(encoding="utf-8")
        updated = replace_between_markers(text, results_table(results), str(args.readme))
    except (GeoguessError, OSError, pd.errors.ParserError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.check:
        if updated != text:
            print(f"{args.readme}: the results table is out of date; run python benchmarks/readme_results.py")
            return 1
        return 0
    if updated != text:
        atomic_write_text(args.readme, updated)
        print(f"wrote the results table of {len(results)} runs into {args.readme}")
    else:
        print(f"{args.readme}: the results table is already up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
