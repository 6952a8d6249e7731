"""The enriched locations table (projected, scaled, classed), cached on disk."""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from geoguess_utils.cells.context import GeoContext
from geoguess_utils.errors import DataError
from geoguess_utils.io import atomic_write_bytes, atomic_write_text

ENRICH_FORMAT = 1
ENRICHED_COLUMNS: tuple[str, ...] = (
    "x_m",
    "y_m",
    "x_scaled",
    "y_scaled",
    "class_index",
    "centroid_lat",
    "centroid_lon",
)


# ----------------------------------------------------------------------------- enriched table


def enriched_cache_key(locations: pd.DataFrame, split: pd.DataFrame | None, context: GeoContext) -> str:
    """Hex digest of what :func:`enrich_locations` computes from.

    The digest covers every uuid with its coordinates (as read from ``data.csv``), the
    split, the context's fingerprint and the table format, so a change to any of them
    gives a new key.
    """
    digest = hashlib.sha256(f"enriched-format={ENRICH_FORMAT};context={context.fingerprint()};".encode())
    coords = locations[["uuid", "latitude", "longitude"]]
    digest.update(coords.to_csv(index=False, float_format="%.17g").encode())
    if split is not None:
        digest.update(split[["uuid", "split"]].sort_values("uuid").to_csv(index=False).encode())
    return digest.hexdigest()[:20]


def enrich_locations(
    locations: pd.DataFrame,
    context: GeoContext,
    split: pd.DataFrame | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> pd.DataFrame:
    """Add projected, scaled, class and centroid columns (the "rich static CSV").

    Rows with finite coordinates are enriched with ``context``; rows without (a
    predict-only set) get NaN and class index -1.

    Args:
        locations: Locations table (:data:`geoguess_utils.data.layout.LOCATION_COLUMNS`).
        context: Fitted on training rows.
        split: Optional (uuid, split) frame; adds a ``split`` column.
        cache_dir: When given, the enriched columns are stored there as
            ``enriched-<key>.csv`` (key from :func:`enriched_cache_key`) and read back
            on later calls with the same inputs. A sidecar ``enriched-<key>.json``
            holds the file's SHA-256: a truncated or edited table is recomputed, never used.

    Returns:
        A copy of ``locations`` (same row order) with :data:`ENRICHED_COLUMNS` and,
        when ``split`` is given, ``split``.
    """
    table = locations.reset_index(drop=True)
    if split is not None:
        table = table.merge(split[["uuid", "split"]], on="uuid", how="left", validate="one_to_one")
        if table["split"].isna().any():
            missing = table.loc[table["split"].isna(), "uuid"].iloc[0]
            raise DataError(f"uuid {missing} has no split assignment")
    cache_file = None
    if cache_dir is not None:
        cache_file = Path(cache_dir) / f"enriched-{enriched_cache_key(locations, split, context)}.csv"
        if cache_file.is_file():
            cached = _read_enriched(cache_file)
            if cached is not None and len(cached) == len(table) and (cached["uuid"].to_numpy() == table["uuid"]).all():
                for column in ENRICHED_COLUMNS:
                    table[column] = cached[column].to_numpy()
                return table
    labelled = np.isfinite(table["latitude"].to_numpy(float)) & np.isfinite(table["longitude"].to_numpy(float))
    for column in ENRICHED_COLUMNS:
        table[column] = -1 if column == "class_index" else np.nan
    table["class_index"] = table["class_index"].astype(np.int64)
    if labelled.any():
        enriched = context.enrich(table.loc[labelled, ["latitude", "longitude"]])
        for column in ENRICHED_COLUMNS:
            table.loc[labelled, column] = enriched[column].to_numpy()
    if cache_file is not None:
        keep = ["uuid", *(["split"] if "split" in table else []), "latitude", "longitude", *ENRICHED_COLUMNS]
        _write_enriched(table[keep], cache_file)
    return table


def _enriched_sidecar(path: Path) -> Path:
    return path.with_suffix(".json")


def _write_enriched(table: pd.DataFrame, path: Path) -> None:
    """Write the table, then the sidecar vouching for its exact bytes (both atomically)."""
    payload = table.to_csv(index=False, float_format="%.17g").encode()
    atomic_write_bytes(path, payload)
    sidecar = {"format": ENRICH_FORMAT, "rows": len(table), "sha256": hashlib.sha256(payload).hexdigest()}
    atomic_write_text(_enriched_sidecar(path), json.dumps(sidecar))


def _read_enriched(path: Path) -> pd.DataFrame | None:
    """The cached table, or ``None`` when it is missing, damaged or not the one its sidecar describes."""
    try:
        sidecar = json.loads(_enriched_sidecar(path).read_text())
        payload = path.read_bytes()
    except (OSError, ValueError):
        return None
    if not isinstance(sidecar, dict) or sidecar.get("sha256") != hashlib.sha256(payload).hexdigest():
        return None  # truncated, edited or half-replaced: recompute
    try:
        frame = pd.read_csv(io.BytesIO(payload), dtype={"uuid": str, "split": str}, float_precision="round_trip")
    except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return None  # unreadable cache: recompute
    if not {"uuid", *ENRICHED_COLUMNS} <= set(frame.columns):
        return None
    return frame


# ----------------------------------------------------------------------------- datamodule


def default_cache_dir(roots: Sequence[str | os.PathLike[str]]) -> Path:
    """Per-dataset cache folder under ``$XDG_CACHE_HOME/geoguess`` (default ``~/.cache/geoguess``)."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "geoguess"
    names = "\n".join(sorted(str(Path(r).resolve()) for r in roots))
    return base / hashlib.sha256(names.encode()).hexdigest()[:12]
