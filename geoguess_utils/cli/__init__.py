"""The ``geoguess`` command line.

Each sub-command lives in the module that owns its work; this file only lists them.
A command module exposes ``add_arguments(parser)`` and ``run(args) -> int``. Modules
are imported only when their command runs, so ``geoguess --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from geoguess_utils.errors import GeoguessError

# name -> (module path, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "grid": ("geoguess_utils.cli.grid", "build the square grid over Croatia and draw it"),
    "make-sample": ("geoguess_utils.cli.make_sample", "write the offline SYNTHETIC dataset (procedural Croatia)"),
    "download-streetview": ("geoguess_utils.cli.download_streetview", "fetch real Street View data, YOUR API key"),
    "download-mapillary": ("geoguess_utils.cli.download_mapillary", "build a dataset of CC BY-SA Mapillary photos"),
    "validate": ("geoguess_utils.cli.validate", "check LUMEN dataset roots and list every problem"),
    "predict": ("geoguess_utils.cli.predict", "write uuid,latitude,longitude for every folder, from a checkpoint"),
    "evaluate": ("geoguess_utils.cli.evaluate", "score a predictions CSV against the truth (one JSON line)"),
    "map": ("geoguess_utils.cli.map", "draw a checkpoint's predictions on an interactive HTML map"),
}

# Commands that parse their own arguments (LightningCLI); everything after the name is theirs.
PASSTHROUGH: dict[str, tuple[str, str]] = {
    "fit": ("geoguess_utils.training.lightning_cli", "train a model from a YAML config (LightningCLI), then test it"),
}


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level argument parser with every registered sub-command."""
    parser = argparse.ArgumentParser(prog="geoguess", description="GeoGuessr for Croatia.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in {**COMMANDS, **PASSTHROUGH}.items():
        sub.add_parser(name, help=help_text, add_help=name not in PASSTHROUGH)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``geoguess`` command and return its exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in PASSTHROUGH:
        module = importlib.import_module(PASSTHROUGH[argv[0]][0])
        try:
            return int(module.run(argv[1:]) or 0)
        except GeoguessError as exc:
            print(f"geoguess {argv[0]}: error: {exc}", file=sys.stderr)
            return 2
    if not argv or argv[0] not in COMMANDS:
        build_parser().parse_args(argv or ["--help"])
        return 2
    name = argv[0]
    module = importlib.import_module(COMMANDS[name][0])
    parser = argparse.ArgumentParser(prog=f"geoguess {name}", description=COMMANDS[name][1])
    module.add_arguments(parser)
    args = parser.parse_args(argv[1:])
    try:
        return int(module.run(args) or 0)
    except GeoguessError as exc:
        print(f"geoguess {name}: error: {exc}", file=sys.stderr)
        return 2
