"""The k-nearest-neighbour model: a bank of training embeddings, selectable from the command line."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
import pytorch_lightning as pl
from _training_helpers import fit_args, make_dataset

from geoguess_utils import inference
from geoguess_utils.data.datamodule import GeoDataModule
from geoguess_utils.data.settings import CacheSettings, CellSettings, EmbeddingSettings
from geoguess_utils.errors import ConfigError
from geoguess_utils.tasks.experimental.knn import KNNTask
from geoguess_utils.tasks.loading import load_task
from geoguess_utils.training import lightning_cli
from geoguess_utils.training.callbacks import TaskDataLink


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("knn") / "root", 30, size=32, seed=8)


def test_one_neighbour_finds_each_training_location_itself(root, tmp_path):
    module = GeoDataModule(
        roots=[str(root)],
        image_size=32,
        batch_size=8,
        augment=False,
        cells=CellSettings(spacing_deg=0.7),
        cache=CacheSettings(dir=str(tmp_path / "cache")),
        embeddings=EmbeddingSettings(enabled=True),
    )
    task = KNNTask(backbone="resnet18", pretrained=False, neighbours=1, temperature=0.01)
    trainer = pl.Trainer(
        max_epochs=1, logger=False, enable_progress_bar=False, default_root_dir=tmp_path, callbacks=[TaskDataLink()]
    )
    trainer.fit(task, datamodule=module)
    assert bool(task.bank_filled.all()) and len(task.bank_filled) == len(module.dataset("train"))
    assert task.backbone_frozen and task.freeze_epochs == "all"
    path = tmp_path / "knn.ckpt"
    trainer.save_checkpoint(path)
    split_csv = tmp_path / "split.csv"
    module.split.to_csv(split_csv, index=False)
    train = inference.predict(path, [root], split="train", split_csv=split_csv, cache_dir=tmp_path / "c2")
    # each training location is its own nearest neighbour (moved onto land at most)
    assert float(np.median(train.table["error_km"])) < 1.0
    loaded = load_task(path)
    assert isinstance(loaded, KNNTask) and bool(loaded.bank_filled.all())


def test_bad_settings_are_refused():
    with pytest.raises(ConfigError, match="neighbours"):
        KNNTask(pretrained=False, neighbours=0)
    with pytest.raises(ConfigError, match="aggregate"):
        KNNTask(pretrained=False, aggregate="vote")


def test_knn_is_selectable_from_the_command_line(root, tmp_path):
    old = os.getcwd()
    os.chdir(tmp_path)
    try:
        extra = ("--trainer.logger", "false", "--data.embeddings.enabled", "true")
        args = fit_args(root, tmp_path, *extra, epochs=1, task="KNNTask")
        run = lightning_cli.GeoguessCLI(args=args)
        assert isinstance(run.model, KNNTask)
        lightning_cli.fit(run.trainer, run.model, run.datamodule)
        tested = lightning_cli.test_best(run.trainer, run.model, run.datamodule)
    finally:
        os.chdir(old)
    assert 0 < tested[0]["test/mean_km"] < 500
    assert isinstance(pd.DataFrame(tested), pd.DataFrame)
