"""Tell users of an older config where its keys went, before LightningCLI parses it."""

from __future__ import annotations

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
        if key:
            problem = _metric_problem(value, f"--{key}")
            if problem:
                problems.append(problem)
    return problems


def check_moved_keys(argv: Sequence[str]) -> None:
    """Raise when ``argv`` or its config files use keys of an older layout.

    Raises:
        ConfigError: Listing each moved key with its new place.
    """
    problems = moved_key_problems(argv)
    if problems:
        raise ConfigError("the config uses settings that have moved:\n  " + "\n  ".join(problems))
