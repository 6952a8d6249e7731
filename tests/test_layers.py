"""The package's layers (pyproject.toml's import-linter contracts) hold, and would catch a break.

``make test`` runs ``lint-imports`` itself; these tests check that the contracts pass on the
package, that they fail when a module imports upwards (so they guard something), and that
the data module and the tasks reach each other only through callbacks.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

pytestmark = pytest.mark.skipif(not LINT_IMPORTS.exists(), reason="import-linter is not installed (make install)")


def _lint(project: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--config", str(project / "pyproject.toml")],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(project)},
    )


def _copy(tmp_path: Path) -> Path:
    copy = tmp_path / "project"
    shutil.copytree(PROJECT / "geoguess_utils", copy / "geoguess_utils", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(PROJECT / "pyproject.toml", copy / "pyproject.toml")
    return copy


def test_the_layers_hold_on_the_package():
    result = _lint(PROJECT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


BREAKS = [
    ("tasks/base.py", "from geoguess_utils.training import callbacks", "Tasks do not import training"),
    ("data/splits.py", "from geoguess_utils.embeddings import TaskFeatures", "Data knows nothing of models"),
    ("viz/basemap.py", "from geoguess_utils.course import workspace", "Nothing in the library"),
    ("cells/frame.py", "from geoguess_utils.datasets.synthetic import scene", "Cells do not import dataset"),
    ("serve/app.py", "from geoguess_utils.cli import predict", "The command line is imported by nothing"),
    ("models/multiview.py", "from geoguess_utils.data import layout", "Models know nothing of data"),
    ("viz/photos.py", "from geoguess_utils.tasks import decoding", "Figures import nothing above evaluation"),
]
"""One import that breaks each rule: (module, the import, the contract it breaks)."""


def test_an_import_that_breaks_a_rule_fails_its_contract(tmp_path):
    copy = _copy(tmp_path)
    for module, line, _ in BREAKS:  # one copy with every break: one lint run names them all
        target = copy / "geoguess_utils" / module
        target.write_text(target.read_text(encoding="utf-8") + f"\n\ndef _broken() -> None:\n    {line}  # noqa\n")
    result = _lint(copy)
    assert result.returncode != 0
    broken = result.stdout.split("Broken contracts", 1)[-1]
    for module, line, contract in BREAKS:
        assert contract in broken, f"{module}: {line!r} did not break {contract!r}"
        assert module.replace("/", ".").removesuffix(".py") in broken
    assert "Layers, from the notebooks' helpers down to errors" in broken  # the order is a contract too


def test_the_data_module_warns_when_the_cache_is_on_but_no_feature_source_is_attached(tmp_path):
    from _training_helpers import make_dataset

    from geoguess_utils.data.datamodule import GeoDataModule
    from geoguess_utils.data.settings import CacheSettings, CellSettings, EmbeddingSettings

    root = make_dataset(tmp_path / "root", 16, size=32, seed=2)
    module = GeoDataModule(
        roots=[str(root)],
        image_size=16,
        batch_size=4,
        cells=CellSettings(spacing_deg=0.7),
        cache=CacheSettings(dir=str(tmp_path / "cache")),
        embeddings=EmbeddingSettings(enabled=True),
    )
    with pytest.warns(UserWarning, match="TaskDataLink"):
        batch = next(iter(module.train_dataloader()))
    assert "images" in batch  # images, said out loud, not features silently missing
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # said once, not on every epoch
        module.train_dataloader()


def test_a_task_hands_its_backbones_normalisation_to_the_data_through_a_callback():
    from geoguess_utils.models.backbones import backbone_normalization
    from geoguess_utils.tasks.classification import ClassificationTask
    from geoguess_utils.tasks.data_link import InputNormalization

    task = ClassificationTask(backbone="resnet18", pretrained=False)
    (callback,) = [c for c in task.configure_callbacks() if isinstance(c, InputNormalization)]
    assert (callback.mean, callback.std) == backbone_normalization("resnet18")

    class FakeTrainer:
        class datamodule:  # noqa: N801 - stands in for a data module instance
            seen = None

            @classmethod
            def set_normalization(cls, mean, std):
                cls.seen = (mean, std)

    callback.setup(FakeTrainer(), task, "fit")
    assert FakeTrainer.datamodule.seen == backbone_normalization("resnet18")
