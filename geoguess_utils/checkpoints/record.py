"""The geoguess record inside a checkpoint: its key, fields, checks and the training data it names."""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from geoguess_utils.cells.context import GeoContext
from geoguess_utils.data.layout import IMAGE_SIZE_RANGE
from geoguess_utils.errors import CheckpointError, GeoguessError

if TYPE_CHECKING:
    pass

RECORD_KEY = "geoguess"
"""Key of the geoguess record inside a checkpoint dict."""

RECORD_FORMAT = 1
_RECORD_FIELDS = ("format", "task", "backbone", "image_size", "normalization", "context", "context_fingerprint")

TRAINING_DATA_FIELD = "training_data"
"""Optional record field: what the model was trained on (absent in older checkpoints)."""

DATA_KINDS = ("synthetic", "real", "mixed")
"""Values of ``training_data["kind"]``."""

CALIBRATION_FIELD = "calibration"
"""Optional record field: temperature and conformal scores fitted on the validation split
(:class:`geoguess_utils.tasks.calibration.Calibration`; absent or ``None`` when never calibrated)."""

CALIBRATION_FORMAT = 1
CALIBRATION_KINDS = ("cells", "disc")
"""Values of ``calibration["kind"]``: sets of cells (classifiers) or a disc around the point."""


def read_record(
    checkpoint: dict[str, Any], source: str = "the checkpoint", *, check_fields: bool = True
) -> dict[str, Any]:
    """Return the geoguess record of a checkpoint dict, checked for completeness.

    Args:
        checkpoint: The checkpoint dict.
        source: How messages name the checkpoint (usually its path).
        check_fields: Also check each field's type and range (``image_size`` an integer
            from 8 to 1024 pixels, names non-empty strings, ...). Turn off only to
            compare the task and backbone first, then read the record again with it on.

    Raises:
        CheckpointError: The record is missing, from an unknown format, incomplete, or
            (with ``check_fields``) holds a value of the wrong type or size, named.
    """
    record = checkpoint.get(RECORD_KEY)
    if not isinstance(record, dict):
        raise CheckpointError(f"{source} has no {RECORD_KEY!r} entry: it was not written by a geoguess task")
    if record.get("format") != RECORD_FORMAT:
        raise CheckpointError(f"{source} has record format {record.get('format')!r}; expected {RECORD_FORMAT}")
    missing = [name for name in _RECORD_FIELDS if name not in record]
    if missing:
        raise CheckpointError(f"{source} record lacks {', '.join(missing)}")
    if check_fields:
        _check_record_fields(record, source)
    return record


def _check_record_fields(record: dict[str, Any], source: str) -> None:
    """Refuse record values of the wrong type or an impossible size, naming the field."""

    def bad(field: str, wanted: str) -> CheckpointError:
        return CheckpointError(f"{source}: record field {field!r} is {record.get(field)!r}; expected {wanted}")

    for name in ("task", "backbone", "context_fingerprint"):
        if not isinstance(record[name], str) or not record[name]:
            raise bad(name, "a non-empty string")
    if not isinstance(record["context"], dict):
        raise bad("context", "a dict (the stored GeoContext)")
    size, (low, high) = record["image_size"], IMAGE_SIZE_RANGE
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or not low <= size <= high):
        raise bad("image_size", f"an integer number of pixels from {low} to {high}")
    norm = record["normalization"]
    if not isinstance(norm, dict) or not all(_is_numbers(norm.get(k), 3) for k in ("mean", "std")):
        raise bad("normalization", "a dict with 'mean' and 'std', three finite numbers each")
    headings = record.get("headings")
    if headings is not None and not _is_numbers(headings, 4):
        raise bad("headings", "four numbers (degrees)")
    if record.get(TRAINING_DATA_FIELD) is not None and not _is_training_data(record[TRAINING_DATA_FIELD]):
        raise bad(
            TRAINING_DATA_FIELD,
            f"a dict with 'kind' (one of {', '.join(DATA_KINDS)}), 'roots' (folder names) and 'locations' "
            "and 'train_locations' (counts >= 0)",
        )
    if record.get(CALIBRATION_FIELD) is not None:
        problem = calibration_problem(record[CALIBRATION_FIELD])
        if problem is not None:
            raise CheckpointError(f"{source}: record field {CALIBRATION_FIELD!r} {problem}")


