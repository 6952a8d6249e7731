"""Seeded, leak-free train/val/test splits, saved next to a run."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from geoguess_utils.errors import ConfigError, DataError
from geoguess_utils.io import atomic_write_csv

SPLITS: tuple[str, ...] = ("train", "val", "test")
SPLIT_FILE = "split.csv"


# ----------------------------------------------------------------------------- splits


def check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    """The (train, val, test) shares as floats, refused unless three non-negative values summing to 1."""
    if len(fractions) != 3:
        raise ConfigError(f"split fractions need three values (train, val, test), got {list(fractions)}")
    values = tuple(float(f) for f in fractions)
    if any(not np.isfinite(f) or f < 0 for f in values) or abs(sum(values) - 1.0) > 1e-6 or values[0] <= 0:
        raise ConfigError(
            f"split fractions must be non-negative, sum to 1 and give training rows; got {list(fractions)}"
        )
    return values  # type: ignore[return-value]


def make_split(uuids: Sequence[str], fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0) -> pd.DataFrame:
    """Assign each location to train, val or test, reproducibly.

    The same set of uuids, fractions and seed always gives the same split, whatever
    the order of ``uuids``.

    Args:
        uuids: Location ids, unique.
        fractions: Shares of train, val and test (e.g. the original's 0.9, 0.05, 0.05).
        seed: Random seed.

    Returns:
        Frame with columns ``uuid`` and ``split`` (``"train"``/``"val"``/``"test"``),
        sorted by uuid.

    Raises:
        ConfigError: When the fractions are invalid.
        DataError: When uuids repeat or there are none.
    """
    train_f, val_f, _ = check_fractions(fractions)
    ordered = sorted(str(u) for u in uuids)
    if not ordered:
        raise DataError("cannot split an empty dataset")
    if len(set(ordered)) != len(ordered):
        raise DataError("cannot split: some uuids repeat")
    n = len(ordered)
    n_val = int(np.floor(val_f * n + 0.5))
    n_train = max(1, int(np.floor(train_f * n + 0.5)))
    n_val = min(n_val, n - n_train)
    labels = np.array(["test"] * n, dtype=object)
    order = np.random.default_rng(seed).permutation(n)
    labels[order[:n_train]] = "train"
    labels[order[n_train : n_train + n_val]] = "val"
    return pd.DataFrame({"uuid": ordered, "split": labels.astype(str)})


def save_split(split: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write a split (uuid, split) as CSV, atomically."""
    return atomic_write_csv(split[["uuid", "split"]], path)


def load_split(path: str | os.PathLike[str], uuids: Sequence[str] | None = None) -> pd.DataFrame:
    """Read a split saved by :func:`save_split` and check it matches the dataset.

    Args:
        path: The split CSV (columns ``uuid``, ``split``).
        uuids: The dataset's uuids; when given, the split must list exactly these.

    Returns:
        Frame with columns ``uuid`` and ``split``, sorted by uuid.

    Raises:
        DataError: When the file is unreadable, has unknown split names or repeated
            uuids, or does not match ``uuids`` (both directions are listed).
    """
    split_path = Path(path)
    try:
        frame = pd.read_csv(split_path, dtype=str, keep_default_na=False)
    except FileNotFoundError as exc:
        raise DataError(f"split file {split_path} does not exist") from exc
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{split_path} is not a readable CSV file: {exc}") from exc
    if not {"uuid", "split"} <= set(frame.columns):
        raise DataError(f"{split_path} needs the columns uuid and split; it has {', '.join(frame.columns)}")
    bad = frame[~frame["split"].isin(SPLITS)]
    if len(bad):
        row = bad.index[0]
        raise DataError(
            f"{split_path} line {row + 2}: split {bad['split'].iloc[0]!r} for uuid {bad['uuid'].iloc[0]} "
            f"is not one of {', '.join(SPLITS)}"
        )
    repeated = frame["uuid"][frame["uuid"].duplicated()]
    if len(repeated):
        raise DataError(f"{split_path}: uuid {repeated.iloc[0]} is listed more than once")
    if uuids is not None:
        wanted = set(uuids)
        listed = set(frame["uuid"])
        missing, extra = sorted(wanted - listed), sorted(listed - wanted)
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"{len(missing)} dataset uuids are not in it (e.g. {', '.join(missing[:5])})")
            if extra:
                parts.append(f"{len(extra)} of its uuids are not in the dataset (e.g. {', '.join(extra[:5])})")
            raise DataError(f"split file {split_path} does not match the dataset: {'; '.join(parts)}")
    if not (frame["split"] == "train").any():
        raise DataError(f"split file {split_path} has no training rows")
    return frame[["uuid", "split"]].sort_values("uuid", ignore_index=True)
