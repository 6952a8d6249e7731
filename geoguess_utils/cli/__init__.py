"""The ``geoguess`` command line.

Each sub-command lives in the module that owns its work; this file only lists them.
A command module exposes ``add_arguments(parser)`` and ``run(args) -> int``. Modules
are imported only when their command runs, so ``geoguess --help`` stays fast.

Every command ends with one of the exit statuses in :data:`EXIT_CODES`; :func:`main`
is the one place that turns errors into them.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from collections.abc import Callable, Sequence

from geoguess_utils.errors import (  # noqa: F401 - the exit statuses are part of the command line's interface
    EXIT_CODES,
    EXIT_CODES_HELP,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PROBLEMS,
    EXIT_REFUSED,
    GeoguessError,
)

# name -> (module path, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "grid": ("geoguess_utils.cli.grid", "build the square grid over Croatia and draw it"),
    "make-sample": ("geoguess_utils.cli.make_sample", "write the offline SYNTHETIC dataset (procedural Croatia)"),
    "download-streetview": ("geoguess_utils.cli.download_streetview", "fetch real Street View data, YOUR API key"),
    "download-mapillary": ("geoguess_utils.cli.download_mapillary", "build a dataset of CC BY-SA Mapillary photos"),
    "validate": ("geoguess_utils.cli.validate", "check LUMEN dataset roots and list every problem"),
    "predict": ("geoguess_utils.cli.predict", "write uuid,latitude,longitude for every folder, from a checkpoint"),
    "evaluate": ("geoguess_utils.cli.evaluate", "score a predictions CSV against the truth (one JSON line)"),
    "calibrate": (
        "geoguess_utils.cli.calibrate",
        "fit a checkpoint's temperature and search regions on its validation split",
    ),
    "embed": ("geoguess_utils.cli.embed", "compute the embedding cache: each view's backbone features, once"),
    "map": ("geoguess_utils.cli.map", "draw a checkpoint's predictions on an interactive HTML map"),
    "serve": ("geoguess_utils.cli.serve", "serve checkpoints over HTTP, with a 'where is this?' page (FastAPI)"),
}


# Commands that parse their own arguments (LightningCLI); everything after the name is theirs.
PASSTHROUGH: dict[str, tuple[str, str]] = {
    "fit": ("geoguess_utils.training.lightning_cli", "train a model from a YAML config (LightningCLI), then test it"),
}


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level argument parser with every registered sub-command."""
    parser = argparse.ArgumentParser(prog="geoguess", description="GeoGuessr for Croatia.", epilog=EXIT_CODES_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in {**COMMANDS, **PASSTHROUGH}.items():
        sub.add_parser(name, help=help_text, add_help=name not in PASSTHROUGH)
    return parser


def run_command(name: str, run: Callable[[], int | None]) -> int:
    """Run one command and map how it ended to an exit status of :data:`EXIT_CODES`.

    Args:
        name: The sub-command, for messages.
        run: Runs it and returns its own status (0, or 1 when it found problems).

    Returns:
        The exit status.
    """
    from geoguess_utils.quiet import quiet_dependencies

    try:
        with quiet_dependencies():
            return int(run() or EXIT_OK)
    except GeoguessError as exc:
        print(f"geoguess {name}: error: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except OSError as exc:  # a file geoguess was not told about, or the system refused
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"geoguess {name}: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return EXIT_REFUSED
    except KeyboardInterrupt:
        print(f"geoguess {name}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        traceback.print_exc()
        print(f"geoguess {name}: internal error ({type(exc).__name__}); please report it", file=sys.stderr)
        return EXIT_INTERNAL


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``geoguess`` command and return its exit status (see :data:`EXIT_CODES`)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    from geoguess_utils import threads

    threads.prepare_process()  # before torch is imported: OpenMP threads sleep while they wait
    if argv[:1] == ["fit"] and "--help-short" in argv:  # without importing Lightning: answers in a second
        from geoguess_utils.training import fit_guidance

        print(fit_guidance.help_summary() + fit_guidance.SHORT_USAGE)
        return EXIT_OK
    if argv and argv[0] in PASSTHROUGH:
        module = importlib.import_module(PASSTHROUGH[argv[0]][0])
        return run_command(argv[0], lambda: module.run(argv[1:]))
    if not argv or argv[0] not in COMMANDS:
        build_parser().parse_args(argv or ["--help"])
        return EXIT_REFUSED
    name = argv[0]
    module = importlib.import_module(COMMANDS[name][0])
    parser = argparse.ArgumentParser(prog=f"geoguess {name}", description=COMMANDS[name][1], epilog=EXIT_CODES_HELP)
    module.add_arguments(parser)
    args = parser.parse_args(argv[1:])
    return run_command(name, lambda: module.run(args))