def calibration_problem(value: object) -> str | None:
    """What is wrong with a record's ``calibration`` field, or ``None`` when it is well formed.

    Well formed: a dict of format :data:`CALIBRATION_FORMAT` whose ``kind`` is one of
    :data:`CALIBRATION_KINDS`, whose ``scores`` are one or more finite non-negative numbers in
    ascending order (cell masses at most 1 for ``"cells"``), whose ``temperature`` is a
    positive finite number for ``"cells"`` and ``None`` for ``"disc"``, and whose optional
    ``stats`` is a dict.
    """
    if not isinstance(value, dict):
        return f"is {type(value).__name__}; expected a dict"
    if value.get("format") != CALIBRATION_FORMAT:
        return f"has format {value.get('format')!r}; expected {CALIBRATION_FORMAT}"
    kind = value.get("kind")
    if kind not in CALIBRATION_KINDS:
        return f"has kind {kind!r}; expected one of {', '.join(CALIBRATION_KINDS)}"
    scores = value.get("scores")
    if not isinstance(scores, list) or not scores or not _is_numbers(scores, len(scores)):
        return "needs 'scores': one or more finite numbers"
    if any(b < a for a, b in itertools.pairwise(scores)) or scores[0] < 0:
        return "needs 'scores' in ascending order, none negative"
    if kind == "cells" and scores[-1] > 1.0 + 1e-9:
        return "holds cell-mass scores above 1"
    temperature = value.get("temperature")
    if kind == "cells" and not (_is_numbers([temperature], 1) and temperature > 0):
        return f"has temperature {temperature!r}; expected a positive finite number"
    if kind == "disc" and temperature is not None:
        return f"has temperature {temperature!r}; a disc calibration has none"
    if value.get("stats") is not None and not isinstance(value["stats"], dict):
        return "has 'stats' that is not a dict"
    return None


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_training_data(info: object) -> bool:
    if not isinstance(info, dict) or info.get("kind") not in DATA_KINDS:
        return False
    roots = info.get("roots")
    if not isinstance(roots, list) or not all(isinstance(r, str) for r in roots):
        return False
    return _is_count(info.get("locations")) and _is_count(info.get("train_locations"))


def training_data_record(
    roots: Sequence[str | os.PathLike[str]], locations: int, train_locations: int
) -> dict[str, Any]:
    """The record's ``training_data`` field for a model trained on ``roots``.

    Args:
        roots: The dataset roots trained on (their ``data.csv`` says whether they are synthetic).
        locations: Usable locations in them (all splits).
        train_locations: Locations of the training split.

    Returns:
        ``{"kind": "synthetic" | "real" | "mixed", "roots": [folder names], "locations": int,
        "train_locations": int}`` (plain types, ``weights_only``-safe).
    """
    from geoguess_utils.data.provenance import data_kind

    return {
        "kind": data_kind(roots),
        "roots": [Path(root).name or str(root) for root in roots],
        "locations": int(locations),
        "train_locations": int(train_locations),
    }


def describe_training_data(info: dict[str, Any] | None) -> str:
    """One line saying what a checkpoint was trained on, e.g. for ``geoguess predict``.

    Args:
        info: A record's ``training_data`` field, or ``None`` for an older checkpoint.
    """
    if info is None:
        return "trained on: not recorded (a checkpoint from before geoguess recorded its training data)"
    roots = ", ".join(info["roots"]) or "no named root"
    return (
        f"trained on: {info['kind']} data, {info['train_locations']:,} training locations of "
        f"{info['locations']:,} in {roots}"
    )


def synthetic_model_warning(info: dict[str, Any] | None, roots: Sequence[str | os.PathLike[str]]) -> str | None:
    """A one-line warning when a model trained on synthetic data meets real photos, else ``None``.

    Args:
        info: The checkpoint's ``training_data`` field (``None``: unknown, no warning).
        roots: The dataset roots about to be predicted.
    """
    from geoguess_utils.data.provenance import data_kind

    if info is None or info["kind"] != "synthetic":
        return None
    try:
        kind = data_kind(roots)
    except GeoguessError:  # an unreadable data.csv is reported by the prediction itself
        return None
    if kind == "synthetic":
        return None
    return (
        "warning: this model was trained on synthetic images only and is now predicting real photos; expect errors "
        "near or above the predict-the-mean baseline (train on real data for a meaningful result)"
    )


def _is_numbers(values: object, count: int) -> bool:
    if not isinstance(values, (list, tuple)) or len(values) != count:
        return False
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values)


def describe_context_difference(saved: GeoContext, requested: GeoContext) -> str:
    """Say in words how two contexts (cell schemes, cells, class points, projections, scalers) differ."""
    parts = []
    if saved.num_classes != requested.num_classes:
        parts.append(f"{saved.num_classes} classes in the checkpoint vs {requested.num_classes} requested")
    if saved.scheme_name != requested.scheme_name:
        parts.append(f"cell scheme {saved.scheme_name!r} vs {requested.scheme_name!r}")
    else:
        params_a, params_b = saved.scheme.params(), requested.scheme.params()
        for name in sorted(set(params_a) | set(params_b)):
            if params_a.get(name) != params_b.get(name):
                parts.append(f"{saved.scheme_name} {name} {params_a.get(name)!r} vs {params_b.get(name)!r}")
    for name in ("crs", "variant", "centroid"):
        a, b = getattr(saved, name), getattr(requested, name)
        if a != b:
            parts.append(f"{name} {a!r} vs {b!r}")
    if saved.num_classes == requested.num_classes:
        cells_a, cells_b = saved.to_dict()["scheme"], requested.to_dict()["scheme"]
        if (cells_a["cell_ids"], cells_a["cells"]) != (cells_b["cell_ids"], cells_b["cells"]):
            parts.append("the cells of the classes differ")
        elif saved.to_dict()["class_table"] != requested.to_dict()["class_table"]:
            parts.append("the class points (centroids fitted on a different training split) differ")
    if saved.scaler.to_dict() != requested.scaler.to_dict():
        parts.append(f"min-max scaler {saved.scaler.to_dict()} vs {requested.scaler.to_dict()}")
    detail = "; ".join(parts) or "their fingerprints differ"
    return (
        f"class table / GeoContext mismatch (checkpoint {saved.fingerprint()} vs requested "
        f"{requested.fingerprint()}): {detail}"
    )
