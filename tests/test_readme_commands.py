"""Every ``geoguess`` command of the README, as written, in the README's order.

The README's ``bash`` blocks are read and each ``geoguess`` line is either

* **run** in a scratch folder (with ``configs/`` beside it, as in a checkout), its
  ``/path/to/...`` placeholders replaced by two small dataset roots made here, and it
  must exit 0; or
* **checked**: a synopsis line (``ROOT``, ``CKPT``, ``[--data ROOT ...]``), or one that
  needs a network service or runs until stopped, must name a command that exists and
  only options its ``--help`` lists. :data:`NOT_RUN_HERE` gives the reason for each kind.

A new command line in the README falls into one of these two groups by itself; only
:data:`ADJUSTED` changes a command (a smaller synthetic sample, so the scratch run
takes seconds instead of minutes).
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest
from _training_helpers import make_dataset

from geoguess_utils import cli

pytestmark = pytest.mark.usefixtures("one_torch_thread")

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
BASH_BLOCK = re.compile(r"^[ \t]*```bash\n(.*?)^[ \t]*```", re.S | re.M)
PLACEHOLDERS = {"ROOT", "CKPT", "RUN", "N", "KEY", "DIR", "NAME", "..."}
NOT_RUN_HERE = {
    "download-streetview": "needs Google's Street View API and a key",
    "download-mapillary": "needs Mapillary's API and a token",
    "serve": "runs until stopped (tests/test_serve*.py start and stop it)",
}
NEEDS_DOWNLOAD = {"data/mapillary": "reads a root only download-mapillary makes"}
ADJUSTED = {"make-sample": ["--locations", "60", "--size", "64"]}
"""Options added to a command when it runs here (documented in the module docstring)."""


def readme_commands() -> list[tuple[int, list[str]]]:
    """``(line number, tokens)`` of every ``geoguess`` command in the README's bash blocks, in order."""
    text = README.read_text(encoding="utf-8")
    commands = []
    for block in BASH_BLOCK.finditer(text):
        first_line = text.count("\n", 0, block.start(1)) + 1
        joined = block.group(1).replace("\\\n", " ")  # continuation lines
        for offset, line in enumerate(joined.splitlines()):
            tokens = shlex.split(line, comments=True)
            if tokens and tokens[0] in ("geoguess", ".venv/bin/geoguess"):
                commands.append((first_line + offset, ["geoguess", *tokens[1:]]))
    return commands


def is_synopsis(tokens: list[str]) -> bool:
    """Whether a line describes a command's form (``ROOT``, ``[--data ROOT ...]``) rather than one to run."""
    return any(token in PLACEHOLDERS or re.match(r"^\[(--|[A-Z])", token) for token in tokens[1:])


def reason_not_run(tokens: list[str]) -> str | None:
    if len(tokens) < 2:
        return None
    if tokens[1] in NOT_RUN_HERE:
        return NOT_RUN_HERE[tokens[1]]
    for path, reason in NEEDS_DOWNLOAD.items():
        if any(path in token for token in tokens):
            return reason
    return "a synopsis" if is_synopsis(tokens) else None


def _main(argv: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            status = cli.main(argv)
        except SystemExit as done:  # --help
            status = int(done.code or 0)
    return status, out.getvalue()


def check_options(tokens: list[str]) -> None:
    """The command exists and lists every ``--option`` the line uses in its ``--help``."""
    status, help_text = _main([tokens[1], "--help"])
    assert status == 0, f"geoguess {tokens[1]} --help: {help_text}"
    for option in (token.strip("[]") for token in tokens if token.lstrip("[").startswith("--")):
        assert option in help_text, f"README's `{' '.join(tokens)}`: {option} is not an option of geoguess {tokens[1]}"


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    """A folder laid out like a checkout (``configs/``) with two small roots for the ``/path/to/...`` names."""
    work = tmp_path_factory.mktemp("readme")
    (work / "configs").symlink_to(REPO / "configs")
    roots = {
        "/path/to/lumen_train": make_dataset(work / "lumen_train", 48, size=64, seed=41),
        "/path/to/external_set": make_dataset(work / "external_set", 32, size=64, seed=42),
    }
    return work, roots


def test_the_readme_has_the_commands_a_new_user_needs():
    lines = [" ".join(tokens) for _, tokens in readme_commands()]
    for command in ("validate", "fit", "predict", "evaluate", "map", "make-sample", "serve"):
        assert any(line.startswith(f"geoguess {command} ") for line in lines), command
    assert any("--run" in line and "--split test" in line for line in lines if line.startswith("geoguess evaluate"))


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_every_readme_command_runs_or_is_a_valid_synopsis(scratch, monkeypatch):
    work, roots = scratch
    monkeypatch.chdir(work)
    monkeypatch.delenv("GEOGUESS_DATA_DIR", raising=False)
    ran, checked = [], []
    for line_no, tokens in readme_commands():
        where = f"README.md:{line_no}: {' '.join(tokens)}"
        if tokens[1:] == ["--help"]:
            status, output = _main(["--help"])
            assert status == 0 and "validate" in output, where
            ran.append(where)
            continue
        reason = reason_not_run(tokens)
        if reason is not None:
            check_options(tokens)
            checked.append((where, reason))
            continue
        argv = [_placeholder(token, roots) for token in tokens[1:]]
        argv += ADJUSTED.get(argv[0], [])
        status, output = _main(argv)
        assert status == 0, f"{where}\nexited {status}:\n{output[-3000:]}"
        ran.append(where)
    commands_run = {where.split(": ", 1)[1].split()[1] for where in ran}
    assert {"validate", "fit", "predict", "evaluate", "map", "make-sample", "grid"} <= commands_run, ran
    assert (work / "figures" / "real_map.html").is_file()
    assert all(reason for _, reason in checked)


def _placeholder(token: str, roots: dict[str, Path]) -> str:
    for name, root in roots.items():
        token = token.replace(name, str(root))
    return token


def test_synopsis_lines_are_told_apart_from_commands():
    assert is_synopsis(shlex.split("geoguess validate ROOT [ROOT ...]"))
    assert is_synopsis(shlex.split("geoguess map --ckpt CKPT [--data ROOT ...] [--split test]"))
    assert not is_synopsis(shlex.split("geoguess fit --config configs/quick_cpu.yaml --data.roots '[/a, /b]'"))
    assert not is_synopsis(shlex.split("geoguess evaluate predictions.csv --run runs/quick_cpu/version_0 --split test"))
    with pytest.raises(AssertionError, match="--no-such-option"):
        check_options(shlex.split("geoguess predict --ckpt CKPT --no-such-option"))
