"""``geoguess fit`` failures as one-line guidance; the per-epoch line; a quiet start."""

from __future__ import annotations

import io
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from _training_helpers import QUICK_CONFIG, fit_args, make_dataset

from geoguess_utils import cli
from geoguess_utils.training import fit_guidance
from geoguess_utils.training.callbacks import EpochLine

REPO = Path(__file__).resolve().parents[1]


def _first_error(err: str) -> str:
    """The first line geoguess itself printed (Lightning's "GPU available" banners may come before)."""
    return next(line for line in err.splitlines() if line.startswith("geoguess fit:"))


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("fit_guidance") / "root", 12, size=32, seed=9)


def test_an_abbreviated_option_is_an_error_naming_the_full_one(capsys):
    assert cli.main(["fit", "--config", str(QUICK_CONFIG), "--trainer.max_epoch", "2"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "geoguess fit: error: unrecognized arguments: --trainer.max_epoch 2"
    assert "did you mean --trainer.max_epochs" in err[1]
    assert err[-1].startswith("usage: geoguess fit --config FILE") and len(err) <= 4


def test_a_misspelt_option_comes_first_with_suggestions_and_a_short_usage(capsys):
    assert cli.main(["fit", "--config", str(QUICK_CONFIG), "--trainer.max_epoks", "2"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("geoguess fit: error: unrecognized arguments: --trainer.max_epoks")
    assert err[1].split("did you mean ")[1].split(" or ")[0] == "--trainer.max_epochs"
    assert len(err) <= 4  # not the 90 lines of LightningCLI's usage


def test_a_missing_config_file_is_the_first_line(tmp_path, capsys):
    missing = tmp_path / "nope.yaml"
    assert cli.main(["fit", "--config", str(missing)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [f"geoguess fit: error: config file {missing} does not exist (try --config configs/quick_cpu.yaml)"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU, so the GPU config is not refused")
def test_a_gpu_config_without_cuda_is_one_line_naming_both_ways_on(tiny_root, tmp_path, capsys):
    argv = fit_args(tiny_root, tmp_path, "--trainer.accelerator", "gpu", "--trainer.logger", "false")
    assert cli.main(["fit", *argv]) == 2
    err = capsys.readouterr().err
    line = _first_error(err)
    assert "needs a CUDA GPU" in line and "configs/quick_cpu.yaml" in line and "--trainer.accelerator cpu" in line
    assert "Traceback" not in err and "MisconfigurationException" not in err
    assert err.splitlines()[0].startswith(("GPU available", "geoguess fit:"))


def test_a_pinned_source_size_gives_a_count_the_first_few_and_the_setting(tiny_root, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = fit_args(tiny_root, tmp_path, "--trainer.logger", "false", "--data.reading.expected_source_size", "640")
    assert cli.main(["fit", *argv]) == 2
    lines = capsys.readouterr().err.splitlines()
    start = lines.index(_first_error("\n".join(lines)))
    shown = lines[start:]
    assert "48 problems (unexpected_size: 48)" in shown[0]
    assert len(shown) <= 8  # not one line per image
    assert sum("image is 32x32 pixels, expected 640x640" in line for line in shown) == 5
    assert any("--data.reading.expected_source_size null" in line for line in shown)
    report = tmp_path / "dataset_problems.txt"
    assert f"every problem is listed in {report}" in shown[-1]
    assert report.read_text().count("\tunexpected_size\t") == 48


def test_help_starts_with_the_common_overrides(capsys):
    with pytest.raises(SystemExit) as done:
        cli.main(["fit", "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    head = out.split("usage:", 1)[0]
    assert sum(line.startswith("  --") for line in head.splitlines()) == len(fit_guidance.COMMON_OVERRIDES)
    assert "--trainer.max_epochs" in head and "--data.roots" in head
    assert len(out.splitlines()) > 200  # the full help is still there


def test_help_short_answers_without_lightning():
    code = "import sys\nfrom geoguess_utils import cli\nsys.exit(cli.main(['fit', '--help-short']))\n"
    probe = (
        code.replace("sys.exit(", "status = (") + "print('pytorch_lightning' in sys.modules, 'torch' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={"PYTHONPATH": str(REPO)},
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[-1] == "False False"
    assert lines[-2].startswith("usage: geoguess fit --config FILE")
    assert sum(line.startswith("  --") for line in lines) == len(fit_guidance.COMMON_OVERRIDES)


def test_closest_options_prefers_the_same_section():
    valid = ["--trainer.max_epochs", "--trainer.min_epochs", "--data.max_epochs_cache", "--model.init_args.lr"]
    assert fit_guidance.closest_options("--trainer.max_epoks", valid)[0] == "--trainer.max_epochs"
    assert fit_guidance.closest_options("--zzz", valid) == []
    message = fit_guidance.bad_option_message("unrecognized arguments: --zzz 1", valid)
    assert message.splitlines()[1] == "  --zzz: no option of that name (abbreviations are not accepted)"


def test_a_few_dataset_problems_stay_as_they_are(tmp_path):
    message = "the dataset has problems:\na\tnot_jpeg\tf\tf: not a JPEG\nchecked 1 locations and 4 images: 1 problems"
    assert fit_guidance.shorten_dataset_error(message, tmp_path) == (message, None)
    assert not (tmp_path / "dataset_problems.txt").exists()


class _Trainer:
    """What EpochLine reads from a trainer."""

    def __init__(self, metrics, epoch=2, max_epochs=10):
        self.callback_metrics = metrics
        self.current_epoch = epoch
        self.max_epochs = max_epochs
        self.is_global_zero = True
        self.sanity_checking = False


def test_epoch_line_shows_epoch_loss_km_and_seconds():
    stream = io.StringIO()
    line = EpochLine(stream=stream)
    trainer = _Trainer({"train/loss_epoch": torch.tensor(2.31456), "val/mean_km": torch.tensor(84.26)})
    line.on_train_epoch_start(trainer, None)
    line.on_validation_epoch_end(trainer, None)
    line.on_train_epoch_end(trainer, None)
    text = stream.getvalue()
    assert text.startswith("epoch 3/10: train loss 2.315, val mean 84.3 km, ") and text.endswith(" s\n")
    # an epoch without validation does not repeat the previous epoch's km
    stream.truncate(0), stream.seek(0)
    line.on_train_epoch_start(trainer, None)
    line.on_train_epoch_end(trainer, None)
    assert "no validation this epoch" in stream.getvalue() and "84.3" not in stream.getvalue()


def test_fit_prints_one_line_per_epoch_and_no_noise(tiny_root, tmp_path):
    """A real run in a child process, every warning enabled (PYTHONWARNINGS=default), stderr a pipe."""
    argv = fit_args(tiny_root, tmp_path, "--trainer.logger", "false", "--test_after_fit", "false", epochs=2)
    code = f"import sys\nfrom geoguess_utils import cli\nsys.exit(cli.main(['fit', *{argv!r}]))\n"
    env = {"PYTHONPATH": str(REPO), "PYTHONWARNINGS": "default", "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr
    err = done.stderr.splitlines()
    epochs = [line for line in err if line.startswith("epoch ")]
    assert [line.split(":")[0] for line in epochs] == ["epoch 1/2", "epoch 2/2"], done.stderr
    assert all("val mean" in line and line.endswith(" s") for line in epochs)
    assert not any("litlogger" in line or "Tip:" in line for line in err), done.stderr


def test_the_quiet_start_is_undone_afterwards():
    import logging
    import warnings

    from geoguess_utils.quiet import quiet_dependencies

    logger = logging.getLogger("pytorch_lightning.utilities.rank_zero")
    before = list(logger.filters)
    with quiet_dependencies():
        assert len(logger.filters) == len(before) + 1
    assert logger.filters == before
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.warn("a user's own deprecation", DeprecationWarning, stacklevel=1)
    assert caught


def _warn_from(module: str, category: type[Warning]) -> None:
    warnings.warn_explicit(f"{module}: old API", category, filename=f"{module}.py", lineno=1, module=module)


@pytest.mark.parametrize("module", ["pytorch_lightning.cli", "lightning_fabric.utilities.seed", "torch.nn.modules"])
def test_the_quiet_start_hides_only_the_dependencies_deprecations_it_names(module):
    """Our own filter, tested with warnings the test raises itself (no dependency's wording is assumed)."""
    from geoguess_utils.quiet import quiet_dependencies

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with quiet_dependencies():
            _warn_from(module, DeprecationWarning)  # hidden
            _warn_from(module, FutureWarning)  # hidden
            _warn_from(module, UserWarning)  # shown: not a deprecation
            _warn_from("geoguess_utils.tasks.classification", DeprecationWarning)  # shown: ours
            _warn_from("some_user_package", FutureWarning)  # shown: not a dependency it names
        _warn_from(module, DeprecationWarning)  # shown: the block is over
    assert [(w.category, str(w.message)) for w in caught] == [
        (UserWarning, f"{module}: old API"),
        (DeprecationWarning, "geoguess_utils.tasks.classification: old API"),
        (FutureWarning, "some_user_package: old API"),
        (DeprecationWarning, f"{module}: old API"),
    ]
