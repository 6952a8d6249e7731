"""Tell users of an older config where its keys went, before LightningCLI parses it."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from geoguess_utils.data.settings import MOVED_KEYS
from geoguess_utils.errors import ConfigError

RENAMED_METRICS: dict[str, str] = {"haversine_km": "mean_km"}
"""Logged metric names of earlier versions -> their name now (``val/haversine_km`` -> ``val/mean_km``)."""


def _config_files(argv: Sequence[str]) -> list[Path]:
    files = []
    for i, arg in enumerate(argv):
        if arg == "--config" and i + 1 < len(argv):
            files.append(Path(argv[i + 1]))
        elif arg.startswith("--config="):
            files.append(Path(arg.split("=", 1)[1]))
    return files


def _metric_problem(value: Any, where: str) -> str | None:
    if isinstance(value, str) and "/" in value:
        stage, name = value.rsplit("/", 1)
        if name in RENAMED_METRICS:
            return f"{where}: the metric {value} is now called {stage}/{RENAMED_METRICS[name]}"
    return None


REMOVED_MODEL_OPTIONS: dict[str, str] = {
    "head_only": "it became freeze_backbone_epochs: all (the backbone never trains)",
    "heads": "several heads on one backbone measured within noise of one head and were removed",
    "retrieval_cells": "retrieval is a task of its own now: --model.class_path "
    "geoguess_utils.tasks.experimental.retrieval.RetrievalTask (it takes retrieval_cells)",
}
"""Task options that left the core tasks -> what to do instead."""

VARIANT_OPTIONS = frozenset({"retrieval_cells"})
"""Of those, the ones the retrieval and hybrid tasks still take."""


@functools.lru_cache(maxsize=1)
def moved_class_paths() -> dict[str, str]:
    """Task class paths of earlier versions -> the class path now (e.g. ``geoguess_utils.tasks.KNNTask``)."""
    from geoguess_utils.tasks.registry import TASKS, class_path

    moved = {}
    for name, cls in TASKS.items():
        now = class_path(name)
        for old in (f"geoguess_utils.tasks.{cls.__name__}", f"geoguess_utils.tasks.{name}.{cls.__name__}"):
            if old != now:
                moved[old] = now
    return moved


def _model_problems(model: Any, where: str) -> list[str]:
    """Moved task classes and removed classifier options in a config's ``model`` section."""
    if not isinstance(model, dict):
        return [f"{where}: the task class {model} moved to {moved_class_paths()[model]}"] if _moved(model) else []
    problems = []
    path = model.get("class_path")
    if _moved(path):
        problems.append(f"{where}.class_path: {path} moved to {moved_class_paths()[path]}")
    arguments = model.get("init_args", model)
    if isinstance(arguments, dict):
        variant = "Retrieval" in str(path) or "Hybrid" in str(path)
        problems += [
            f"{where}: {key}: {REMOVED_MODEL_OPTIONS[key]}"
            for key in arguments
            if key in REMOVED_MODEL_OPTIONS and not (variant and key in VARIANT_OPTIONS)
        ]
    return problems


def _moved(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("geoguess_utils.tasks.") and value in moved_class_paths()


def moved_key_problems(argv: Sequence[str]) -> list[str]:
    """Keys and metric names of an older layout found in ``geoguess fit`` arguments and their configs.

    Args:
        argv: The arguments after ``fit`` (``--config FILE`` and ``--section.key value`` overrides).

    Returns:
        One message per problem, naming the key and where it moved; empty when all is current.
        Config files that do not exist or do not parse are left to LightningCLI to report.
    """
    import yaml

    problems = []
    for file in _config_files(argv):
        try:
            config = yaml.safe_load(file.read_text())
        except (OSError, yaml.YAMLError):
            continue
        if not isinstance(config, dict):
            continue
        problems += _model_problems(config.get("model"), f"{file}: model")
        data = config.get("data")
        if isinstance(data, dict):
            for key in data:
                if key in MOVED_KEYS:
                    problems.append(f"{file}: data.{key} moved to data.{MOVED_KEYS[key]}")
        for section, values in config.items():
            if isinstance(values, dict):
                for key, value in values.items():
                    problem = _metric_problem(value, f"{file}: {section}.{key}")
                    if problem:
                        problems.append(problem)
    for i, arg in enumerate(argv):
        key = arg[2:].split("=", 1)[0] if arg.startswith("--") else ""
        if key.startswith("data.") and key[5:] in MOVED_KEYS:
            problems.append(f"--{key} moved to --data.{MOVED_KEYS[key[5:]]}")
        value = arg.split("=", 1)[1] if "=" in arg else (argv[i + 1] if key and i + 1 < len(argv) else None)
        if key in ("model", "model.class_path") and _moved(value):
            problems.append(f"--{key}: the task class {value} moved to {moved_class_paths()[value]}")
        option = key.rsplit(".", 1)[-1]
        exempt = option in VARIANT_OPTIONS and _names_a_variant(argv)
        if key.startswith("model.") and option in REMOVED_MODEL_OPTIONS and not exempt:
            problems.append(f"--{key}: {REMOVED_MODEL_OPTIONS[option]}")
        if key:
            problem = _metric_problem(value, f"--{key}")
            if problem:
                problems.append(problem)
    return problems


def _names_a_variant(argv: Sequence[str]) -> bool:
    """Whether the arguments choose a task that still takes the retrieval options."""
    return any("Retrieval" in arg or "Hybrid" in arg for arg in argv)


def check_moved_keys(argv: Sequence[str]) -> None:
    """Raise when ``argv`` or its config files use keys of an older layout.

    Raises:
        ConfigError: Listing each moved key with its new place.
    """
    problems = moved_key_problems(argv)
    if problems:
        raise ConfigError("the config uses settings that have moved:\n  " + "\n  ".join(problems))
