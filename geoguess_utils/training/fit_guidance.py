"""Short, actionable messages for ``geoguess fit``: its help summary, bad options, GPU and dataset errors.

Pure text functions; :mod:`geoguess_utils.training.lightning_cli` decides when they apply.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

QUICK_CONFIG = "configs/quick_cpu.yaml"
"""The config that runs on any machine (CPU only)."""

SHORT_USAGE = (
    "usage: geoguess fit --config FILE [--section.key VALUE ...]  "
    "(geoguess fit --help-short: the common options; geoguess fit --help: all of them)"
)

COMMON_OVERRIDES: tuple[tuple[str, str], ...] = (
    ("--config FILE", f"the YAML config to start from ({QUICK_CONFIG}, configs/gpu_full.yaml)"),
    ("--data.roots '[ROOT, ...]'", "dataset roots in the LUMEN layout (each holding data.csv and images/)"),
    ("--trainer.max_epochs N", "how many passes over the training split"),
    ("--trainer.accelerator cpu|gpu", "where to train (gpu needs CUDA)"),
    ("--data.image_size PX", "side the views are resized to before the network (e.g. 64, 224)"),
    ("--data.batch_size N", "locations per batch (four views each)"),
    ("--data.num_workers N", "image-loading processes (about the number of CPU cores)"),
    (
        "--model.class_path CLASS",
        "geoguess_utils.tasks.classification.ClassificationTask or geoguess_utils.tasks.regression.RegressionTask",
    ),
    ("--model.init_args.backbone NAME", "the image network (e.g. efficientnet_lite0, resnext101_32x8d)"),
    ("--model.init_args.lr RATE", "learning rate of the head (the backbone's is lr * backbone_lr_factor)"),
    ("--data.reading.expected_source_size null", "accept photos of any size (a config may pin 640 px)"),
    ("--ckpt_path FILE", "resume an interrupted run from its last.ckpt"),
)
"""The overrides a learner needs most, with what each does."""

HELP_SHORT_FLAG = "--help-short"

_SHOWN_PROBLEMS = 5
_PROBLEMS_FILE = "dataset_problems.txt"


def help_summary(full_help_follows: bool = False) -> str:
    """The curated summary that starts ``geoguess fit --help`` and is all of ``--help-short``.

    Args:
        full_help_follows: Say that the complete list comes next (``--help``) rather
            than how to get it (``--help-short``).
    """
    width = max(len(name) for name, _ in COMMON_OVERRIDES)
    lines = ["geoguess fit: train a model from a YAML config, then test its best checkpoint.", "", "common options:"]
    lines += [f"  {name.ljust(width)}  {meaning}" for name, meaning in COMMON_OVERRIDES]
    lines += [
        "",
        "any other setting: --section.key VALUE ("
        + ("every one of them follows)" if full_help_follows else "every one of them: geoguess fit --help)"),
        "",
    ]
    return "\n".join(lines)


def unknown_options(message: str) -> list[str]:
    """The option names (``--a.b``) an ``unrecognized arguments`` error lists, in order."""
    if "unrecognized arguments" not in message:
        return []
    listed = message.split("unrecognized arguments:", 1)[1]
    return [token.split("=", 1)[0] for token in listed.split() if token.startswith("--")]


def closest_options(name: str, valid: Iterable[str], count: int = 3) -> list[str]:
    """Valid option names closest to a mistyped one (``--trainer.max_epoks`` -> ``--trainer.max_epochs``).

    Args:
        name: The option as given, with its leading dashes.
        valid: Every option the parser accepts.
        count: At most this many suggestions.

    Returns:
        Up to ``count`` names, the closest first; names in the same section (the part
        before the last dot) are preferred, so ``--trainer.max_epoks`` is not matched
        with a ``--data`` option.
    """
    options = sorted({v for v in valid if v.startswith("--")})
    section = name.rsplit(".", 1)[0] + "." if "." in name else None
    same = [v for v in options if section is not None and v.startswith(section)]
    found = difflib.get_close_matches(name, same, n=count, cutoff=0.6) if same else []
    if len(found) < count:
        found += [v for v in difflib.get_close_matches(name, options, n=count, cutoff=0.6) if v not in found]
    return found[:count]


def bad_option_message(message: str, valid: Iterable[str]) -> str:
    """An argument error as the first line, the closest valid names, then the short usage.

    Args:
        message: The parser's own error text.
        valid: Every option the parser accepts (for suggestions).
    """
    message = " ".join(message.split())
    lines = [message]
    for name in unknown_options(message):
        suggestions = closest_options(name, valid)
        if suggestions:
            lines.append(f"  {name}: did you mean {' or '.join(suggestions)}?")
        else:
            lines.append(f"  {name}: no option of that name (abbreviations are not accepted)")
    lines.append(SHORT_USAGE)
    return "\n".join(lines)


def missing_config_files(argv: Sequence[str]) -> list[str]:
    """The ``--config`` / ``-c`` files named in ``argv`` that do not exist."""
    missing = []
    for i, arg in enumerate(argv):
        value = None
        if arg in ("--config", "-c") and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith("--config="):
            value = arg.split("=", 1)[1]
        inline = value is not None and value.lstrip().startswith(("{", "trainer:", "model:", "data:"))
        if value is not None and not inline and not Path(value).expanduser().is_file():
            missing.append(value)
    return missing


def no_gpu_message(config_files: Sequence[str]) -> str:
    """One line for a config that asks for a CUDA GPU on a machine without one."""
    named = f" ({', '.join(config_files)})" if config_files else ""
    return (
        f"this configuration{named} needs a CUDA GPU, and this machine has none: train on the CPU with "
        f"--config {QUICK_CONFIG}, or keep this config and add --trainer.accelerator cpu (much slower)"
    )


def is_no_gpu_error(exc: BaseException) -> bool:
    """Whether Lightning refused to start because the requested GPU backend is missing."""
    text = str(exc).lower()
    return "no supported gpu backend" in text or ("cuda" in text and "not available" in text)


def shorten_dataset_error(message: str, folder: str | os.PathLike[str] | None) -> tuple[str, Path | None]:
    """Turn a dataset error listing thousands of problems into a count, the first few and the fix.

    Args:
        message: The error text: a heading line, one line per problem (tab-separated
            uuid, kind, file, message), then a summary line.
        folder: Where to write the full list when the message does not name a report
            file already; ``None`` writes nothing.

    Returns:
        ``(short message, file written or None)``; a message of a few problems comes
        back unchanged.
    """
    from geoguess_utils.io import atomic_write_text

    lines = message.splitlines()
    problems = [line for line in lines[1:-1] if line.count("\t") >= 2]
    if len(problems) <= _SHOWN_PROBLEMS:
        return message, None
    heading = lines[0].rstrip(":")
    named = re.search(r"\(also written to (.+?)\)", heading)
    written: Path | None = None
    if named:
        where = named.group(1)
        heading = heading.replace(named.group(0), "").rstrip()
    elif folder is not None:
        written = atomic_write_text(Path(folder) / _PROBLEMS_FILE, message + "\n")
        where = str(written)
    else:
        where = None
    fields = [line.split("\t", 3) for line in problems]
    kinds = [f[1] for f in fields]
    out = [f"{heading}: {lines[-1].strip()}; the first {_SHOWN_PROBLEMS}:"]
    out += [f"  {f[0]}: {f[3] if len(f) > 3 else f[2]}" for f in fields[:_SHOWN_PROBLEMS]]
    if "unexpected_size" in kinds:
        out.append(
            f"{kinds.count('unexpected_size')} images are not the size the config requires "
            "(data.reading.expected_source_size); to accept photos of any size pass "
            "--data.reading.expected_source_size null"
        )
    if where is not None:
        out.append(f"every problem is listed in {where}")
    return "\n".join(out), written
