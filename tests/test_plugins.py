"""Plug-in points: a decoding and a backbone registered from outside the package's core."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from geoguess_utils import cli
from geoguess_utils.errors import ConfigError
from geoguess_utils.tasks import decoding


@pytest.fixture
def nearest_class_decoding():
    """A toy decoding, registered for one test: the single most probable class point."""

    def most_probable(probabilities, points_km, top_k):
        return points_km[probabilities.argmax(dim=1)]

    decoding.register_decoding("most_probable")(most_probable)
    yield "most_probable"
    del decoding.DECODINGS["most_probable"]


def test_a_registered_decoding_is_used_by_the_task_and_offered_by_the_cli(nearest_class_decoding, capsys):
    from geoguess_utils.tasks.classification import ClassificationTask

    task = ClassificationTask(pretrained=False, decoding=nearest_class_decoding)
    assert task.decoding == "most_probable"
    probs = torch.tensor([[0.1, 0.7, 0.2], [0.6, 0.3, 0.1]], dtype=torch.float64)
    points = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]], dtype=torch.float64)
    chosen = decoding.get_decoding(task.decoding)(probs, points, 5)
    assert chosen.tolist() == [[10.0, 0.0], [0.0, 0.0]]
    with pytest.raises(SystemExit):
        cli.main(["predict", "--help"])
    assert "most_probable" in capsys.readouterr().out


def test_unknown_or_duplicate_decodings_are_refused():
    from geoguess_utils.tasks.classification import ClassificationTask

    with pytest.raises(ConfigError, match=r"unknown decoding 'nearest'.*weighted_mean, geometric_median"):
        ClassificationTask(pretrained=False, decoding="nearest")
    with pytest.raises(ConfigError, match="already registered"):
        decoding.register_decoding("weighted_mean")(lambda p, x, k: p @ x)


def test_the_built_in_decodings_agree_on_a_certain_prediction():
    probs = torch.tensor([[0.0, 1.0, 0.0]], dtype=torch.float64)
    points = torch.tensor([[0.0, 0.0], [3.0, 4.0], [9.0, 9.0]], dtype=torch.float64)
    for name in ("weighted_mean", "geometric_median"):
        torch.testing.assert_close(decoding.get_decoding(name)(probs, points, 2), points[1:2])


class _MeanColour(nn.Module):
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images.mean(dim=(2, 3))


@pytest.fixture
def toy_backbone():
    from geoguess_utils.models import backbones

    mean, std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
    backbones.register_backbone("toy_mean_colour", mean=mean, std=std)(lambda pretrained: (_MeanColour(), 3))
    yield "toy_mean_colour", mean, std
    backbones.BACKBONES.pop("toy_mean_colour")


def test_a_registered_backbone_brings_its_normalisation_to_data_and_checkpoint(toy_backbone, tmp_path):
    import pytorch_lightning as pl
    from _training_helpers import make_dataset

    from geoguess_utils.checkpoints.files import load_checkpoint
    from geoguess_utils.data.datamodule import GeoDataModule
    from geoguess_utils.data.settings import CacheSettings, CellSettings
    from geoguess_utils.models import backbones
    from geoguess_utils.tasks.classification import ClassificationTask
    from geoguess_utils.tasks.loading import load_task

    name, mean, std = toy_backbone
    assert name in backbones.list_backbones()
    assert backbones.backbone_normalization(name) == (mean, std)
    root = make_dataset(tmp_path / "root", 24, size=32, seed=3)
    dm = GeoDataModule(
        roots=[str(root)],
        image_size=32,
        batch_size=8,
        cells=CellSettings(spacing_deg=0.7),
        cache=CacheSettings(dir=str(tmp_path / "cache")),
    )
    task = ClassificationTask(backbone=name, pretrained=False, freeze_backbone_epochs=0)
    trainer = pl.Trainer(max_epochs=1, logger=False, enable_progress_bar=False, default_root_dir=tmp_path)
    trainer.fit(task, datamodule=dm)
    assert dm.normalization == (mean, std)
    batch = next(iter(dm.val_dataloader()))
    # a view normalised with (0.5, 0.25) lies in [-2, 2]; ImageNet statistics would give about [-2.1, 2.6]
    assert batch["images"].min() >= -2.0 - 1e-6 and batch["images"].max() <= 2.0 + 1e-6
    path = tmp_path / "toy.ckpt"
    trainer.save_checkpoint(path)
    record = load_checkpoint(path)["geoguess"]
    assert record["normalization"] == {"mean": list(mean), "std": list(std)}
    assert load_task(path).hparams.backbone == name


def test_subclass_options_pass_through_to_the_base_and_all_show_in_the_cli():
    from jsonargparse import ArgumentParser

    from geoguess_utils.tasks.base import GeoTask
    from geoguess_utils.tasks.classification import ClassificationTask

    parser = ArgumentParser()
    parser.add_class_arguments(ClassificationTask, "model")
    options = set(parser.get_defaults()["model"].keys())
    assert GeoTask.accepted_arguments() < options  # every shared option, without restating it
    assert {"label_smoothing_tau_km", "decoding", "median_top_k"} <= options
    assert ClassificationTask.accepted_arguments() == options
    task = ClassificationTask(pretrained=False, lr=0.01, decoding="geometric_median")
    assert task.hparams.lr == 0.01 and task.hparams.decoding == "geometric_median"
